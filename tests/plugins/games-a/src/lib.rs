//! Test plugin: version "a" of the stamped game projection (see
//! `tests/plugins/stamped.rs`).

const STAMP: &str = "a";

include!("../../stamped.rs");
