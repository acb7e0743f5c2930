//! The run loop behind `ferry run` and [`crate::Runtime`]: poll each
//! source for a batch, fence it, apply it in one transaction, pause or
//! commit per the report; between batches, carry out control requests
//! (swaps, rollbacks, reloads, dead-letter retries), publish the status,
//! and report progress. Shuts down gracefully: the current batch commits,
//! the sources close.

pub mod assemble;
mod deploy;
mod driver;
mod embed;
mod execute;
mod handle;
pub mod ports;
mod progress;
pub mod rebuild;
pub mod replay;
mod start;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::Mutex;

use crate::api::ApiServer;
use crate::config::{Config, PluginConfig, SourceConfig};
use crate::control::{
    Control, Inbox, PartitionView, Phase, Request, SourceView, Status, StreamView,
};
use crate::pipeline::{Outcome, Pipeline, PluginCode};
use crate::plugin::{NativeProjection, PluginHost};
use crate::source::Source;
use crate::store::{Db, checkpoint};

pub use assemble::{build_pipeline, load_plugins};
pub use driver::Driver;
pub use embed::{Runtime, RuntimeBuilder};
pub use handle::RuntimeHandle;
pub use start::EMBEDDED;

/// How often the loop refreshes the partitions the API shows.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// Everything the loop needs to start.
pub(crate) struct Launch {
    pub(crate) config: Config,
    /// The file `config` came from (re-read on `SIGHUP`).
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) natives: Vec<(PluginConfig, Box<dyn NativeProjection>)>,
    pub(crate) serve_api: bool,
    /// Print the addresses (embedded broker, API) on stdout.
    pub(crate) announce: bool,
}

/// Runs until `control.stop` is set (or starting fails).
pub(crate) fn run(launch: Launch, control: Arc<Control>, inbox: Inbox) -> anyhow::Result<()> {
    let result = run_inner(launch, &control, inbox);
    control.status.set_phase(Phase::Stopped(
        result.as_ref().err().map(|e| format!("{e:#}")),
    ));
    result
}

fn run_inner(launch: Launch, control: &Arc<Control>, inbox: Inbox) -> anyhow::Result<()> {
    let Launch {
        config,
        config_path,
        natives,
        serve_api,
        announce,
    } = launch;
    if config.sources.is_empty() {
        anyhow::bail!("no [[sources]] are configured: there is nothing to consume");
    }
    let status = Arc::clone(&control.status);
    let db_path = control.db_path.clone();
    // The API first: health answers (ferry is starting, a broker cannot be
    // reached) from the first moment, whatever the sources are doing.
    let api = if serve_api {
        let server = ApiServer::start(&config.api.listen, Arc::clone(control))?;
        if announce {
            println!("HTTP API listening on http://{}", server.addr());
        }
        *control.api_addr.lock() = Some(server.addr());
        Some(server)
    } else {
        None
    };
    let host = Arc::new(
        PluginHost::new(config.component_cache_dir(&db_path))
            .context("starting the WebAssembly engine")?,
    );
    let (loaded, errors) = load_plugins(&config, &host);
    if !errors.is_empty() {
        anyhow::bail!(
            "{} plugin(s) could not be loaded:\n  - {}",
            errors.len(),
            errors.join("\n  - ")
        );
    }
    let native_configs: Vec<PluginConfig> = natives.iter().map(|(c, _)| c.clone()).collect();
    let mut codes: Vec<(PluginConfig, PluginCode)> = loaded
        .into_iter()
        .map(|(c, p)| (c, PluginCode::Wasm(p)))
        .collect();
    codes.extend(natives.into_iter().map(|(c, n)| (c, PluginCode::Native(n))));
    let db = Db::open(&db_path, &crate::store::StoreOptions::from(&config.store))?;
    let stats = status.stats_handle();
    let mut pipeline = Pipeline::new(db, codes, &config.pipeline, stats)?;
    let (mut sources, companions) =
        start::start_sources(&config, &mut pipeline, &db_path, announce)?;
    status.set_sources(source_views(&config, &sources));
    publish_plugins(&status, &pipeline);
    let known = pipeline
        .db()
        .with(|c| checkpoint::load_all(c, None))?
        .into_iter()
        .map(|c| ((c.source, c.partition), c.offset));
    status.set_checkpoints(known);
    let shared_config = Arc::new(Mutex::new(config.clone()));
    let deployer = deploy::Deployer::start(
        deploy::Context {
            host,
            config: Arc::clone(&shared_config),
            natives: native_configs,
            status: Arc::clone(&status),
            commands: control.commands.clone(),
        },
        control.requests.clone(),
        inbox.requests,
    )
    .context("starting the deploy worker")?;
    let watcher = if config.runtime.watch_plugins {
        Some(
            watch::Watcher::start(
                Arc::clone(&shared_config),
                Arc::clone(&status),
                control.requests.clone(),
                Duration::from_millis(config.runtime.watch_interval_ms),
            )
            .context("starting the plugin file watcher")?,
        )
    } else {
        None
    };
    status.set_phase(Phase::Running);
    tracing::info!(db = %db_path.display(), sources = sources.len(), "ferry is running; Ctrl-C stops it gracefully.");
    let mut progress =
        progress::Progress::new(config.runtime.progress_interval_ms, pipeline.stats());
    let mut driver = Driver::new(&config.pipeline)
        .for_sources(sources.len())
        .with_status(Arc::clone(&status));
    let mut exec = execute::Executor {
        pipeline: &mut pipeline,
        driver: &mut driver,
        status: &status,
        config: &shared_config,
    };
    let mut next_publish = Instant::now();
    while !control.stop.load(Ordering::Relaxed) {
        for source in &mut sources {
            if let Some(report) = exec.driver.step(source.as_mut(), exec.pipeline)
                && !report.rollbacks.is_empty()
            {
                for a in &report.rollbacks {
                    status.count_swap(&a.plugin, "rolled-back");
                }
                publish_plugins(&status, exec.pipeline);
            }
        }
        status.heartbeat();
        while let Ok(command) = inbox.commands.try_recv() {
            exec.execute(command);
        }
        if control.reload.swap(false, Ordering::Relaxed) {
            reload(config_path.as_deref(), control);
        }
        if Instant::now() >= next_publish {
            next_publish = Instant::now() + PUBLISH_INTERVAL;
            publish_partitions(&status, exec.pipeline, &sources);
            publish_plugins(&status, exec.pipeline);
        }
        progress.maybe_report(exec.pipeline, &sources, companions.published());
    }
    drop(watcher);
    drop(deployer);
    while let Ok(command) = inbox.commands.try_recv() {
        crate::control::refuse_unavailable(command);
    }
    drop(api);
    *control.api_addr.lock() = None;
    tracing::info!("Stopping: the last batch is committed; closing the sources.");
    for s in sources {
        s.close();
    }
    companions.stop();
    let stats = pipeline.stats();
    if announce {
        println!(
            "ferry stopped: {} applied, {} skipped, {} dead-lettered, {} retried",
            stats.total(Outcome::Applied),
            stats.total(Outcome::Skipped),
            stats.total(Outcome::DeadLettered),
            stats.total(Outcome::Retried)
        );
    }
    Ok(())
}

