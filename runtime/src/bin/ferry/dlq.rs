//! `ferry dlq list|show|retry|purge`: inspect and manage dead letters.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::ConfigArgs;
use ferry::Config;
use ferry::pipeline::Stats;
use ferry::pipeline::redrive::Redriven;
use ferry::run::build_pipeline;
use ferry::store::{DeadLetter, dead_letter, open_read_only};

/// Arguments of `ferry dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// One line per dead letter: id, source, partition, offset, type, error.
    List {
        #[command(flatten)]
        common: ConfigArgs,
        /// Only this source (`replay`, or `<source>/<topic>` for Kafka).
        #[arg(long)]
        source: Option<String>,
    },
    /// Everything recorded about one dead letter.
    Show {
        #[command(flatten)]
        common: ConfigArgs,
        /// Its id (first column of `list`).
        id: i64,
    },
    /// Re-run dead letters through the current plugin version, in offset
    /// order per key; applied ones are removed.
    Retry {
        #[command(flatten)]
        common: ConfigArgs,
        #[command(flatten)]
        selection: Selection,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        common: ConfigArgs,
        #[command(flatten)]
        selection: Selection,
    },
}

/// Which dead letters `retry` and `purge` act on.
#[derive(Debug, Args)]
struct Selection {
    /// Dead letter ids (first column of `ferry dlq list`).
    ids: Vec<i64>,
    /// Every dead letter (of `--source`, if given).
    #[arg(long)]
    all: bool,
    /// With `--all`: only this source.
    #[arg(long)]
    source: Option<String>,
}

impl Selection {
    /// The selected dead letters; an unknown id is an error.
    fn load(&self, conn: &rusqlite::Connection) -> anyhow::Result<Vec<DeadLetter>> {
        anyhow::ensure!(
            self.all || !self.ids.is_empty(),
            "name the dead letters (ids from `ferry dlq list`) or pass --all"
        );
        anyhow::ensure!(
            !self.all || self.ids.is_empty(),
            "pass either ids or --all, not both"
        );
        if self.all {
            return Ok(dead_letter::list(conn, self.source.as_deref())?);
        }
        self.ids
            .iter()
            .map(|id| {
                dead_letter::get(conn, *id)?.with_context(|| format!("no dead letter with id {id}"))
            })
            .collect()
    }
}

pub fn run(args: &DlqArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DlqCommand::List { common, source } => list(common, source.as_deref()),
        DlqCommand::Show { common, id } => show(common, *id),
        DlqCommand::Retry { common, selection } => retry(common, selection),
        DlqCommand::Purge { common, selection } => purge(common, selection),
    }
}

fn db_path(common: &ConfigArgs) -> anyhow::Result<std::path::PathBuf> {
    Ok(config_and_db(common)?.1)
}

/// The configuration and its database, which must exist.
fn config_and_db(common: &ConfigArgs) -> anyhow::Result<(Config, std::path::PathBuf)> {
    let config = common.load()?;
    let path = common.db_path(&config);
    anyhow::ensure!(
        path.exists(),
        "the database {} does not exist",
        path.display()
    );
    Ok((config, path))
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn list(common: &ConfigArgs, source: Option<&str>) -> anyhow::Result<ExitCode> {
    let conn = open_read_only(&db_path(common)?)?;
    let letters = dead_letter::list(&conn, source)?;
    if letters.is_empty() {
        println!("no dead letters");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<28} {:>9} {:>10}  {:<20} error",
        "id", "source", "partition", "offset", "event type"
    );
    for d in &letters {
        println!(
            "{:>6}  {:<28} {:>9} {:>10}  {:<20} {}: {}",
            d.id,
            d.event.source,
            d.event.partition,
            d.event.offset,
            d.event.event_type.as_deref().unwrap_or("-"),
            d.error_class,
            one_line(&d.error_message, 160)
        );
    }
    println!("{} dead letter(s)", letters.len());
    Ok(ExitCode::SUCCESS)
}

fn show(common: &ConfigArgs, id: i64) -> anyhow::Result<ExitCode> {
    let conn = open_read_only(&db_path(common)?)?;
    let Some(d) = dead_letter::get(&conn, id)? else {
        eprintln!("no dead letter with id {id}");
        return Ok(ExitCode::from(1));
    };
    let text = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("(hex) {}", hex::encode(b)),
    };
    println!("id:              {}", d.id);
    println!("source:          {}", d.event.source);
    println!("partition:       {}", d.event.partition);
    println!("offset:          {}", d.event.offset);
    println!(
        "event type:      {}",
        d.event.event_type.as_deref().unwrap_or("-")
    );
    println!(
        "key:             {}",
        d.event.key.as_deref().map_or("-".into(), text)
    );
    println!(
        "timestamp (ms):  {}",
        d.event.timestamp_ms.map_or("-".into(), |t| t.to_string())
    );
    println!(
        "plugin:          {} {}",
        d.plugin.as_deref().unwrap_or("-"),
        d.plugin_digest.as_deref().unwrap_or("")
    );
    println!("error:           {}: {}", d.error_class, d.error_message);
    println!("attempts:        {}", d.attempts);
    println!("first failed at: {}", d.first_failed_at);
    println!("last failed at:  {}", d.last_failed_at);
    println!("headers:");
    for (k, v) in &d.event.headers {
        println!("  {k}: {}", text(v));
    }
    println!("payload:\n{}", text(&d.event.payload));
    Ok(ExitCode::SUCCESS)
}

fn retry(common: &ConfigArgs, selection: &Selection) -> anyhow::Result<ExitCode> {
    let (config, path) = config_and_db(common)?;
    let letters = selection.load(&open_read_only(&path)?)?;
    let mut pipeline = build_pipeline(&config, &path, Arc::new(Stats::default()))?;
    let results = pipeline.redrive(letters)?;
    let (mut applied, mut failed) = (0, 0);
    for (d, r) in &results {
        let what = match r {
            Redriven::Applied(_) => {
                applied += 1;
                "applied, dead letter removed".to_owned()
            }
            Redriven::Failed(f) => {
                failed += 1;
                format!("failed again: {f}")
            }
            Redriven::HeldBack => {
                failed += 1;
                "held back: an earlier dead letter of the same key failed again".to_owned()
            }
        };
        println!(
            "{:>6}  {}/{}@{} {}: {what}",
            d.id,
            d.event.source,
            d.event.partition,
            d.event.offset,
            d.event.event_type.as_deref().unwrap_or("-")
        );
    }
    println!(
        "retried {}: {applied} applied, {failed} still dead-lettered",
        results.len()
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn purge(common: &ConfigArgs, selection: &Selection) -> anyhow::Result<ExitCode> {
    let path = db_path(common)?;
    let conn = rusqlite::Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let letters = selection.load(&conn)?;
    let tx = conn.unchecked_transaction()?;
    for d in &letters {
        dead_letter::delete(&tx, d.id)?;
    }
    tx.commit()?;
    println!("purged {} dead letter(s)", letters.len());
    Ok(ExitCode::SUCCESS)
}
