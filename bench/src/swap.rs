//! The pause a hot swap causes: under a paced stream, the game projection
//! is swapped between two builds of the same logic (different digests)
//! every 300 ms. Each new version is compiled before (off the hot path, as
//! ferry's deploy worker does); what the pipeline pays is the swap at a
//! batch boundary: `migrate`, the registry row and the history entry in one
//! transaction. Measured: the swap call itself, the gap between the last
//! commit of the old version and the first of the new one (against the
//! median gap between commits), and the throughput of the 100 ms windows
//! that contain a swap (against the median window).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry::pipeline::Fences;
use ferry::plugin::{Limits, PluginHost};
use ferry::source::Source as _;
use ferry::store::history::Trigger;

use crate::ferry_runs::{Handler, Setup, pipeline, source};
use crate::load::Paced;
use crate::measure::median;

/// One run's measurements.
#[derive(Debug, Clone, Default)]
pub struct SwapSample {
    /// Swaps made.
    pub swaps: usize,
    /// Duration of each swap at the batch boundary, ms.
    pub call_ms: Vec<f64>,
    /// Gap between the last commit of the old version and the first of the
    /// new one, ms.
    pub gap_ms: Vec<f64>,
    /// Median gap between consecutive commits, ms.
    pub steady_gap_ms: f64,
    /// Events/s of the 100 ms windows holding a swap, and of all windows
    /// (median).
    pub window_rate_at_swap: f64,
    /// Median events/s of all windows.
    pub window_rate: f64,
}

/// `game_projection.wasm` with a custom section appended: the same logic
/// under another digest.
fn variant(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.extend_from_slice(&[0, 9, 5, b'b', b'e', b'n', b'c', b'h', 1, 2, 3]);
    v
}

/// Runs `swaps` swaps under `rate` events/s on `topic`.
pub fn run(
    s: &Setup,
    dir: &Path,
    topic: &str,
    rate: u64,
    swaps: usize,
    keys: u64,
) -> anyhow::Result<SwapSample> {
    let (config, mut pipeline, db) = pipeline(s, dir, &format!("swap-{topic}"), Handler::Wasm)?;
    let host = PluginHost::new(Some(s.cache.clone()))?;
    let bytes = std::fs::read(&s.plugin).context("reading the plugin")?;
    let tables = vec!["games".to_owned()];
    let versions = [
        Arc::new(host.load_bytes(
            "game-projection",
            "variant",
            &variant(&bytes),
            &tables,
            Limits::default(),
        )?),
        Arc::new(host.load_bytes(
            "game-projection",
            "original",
            &bytes,
            &tables,
            Limits::default(),
        )?),
    ];
    let seconds = 1.0 + swaps as f64 * 0.3 + 0.5;
    let total = (rate as f64 * seconds) as u64;
    let mut src = source(s, &config, &db, topic)?;
    let producer = Paced::start(&s.bootstrap, topic, rate, total, keys)?;
    let started = Instant::now();
    let mut commits: Vec<(Instant, u64)> = Vec::new();
    let mut swapped_at: Vec<(Instant, usize)> = Vec::new();
    let mut sample = SwapSample::default();
    let (mut events, mut fences) = (Vec::new(), Fences::new());
    let mut applied = 0u64;
    let mut next_swap = started + Duration::from_secs(1);
    let linger = Duration::from_millis(config.pipeline.linger_ms);
    let deadline = started + Duration::from_secs_f64(seconds * 4.0 + 30.0);
    while (applied < total || sample.swaps < swaps) && Instant::now() < deadline {
        if sample.swaps < swaps && Instant::now() >= next_swap {
            let t0 = Instant::now();
            let v = Arc::clone(&versions[sample.swaps % 2]);
            pipeline.swap("game-projection", v, Trigger::Api)?;
            sample.call_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            swapped_at.push((t0, commits.len()));
            sample.swaps += 1;
            next_swap += Duration::from_millis(300);
        }
        src.tick();
        events.clear();
        fences.clear();
        src.poll(
            &mut events,
            &mut fences,
            config.pipeline.batch_size,
            Duration::from_millis(20),
            linger,
        );
        if events.is_empty() {
            continue;
        }
        let report = pipeline.apply_fenced(&events, &fences)?;
        applied += (report.applied + report.skipped) as u64;
        commits.push((Instant::now(), applied));
        src.after_batch(&report.delivery);
    }
    producer.finish()?;
    src.close();
    anyhow::ensure!(
        applied >= total,
        "applied {applied} of {total} offered events"
    );
    let mut gaps: Vec<f64> = commits
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1e3)
        .collect();
    sample.steady_gap_ms = median(&mut gaps);
    for (_, i) in &swapped_at {
        if *i > 0 && *i < commits.len() {
            sample.gap_ms.push(
                commits[*i]
                    .0
                    .duration_since(commits[*i - 1].0)
                    .as_secs_f64()
                    * 1e3,
            );
        }
    }
    // Events per 100 ms window (from the first commit on).
    let origin = commits.first().map_or(started, |c| c.0);
    let mut windows: Vec<f64> = Vec::new();
    let mut prev = 0u64;
    for (t, n) in &commits {
        let w = (t.duration_since(origin).as_millis() / 100) as usize;
        if windows.len() <= w {
            windows.resize(w + 1, 0.0);
        }
        windows[w] += (n - prev) as f64 * 10.0;
        prev = *n;
    }
    let mut at_swap: Vec<f64> = swapped_at
        .iter()
        .filter_map(|(t, _)| {
            let w = (t.saturating_duration_since(origin).as_millis() / 100) as usize;
            windows.get(w).copied()
        })
        .collect();
    sample.window_rate_at_swap = median(&mut at_swap);
    // Steady windows: not the first second nor the last half second.
    let end = windows.len().saturating_sub(5).max(1);
    let mut steady: Vec<f64> = windows[10.min(end - 1)..end].to_vec();
    sample.window_rate = median(&mut steady);
    Ok(sample)
}
