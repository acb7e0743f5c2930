//! ferry's integration and end-to-end tests: one test binary (each test
//! binary links wasmtime and librdkafka), a module per area, each test
//! named after the failure mode it rules out. Shared builders live in
//! `tests/src` (`ferry_tests`). Run them all with `scripts/test`, which
//! builds the plugins and the binary and starts Apache Kafka first.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod aarch64;
mod apache_kafka;
mod architecture;
mod backpressure;
mod check;
mod contracts;
mod crash;
mod dead_letters;
mod feed;
mod fuzz;
mod health;
mod hostile;
mod hot_swap;
mod kafka;
mod operator;
mod read_api;
mod rebalance;
mod rebuild;
mod replay;
mod retention;
mod sandbox;
mod start;
mod status_page;
