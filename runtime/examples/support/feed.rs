//! A tiny HTTP event feed for the embedding example and its test: serves
//! `GET /events?start=S&end=E` in the seed shape from a fixed list of
//! Catalog events, on a loopback port.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The id of sample game `n`.
pub fn game_id(n: u64) -> String {
    format!("3f2504e0-4f89-41d3-9a0c-{n:012x}")
}

/// `count` sample events: every game created, then some renamed and some
/// deleted (sequence numbers from 1).
pub fn sample_events(count: u64) -> Vec<(i64, String, String)> {
    (0..count)
        .map(|i| {
            let seq = i as i64 + 1;
            let games = (count / 2).max(1);
            let n = i % games;
            let (name, content) = if i < games {
                (
                    "GameCreated",
                    format!(
                        r#"{{"id":"{}","name":"Game {n}","price":{}.99}}"#,
                        game_id(n),
                        10 + n % 50
                    ),
                )
            } else if i % 7 == 0 {
                ("GameDeleted", format!(r#"{{"id":"{}"}}"#, game_id(n)))
            } else {
                (
                    "GameUpdated",
                    format!(
                        r#"{{"id":"{}","name":"Game {n} (remastered)","price":{}.49}}"#,
                        game_id(n),
                        20 + n % 50
                    ),
                )
            };
            (seq, name.to_owned(), content)
        })
        .collect()
}

/// A running sample feed; stops when dropped.
pub struct SampleFeed {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl SampleFeed {
    /// Serves `events` on `127.0.0.1` (any free port).
    pub fn start(events: Vec<(i64, String, String)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut header = String::new();
                while reader
                    .read_line(&mut header)
                    .map(|n| n > 2)
                    .unwrap_or(false)
                {
                    header.clear();
                }
                let param = |name: &str| -> i64 {
                    line.split(['?', '&', ' '])
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let (start, end) = (param("start"), param("end"));
                let items: Vec<String> = events
                    .iter()
                    .filter(|(seq, _, _)| *seq >= start && *seq <= end)
                    .map(|(seq, name, content)| {
                        format!(r#"{{"sequenceNumber":{seq},"occuredAt":"2024-05-01T12:00:00Z","name":"{name}","content":{content}}}"#)
                    })
                    .collect();
                let body = format!("[{}]", items.join(","));
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(Self { addr, stop })
    }

    /// The feed's URL.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }
}

impl Drop for SampleFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
