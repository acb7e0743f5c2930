//! `ferry rebuild NAME`: re-projects one plugin's tables from the earliest
//! offset of every source into a shadow database, while the live ferry
//! keeps applying and serving, then cuts over atomically.
//!
//! 1. The plugin's file must hold the version active in the live database
//!    (deploy first: ferry hot-swaps it; then rebuild, so past events are
//!    re-projected by that version too).
//! 2. A shadow database (`<db>.rebuild-<name>`) gets the plugin migrated
//!    from scratch and every configured source consumed from its start,
//!    each partition up to the live checkpoint and no further (events of
//!    other plugins are skipped there; failures follow the plugin's
//!    policy).
//! 3. Cut-over, in one transaction on the live database that holds its
//!    write lock: the last events the live ferry committed meanwhile are
//!    applied to the shadow, then the plugin's tables are replaced by the
//!    shadow's (schema, rows, indexes, triggers), its dead letters by the
//!    shadow's, and a `rebuild` entry goes into the plugin history. Readers
//!    (WAL) see the old tables until the commit and the new ones after it,
//!    never a half-built table. The live ferry's next batch waits for the
//!    lock and continues from its own checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::ports::StorePositions;
use crate::config::{Config, PipelineConfig, SourceConfig, UnknownEventPolicy};
use crate::event::Event;
use crate::pipeline::{Fences, Pipeline, PluginCode, Stats};
use crate::plugin::PluginHost;
use crate::source::Source;
use crate::source::factory::{self, Needs};
use crate::store::Db;
use crate::store::rebuild::{Live, Targets, remove_db_files, shadow_path};

/// How a rebuild is run.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Give up when the shadow has not caught up within this.
    pub timeout: Duration,
    /// Keep the shadow database after the cut-over (for inspection).
    pub keep_shadow: bool,
    /// A replay file for events the live database got from `ferry replay`.
    pub events: Option<PathBuf>,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// The plugin.
    pub plugin: String,
    /// Its digest.
    pub digest: String,
    /// Events the shadow applied, skipped or dead-lettered.
    pub events: u64,
    /// Rows per table after the cut-over.
    pub tables: Vec<(String, i64)>,
    /// Dead letters the rebuilt version recorded.
    pub dead_letters: i64,
    /// The live checkpoints the shadow matched at the cut-over.
    pub positions: Vec<(String, i32, i64)>,
}

/// Time given to the catch-up done while holding the live write lock.
const LOCKED_CATCH_UP: Duration = Duration::from_secs(10);

/// The version being rebuilt.
struct Target<'a> {
    name: &'a str,
    digest: &'a str,
    version: &'a str,
    tables: &'a [String],
    shadow_path: &'a Path,
}

