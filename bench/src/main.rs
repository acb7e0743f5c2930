//! `ferry-bench`: ferry against the naive per-event loop and against
//! itself, side by side in one run on one in-process mock cluster.
//!
//! ```sh
//! scripts/bench [--events N] [--keys K] [--runs R] [--naive-events M] [--batch B]
//! ```
//!
//! Every run of every scenario reads the same pre-produced topic from the
//! beginning into a fresh database; scenarios are interleaved run by run so
//! that machine noise hits them alike; the report gives medians and ratios.

mod ferry_runs;
mod measure;
mod naive;
mod workload;

use std::path::PathBuf;

use anyhow::Context as _;
use rdkafka::mocking::MockCluster;

use ferry_runs::Setup;
use measure::{Sample, median};

const PARTITIONS: i32 = 8;

#[derive(Debug)]
struct Args {
    events: u64,
    keys: u64,
    runs: usize,
    naive_events: u64,
    batch: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        events: 120_000,
        keys: 10_000,
        runs: 5,
        naive_events: 2_000,
        batch: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--events" => a.events = value()?,
            "--keys" => a.keys = value()?,
            "--runs" => a.runs = usize::try_from(value()?)?,
            "--naive-events" => a.naive_events = value()?,
            "--batch" => a.batch = usize::try_from(value()?)?,
            "-h" | "--help" => {
                println!(
                    "usage: ferry-bench [--events N (120000)] [--keys K (10000)] [--runs R (5)] [--naive-events M (2000)] [--batch B (1000)]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    // The mock cluster keeps only about 5 MB per partition.
    anyhow::ensure!(
        a.events <= 160_000,
        "--events must be at most 160000: librdkafka's mock cluster keeps only ~5 MB per partition"
    );
    anyhow::ensure!(a.keys > 0 && a.runs > 0 && a.events > 0 && a.naive_events > 0);
    a.naive_events = a.naive_events.min(a.events);
    Ok(a)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}")
}

struct Row {
    name: &'static str,
    samples: Vec<Sample>,
}

impl Row {
    fn rate(&self) -> f64 {
        median(&mut self.samples.iter().map(Sample::rate).collect::<Vec<_>>())
    }
    fn cpu(&self) -> f64 {
        median(
            &mut self
                .samples
                .iter()
                .map(Sample::cpu_per_million)
                .collect::<Vec<_>>(),
        )
    }
    fn opt(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&mut v))
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let root = repo_root();
    let plugin = root.join("dist/plugins/game_projection.wasm");
    anyhow::ensure!(
        plugin.exists(),
        "{} is missing: run scripts/build-plugins",
        plugin.display()
    );
    let ferry = std::env::current_exe()?
        .parent()
        .map(|d| d.join("ferry"))
        .context("locating the ferry binary")?;
    anyhow::ensure!(
        ferry.exists(),
        "{} is missing: build it with `cargo build --release -p ferry`",
        ferry.display()
    );
    let cluster = MockCluster::new(1).context("starting the mock cluster")?;
    cluster.create_topic(workload::TOPIC, PARTITIONS, 1)?;
    let bootstrap = cluster.bootstrap_servers();
    eprintln!(
        "producing {} Game events over {} keys on {PARTITIONS} partitions…",
        args.events, args.keys
    );
    workload::produce(&bootstrap, args.events, args.keys)?;
    let work = tempfile::tempdir()?;
    let setup = Setup {
        bootstrap,
        plugin,
        cache: work.path().join("component-cache"),
        batch_size: args.batch,
    };
    let mut rows = [
        Row {
            name: "raw consume (librdkafka poll only, nothing applied: the delivery ceiling)",
            samples: Vec::new(),
        },
        Row {
            name: "naive loop (native handler, tx + sync commit per event, synchronous=FULL)",
            samples: Vec::new(),
        },
        Row {
            name: "ferry in process (Wasm plugin)",
            samples: Vec::new(),
        },
        Row {
            name: "ferry run, end to end (Wasm plugin, child process)",
            samples: Vec::new(),
        },
    ];
    for run in 0..args.runs {
        eprintln!("run {}/{}…", run + 1, args.runs);
        let dir = tempfile::tempdir_in(work.path())?;
        rows[0].samples.push(naive::raw_consume(
            &setup.bootstrap,
            PARTITIONS,
            args.events,
        )?);
        rows[1].samples.push(naive::run(
            &setup.bootstrap,
            PARTITIONS,
            args.naive_events,
            dir.path(),
        )?);
        rows[2]
            .samples
            .push(ferry_runs::in_process(&setup, args.events, dir.path())?);
        rows[3].samples.push(ferry_runs::end_to_end(
            &setup,
            &ferry,
            args.events,
            dir.path(),
        )?);
    }
    for r in &rows {
        for s in &r.samples {
            let want = if r.name.starts_with("naive") {
                args.naive_events
            } else {
                args.events
            };
            anyhow::ensure!(
                s.events >= want,
                "{}: applied {} of {want} events",
                r.name,
                s.events
            );
        }
    }
    println!("## ferry-bench, {}", machine());
    println!();
    println!(
        "`scripts/bench --events {} --keys {} --runs {} --naive-events {} --batch {}`; medians of {} runs, scenarios interleaved.",
        args.events, args.keys, args.runs, args.naive_events, args.batch, args.runs
    );
    println!();
    println!(
        "| scenario | events | events/s | CPU s per M events | peak RSS | start → first applied |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let events = r.samples.first().map_or(0, |s| s.events);
        let rss = r
            .opt(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0))
            .map_or("—".to_owned(), |m| format!("{m:.0} MiB"));
        let first = r
            .opt(|s| s.first_event.map(|d| d.as_secs_f64() * 1e3))
            .map_or("—".to_owned(), |m| format!("{m:.0} ms"));
        println!(
            "| {} | {events} | {:.0} | {:.1} | {rss} | {first} |",
            r.name,
            r.rate(),
            r.cpu()
        );
    }
    println!();
    let naive = rows[1].rate();
    println!(
        "- ferry in process / naive: **{:.1}×**",
        rows[2].rate() / naive
    );
    println!(
        "- ferry run end to end / naive: **{:.1}×**",
        rows[3].rate() / naive
    );
    println!(
        "- ferry in process / raw consume: **{:.2}**",
        rows[2].rate() / rows[0].rate()
    );
    println!(
        "- CPU of in-process runs includes the mock broker's threads (same process); `ferry run`'s is the child's own."
    );
    Ok(())
}
