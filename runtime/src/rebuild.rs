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
use rusqlite::{Connection, params};

use crate::config::{Config, PipelineConfig, SourceConfig, UnknownEventPolicy};
use crate::event::Event;
use crate::pipeline::{Fences, Pipeline, PluginCode, Stats};
use crate::plugin::PluginHost;
use crate::source::Source;
use crate::store::history::{self, NewEntry, Trigger, Version};
use crate::store::{Db, checkpoint, registry};

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

/// Where the live database stands: checkpoint per partition.
type Targets = BTreeMap<(String, i32), i64>;

/// Time given to the catch-up done while holding the live write lock.
const LOCKED_CATCH_UP: Duration = Duration::from_secs(10);

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
    let live = open_live(db_path, config.store.busy_timeout_ms.max(30_000))?;
    let active = registry::get(&live, name)?;
    match &active {
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
            && k.brokers == crate::run::EMBEDDED
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
    let shadow_db = Db::open(&shadow_path, &config.store.options())?;
    let mut shadow = Pipeline::new(
        shadow_db,
        vec![(plugin.clone(), PluginCode::Wasm(Arc::clone(&loaded)))],
        &settings,
        Arc::clone(&stats),
    )?;
    tracing::info!(plugin = name, shadow = %shadow_path.display(), digest = %loaded.digest,
        "Rebuilding the plugin's tables in a shadow database; the live tables keep serving.");
    let mut catch_up = CatchUp::start(config, &shadow_path, &mut shadow, opts)?;
    let deadline = Instant::now() + opts.timeout;
    loop {
        let targets = live_targets(&live, &catch_up.keys)?;
        catch_up.run(&mut shadow, &targets, deadline)?;
        match cut_over(
            &live,
            &shadow_path,
            &mut shadow,
            &mut catch_up,
            name,
            &loaded.digest,
            &loaded.metadata.version,
            &plugin.tables,
        )? {
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

/// `<db>.rebuild-<name>`.
pub fn shadow_path(db: &Path, name: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(format!(".rebuild-{name}"));
    PathBuf::from(p)
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn open_live(path: &Path, busy_ms: u64) -> anyhow::Result<Connection> {
    let c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    c.busy_timeout(Duration::from_millis(busy_ms))?;
    Ok(c)
}

/// The live checkpoints of the keys the rebuild consumes.
fn live_targets(live: &Connection, keys: &[String]) -> anyhow::Result<Targets> {
    Ok(checkpoint::load_all(live, None)?
        .into_iter()
        .filter(|c| keys.contains(&c.source))
        .map(|c| ((c.source, c.partition), c.offset))
        .collect())
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
    fn start(
        config: &Config,
        shadow_path: &Path,
        shadow: &mut Pipeline,
        opts: &RebuildOptions,
    ) -> anyhow::Result<Self> {
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        let mut keys = Vec::new();
        for s in &config.sources {
            match s {
                #[cfg(feature = "kafka")]
                SourceConfig::Kafka(k) => {
                    let mut k = k.clone();
                    k.mode = crate::config::KafkaMode::Replica;
                    k.group_id = None;
                    k.start_without_checkpoint = crate::config::StartFrom::Earliest;
                    k.dead_letter_topic = None;
                    keys.extend(k.topics.iter().map(|t| format!("{}/{t}", k.name)));
                    sources.push(Box::new(crate::source::kafka::KafkaSource::start(
                        &k,
                        &k.brokers,
                        shadow_path,
                        1_000,
                    )?));
                }
                #[cfg(feature = "http-feed")]
                SourceConfig::HttpFeed(f) => {
                    keys.push(f.name.clone());
                    sources.push(Box::new(crate::source::http_feed::HttpFeedSource::start(
                        f,
                        shadow_path,
                        crate::pipeline::Backoff::new(&config.pipeline.retry),
                    )?));
                }
                #[allow(unreachable_patterns)]
                other => bail!(
                    "source `{}` is of a kind this ferry was built without",
                    other.name()
                ),
            }
        }
        let mut reached = BTreeMap::new();
        if let Some(file) = &opts.events {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open the events file {}", file.display()))?;
            let summary = crate::source::replay::replay(
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
                s.after_batch(&report);
            }
        }
        Ok(())
    }
}

/// Replaces the plugin's live tables by the shadow's in one transaction,
/// after applying to the shadow what the live ferry committed meanwhile.
/// `None`: the shadow could not catch up under the lock in time; the live
/// database is unchanged.
#[allow(clippy::too_many_arguments)]
fn cut_over(
    live: &Connection,
    shadow_path: &Path,
    shadow: &mut Pipeline,
    catch_up: &mut CatchUp,
    name: &str,
    digest: &str,
    version: &str,
    tables: &[String],
) -> anyhow::Result<Option<RebuildReport>> {
    live.execute(
        "ATTACH DATABASE ?1 AS shadow",
        params![shadow_path.to_string_lossy()],
    )?;
    let result = (|| -> anyhow::Result<Option<RebuildReport>> {
        live.execute_batch("BEGIN DEFERRED")?;
        // A write takes the live write lock (main only; the shadow is not
        // touched until the catch-up below has committed).
        live.execute(
            "UPDATE ferry_plugins SET digest = digest WHERE name = ?1",
            params![name],
        )?;
        let targets = live_targets(live, &catch_up.keys)?;
        catch_up.run(shadow, &targets, Instant::now() + LOCKED_CATCH_UP)?;
        if !catch_up.caught_up(shadow, &targets)? {
            live.execute_batch("ROLLBACK")?;
            return Ok(None);
        }
        let still: Option<String> = live
            .query_row(
                "SELECT digest FROM ferry_plugins WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .ok();
        if still.as_deref() != Some(digest) {
            live.execute_batch("ROLLBACK")?;
            bail!(
                "plugin `{name}` was swapped to another version during the rebuild; the live tables are unchanged"
            );
        }
        let mut counts = Vec::new();
        for t in tables {
            counts.push((t.clone(), replace_table(live, t)?));
        }
        live.execute(
            "DELETE FROM main.ferry_dead_letters WHERE plugin = ?1",
            params![name],
        )?;
        let cols = "source, \"partition\", \"offset\", event_type, event_key, payload, headers, timestamp_ms, plugin, plugin_digest, error_class, error_message, attempts, first_failed_at, last_failed_at";
        let dead = live.execute(
            &format!("INSERT OR IGNORE INTO main.ferry_dead_letters ({cols}) SELECT {cols} FROM shadow.ferry_dead_letters WHERE plugin = ?1"),
            params![name],
        )? as i64;
        let schema: Option<i64> = live
            .query_row(
                "SELECT schema_version FROM shadow.ferry_plugins WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .ok();
        if let Some(s) = schema {
            live.execute(
                "UPDATE main.ferry_plugins SET schema_version = ?2 WHERE name = ?1",
                params![name, s],
            )?;
        }
        history::record(
            live,
            &NewEntry {
                plugin: name,
                trigger: Trigger::Rebuild,
                old: Some(Version { digest, version }),
                new: Some(Version { digest, version }),
                error: None,
            },
        )?;
        live.execute_batch("COMMIT")?;
        Ok(Some(RebuildReport {
            plugin: name.to_owned(),
            digest: digest.to_owned(),
            events: 0,
            tables: counts,
            dead_letters: dead,
            positions: targets.into_iter().map(|((s, p), o)| (s, p, o)).collect(),
        }))
    })();
    if result.is_err() {
        let _ = live.execute_batch("ROLLBACK");
    }
    let _ = live.execute_batch("DETACH DATABASE shadow");
    result
}

/// Drops `main.<table>` and recreates it from `shadow.<table>`: schema,
/// rows, then its indexes and triggers. Returns the row count.
fn replace_table(live: &Connection, table: &str) -> anyhow::Result<i64> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let objects: Vec<(String, String)> = live
        .prepare("SELECT type, sql FROM shadow.sqlite_master WHERE tbl_name = ?1 COLLATE NOCASE AND sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END")?
        .query_map(params![table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    live.execute_batch(&format!("DROP TABLE IF EXISTS main.{quoted}"))?;
    let Some((_, create)) = objects.iter().find(|(t, _)| t == "table") else {
        return Ok(0);
    };
    live.execute_batch(create)?;
    let n = live.execute(
        &format!("INSERT INTO main.{quoted} SELECT * FROM shadow.{quoted}"),
        [],
    )?;
    for (kind, sql) in &objects {
        if kind != "table" {
            live.execute_batch(sql)?;
        }
    }
    Ok(n as i64)
}