/// Rebuilds plugin `name` of `config` in the live database `db_path`.
pub fn rebuild(
    config: &Config,
    db_path: &Path,
    name: &str,
    opts: &RebuildOptions,
) -> anyhow::Result<RebuildReport> {
    let plugin = config
        .plugins
        .iter()
        .find(|p| p.name == name)
        .with_context(|| format!("no plugin named `{name}` in the configuration"))?;
    anyhow::ensure!(
        db_path.exists(),
        "the database {} does not exist",
        db_path.display()
    );
    let host = PluginHost::new(config.component_cache_dir(db_path))?;
    let loaded = Arc::new(host.load_file(
        name,
        &config.resolve(&plugin.path),
        &plugin.tables,
        plugin.limits(),
    )?);
    let live = Live::open(
        db_path,
        Duration::from_millis(config.store.busy_timeout_ms.max(30_000)),
    )?;
    match live.active(name)? {
        Some(r) if r.digest == loaded.digest => {}
        Some(r) => bail!(
            "plugin `{name}` runs version {} ({}) in {} but its file holds version {} ({}): deploy the file first (ferry hot-swaps it), then rebuild",
            r.version,
            r.digest,
            db_path.display(),
            loaded.metadata.version,
            loaded.digest
        ),
        None => bail!(
            "plugin `{name}` was never activated in {}: run ferry first",
            db_path.display()
        ),
    }
    for s in &config.sources {
        if let SourceConfig::Kafka(k) = s
            && k.brokers == crate::config::EMBEDDED
        {
            bail!(
                "source `{}` uses the embedded broker, which lives inside `ferry run`: a rebuild needs a broker it can reach",
                k.name
            );
        }
    }
    let shadow_path = shadow_path(db_path, name);
    remove_db_files(&shadow_path);
    let stats = Arc::new(Stats::default());
    let settings = PipelineConfig {
        unknown_event_type: UnknownEventPolicy::Skip,
        ..config.pipeline.clone()
    };
    let shadow_db = Db::open(
        &shadow_path,
        &crate::store::StoreOptions::from(&config.store),
    )?;
    let mut shadow = Pipeline::new(
        shadow_db,
        vec![(plugin.clone(), PluginCode::Wasm(Arc::clone(&loaded)))],
        &settings,
        Arc::clone(&stats),
    )?;
    tracing::info!(plugin = name, shadow = %shadow_path.display(), digest = %loaded.digest,
        "Rebuilding the plugin's tables in a shadow database; the live tables keep serving.");
    let mut catch_up = CatchUp::start(config, &shadow_path, &mut shadow, opts)?;
    let target = Target {
        name,
        digest: &loaded.digest,
        version: &loaded.metadata.version,
        tables: &plugin.tables,
        shadow_path: &shadow_path,
    };
    let deadline = Instant::now() + opts.timeout;
    loop {
        let targets = live.targets(&catch_up.keys)?;
        catch_up.run(&mut shadow, &targets, deadline)?;
        match cut_over(&live, &mut shadow, &mut catch_up, &target)? {
            Some(report) => {
                for s in catch_up.sources.drain(..) {
                    s.close();
                }
                drop(shadow);
                if !opts.keep_shadow {
                    remove_db_files(&shadow_path);
                }
                return Ok(RebuildReport {
                    events: stats_total(&stats),
                    ..report
                });
            }
            None if Instant::now() >= deadline => bail!(
                "the shadow did not catch up with the live database within {} s; the live tables are unchanged",
                opts.timeout.as_secs()
            ),
            None => {}
        }
    }
}

fn stats_total(s: &Stats) -> u64 {
    use crate::pipeline::Outcome::*;
    s.total(Applied) + s.total(Skipped) + s.total(DeadLettered)
}

/// The shadow's sources and how far each partition has got.
struct CatchUp {
    sources: Vec<Box<dyn Source>>,
    /// Checkpoint keys these sources produce.
    keys: Vec<String>,
    /// Per partition: everything at or below this offset was consumed.
    reached: BTreeMap<(String, i32), i64>,
    batch: usize,
}

impl CatchUp {
    /// Every configured source, started from its earliest offset into the
    /// shadow (Kafka sources as replicas without a group or a dead-letter
    /// topic), and the replay file's events applied first.
    fn start(
        config: &Config,
        shadow_path: &Path,
        shadow: &mut Pipeline,
        opts: &RebuildOptions,
    ) -> anyhow::Result<Self> {
        let needs = Needs {
            positions: Arc::new(StorePositions::new(shadow_path.to_owned())),
            embedded: None,
            stats_interval_ms: 1_000,
            retry: config.pipeline.retry.backoff(),
            outbox: None,
        };
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        let mut keys = Vec::new();
        for s in &config.sources {
            let s = match s {
                SourceConfig::Kafka(k) => {
                    let mut k = k.clone();
                    k.mode = crate::config::KafkaMode::Replica;
                    k.group_id = None;
                    k.start_without_checkpoint = crate::config::StartFrom::Earliest;
                    k.dead_letter_topic = None;
                    SourceConfig::Kafka(k)
                }
                other => other.clone(),
            };
            keys.extend(factory::checkpoint_keys(&s));
            sources.push(factory::open(&s, &needs)?.source);
        }
        let mut reached = BTreeMap::new();
        if let Some(file) = &opts.events {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open the events file {}", file.display()))?;
            let summary = super::replay::replay(
                shadow,
                std::io::BufReader::new(f),
                config.pipeline.batch_size,
                |_| {},
            )?;
            if let Some((line, b)) = summary.stopped {
                bail!("the replayed events stopped at line {line}: {}", b.failure);
            }
            keys.push(crate::source::replay::SOURCE.to_owned());
            reached.insert((crate::source::replay::SOURCE.to_owned(), 0), i64::MAX);
        }
        Ok(Self {
            sources,
            keys,
            reached,
            batch: config.pipeline.batch_size,
        })
    }

