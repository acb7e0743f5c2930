//! What `ferry run`'s loop publishes about itself for the API: heartbeat,
//! last commit, partitions, counters, plugin versions; and the health
//! verdicts computed from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::histogram::Histogram;
use crate::config::ApiConfig;
use crate::pipeline::Stats;

/// One partition as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    /// Checkpoint key of the source (`<source>/<topic>` for Kafka).
    pub source: String,
    /// Partition.
    pub partition: i32,
    /// Last applied offset, if any.
    pub checkpoint: Option<i64>,
    /// Events not applied yet (`None` until the broker reported a high
    /// watermark).
    pub lag: Option<i64>,
    /// `running`, `retrying`, `stopped` or `fenced`.
    pub state: String,
}

/// One active plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginView {
    /// Plugin name.
    pub name: String,
    /// Version it reports.
    pub version: String,
    /// SHA-256 of the component.
    pub digest: String,
}

/// Shared between the loop (writer) and the API (reader).
#[derive(Debug)]
pub struct Status {
    started: Instant,
    heartbeat_ms: AtomicU64,
    last_commit_ms: AtomicU64,
    partitions: Mutex<Vec<PartitionView>>,
    plugins: Mutex<Vec<PluginView>>,
    stats: Arc<Stats>,
    /// Duration of batch transactions (begin to commit), seconds.
    pub batch_seconds: Histogram,
    stuck_after: Duration,
    ready_max_lag: u64,
}

impl Status {
    /// Fresh status; health thresholds come from `[api]`.
    pub fn new(config: &ApiConfig, stats: Arc<Stats>) -> Self {
        Self {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            last_commit_ms: AtomicU64::new(0),
            partitions: Mutex::new(Vec::new()),
            plugins: Mutex::new(Vec::new()),
            stats,
            batch_seconds: Histogram::default(),
            stuck_after: Duration::from_millis(config.stuck_after_ms),
            ready_max_lag: config.ready_max_lag,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The loop turned.
    pub fn heartbeat(&self) {
        self.heartbeat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A batch committed after `took`.
    pub fn committed(&self, took: Duration) {
        self.last_commit_ms.store(self.now_ms(), Ordering::Relaxed);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    /// Replaces the partition list.
    pub fn set_partitions(&self, partitions: Vec<PartitionView>) {
        *self.partitions.lock() = partitions;
    }

    /// Replaces the plugin list.
    pub fn set_plugins(&self, plugins: Vec<PluginView>) {
        *self.plugins.lock() = plugins;
    }

    /// The partitions.
    pub fn partitions(&self) -> Vec<PartitionView> {
        self.partitions.lock().clone()
    }

    /// The plugins.
    pub fn plugins(&self) -> Vec<PluginView> {
        self.plugins.lock().clone()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// `Ok` while the loop makes progress: it turned within
    /// `stuck_after_ms`, and if events are waiting on a partition that is
    /// not stopped, a batch committed within it too.
    pub fn live(&self) -> Result<(), String> {
        let now = self.now_ms();
        let limit = self.stuck_after.as_millis() as u64;
        let idle = now.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
        if idle > limit {
            return Err(format!(
                "the loop has not turned for {idle} ms (limit {limit} ms)"
            ));
        }
        let waiting: Vec<String> = self
            .partitions
            .lock()
            .iter()
            .filter(|p| p.lag.is_some_and(|l| l > 0))
            .filter(|p| p.state == "running" || p.state == "retrying")
            .map(|p| format!("{}/{}", p.source, p.partition))
            .collect();
        let since = now.saturating_sub(self.last_commit_ms.load(Ordering::Relaxed));
        if !waiting.is_empty() && since > limit {
            return Err(format!(
                "events are waiting on {} but nothing was committed for {since} ms (limit {limit} ms)",
                waiting.join(", ")
            ));
        }
        Ok(())
    }

    /// `Ok` when live, a partition is assigned, none is stopped or
    /// fenced, and every lag is known and at most `ready_max_lag`.
    pub fn ready(&self) -> Result<(), String> {
        self.live()?;
        let parts = self.partitions.lock();
        if parts.is_empty() {
            return Err("no partition is assigned yet".to_owned());
        }
        let mut problems = Vec::new();
        for p in parts.iter() {
            let name = format!("{}/{}", p.source, p.partition);
            match (p.state.as_str(), p.lag) {
                ("stopped" | "fenced", _) => problems.push(format!("{name} is {}", p.state)),
                (_, None) => problems.push(format!("{name} has no known lag yet")),
                (_, Some(l)) if l as u64 > self.ready_max_lag => problems.push(format!(
                    "{name} lags {l} events (limit {})",
                    self.ready_max_lag
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(stuck_ms: u64) -> Status {
        let config = ApiConfig {
            stuck_after_ms: stuck_ms,
            ready_max_lag: 10,
            ..ApiConfig::default()
        };
        Status::new(&config, Arc::default())
    }

    fn part(lag: Option<i64>, state: &str) -> PartitionView {
        PartitionView {
            source: "s/t".into(),
            partition: 0,
            checkpoint: None,
            lag,
            state: state.into(),
        }
    }

    #[test]
    fn a_loop_that_stops_turning_or_committing_is_not_live() {
        let s = status(100);
        s.heartbeat();
        assert_eq!(s.ready(), Err("no partition is assigned yet".into()));
        s.set_partitions(vec![part(Some(3), "running")]);
        assert!(s.ready().is_ok());
        std::thread::sleep(Duration::from_millis(150));
        s.heartbeat();
        let e = s.live().unwrap_err();
        assert!(e.contains("nothing was committed"), "{e}");
        assert!(s.ready().is_err());
        s.committed(Duration::from_millis(1));
        assert!(s.live().is_ok());
        std::thread::sleep(Duration::from_millis(150));
        assert!(s.live().unwrap_err().contains("has not turned"));
    }

    #[test]
    fn stopped_unknown_or_lagging_partitions_are_not_ready() {
        let s = status(10_000);
        s.heartbeat();
        s.set_partitions(vec![part(Some(0), "stopped")]);
        assert!(s.live().is_ok(), "a stopped partition is not a stuck loop");
        assert!(s.ready().unwrap_err().contains("s/t/0 is stopped"));
        s.set_partitions(vec![part(None, "running")]);
        assert!(s.ready().unwrap_err().contains("no known lag"));
        s.set_partitions(vec![part(Some(11), "running")]);
        assert!(s.ready().unwrap_err().contains("lags 11"));
    }
}
