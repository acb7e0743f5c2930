//! Durations as Prometheus histograms: prometheus-client's `Histogram`
//! with ferry's buckets (5 µs to 5 s, for plugin calls and batch
//! transactions).

pub use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds of the buckets, in seconds.
pub const BOUNDS: [f64; 18] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// An empty histogram of durations (seconds) with [`BOUNDS`].
pub fn durations() -> Histogram {
    Histogram::new(BOUNDS)
}