/// `SIGHUP`: re-reads the configuration file and hands it to the deploy
/// worker; an invalid file is reported (every problem) and ignored.
fn reload(path: Option<&std::path::Path>, control: &Control) {
    let Some(path) = path else {
        tracing::warn!(
            "A reload was asked for, but this ferry was not started from a configuration file; use the embedding API's reload."
        );
        return;
    };
    match Config::load(path) {
        Ok(config) => {
            tracing::info!(config = %path.display(), "Reloading the configuration (SIGHUP).");
            let _ = control.requests.send(Request::Reload {
                config: Box::new(config),
                reply: None,
            });
        }
        Err(e) => tracing::error!(config = %path.display(),
            "The configuration was not reloaded; the running one stays: {e}"),
    }
}

pub(crate) fn publish_plugins(status: &Status, pipeline: &Pipeline) {
    status.set_plugins(
        pipeline.plugin_infos(),
        pipeline
            .plugins()
            .map(|(c, p)| (c.name.clone(), Arc::clone(p), c.tables.clone())),
    );
}

fn publish_partitions(status: &Status, pipeline: &mut Pipeline, sources: &[Box<dyn Source>]) {
    status.set_source_problems(
        sources
            .iter()
            .filter_map(|s| s.problem().map(|p| (s.name().to_owned(), p)))
            .collect(),
    );
    let mut views = Vec::new();
    for s in sources {
        for p in s.partitions(&mut |k| pipeline.checkpoint(k).ok().flatten()) {
            let key = (Arc::clone(&p.source), p.partition);
            views.push(PartitionView {
                source: p.source.to_string(),
                partition: p.partition,
                checkpoint: pipeline.checkpoint(&key).ok().flatten(),
                lag: p.lag,
                state: p.state.as_str().to_owned(),
                detail: p.detail,
            });
        }
    }
    status.set_partitions(views);
}

fn source_views(config: &Config, sources: &[Box<dyn Source>]) -> Vec<SourceView> {
    config
        .sources
        .iter()
        .filter_map(|c| {
            let s = sources.iter().find(|s| s.name() == c.name())?;
            let topics: Vec<Option<String>> = match c {
                SourceConfig::Kafka(k) => k.topics.iter().cloned().map(Some).collect(),
                SourceConfig::HttpFeed(_) => vec![None],
            };
            Some(SourceView {
                name: c.name().to_owned(),
                kind: s.kind().to_owned(),
                streams: topics
                    .into_iter()
                    .filter_map(|topic| {
                        let key = s.key_for(topic.as_deref()).ok()?;
                        Some(StreamView {
                            topic,
                            key: key.to_string(),
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}
