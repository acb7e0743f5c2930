//! The Markdown report: medians per scenario, ratios, latency, swap pause,
//! soak.

use crate::args::Args;
use crate::latency::LatencySample;
use crate::measure::{Sample, median, percentile};
use crate::soak::SoakReport;
use crate::swap::SwapSample;

/// One scenario and its runs.
#[derive(Debug)]
pub struct Row {
    /// What it is.
    pub name: &'static str,
    /// One sample per run.
    pub samples: Vec<Sample>,
}

impl Row {
    /// An empty row.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            samples: Vec::new(),
        }
    }

    fn rate(&self) -> Option<f64> {
        self.opt(|s| Some(s.rate()))
    }

    fn opt(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&mut v))
    }
}

/// `2 cores, <CPU model>`.
pub fn machine() -> String {
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

fn command(a: &Args) -> String {
    let mut c = format!(
        "scripts/bench --events {} --keys {} --runs {} --naive-events {} --batch {} --linger {} --rate {} --seconds {} --swaps {}",
        a.events, a.keys, a.runs, a.naive_events, a.batch, a.linger, a.rate, a.seconds, a.swaps
    );
    if let Some(o) = &a.only {
        c.push_str(&format!(
            " --only {}",
            o.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
        ));
    }
    if a.kafka.is_none() {
        c.push_str(" --no-kafka");
    }
    c
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".to_owned(),
    }
}

/// Prints the report of a scenario run.
pub fn print(
    args: &Args,
    machine: &str,
    tables: &[(&str, &[Row])],
    latencies: &[Vec<LatencySample>; 3],
    swaps: &[SwapSample],
) {
    println!("## ferry-bench, {machine}");
    println!();
    println!(
        "`{}`; medians of {} runs, scenarios interleaved run by run.",
        command(args),
        args.runs
    );
    println!();
    for (broker, rows) in tables {
        if rows.iter().any(|r| !r.samples.is_empty()) {
            println!("### Throughput on {broker}");
            println!();
            print_throughput(rows);
            println!();
        }
    }
    if let [(_, mock), (_, kafka)] = tables {
        let rate = |rows: &[Row], i: usize| rows.get(i).and_then(Row::rate);
        println!(
            "- Apache Kafka / mock cluster: raw consume **{}**, ferry in process (Wasm) **{}**, `ferry run` **{}**",
            ratio(rate(kafka, 0), rate(mock, 0)),
            ratio(rate(kafka, 3), rate(mock, 3)),
            ratio(rate(kafka, 4), rate(mock, 4)),
        );
    }
    if latencies.iter().any(|l| !l.is_empty()) {
        println!();
        println!(
            "### Event latency at {} events/s offered (produce timestamp → commit, ms resolution; {} s per run)",
            args.rate, args.seconds
        );
        println!();
        println!("| consumer | achieved events/s | p50 | p99 | events measured |");
        println!("| --- | --- | --- | --- | --- |");
        let names = [
            "delivery only (plain consumer, latency at poll)",
            "ferry, native handler (latency at commit)",
            "ferry, Wasm plugin (latency at commit)",
        ];
        for (name, l) in names.iter().zip(latencies) {
            if l.is_empty() {
                continue;
            }
            let m = |f: fn(&LatencySample) -> f64| median(&mut l.iter().map(f).collect::<Vec<_>>());
            println!(
                "| {name} | {:.0} | {:.0} ms | {:.0} ms | {:.0} |",
                m(|s| s.achieved),
                m(|s| s.p50_ms),
                m(|s| s.p99_ms),
                m(|s| s.events as f64)
            );
        }
    }
    if !swaps.is_empty() {
        println!();
        println!(
            "### Hot swap pause ({} swaps per run at {} events/s offered, Wasm)",
            args.swaps,
            args.rate / 2
        );
        println!();
        let mut calls: Vec<f64> = swaps.iter().flat_map(|s| s.call_ms.clone()).collect();
        let mut gaps: Vec<f64> = swaps.iter().flat_map(|s| s.gap_ms.clone()).collect();
        let steady = median(&mut swaps.iter().map(|s| s.steady_gap_ms).collect::<Vec<_>>());
        let at = median(
            &mut swaps
                .iter()
                .map(|s| s.window_rate_at_swap)
                .collect::<Vec<_>>(),
        );
        let all = median(&mut swaps.iter().map(|s| s.window_rate).collect::<Vec<_>>());
        println!("| measure | p50 | p99 |");
        println!("| --- | --- | --- |");
        println!(
            "| swap at the batch boundary (migrate + registry + history, one transaction) | {:.2} ms | {:.2} ms |",
            percentile(&mut calls, 0.5),
            percentile(&mut calls, 0.99)
        );
        println!(
            "| gap between the old version's last commit and the new one's first | {:.2} ms | {:.2} ms |",
            percentile(&mut gaps, 0.5),
            percentile(&mut gaps, 0.99)
        );
        println!();
        println!(
            "- median gap between two commits without a swap: {steady:.2} ms; events/s in the 100 ms windows holding a swap: {at:.0}, in all steady windows: {all:.0} (**{}**)",
            ratio(Some(at), Some(all))
        );
    }
}

