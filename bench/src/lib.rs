//! ferry's benchmark harness: the workload, the naive baseline, ferry's
//! scenarios, measurement helpers. `src/main.rs` is the side-by-side
//! benchmark (`scripts/bench`); `benches/micro.rs` holds the criterion
//! micro-benchmarks (`cargo bench -p ferry-bench`).

pub mod args;
pub mod ferry_runs;
pub mod latency;
pub mod load;
pub mod measure;
pub mod naive;
pub mod native;
pub mod report;
pub mod soak;
pub mod swap;
pub mod workload;
