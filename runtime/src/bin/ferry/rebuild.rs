//! `ferry rebuild NAME`: re-project one plugin's tables from the earliest
//! offset into a shadow copy while the live tables keep serving, then cut
//! over atomically (see [`ferry::run::rebuild`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::ConfigArgs;
use ferry::run::rebuild::{RebuildOptions, rebuild};

/// Arguments of `ferry rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// The plugin whose tables are rebuilt.
    name: String,
    /// Give up after this many seconds without catching up.
    #[arg(long, default_value_t = 3_600)]
    timeout: u64,
    /// Keep the shadow database after the cut-over.
    #[arg(long)]
    keep_shadow: bool,
    /// A JSON Lines file with the events the database got from `ferry
    /// replay` (source `replay`).
    #[arg(long)]
    events: Option<PathBuf>,
}

pub fn run(args: &RebuildArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.load()?;
    let db = args.common.db_path(&config);
    let started = Instant::now();
    let report = rebuild(
        &config,
        &db,
        &args.name,
        &RebuildOptions {
            timeout: Duration::from_secs(args.timeout),
            keep_shadow: args.keep_shadow,
            events: args.events.clone(),
        },
    )?;
    println!(
        "rebuilt plugin {} ({}) in {} from {} event(s) in {:.1} s; cut over atomically",
        report.plugin,
        report.digest,
        db.display(),
        report.events,
        started.elapsed().as_secs_f64()
    );
    for (t, n) in &report.tables {
        println!("  table {t}: {n} row(s)");
    }
    if report.dead_letters > 0 {
        println!(
            "  {} event(s) could not be applied by this version and are dead letters (ferry dlq list)",
            report.dead_letters
        );
    }
    for (s, p, o) in &report.positions {
        println!("  {s}/{p}: up to offset {o}");
    }
    Ok(ExitCode::SUCCESS)
}
