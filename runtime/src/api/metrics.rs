//! `/metrics`: Prometheus text exposition format 0.0.4.

use std::fmt::Write as _;

use super::status::Status;

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

/// Renders every metric.
pub fn render(status: &Status) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    let _ = writeln!(
        o,
        "# HELP ferry_events_total Events by plugin, event type and outcome (retried counts attempts)."
    );
    let _ = writeln!(o, "# TYPE ferry_events_total counter");
    for (k, v) in status.stats().snapshot() {
        let _ = writeln!(
            o,
            "ferry_events_total{{plugin=\"{}\",event_type=\"{}\",outcome=\"{}\"}} {v}",
            esc(&k.plugin),
            esc(&k.event_type),
            k.outcome.as_str()
        );
    }
    let parts = status.partitions();
    let _ = writeln!(
        o,
        "# HELP ferry_partition_lag Events in the partition not applied yet."
    );
    let _ = writeln!(o, "# TYPE ferry_partition_lag gauge");
    for p in parts.iter() {
        if let Some(l) = p.lag {
            let _ = writeln!(
                o,
                "ferry_partition_lag{{source=\"{}\",partition=\"{}\"}} {l}",
                esc(&p.source),
                p.partition
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP ferry_partition_checkpoint Last applied offset of the partition (from SQLite)."
    );
    let _ = writeln!(o, "# TYPE ferry_partition_checkpoint gauge");
    for p in parts.iter() {
        if let Some(c) = p.checkpoint {
            let _ = writeln!(
                o,
                "ferry_partition_checkpoint{{source=\"{}\",partition=\"{}\"}} {c}",
                esc(&p.source),
                p.partition
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP ferry_partition_state 1 for the partition's current state (running, retrying, stopped, fenced)."
    );
    let _ = writeln!(o, "# TYPE ferry_partition_state gauge");
    for p in parts.iter() {
        let _ = writeln!(
            o,
            "ferry_partition_state{{source=\"{}\",partition=\"{}\",state=\"{}\"}} 1",
            esc(&p.source),
            p.partition,
            esc(&p.state)
        );
    }
    let _ = writeln!(
        o,
        "# HELP ferry_batch_commit_seconds Duration of one batch transaction, from BEGIN to COMMIT."
    );
    let _ = writeln!(o, "# TYPE ferry_batch_commit_seconds histogram");
    status
        .batch_seconds
        .render(o, "ferry_batch_commit_seconds", "");
    let _ = writeln!(
        o,
        "# HELP ferry_plugin_info The active version of each plugin."
    );
    let _ = writeln!(o, "# TYPE ferry_plugin_info gauge");
    for p in status.plugins() {
        let _ = writeln!(
            o,
            "ferry_plugin_info{{plugin=\"{}\",version=\"{}\",digest=\"{}\"}} 1",
            esc(&p.name),
            esc(&p.version),
            esc(&p.digest)
        );
    }
    let _ = writeln!(o, "# HELP ferry_live 1 when /health/live passes.");
    let _ = writeln!(o, "# TYPE ferry_live gauge");
    let _ = writeln!(o, "ferry_live {}", u8::from(status.live().is_ok()));
    let _ = writeln!(o, "# HELP ferry_ready 1 when /health/ready passes.");
    let _ = writeln!(o, "# TYPE ferry_ready gauge");
    let _ = writeln!(o, "ferry_ready {}", u8::from(status.ready().is_ok()));
    if let Some(rss) = rss_bytes() {
        let _ = writeln!(
            o,
            "# HELP ferry_resident_memory_bytes Resident set size of the process."
        );
        let _ = writeln!(o, "# TYPE ferry_resident_memory_bytes gauge");
        let _ = writeln!(o, "ferry_resident_memory_bytes {rss}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ApiConfig;
    use crate::pipeline::{Outcome, Stats};

    #[test]
    fn counters_and_escaped_labels() {
        let stats = Arc::new(Stats::default());
        stats.add("p", "Odd\"Type", Outcome::Applied, 3);
        let s = Status::new(&ApiConfig::default(), stats);
        let text = render(&s);
        assert!(
            text.contains(
                "ferry_events_total{plugin=\"p\",event_type=\"Odd\\\"Type\",outcome=\"applied\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE ferry_batch_commit_seconds histogram"));
    }
}
