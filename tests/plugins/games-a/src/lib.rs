//! Test plugin: version "a" of the stamped game projection (see
//! `tests/plugins/stamped.rs`), built against
//! `ferry:plugin@0.2.0`.

const STAMP: &str = "a";

include!("../../stamped.rs");

ferry_sdk::export_projection!(Stamped);
