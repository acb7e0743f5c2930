//! `ferry-bench`: ferry against the naive per-event loop and against
//! itself, side by side in one run, on an in-process mock cluster and
//! (with `--kafka`) on Apache Kafka.
//!
//! ```sh
//! scripts/bench [--events N] [--keys K] [--runs R] [--only 0,2,3] …
//! scripts/bench --soak 10000000
//! ```
//!
//! Every run of every throughput scenario reads the same pre-produced
//! topic from the beginning into a fresh database; scenarios are
//! interleaved run by run (and broker by broker) so that machine noise hits
//! them alike; the report gives medians and ratios. See `--help` for the
//! scenarios.

use std::path::PathBuf;

use anyhow::Context as _;
use rdkafka::mocking::MockCluster;

use ferry_bench::args::{self, Args};
use ferry_bench::ferry_runs::{self, Handler, Setup};
use ferry_bench::latency::{self, LatencySample};
use ferry_bench::measure::Sample;
use ferry_bench::report::{self, Row};
use ferry_bench::swap::{self, SwapSample};
use ferry_bench::{naive, soak, workload};

const PARTITIONS: i32 = 8;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = args::parse()?;
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
    let work = tempfile::tempdir()?;
    let setup = Setup {
        bootstrap: cluster.bootstrap_servers(),
        plugin,
        cache: work.path().join("component-cache"),
        batch_size: args.batch,
        linger_ms: args.linger,
    };
    if let Some(n) = args.soak {
        return run_soak(&args, &setup, &ferry, work.path(), n);
    }
    let mut targets = vec![Target::new(
        "librdkafka's mock cluster (in process)",
        setup.clone(),
    )];
    if let Some(kafka) = &args.kafka {
        create_kafka_topic(&root, kafka)?;
        targets.push(Target::new(
            "Apache Kafka (single KRaft node on loopback, sharing the machine's cores)",
            Setup {
                bootstrap: kafka.clone(),
                ..setup.clone()
            },
        ));
    }
    for t in &targets {
        eprintln!(
            "producing {} Game events over {} keys on {PARTITIONS} partitions of {}…",
            args.events, args.keys, t.name
        );
        workload::produce(&t.setup.bootstrap, args.events, args.keys)?;
    }
    let mut latencies: [Vec<LatencySample>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut swaps: Vec<SwapSample> = Vec::new();
    for run in 0..args.runs {
        eprintln!("run {}/{}…", run + 1, args.runs);
        let dir = tempfile::tempdir_in(work.path())?;
        let d = dir.path();
        for t in &mut targets {
            t.run(&args, &ferry, d)?;
        }
        let setup = &targets[0].setup;
        if args.wants(5) {
            let topic = format!("latency-{run}-raw");
            cluster.create_topic(&topic, PARTITIONS, 1)?;
            latencies[0].push(latency::delivery_only(
                &setup.bootstrap,
                &topic,
                args.rate,
                args.seconds,
                args.keys,
            )?);
            for (i, handler) in [Handler::Native, Handler::Wasm].into_iter().enumerate() {
                let topic = format!("latency-{run}-{i}");
                cluster.create_topic(&topic, PARTITIONS, 1)?;
                latencies[i + 1].push(latency::run(
                    setup,
                    d,
                    handler,
                    &topic,
                    args.rate,
                    args.seconds,
                    args.keys,
                )?);
            }
        }
        if args.wants(6) {
            let topic = format!("swap-{run}");
            cluster.create_topic(&topic, PARTITIONS, 1)?;
            swaps.push(swap::run(
                setup,
                d,
                &topic,
                args.rate / 2,
                args.swaps,
                args.keys,
            )?);
        }
    }
    for t in &targets {
        for (i, r) in t.rows.iter().enumerate() {
            let want = if i == 1 {
                args.naive_events
            } else {
                args.events
            };
            for s in &r.samples {
                anyhow::ensure!(
                    s.events >= want,
                    "{} on {}: applied {} of {want} events",
                    r.name,
                    t.name,
                    s.events
                );
            }
        }
    }
    let tables: Vec<(&str, &[Row])> = targets.iter().map(|t| (t.name, &t.rows[..])).collect();
    report::print(&args, &report::machine(), &tables, &latencies, &swaps);
    Ok(())
}

