//! Test plugin: the reference game projection, unchanged, exported against
//! `ferry:plugin@0.1.0` (one host call per event) through the SDK's 0.1
//! path. It proves that ferry still runs 0.1 components, that a swap
//! between a 0.1 and a 0.2 version keeps the same table, and it is the 0.1
//! side of the benchmark's 0.1 vs 0.2 scenario.

pub use game_projection::GameProjection;

ferry_sdk::export_projection_v0_1!(GameProjection);
