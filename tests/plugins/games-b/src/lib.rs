//! Test plugin: version "b" of the stamped game projection (see
//! `tests/plugins/stamped.rs`).

const STAMP: &str = "b";

include!("../../stamped.rs");
