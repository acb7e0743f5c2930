//! ferry's real pipeline on the benchmark topic: in process (source,
//! pipeline and driver, the Wasm plugin) and end to end (`ferry run` as a
//! child process, measured from the outside).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry::config::{Config, SourceConfig};
use ferry::pipeline::{Pipeline, PluginCode, Stats};
use ferry::run::Driver;
use ferry::source::kafka::KafkaSource;

use crate::measure::{Sample, cpu_self, tv};
use crate::native::NativeGames;
use crate::workload::TOPIC;

/// Where ferry's inputs live.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Broker address.
    pub bootstrap: String,
    /// `game_projection.wasm`.
    pub plugin: PathBuf,
    /// Precompiled-component cache shared by every run (warm after the
    /// first).
    pub cache: PathBuf,
    /// Events per transaction.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub linger_ms: u64,
}

fn config_text(s: &Setup, db: &Path) -> String {
    format!(
        r#"
[store]
path = {db:?}

[runtime]
component_cache = {cache:?}
progress_interval_ms = 0

[pipeline]
batch_size = {batch}
linger_ms = {linger}

[api]
enabled = false

[[plugins]]
name = "game-projection"
path = {plugin:?}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]

[[sources]]
name = "catalog"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["{TOPIC}"]
"#,
        db = db.display().to_string(),
        cache = s.cache.display().to_string(),
        plugin = s.plugin.display().to_string(),
        batch = s.batch_size,
        linger = s.linger_ms,
        bootstrap = s.bootstrap,
    )
}

/// The `ferry run` configuration of the soak (same settings, database
/// `db`).
pub fn soak_config(s: &Setup, db: &Path) -> String {
    config_text(s, db)
}

fn write_config(s: &Setup, dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let db = dir.join(format!("{name}.db"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config_text(s, &db)).context("writing a bench config")?;
    Ok((path, db))
}

/// Which code the in-process pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// The game-projection component.
    Wasm,
    /// The same logic compiled natively ([`crate::native::NativeGames`]).
    Native,
}

/// A pipeline and a Kafka source on `topic`, configured like `ferry run`.
pub fn pipeline(
    s: &Setup,
    dir: &Path,
    name: &str,
    handler: Handler,
) -> anyhow::Result<(Config, Pipeline, PathBuf)> {
    let (path, db) = write_config(s, dir, name)?;
    let config = Config::load(&path)?;
    let pipeline = match handler {
        Handler::Wasm => ferry::run::build_pipeline(&config, &db, Arc::new(Stats::default()))?,
        Handler::Native => {
            let store =
                ferry::store::Db::open(&db, &ferry::store::StoreOptions::from(&config.store))?;
            Pipeline::new(
                store,
                vec![(
                    config.plugins[0].clone(),
                    PluginCode::Native(Box::new(NativeGames)),
                )],
                &config.pipeline,
                Arc::new(Stats::default()),
            )?
        }
    };
    Ok((config, pipeline, db))
}

/// A Kafka source for `topic` reading checkpoints from `db`.
pub fn source(s: &Setup, config: &Config, db: &Path, topic: &str) -> anyhow::Result<KafkaSource> {
    let SourceConfig::Kafka(k) = &config.sources[0] else {
        anyhow::bail!("the bench config has a Kafka source");
    };
    let mut k = k.clone();
    k.topics = vec![topic.to_owned()];
    KafkaSource::start(
        &k,
        &s.bootstrap,
        std::sync::Arc::new(ferry::run::ports::StorePositions::new(db.to_owned())),
        1_000,
    )
}

/// ferry in this process: Kafka source → plugin (Wasm or native) →
/// SQLite, until `total` events are applied. Plugin compilation and
/// migration are not timed (the component cache is warm after the first
/// run).
pub fn in_process(s: &Setup, total: u64, dir: &Path, handler: Handler) -> anyhow::Result<Sample> {
    let name = match handler {
        Handler::Wasm => "inproc-wasm",
        Handler::Native => "inproc-native",
    };
    let (config, mut pipeline, db) = pipeline(s, dir, name, handler)?;
    let cpu0 = cpu_self();
    let start = Instant::now();
    let mut source = source(s, &config, &db, TOPIC)?;
    let mut driver = Driver::new(&config.pipeline);
    let mut applied = 0u64;
    let deadline = start + Duration::from_secs(600);
    while applied < total && Instant::now() < deadline {
        if let Some(r) = driver.step(&mut source, &mut pipeline) {
            applied += r.applied as u64;
        }
    }
    let wall = start.elapsed();
    let cpu = cpu_self().saturating_sub(cpu0);
    source.close();
    Ok(Sample {
        events: applied,
        wall,
        cpu,
        applying: Some(driver.applying()),
        ..Sample::default()
    })
}

/// Events the checkpoints of `db` cover (offsets are dense from 0).
pub fn applied_so_far(db: &Path) -> u64 {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    c.query_row(
        r#"SELECT coalesce(sum("offset" + 1), 0) FROM ferry_checkpoints"#,
        [],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |v| v.max(0) as u64)
}

/// `ferry run` as a child process until its checkpoints cover `total`
/// events (watched read-only from here), then SIGINT; CPU comes from the
/// child's rusage, peak RSS from its `VmHWM` just before the interrupt.
pub fn end_to_end(s: &Setup, ferry: &Path, total: u64, dir: &Path) -> anyhow::Result<Sample> {
    let (path, db) = write_config(s, dir, "e2e")?;
    let start = Instant::now();
    let mut child = Command::new(ferry)
        .args(["run", "--config"])
        .arg(&path)
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", ferry.display()))?;
    let mut first = None;
    let deadline = start + Duration::from_secs(600);
    loop {
        let n = applied_so_far(&db);
        if n > 0 && first.is_none() {
            first = Some(start.elapsed());
        }
        if n >= total || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = start.elapsed();
    let pid = child.id() as libc::pid_t;
    let peak = crate::soak::peak_rss_mib(child.id());
    let usage = interrupt_and_reap(pid);
    let _ = child.wait();
    let usage = usage.context("reaping ferry run")?;
    Ok(Sample {
        events: applied_so_far(&db),
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_kib: peak.map(|m| (m * 1024.0) as u64),
        first_event: first,
        applying: None,
    })
}

#[expect(
    unsafe_code,
    reason = "kill(2) and wait4(2) on the benchmark's own child"
)]
pub fn interrupt_and_reap(pid: libc::pid_t) -> anyhow::Result<libc::rusage> {
    // SAFETY: kill(2) and wait4(2) on our own child; the rusage struct is
    // owned and zeroed.
    unsafe {
        libc::kill(pid, libc::SIGINT);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid, &raw mut status, 0, &raw mut usage) < 0 {
            anyhow::bail!("wait4 failed: {}", std::io::Error::last_os_error());
        }
        Ok(usage)
    }
}
