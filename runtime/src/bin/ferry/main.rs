//! The `ferry` command line: the binary over the `ferry` library.

mod check;
mod compile;
mod dlq;
mod http;
mod plugins;
mod rebuild;
mod replay;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ferry::config::Config;

/// ferry keeps local SQLite read models up to date from event streams
/// through sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config and load every plugin, listing every problem.
    Check(ConfigArgs),
    /// Feed events from a JSON Lines file through the pipeline.
    Replay(replay::ReplayArgs),
    /// Run the configured sources until Ctrl-C (or SIGTERM).
    Run(ConfigArgs),
    /// Inspect and manage dead letters: list, show, retry, purge.
    Dlq(dlq::DlqArgs),
    /// Ask a running ferry about its plugins, or roll one back.
    Plugins(plugins::PluginsArgs),
    /// Re-project one plugin's tables into a shadow copy, then cut over.
    Rebuild(rebuild::RebuildArgs),
    /// Precompile a plugin component for a target (for runtime-only hosts).
    Compile(compile::CompileArgs),
}

/// `--config` and `--db`, shared by every command that opens the store.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Use this SQLite file instead of the one the config names.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl ConfigArgs {
    /// Loads and validates the config.
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }

    /// The database path: `--db`, else the config's `store.path`.
    pub fn db_path(&self, config: &Config) -> PathBuf {
        self.db.clone().unwrap_or_else(|| config.db_path())
    }
}

/// Installs the log subscriber: `FERRY_LOG` (or `RUST_LOG`) filters, to
/// stderr.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("FERRY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    // rdkafka logs an error when it finds a consumer already closed by
    // ferry's bounded close (see `source::kafka`): noise, not a problem.
    let mut filter = EnvFilter::new(filter);
    if let Ok(quiet) = "rdkafka::consumer::base_consumer=off".parse() {
        filter = filter.add_directive(quiet);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Runs the command line; returns the process exit code.
fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Dlq(args) => dlq::run(&args),
        Command::Plugins(args) => plugins::run(&args),
        Command::Rebuild(args) => rebuild::run(&args),
        Command::Compile(args) => compile::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
