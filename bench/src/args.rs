//! `ferry-bench`'s command line.

use anyhow::Context as _;

/// What to run.
#[derive(Debug, Clone)]
pub struct Args {
    /// Events of the pre-produced topic.
    pub events: u64,
    /// Distinct games (keys).
    pub keys: u64,
    /// Runs of each scenario (medians are reported).
    pub runs: usize,
    /// Events of the naive loop (slow: a commit each).
    pub naive_events: u64,
    /// `pipeline.batch_size` of ferry's scenarios.
    pub batch: usize,
    /// `pipeline.linger_ms`.
    pub linger: u64,
    /// Offered load of the latency scenario, events/s.
    pub rate: u64,
    /// Seconds of offered load per latency run.
    pub seconds: f64,
    /// Swaps of the swap scenario.
    pub swaps: usize,
    /// Only these scenario numbers (comma-separated; see `--help`).
    pub only: Option<Vec<usize>>,
    /// Instead of the scenarios: consume this many events with `ferry run`
    /// and sample its memory.
    pub soak: Option<u64>,
}

/// The help text.
pub const USAGE: &str = "usage: ferry-bench [--events N (120000)] [--keys K (10000)] [--runs R (5)]
                   [--naive-events M (2000)] [--batch B (5000)] [--linger MS (5)]
                   [--rate EVENTS_PER_S (100000)] [--seconds S (4)] [--swaps N (20)]
                   [--only 0,1,…] [--soak N]
scenarios: 0 raw consume, 1 naive loop, 2 ferry native, 3 ferry Wasm, 4 ferry run,
           5 latency at offered load, 6 swap pause,
           7 raw consume + ferry Wasm's apply time per event (needs 3)";

/// Parses `std::env::args`.
pub fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        events: 120_000,
        keys: 10_000,
        runs: 5,
        naive_events: 2_000,
        batch: 5_000,
        linger: 5,
        rate: 100_000,
        seconds: 4.0,
        swaps: 20,
        only: None,
        soak: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<String> {
            it.next().with_context(|| format!("{flag} needs a value"))
        };
        let num = |v: String| -> anyhow::Result<u64> {
            v.parse()
                .with_context(|| format!("{flag} needs a number, not {v}"))
        };
        match flag.as_str() {
            "--events" => a.events = num(value()?)?,
            "--keys" => a.keys = num(value()?)?,
            "--runs" => a.runs = usize::try_from(num(value()?)?)?,
            "--naive-events" => a.naive_events = num(value()?)?,
            "--batch" => a.batch = usize::try_from(num(value()?)?)?,
            "--linger" => a.linger = num(value()?)?,
            "--rate" => a.rate = num(value()?)?,
            "--seconds" => a.seconds = value()?.parse().context("--seconds needs a number")?,
            "--swaps" => a.swaps = usize::try_from(num(value()?)?)?,
            "--soak" => a.soak = Some(num(value()?)?),
            "--only" => {
                a.only = Some(
                    value()?
                        .split(',')
                        .map(|x| {
                            x.trim()
                                .parse::<usize>()
                                .context("--only takes scenario numbers")
                        })
                        .collect::<anyhow::Result<_>>()?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    // The mock cluster keeps only about 5 MB per partition.
    anyhow::ensure!(
        a.events <= 160_000,
        "--events must be at most 160000: librdkafka's mock cluster keeps only ~5 MB per partition (use --soak for long runs)"
    );
    anyhow::ensure!(
        a.keys > 0 && a.runs > 0 && a.events > 0 && a.naive_events > 0 && a.rate > 0,
        "counts must be positive"
    );
    a.naive_events = a.naive_events.min(a.events);
    Ok(a)
}

impl Args {
    /// Whether scenario `i` runs.
    pub fn wants(&self, i: usize) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&i))
    }
}
