//! `ferry replay`: the plugin author's offline harness. Feeds a JSON Lines
//! file through the same pipeline as `ferry run` and prints a summary that
//! makes a failing event easy to find (line, event type, error).

use std::collections::BTreeMap;
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ConfigArgs;
use ferry::pipeline::{Outcome, Stats};
use ferry::run::build_pipeline;
use ferry::run::replay::{ReplaySummary, replay};

/// Arguments of `ferry replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// The JSON Lines file of event envelopes.
    #[arg(long)]
    events: PathBuf,
}

/// Files above this size get a progress bar (on a terminal).
const PROGRESS_MIN_BYTES: u64 = 1 << 20;

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.load()?;
    let db_path = args.common.db_path(&config);
    let file = std::fs::File::open(&args.events)
        .with_context(|| format!("cannot open the events file {}", args.events.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let stats = Arc::new(Stats::default());
    let mut pipeline = build_pipeline(&config, &db_path, Arc::clone(&stats))?;
    let bar = if size >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let summary = replay(
        &mut pipeline,
        BufReader::with_capacity(1 << 16, file),
        config.pipeline.batch_size,
        |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    print_summary(args, &db_path, &summary, &stats);
    let failed = !summary.problems.is_empty() || summary.stopped.is_some();
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(args: &ReplayArgs, db: &std::path::Path, s: &ReplaySummary, stats: &Stats) {
    println!(
        "replayed {} into {}: {} line(s), {} event(s)",
        args.events.display(),
        db.display(),
        s.lines,
        s.events
    );
    if s.events == 0 {
        println!("the file holds no events; nothing was applied");
        return;
    }
    let mut by_type: BTreeMap<String, BTreeMap<Outcome, u64>> = BTreeMap::new();
    for (k, v) in stats.snapshot() {
        *by_type
            .entry(k.event_type)
            .or_default()
            .entry(k.outcome)
            .or_default() += v;
    }
    let cols = [
        Outcome::Applied,
        Outcome::Skipped,
        Outcome::AlreadyApplied,
        Outcome::DeadLettered,
        Outcome::Retried,
    ];
    let width = by_type.keys().map(String::len).max().unwrap_or(4).max(10);
    print!("  {:<width$}", "event type");
    for c in cols {
        print!(" {:>15}", c.as_str());
    }
    println!();
    for (ty, counts) in &by_type {
        let name = if ty == "-" { "(malformed)" } else { ty };
        print!("  {name:<width$}");
        for c in cols {
            print!(" {:>15}", counts.get(&c).copied().unwrap_or(0));
        }
        println!();
    }
    if !s.problems.is_empty() {
        println!("{} event(s) failed:", s.problems.len());
        for p in &s.problems {
            println!(
                "  line {} (offset {}, {}): {}: {}",
                p.line,
                p.note.offset,
                p.note.event_type.as_deref().unwrap_or("no type"),
                p.note.outcome,
                p.note.failure
            );
        }
    }
    if let Some((line, b)) = &s.stopped {
        println!(
            "stopped at line {line} (offset {}, {}) after {} attempt(s): {}; later lines were not applied",
            b.offset,
            b.event_type.as_deref().unwrap_or("no type"),
            b.attempts,
            b.failure
        );
    }
}
