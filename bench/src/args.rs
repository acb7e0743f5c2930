//! `ferry-bench`'s command line.

use clap::Parser;

/// ferry against the naive per-event loop and against itself, side by side
/// in one run, on librdkafka's mock cluster and (with `--kafka`) on Apache
/// Kafka. Scenarios: 0 raw consume, 1 naive loop, 2 ferry native, 3 ferry
/// Wasm, 4 ferry run, 5 latency at offered load, 6 swap pause, 7 raw consume
/// + ferry Wasm's apply time per event (needs 3).
#[derive(Debug, Clone, Parser)]
#[command(name = "ferry-bench", version)]
pub struct Args {
    /// Events of the pre-produced topic (at most 160000: librdkafka's mock
    /// cluster keeps only ~5 MB per partition).
    #[arg(long, default_value_t = 120_000)]
    pub events: u64,
    /// Distinct games (keys).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Runs of each scenario (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Events of the naive loop (slow: a commit each).
    #[arg(long, default_value_t = 2_000)]
    pub naive_events: u64,
    /// `pipeline.batch_size` of ferry's scenarios.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// `pipeline.linger_ms`.
    #[arg(long, default_value_t = 5)]
    pub linger: u64,
    /// Offered load of the latency scenario, events/s.
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Seconds of offered load per latency run.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Swaps of the swap scenario.
    #[arg(long, default_value_t = 20)]
    pub swaps: usize,
    /// Only these scenario numbers (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<usize>>,
    /// Instead of the scenarios: consume this many events with `ferry run`
    /// and sample its memory.
    #[arg(long)]
    pub soak: Option<u64>,
    /// An Apache Kafka broker (`host:port`): scenarios 0 to 4 also run
    /// against it, next to the mock cluster (`scripts/bench` starts one
    /// unless `--no-kafka`).
    #[arg(long)]
    pub kafka: Option<String>,
}

/// Parses `std::env::args`, checking what clap cannot.
pub fn parse() -> anyhow::Result<Args> {
    let mut a = Args::parse();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_their_defaults() {
        let a = Args::try_parse_from(["ferry-bench", "--only", "0,3", "--kafka", "127.0.0.1:9092"])
            .expect("parse");
        assert_eq!(a.only, Some(vec![0, 3]));
        assert!(a.wants(3) && !a.wants(1));
        assert_eq!((a.events, a.runs), (120_000, 5));
        assert_eq!(a.kafka.as_deref(), Some("127.0.0.1:9092"));
        assert!(Args::try_parse_from(["ferry-bench", "--nope"]).is_err());
    }
}