/// The throughput scenarios (0 to 4, and 7) against one broker.
struct Target {
    name: &'static str,
    setup: Setup,
    rows: [Row; 6],
}

impl Target {
    fn new(name: &'static str, setup: Setup) -> Self {
        Self {
            name,
            setup,
            rows: [
                Row::new(
                    "raw consume (ferry's client settings, poll only, nothing applied: the delivery ceiling)",
                ),
                Row::new(
                    "naive loop (native handler, tx + sync commit per event, synchronous=FULL)",
                ),
                Row::new("ferry in process, native handler (same pipeline, no Wasm)"),
                Row::new("ferry in process, Wasm plugin"),
                Row::new("ferry run, end to end (Wasm plugin, child process)"),
                Row::new(
                    "raw consume + busy work per event equal to ferry Wasm's measured apply time (the bound)",
                ),
            ],
        }
    }

    /// One run of every throughput scenario asked for.
    fn run(
        &mut self,
        args: &Args,
        ferry: &std::path::Path,
        d: &std::path::Path,
    ) -> anyhow::Result<()> {
        let s = &self.setup;
        let rows = &mut self.rows;
        let mut push = |i: usize, sample: anyhow::Result<Sample>| -> anyhow::Result<()> {
            rows[i].samples.push(sample?);
            Ok(())
        };
        if args.wants(0) {
            push(0, naive::raw_consume(&s.bootstrap, PARTITIONS, args.events))?;
        }
        if args.wants(1) {
            let dir = tempfile::tempdir_in(d)?;
            push(
                1,
                naive::run(&s.bootstrap, PARTITIONS, args.naive_events, dir.path()),
            )?;
        }
        if args.wants(2) {
            let dir = tempfile::tempdir_in(d)?;
            push(
                2,
                ferry_runs::in_process(s, args.events, dir.path(), Handler::Native),
            )?;
        }
        let mut wasm_apply = None;
        if args.wants(3) {
            let dir = tempfile::tempdir_in(d)?;
            let sample = ferry_runs::in_process(s, args.events, dir.path(), Handler::Wasm)?;
            wasm_apply = sample
                .applying
                .map(|a| a / u32::try_from(sample.events.max(1)).unwrap_or(u32::MAX));
            push(3, Ok(sample))?;
        }
        if args.wants(4) {
            let dir = tempfile::tempdir_in(d)?;
            push(4, ferry_runs::end_to_end(s, ferry, args.events, dir.path()))?;
        }
        if let Some(work) = wasm_apply.filter(|_| args.wants(7)) {
            push(
                5,
                naive::raw_consume_with_work(&s.bootstrap, PARTITIONS, args.events, work),
            )?;
        }
        Ok(())
    }
}

/// Creates the workload topic on an Apache Kafka broker with Kafka's own
/// `kafka-topics` tool (a fresh broker: the topic must not exist yet).
fn create_kafka_topic(root: &std::path::Path, bootstrap: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new(root.join("scripts/kafka"))
        .args([
            "run",
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            workload::TOPIC,
            "--partitions",
            &PARTITIONS.to_string(),
        ])
        .output()
        .context("running scripts/kafka")?;
    anyhow::ensure!(
        out.status.success(),
        "creating topic {} on {bootstrap} failed (it must not exist yet): {}",
        workload::TOPIC,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn run_soak(
    args: &Args,
    setup: &Setup,
    ferry: &std::path::Path,
    dir: &std::path::Path,
    n: u64,
) -> anyhow::Result<()> {
    let config = ferry_runs::soak_config(setup, &dir.join("soak.db"));
    eprintln!(
        "soak: ferry run consumes {n} events, produced in rounds (at most {} ahead in each partition)…",
        soak::AHEAD
    );
    let r = soak::run(setup, ferry, dir, n, args.keys, PARTITIONS, &config)?;
    report::print_soak(args, &report::machine(), n, &r);
    Ok(())
}
