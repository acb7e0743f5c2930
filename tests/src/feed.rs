//! A test HTTP event feed on loopback, serving the seed shape: `GET
//! /events?start=S&end=E` answers a JSON array of `{sequenceNumber,
//! occuredAt, name, content}`. Its behaviour can be switched at run time
//! (503 or 429 with `Retry-After`, garbage, a 404, pages that skip
//! numbers), and it can be stopped and started again on the same port.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The events asked for.
    Normal,
    /// 503 with `Retry-After: <secs>`.
    Unavailable(u64),
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 404.
    NotFound,
}

/// One event of the feed.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Its sequence number.
    pub seq: i64,
    /// Event type.
    pub name: String,
    /// Payload.
    pub content: serde_json::Value,
}

/// What the server serves (shared with the test).
#[derive(Debug)]
pub struct Feed {
    /// The events, in sequence.
    pub events: Mutex<Vec<FeedEvent>>,
    /// The current behaviour.
    pub mode: Mutex<Mode>,
    /// Sequence numbers to leave out of answers (a gap).
    pub hidden: Mutex<Vec<i64>>,
    /// Requests served.
    pub requests: AtomicU64,
    /// Use `occurredAt` instead of the seed's `occuredAt`.
    pub occurred_spelling: AtomicBool,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            mode: Mutex::new(Mode::Normal),
            hidden: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            occurred_spelling: AtomicBool::new(false),
        }
    }
}

impl Feed {
    /// Appends events with the next sequence numbers (from `first` when
    /// empty).
    pub fn push(&self, first: i64, events: impl IntoIterator<Item = (String, serde_json::Value)>) {
        let mut all = self.events.lock().expect("events");
        for (name, content) in events {
            let seq = all.last().map_or(first, |e| e.seq + 1);
            all.push(FeedEvent { seq, name, content });
        }
    }

    /// Switches the behaviour.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn page(&self, start: i64, end: i64) -> String {
        let hidden = self.hidden.lock().expect("hidden").clone();
        let key = if self.occurred_spelling.load(Ordering::Relaxed) {
            "occurredAt"
        } else {
            "occuredAt"
        };
        let items: Vec<serde_json::Value> = self
            .events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e.seq >= start && e.seq <= end && !hidden.contains(&e.seq))
            .map(|e| {
                serde_json::json!({
                    "sequenceNumber": e.seq,
                    key: "2024-05-01T12:00:00.1234567+00:00",
                    "name": e.name,
                    "content": e.content,
                    "producer": "test-feed",
                })
            })
            .collect();
        serde_json::Value::Array(items).to_string()
    }
}

/// A running feed server.
pub struct FeedServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedServer {
    /// Serves `feed` on `127.0.0.1:port` (0: any free port).
    pub fn start(feed: Arc<Feed>, port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the test feed");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(&feed, stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The feed's URL (`http://127.0.0.1:port/events`).
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Stops listening: connections are refused until it starts again.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(feed: &Feed, stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut h = String::new();
    while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
        h.clear();
    }
    feed.requests.fetch_add(1, Ordering::Relaxed);
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    let mode = feed.mode.lock().expect("mode").clone();
    let (status, extra, body) = match (path, mode) {
        (_, Mode::Unavailable(s)) => (
            "503 Service Unavailable",
            format!("Retry-After: {s}\r\n"),
            String::new(),
        ),
        (_, Mode::TooMany(s)) => (
            "429 Too Many Requests",
            format!("Retry-After: {s}\r\n"),
            String::new(),
        ),
        (_, Mode::NotFound) => ("404 Not Found", String::new(), "no such feed".to_owned()),
        (_, Mode::Garbage) => (
            "200 OK",
            String::new(),
            "<html>maintenance</html>".to_owned(),
        ),
        ("/events", Mode::Normal) => match (param("start"), param("end")) {
            (Some(s), Some(e)) => ("200 OK", String::new(), feed.page(s, e)),
            _ => (
                "400 Bad Request",
                String::new(),
                "start and end are required".to_owned(),
            ),
        },
        _ => ("404 Not Found", String::new(), String::new()),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
}
