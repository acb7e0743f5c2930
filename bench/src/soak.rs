//! `--soak N`: `ferry run` (child process) consumes N Game events from the
//! mock cluster while its resident memory is sampled every 200 ms. The
//! mock broker keeps only about 5 MB per partition, so the producer stays
//! at most [`AHEAD`] events (~3 MB) ahead of ferry's checkpoint in *each*
//! partition (read from its SQLite file): produce and consume in rounds,
//! never pre-loading N. A partition ferry reads more slowly than the others
//! holds the producer back instead of losing events to retention; the
//! report says how many dead letters ferry recorded (0 means every event
//! was applied).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::ferry_runs::{Setup, applied_so_far, interrupt_and_reap};
use crate::workload::{self, TOPIC};

/// What the soak measured.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Events applied.
    pub events: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Resident memory (MiB) when 10%, 50% and 100% were applied.
    pub rss_at: [f64; 3],
    /// Highest resident memory sampled (MiB).
    pub rss_peak: f64,
    /// The kernel's peak for the process (`VmHWM`, MiB), read just before
    /// it was interrupted.
    pub maxrss: f64,
    /// Dead letters ferry recorded (offsets lost to retention would show
    /// here as `gap` dead letters).
    pub dead_letters: u64,
}

/// Events the producer may be ahead of ferry in one partition.
pub const AHEAD: u64 = 12_000;

/// ferry's next offset per partition (0 for a partition without a
/// checkpoint yet).
fn next_offsets(db: &Path, partitions: usize) -> Vec<u64> {
    let mut next = vec![0u64; partitions];
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return next;
    };
    let Ok(mut stmt) = c.prepare(r#"SELECT "partition", "offset" FROM ferry_checkpoints"#) else {
        return next;
    };
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)));
    for (p, o) in rows.into_iter().flatten().flatten() {
        if let Some(slot) = usize::try_from(p).ok().and_then(|p| next.get_mut(p)) {
            *slot = u64::try_from(o + 1).unwrap_or(0);
        }
    }
    next
}

fn dead_letters(db: &Path) -> u64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM ferry_dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_or(0, |n| n.max(0) as u64)
}

/// Resident memory of process `pid`, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS:").map(|k| k / 1024.0)
}

/// Peak resident memory of process `pid`'s own address space (`VmHWM`),
/// MiB. (`ru_maxrss` is no use for a spawned child: Linux carries it over
/// `exec`, so it includes the parent's resident memory at the spawn.)
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM:").map(|k| k / 1024.0)
}

fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs the soak with `ferry` on `s.bootstrap` (topic already created).
pub fn run(
    s: &Setup,
    ferry: &Path,
    dir: &Path,
    n: u64,
    keys: u64,
    partitions: i32,
    config: &str,
) -> anyhow::Result<SoakReport> {
    let path = dir.join("soak.toml");
    std::fs::write(&path, config).context("writing the soak config")?;
    let db = dir.join("soak.db");
    let mut child = Command::new(ferry)
        .args(["run", "--config"])
        .arg(&path)
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", ferry.display()))?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut report = SoakReport::default();
    let parts = usize::try_from(partitions).context("partitions")?;
    // Game g goes to partition g % partitions (keys keep their partition).
    let mut sent_to = vec![0u64; parts];
    let mut next = vec![0u64; parts];
    let (mut sent, mut applied) = (0u64, 0u64);
    let mut next_sample = Instant::now();
    let mut marks = [n / 10, n / 2, n];
    let deadline = started + Duration::from_secs(3_600);
    while applied < n && Instant::now() < deadline {
        let mut round = 0;
        while sent < n && round < 10_000 {
            let p =
                usize::try_from((sent % keys) % u64::from(partitions.unsigned_abs())).unwrap_or(0);
            if sent_to[p] >= next[p] + AHEAD {
                break;
            }
            let (ty, key, payload) = workload::event(sent, keys);
            let mut record = BaseRecord::to(TOPIC)
                .partition(i32::try_from(p).unwrap_or(0))
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
                        producer.poll(Duration::from_millis(1));
                    }
                }
            }
            sent += 1;
            sent_to[p] += 1;
            round += 1;
        }
        producer.poll(Duration::ZERO);
        if Instant::now() >= next_sample {
            next_sample += Duration::from_millis(200);
            next = next_offsets(&db, parts);
            applied = next.iter().sum();
            if let Some(rss) = rss_mib(child.id()) {
                report.rss_peak = report.rss_peak.max(rss);
                for (i, m) in marks.iter_mut().enumerate() {
                    if *m > 0 && applied >= *m {
                        report.rss_at[i] = rss;
                        *m = 0;
                    }
                }
            }
        } else if round == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    producer.flush(Duration::from_secs(60))?;
    report.seconds = started.elapsed().as_secs_f64();
    report.events = applied_so_far(&db);
    report.dead_letters = dead_letters(&db);
    report.maxrss = peak_rss_mib(child.id()).unwrap_or(0.0);
    interrupt_and_reap(child.id() as libc::pid_t)?;
    let _ = child.wait();
    Ok(report)
}