/// The throughput table and its ratios.
fn print_throughput(rows: &[Row]) {
    println!(
        "| scenario | events | events/s | applying, µs per event | CPU s per M events | peak RSS | start → first applied |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows.iter().filter(|r| !r.samples.is_empty()) {
        let events = r.samples.first().map_or(0, |s| s.events);
        let rss = r
            .opt(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0))
            .map_or("—".to_owned(), |m| format!("{m:.0} MiB"));
        let first = r
            .opt(|s| s.first_event.map(|d| d.as_secs_f64() * 1e3))
            .map_or("—".to_owned(), |m| format!("{m:.0} ms"));
        let applying = r
            .opt(|s| {
                s.applying
                    .map(|a| a.as_secs_f64() * 1e6 / s.events.max(1) as f64)
            })
            .map_or("—".to_owned(), |m| format!("{m:.1}"));
        println!(
            "| {} | {events} | {:.0} | {applying} | {:.1} | {rss} | {first} |",
            r.name,
            r.rate().unwrap_or(0.0),
            r.opt(|s| Some(s.cpu_per_million())).unwrap_or(0.0)
        );
    }
    println!();
    let rate = |i: usize| rows.get(i).and_then(Row::rate);
    println!(
        "- Wasm / native, in process: **{}**",
        ratio(rate(3), rate(2))
    );
    println!(
        "- ferry (Wasm, in process) / naive: **{}×**",
        ratio(rate(3), rate(1))
    );
    println!(
        "- ferry run end to end / naive: **{}×**",
        ratio(rate(4), rate(1))
    );
    println!(
        "- ferry (Wasm, in process) / raw consume: **{}**",
        ratio(rate(3), rate(0))
    );
    println!(
        "- ferry (Wasm, in process) / raw consume with the same work per event: **{}**",
        ratio(rate(3), rate(5))
    );
    println!(
        "- CPU of in-process runs includes librdkafka's threads (and, on the mock cluster, the broker's: same process); `ferry run`'s is the child's own. Apache Kafka's JVM runs beside it on the same cores."
    );
}

/// Prints the soak's report.
pub fn print_soak(args: &Args, machine: &str, n: u64, r: &SoakReport) {
    println!("## ferry-bench soak, {machine}");
    println!();
    println!(
        "`scripts/bench --soak {n} --keys {} --batch {} --linger {}`: `ferry run` consumed {} events in {:.0} s ({:.0} events/s), produced in rounds at most {} ahead in each partition; dead letters recorded: {} (offsets lost to the mock broker's retention would show here as `gap` dead letters).",
        args.keys,
        args.batch,
        args.linger,
        r.events,
        r.seconds,
        r.events as f64 / r.seconds.max(1e-9),
        crate::soak::AHEAD,
        r.dead_letters
    );
    println!();
    println!(
        "| resident memory after 10% | after 50% | after 100% | highest sampled | peak (VmHWM) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
        r.rss_at[0], r.rss_at[1], r.rss_at[2], r.rss_peak, r.maxrss
    );
}
