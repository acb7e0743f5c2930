//! What the run loop publishes about itself for the API and for embedding
//! hosts: heartbeat, commits, partitions, sources, plugins, counters; and
//! the checkpoints that consistency-token waits watch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::ApiConfig;
use crate::pipeline::{BatchReport, Histogram, PluginInfo, Stats};
use crate::plugin::LoadedPlugin;

/// One partition as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PartitionView {
    /// Checkpoint key of the source (`<source>/<topic>` for Kafka, the
    /// source name for a feed).
    pub source: String,
    /// Partition.
    pub partition: i32,
    /// Last applied offset (or feed sequence number), if any.
    pub checkpoint: Option<i64>,
    /// Events not applied yet (`None` while unknown).
    pub lag: Option<i64>,
    /// `running`, `retrying`, `stopped`, `fenced` or `failing`.
    pub state: String,
    /// Why it is not running, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One configured source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    /// Its name.
    pub name: String,
    /// `kafka` or `http-feed`.
    pub kind: String,
    /// Its streams: Kafka topics (each with its checkpoint key), or the
    /// feed (topic `None`).
    pub streams: Vec<StreamView>,
}

/// One stream of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StreamView {
    /// The Kafka topic, `None` for a feed.
    pub topic: Option<String>,
    /// Its checkpoint key.
    pub key: String,
}

/// A version that was refused, for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    /// When (milliseconds since the Unix epoch).
    pub at_ms: i64,
    /// What caused the attempt (`file`, `reload`, `api`, …).
    pub trigger: String,
    /// Digest of the refused bytes, when they could be read.
    pub digest: Option<String>,
    /// Why.
    pub error: String,
}

/// A plugin as `GET /plugins` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// What the pipeline says about it.
    #[serde(flatten)]
    pub info: PluginInfo,
    /// Events by outcome.
    pub counters: BTreeMap<String, u64>,
    /// The last version that was refused, if any.
    pub last_refusal: Option<Refusal>,
}

/// Where the run loop is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "error")]
pub enum Phase {
    /// Loading plugins, opening the store and sources.
    Starting,
    /// Consuming.
    Running,
    /// Stopped (with the error that stopped it, if any).
    Stopped(Option<String>),
}