    fn caught_up(&self, shadow: &mut Pipeline, targets: &Targets) -> anyhow::Result<bool> {
        for ((key, p), target) in targets {
            let cp = shadow
                .checkpoint(&(Arc::from(key.as_str()), *p))?
                .unwrap_or(-1);
            let reached = self.reached.get(&(key.clone(), *p)).copied().unwrap_or(-1);
            if cp.max(reached) < *target {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies events into the shadow until every partition reached its
    /// target (never past it) or `deadline` passes.
    fn run(
        &mut self,
        shadow: &mut Pipeline,
        targets: &Targets,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut events = Vec::with_capacity(self.batch);
        let mut fences = Fences::new();
        while !self.caught_up(shadow, targets)? {
            if Instant::now() >= deadline {
                return Ok(());
            }
            for s in &mut self.sources {
                s.tick();
                events.clear();
                fences.clear();
                s.poll(
                    &mut events,
                    &mut fences,
                    self.batch,
                    Duration::from_millis(50),
                    Duration::from_millis(20),
                );
                let mut beyond: Vec<Event> = Vec::new();
                events.retain(|e| {
                    let t = targets
                        .get(&(e.source.to_string(), e.partition))
                        .copied()
                        .unwrap_or(-1);
                    if e.offset <= t {
                        return true;
                    }
                    if !beyond
                        .iter()
                        .any(|b| b.source == e.source && b.partition == e.partition)
                    {
                        beyond.push(e.clone());
                    }
                    false
                });
                for b in &beyond {
                    let r = self
                        .reached
                        .entry((b.source.to_string(), b.partition))
                        .or_insert(-1);
                    *r = (*r).max(b.offset - 1);
                }
                if !beyond.is_empty() {
                    s.rewind(&beyond, Duration::from_millis(200));
                }
                if events.is_empty() {
                    continue;
                }
                let report = shadow.apply_fenced(&events, &fences)?;
                if let Some((key, b)) = report.blocked.iter().find(|(_, b)| b.retry_after.is_none())
                {
                    bail!(
                        "the rebuild stopped at {}/{}@{}: {} — the live tables are unchanged",
                        key.0,
                        key.1,
                        b.offset,
                        b.failure
                    );
                }
                s.after_batch(&report.delivery);
            }
        }
        Ok(())
    }
}

/// Replaces the plugin's live tables by the shadow's in one transaction,
/// after applying to the shadow what the live ferry committed meanwhile.
/// `None`: the shadow could not catch up under the lock in time; the live
/// database is unchanged.
fn cut_over(
    live: &Live,
    shadow: &mut Pipeline,
    catch_up: &mut CatchUp,
    plugin: &Target<'_>,
) -> anyhow::Result<Option<RebuildReport>> {
    let name = plugin.name;
    let lock = live.lock(plugin.shadow_path, name)?;
    let targets = lock.targets(&catch_up.keys)?;
    catch_up.run(shadow, &targets, Instant::now() + LOCKED_CATCH_UP)?;
    if !catch_up.caught_up(shadow, &targets)? {
        return Ok(None);
    }
    if lock.active_digest(name)?.as_deref() != Some(plugin.digest) {
        bail!(
            "plugin `{name}` was swapped to another version during the rebuild; the live tables are unchanged"
        );
    }
    let counts = lock.replace_tables(plugin.tables)?;
    let dead = lock.replace_dead_letters(name)?;
    lock.finish(name, plugin.digest, plugin.version)?;
    Ok(Some(RebuildReport {
        plugin: name.to_owned(),
        digest: plugin.digest.to_owned(),
        events: 0,
        tables: counts,
        dead_letters: dead,
        positions: targets.into_iter().map(|((s, p), o)| (s, p, o)).collect(),
    }))
}
