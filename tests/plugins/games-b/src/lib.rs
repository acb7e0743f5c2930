//! Test plugin: version "b" of the stamped game projection (see
//! `tests/plugins/stamped.rs`), built against
//! `ferry:plugin@0.1.0`.

const STAMP: &str = "b";

include!("../../stamped.rs");

ferry_sdk::export_projection_v0_1!(Stamped);
