//! `/metrics`: Prometheus text exposition format 0.0.4.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::control::Status;
use crate::pipeline::Outcome;

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident set size of this process in bytes (Linux), if known.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Row counts read from the store for a scrape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreCounts {
    /// Rows in `ferry_dead_letters`.
    pub dead_letters: Option<u64>,
    /// Rows in `ferry_outbox` (dead letters not yet on their topic).
    pub outbox: Option<u64>,
}

/// Counts dead letters and outbox rows (read-only; `None` on error).
pub fn store_counts(db: &Path) -> StoreCounts {
    let Ok(c) = crate::store::open_read_only(db) else {
        return StoreCounts::default();
    };
    let _ = c.busy_timeout(std::time::Duration::from_millis(500));
    let count = |table: &str| {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
        .map(|n| n.max(0) as u64)
    };
    StoreCounts {
        dead_letters: count("ferry_dead_letters"),
        outbox: count("ferry_outbox"),
    }
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// Renders every metric.
pub fn render(status: &Status, store: &StoreCounts) -> String {
    let mut out = String::with_capacity(8192);
    let o = &mut out;
    head(
        o,
        "ferry_events_total",
        "counter",
        "Events by plugin, event type and outcome (retried counts failed attempts).",
    );
    let snapshot = status.stats().snapshot();
    let mut retries: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &snapshot {
        let _ = writeln!(
            o,
            "ferry_events_total{{plugin=\"{}\",event_type=\"{}\",outcome=\"{}\"}} {v}",
            esc(&k.plugin),
            esc(&k.event_type),
            k.outcome.as_str()
        );
        match k.outcome {
            Outcome::Retried => *retries.entry(k.plugin.clone()).or_default() += v,
            Outcome::DeadLettered => *dead.entry(k.plugin.clone()).or_default() += v,
            _ => {}
        }
    }
    head(
        o,
        "ferry_retries_total",
        "counter",
        "Failed attempts that were retried, by plugin.",
    );
    for (p, v) in &retries {
        let _ = writeln!(o, "ferry_retries_total{{plugin=\"{}\"}} {v}", esc(p));
    }
    head(
        o,
        "ferry_dead_letters_total",
        "counter",
        "Events recorded as dead letters by this process, by plugin (`-`: no plugin).",
    );
    for (p, v) in &dead {
        let _ = writeln!(o, "ferry_dead_letters_total{{plugin=\"{}\"}} {v}", esc(p));
    }
    if let Some(n) = store.dead_letters {
        head(
            o,
            "ferry_dead_letters",
            "gauge",
            "Dead letters stored (ferry_dead_letters rows).",
        );
        let _ = writeln!(o, "ferry_dead_letters {n}");
    }
    if let Some(n) = store.outbox {
        head(
            o,
            "ferry_outbox_pending",
            "gauge",
            "Dead letters queued for their dead-letter topic and not yet acknowledged.",
        );
        let _ = writeln!(o, "ferry_outbox_pending {n}");
    }
    head(
        o,
        "ferry_handler_seconds",
        "histogram",
        "Duration of one plugin `handle` call.",
    );
    for (plugin, h) in status.stats().latencies() {
        h.render(
            o,
            "ferry_handler_seconds",
            &format!("plugin=\"{}\"", esc(&plugin)),
        );
    }
    head(
        o,
        "ferry_batch_commit_seconds",
        "histogram",
        "Duration of one batch transaction, from BEGIN to COMMIT.",
    );
    status
        .batch_seconds
        .render(o, "ferry_batch_commit_seconds", "");
    head(
        o,
        "ferry_batch_reruns_total",
        "counter",
        "Batches applied a second time, with a savepoint per event, because a plugin failed one of their events.",
    );
    let _ = writeln!(o, "ferry_batch_reruns_total {}", status.stats().reruns());
    let parts = status.partitions();
    head(
        o,
        "ferry_partition_lag",
        "gauge",
        "Events in the partition not applied yet.",
    );
    for p in &parts {
        if let Some(l) = p.lag {
            let _ = writeln!(
                o,
                "ferry_partition_lag{{source=\"{}\",partition=\"{}\"}} {l}",
                esc(&p.source),
                p.partition
            );
        }
    }
    head(
        o,
        "ferry_partition_checkpoint",
        "gauge",
        "Last applied offset (or feed sequence number) of the partition, from SQLite.",
    );
    for p in &parts {
        if let Some(c) = p.checkpoint {
            let _ = writeln!(
                o,
                "ferry_partition_checkpoint{{source=\"{}\",partition=\"{}\"}} {c}",
                esc(&p.source),
                p.partition
            );
        }
    }
    head(
        o,
        "ferry_partition_state",
        "gauge",
        "1 for the partition's current state (running, retrying, stopped, fenced, failing).",
    );
    for p in &parts {
        let _ = writeln!(
            o,
            "ferry_partition_state{{source=\"{}\",partition=\"{}\",state=\"{}\"}} 1",
            esc(&p.source),
            p.partition,
            esc(&p.state)
        );
    }
    head(
        o,
        "ferry_plugin_info",
        "gauge",
        "The active version of each plugin.",
    );
    for p in status.plugins() {
        let _ = writeln!(
            o,
            "ferry_plugin_info{{plugin=\"{}\",version=\"{}\",digest=\"{}\",kind=\"{}\"}} 1",
            esc(&p.info.name),
            esc(&p.info.version),
            esc(&p.info.digest),
            p.info.kind
        );
    }
    head(
        o,
        "ferry_plugin_swaps_total",
        "counter",
        "Plugin version changes by outcome: activated, refused, rolled-back.",
    );
    for ((plugin, result), n) in status.swaps() {
        let _ = writeln!(
            o,
            "ferry_plugin_swaps_total{{plugin=\"{}\",result=\"{result}\"}} {n}",
            esc(&plugin)
        );
    }
    head(o, "ferry_live", "gauge", "1 when /health/live passes.");
    let _ = writeln!(o, "ferry_live {}", u8::from(status.live().is_ok()));
    head(o, "ferry_ready", "gauge", "1 when /health/ready passes.");
    let _ = writeln!(o, "ferry_ready {}", u8::from(status.ready().is_ok()));
    if let Some(rss) = rss_bytes() {
        head(
            o,
            "ferry_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
        );
        let _ = writeln!(o, "ferry_resident_memory_bytes {rss}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ApiConfig;
    use crate::pipeline::Stats;

    #[test]
    fn counters_and_escaped_labels() {
        let stats = Arc::new(Stats::default());
        stats.add("p", "Odd\"Type", Outcome::Applied, 3);
        stats.add("p", "A", Outcome::Retried, 2);
        stats.latency("p").observe(0.000_004);
        let s = Status::new(&ApiConfig::default(), stats);
        let text = render(
            &s,
            &StoreCounts {
                dead_letters: Some(4),
                outbox: Some(0),
            },
        );
        assert!(
            text.contains(
                "ferry_events_total{plugin=\"p\",event_type=\"Odd\\\"Type\",outcome=\"applied\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("ferry_retries_total{plugin=\"p\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ferry_dead_letters 4\n"), "{text}");
        assert!(
            text.contains("ferry_handler_seconds_bucket{plugin=\"p\",le=\"0.000005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ferry_batch_commit_seconds histogram"));
    }
}
