//! Kafka helpers: produce with headers, read watermarks, committed offsets
//! and ferry's checkpoints, and run `ferry run` as a child process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Produces `(event type, key, payload)` records with an `event-type`
/// header and waits until all are acknowledged.
pub fn produce<'a>(
    bootstrap: &str,
    topic: &str,
    events: impl IntoIterator<Item = (&'a str, String, String)>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (ty, key, payload) in events {
        let mut record =
            BaseRecord::to(topic)
                .key(&key)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event-type",
                    value: Some(ty),
                }));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// `n` Append events for the chaos plugin, keys `k0..k{keys}`, payload
/// `{"n": i}` (unique per event).
pub fn appends(
    from: u64,
    n: u64,
    keys: u64,
) -> impl Iterator<Item = (&'static str, String, String)> {
    (from..from + n).map(move |i| ("Append", format!("k{}", i % keys), format!("{{\"n\":{i}}}")))
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// High watermark of each partition of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c = consumer(bootstrap, "ferry-tests-watermarks");
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Commits `(partition, next offset)` pairs of `topic` for `group`, as
/// a tool outside the group would. Only before the group has had members:
/// librdkafka's mock broker refuses commits from non-members after that.
pub fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("offset");
    }
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
}

/// The group's committed offset of each partition (`None` if none).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// ferry's checkpoints of `source_key` (`<source>/<topic>`) by partition.
pub fn checkpoints(db: &Path, source_key: &str) -> BTreeMap<i32, i64> {
    if !db.exists() {
        return BTreeMap::new();
    }
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return BTreeMap::new();
    };
    let Ok(mut s) =
        c.prepare(r#"SELECT "partition", "offset" FROM ferry_checkpoints WHERE source = ?1"#)
    else {
        return BTreeMap::new();
    };
    s.query_map([source_key], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Whether ferry's checkpoints have reached every high watermark.
pub fn caught_up(db: &Path, source_key: &str, high: &[i64]) -> bool {
    let cps = checkpoints(db, source_key);
    high.iter().enumerate().all(|(p, &h)| {
        h == 0
            || cps
                .get(&i32::try_from(p).expect("partition"))
                .is_some_and(|&o| o + 1 >= h)
    })
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A running `ferry` child whose stdout and stderr are collected.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Everything it wrote so far (stdout and stderr interleaved by line).
    pub output: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `ferry ARGS` in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut ferry = Command::new(crate::ferry_bin());
        ferry.args(args);
        Self::spawn(ferry, dir)
    }

    /// Starts `command` (a ferry, perhaps under an emulator) in `dir`.
    pub fn spawn(mut command: Command, dir: &Path) -> Self {
        let mut child = command
            .current_dir(dir)
            .env(
                "FERRY_LOG",
                std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let out = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().expect("output");
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Self { child, output }
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    /// Sends SIGINT and waits (bounded) for a clean exit.
    ///
    /// Waits (bounded) for ferry to say it is running first: a SIGINT that
    /// arrives before its signal handler is installed kills it outright.
    pub fn interrupt(self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        self.stop_with(libc::SIGINT, limit)
    }

    /// [`Self::interrupt`] with SIGTERM, as a service manager stops ferry.
    pub fn terminate(self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        self.stop_with(libc::SIGTERM, limit)
    }

    fn stop_with(
        mut self,
        signal: i32,
        limit: Duration,
    ) -> (Option<std::process::ExitStatus>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains("ferry is running")
            && Instant::now() < deadline
            && matches!(self.child.try_wait(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = i32::try_from(self.child.id()).expect("pid");
        #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe {
            libc::kill(pid, signal);
        }
        let status = crate::wait_bounded(&mut self.child, limit);
        std::thread::sleep(Duration::from_millis(100));
        (status, self.output())
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        crate::sigkill(&self.child);
        let _ = crate::wait_bounded(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A consumed record: key, payload, headers.
pub type Record = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Reads partition 0 of `topic` from the beginning until `n` records
/// arrived or `limit` passed.
pub fn consume(bootstrap: &str, topic: &str, n: usize, limit: Duration) -> Vec<Record> {
    use rdkafka::message::{Headers, Message};
    let c = consumer(bootstrap, "ferry-tests-reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers,
            ));
        }
    }
    out
}

/// Produces `(event type, key, payload)` records to one partition.
pub fn produce_to<'a>(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    events: impl IntoIterator<Item = (&'a str, String, String)>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for (ty, key, payload) in events {
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: "event-type",
                value: Some(ty),
            }));
        producer.send(record).map_err(|(e, _)| e).expect("send");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A producer that sends `(event type, key, payload)` records to chosen
/// partitions, for workloads that run while ferry consumes.
pub struct Producer {
    inner: BaseProducer,
}

impl Producer {
    /// A producer for `bootstrap`.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            inner: ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("linger.ms", "2")
                .create()
                .expect("producer"),
        }
    }

    /// Queues one record (retrying while the local queue is full).
    pub fn send(&self, topic: &str, partition: i32, ty: &str, key: &str, payload: &str) {
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: "event-type",
                value: Some(ty),
            }));
        loop {
            match self.inner.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    self.inner.poll(Duration::from_millis(5));
                }
            }
        }
        self.inner.poll(Duration::ZERO);
    }

    /// Waits until everything queued is acknowledged.
    pub fn flush(&self) {
        self.inner.flush(Duration::from_secs(60)).expect("flush");
    }
}

/// A config with the chaos plugin (`Append` events into table `log`) and
/// one Kafka source `src` on `topic`; `source_extra` is appended to the
/// source's table.
pub fn chaos_config(
    ws: &crate::Workspace,
    bootstrap: &str,
    topic: &str,
    source_extra: &str,
) -> std::path::PathBuf {
    crate::ChaosConfig::new()
        .kafka(bootstrap, topic, source_extra)
        .write(ws)
}

/// An in-process mock cluster (librdkafka's) with `topic` of `partitions`.
pub fn cluster(
    topic: &str,
    partitions: i32,
) -> rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    c.create_topic(topic, partitions, 1).expect("topic");
    c
}

/// Runs `ferry run --config config` until the checkpoints of `key` are
/// `until` (partition 0, 1, …), then interrupts it; returns its output.
pub fn run_until_checkpoints(
    ws: &crate::Workspace,
    config: &Path,
    key: &str,
    until: &[i64],
) -> String {
    let run = Running::start(
        ws.dir.path(),
        &["run", "--config", config.to_str().expect("utf-8 path")],
    );
    let reached = || {
        let c = checkpoints(&ws.db(), key);
        until
            .iter()
            .enumerate()
            .all(|(p, o)| i32::try_from(p).is_ok_and(|p| c.get(&p) == Some(o)))
    };
    let done = wait_for(Duration::from_secs(60), reached);
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(done, "checkpoints {:?}\n{out}", checkpoints(&ws.db(), key));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    out
}