/// Shared between the loop (writer) and the API and handles (readers).
#[derive(Debug)]
pub struct Status {
    pub(super) started: Instant,
    pub(super) heartbeat_ms: AtomicU64,
    pub(super) last_commit_ms: AtomicU64,
    pub(super) partitions: Mutex<Vec<PartitionView>>,
    sources: Mutex<Vec<SourceView>>,
    source_problems: Mutex<Vec<(String, String)>>,
    plugins: Mutex<Vec<PluginInfo>>,
    components: Mutex<HashMap<String, Component>>,
    refusals: Mutex<HashMap<String, Refusal>>,
    deployed: Mutex<HashMap<String, String>>,
    swaps: Mutex<BTreeMap<(String, &'static str), u64>>,
    phase: Mutex<Phase>,
    stats: Arc<Stats>,
    /// Duration of batch transactions (begin to commit), seconds.
    pub batch_seconds: Histogram,
    pub(super) stuck_after: Duration,
    pub(super) ready_max_lag: u64,
    checkpoints: Mutex<HashMap<(String, i32), i64>>,
    commits: tokio::sync::watch::Sender<u64>,
    rate: Mutex<VecDeque<(Instant, u64)>>,
    applied_total: AtomicU64,
}

/// An active WebAssembly plugin with its granted tables (for the read API).
pub type Component = (Arc<LoadedPlugin>, Vec<String>);

/// How far back the apply rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

impl Status {
    /// Fresh status; health thresholds come from `[api]`.
    pub fn new(config: &ApiConfig, stats: Arc<Stats>) -> Self {
        Self {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            last_commit_ms: AtomicU64::new(0),
            partitions: Mutex::new(Vec::new()),
            sources: Mutex::new(Vec::new()),
            source_problems: Mutex::new(Vec::new()),
            plugins: Mutex::new(Vec::new()),
            components: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            deployed: Mutex::new(HashMap::new()),
            swaps: Mutex::new(BTreeMap::new()),
            phase: Mutex::new(Phase::Starting),
            stats,
            batch_seconds: crate::pipeline::histogram::durations(),
            stuck_after: Duration::from_millis(config.stuck_after_ms),
            ready_max_lag: config.ready_max_lag,
            checkpoints: Mutex::new(HashMap::new()),
            commits: tokio::sync::watch::Sender::new(0),
            rate: Mutex::new(VecDeque::new()),
            applied_total: AtomicU64::new(0),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The loop turned.
    pub fn heartbeat(&self) {
        self.heartbeat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A batch committed after `took`: records it, moves the checkpoints
    /// waits watch, and wakes the waiters.
    pub fn batch_committed(&self, report: &BatchReport, took: Duration) {
        if report.committed.is_empty() {
            return;
        }
        self.last_commit_ms.store(self.now_ms(), Ordering::Relaxed);
        self.batch_seconds.observe(took.as_secs_f64());
        {
            let mut cps = self.checkpoints.lock();
            for ((source, partition), offset) in &report.committed {
                cps.insert((source.to_string(), *partition), *offset);
            }
        }
        let done = (report.applied + report.skipped + report.dead_lettered) as u64;
        let total = self.applied_total.fetch_add(done, Ordering::Relaxed) + done;
        {
            let now = Instant::now();
            let mut r = self.rate.lock();
            r.push_back((now, total));
            while r.len() > 2 && r.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
                r.pop_front();
            }
        }
        self.commits.send_modify(|n| *n += 1);
    }

    /// What keeps each source from consuming right now: `(source, why)`.
    pub fn set_source_problems(&self, problems: Vec<(String, String)>) {
        *self.source_problems.lock() = problems;
    }

    /// The sources' current problems, `(source, why)`.
    pub fn source_problems(&self) -> Vec<(String, String)> {
        self.source_problems.lock().clone()
    }

    /// Sets the checkpoints known at start (before any batch).
    pub fn set_checkpoints(&self, checkpoints: impl IntoIterator<Item = ((String, i32), i64)>) {
        self.checkpoints.lock().extend(checkpoints);
        self.commits.send_modify(|n| *n += 1);
    }

    /// The last applied offset of `(key, partition)`, as of the last commit.
    pub fn checkpoint(&self, key: &str, partition: i32) -> Option<i64> {
        self.checkpoints
            .lock()
            .get(&(key.to_owned(), partition))
            .copied()
    }

    /// A receiver that changes after every commit.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Events decided (applied, skipped, dead-lettered) per second over
    /// the last few seconds, if known.
    pub fn apply_rate(&self) -> Option<f64> {
        let r = self.rate.lock();
        let (first, last) = (r.front()?, r.back()?);
        let secs = last.0.duration_since(first.0).as_secs_f64();
        (secs > 0.05).then(|| (last.1 - first.1) as f64 / secs)
    }

    /// Replaces the partition list.
    pub fn set_partitions(&self, partitions: Vec<PartitionView>) {
        *self.partitions.lock() = partitions;
    }

    /// The partitions.
    pub fn partitions(&self) -> Vec<PartitionView> {
        self.partitions.lock().clone()
    }

    /// Replaces the source list.
    pub fn set_sources(&self, sources: Vec<SourceView>) {
        *self.sources.lock() = sources;
    }

    /// The sources.
    pub fn sources(&self) -> Vec<SourceView> {
        self.sources.lock().clone()
    }

    /// Replaces the plugin list and the active components (with their
    /// granted tables) the read API instantiates.
    pub fn set_plugins(
        &self,
        plugins: Vec<PluginInfo>,
        components: impl IntoIterator<Item = (String, Arc<LoadedPlugin>, Vec<String>)>,
    ) {
        *self.plugins.lock() = plugins;
        *self.components.lock() = components
            .into_iter()
            .map(|(name, p, tables)| (name, (p, tables)))
            .collect();
    }

    /// The plugins with their counters and last refusal.
    pub fn plugins(&self) -> Vec<PluginView> {
        let refusals = self.refusals.lock().clone();
        self.plugins
            .lock()
            .iter()
            .map(|info| PluginView {
                counters: self
                    .stats
                    .plugin_totals(&info.name)
                    .into_iter()
                    .map(|(o, n)| (o.as_str().to_owned(), n))
                    .collect(),
                last_refusal: refusals.get(&info.name).cloned(),
                info: info.clone(),
            })
            .collect()
    }

    /// The active component of a WebAssembly plugin and its tables.
    pub fn component(&self, plugin: &str) -> Option<Component> {
        self.components.lock().get(plugin).cloned()
    }

    /// A version of `plugin` was refused.
    pub fn refused(&self, plugin: &str, refusal: Refusal) {
        self.count_swap(plugin, "refused");
        self.refusals.lock().insert(plugin.to_owned(), refusal);
    }

    /// Notes the digest of the last version of `plugin` that went through
    /// the deploy path (file, reload or API), whatever became of it.
    pub fn note_deployed(&self, plugin: &str, digest: &str) {
        self.deployed
            .lock()
            .insert(plugin.to_owned(), digest.to_owned());
    }

    /// The digest [`Self::note_deployed`] last noted for `plugin`.
    pub fn last_deployed(&self, plugin: &str) -> Option<String> {
        self.deployed.lock().get(plugin).cloned()
    }

    /// Counts a swap outcome (`activated`, `refused`, `rolled-back`).
    pub fn count_swap(&self, plugin: &str, result: &'static str) {
        *self
            .swaps
            .lock()
            .entry((plugin.to_owned(), result))
            .or_default() += 1;
    }

    /// Swap outcomes per plugin.
    pub fn swaps(&self) -> BTreeMap<(String, &'static str), u64> {
        self.swaps.lock().clone()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters, shared.
    pub fn stats_handle(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Where the loop is.
    pub fn phase(&self) -> Phase {
        self.phase.lock().clone()
    }

    /// Moves the loop to `phase` and wakes waiters.
    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock() = phase;
        self.commits.send_modify(|n| *n += 1);
    }
}
