//! Handles N Game events through one plugin instance in one transaction:
//! a stable workload for instruction counts (`valgrind --tool=callgrind`).
//!
//! `handle_n <component.wasm> <events> [cache-dir]`

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement harness aborts on a broken setup"
)]

use std::path::PathBuf;
use std::sync::Arc;

use ferry::event::Event;
use ferry::plugin::{Limits, PluginHost, PluginInstance};
use ferry::store::{Db, StoreOptions};
use ferry_bench::workload;

fn main() {
    let mut args = std::env::args().skip(1);
    let wasm = PathBuf::from(args.next().expect("component"));
    let n: u64 = args.next().map_or(20_000, |a| a.parse().expect("events"));
    let cache = args.next().map(PathBuf::from);
    let host = PluginHost::new(cache).unwrap();
    let plugin = Arc::new(
        host.load_file(
            "game-projection",
            &wasm,
            &["games".into()],
            Limits::default(),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        checkpoint_interval_ms: 0,
        ..StoreOptions::default()
    };
    let mut db = Db::open(&dir.path().join("n.db"), &opts).unwrap();
    let mut instance = PluginInstance::new(plugin, db.shared(), db.scope());
    db.begin().unwrap();
    instance.migrate(None).unwrap();
    for i in 0..n {
        let (ty, key, payload) = workload::event(i, 10_000);
        let mut e = Event::new(
            "bench/games".into(),
            0,
            i as i64,
            Some(ty.to_owned()),
            payload.into_bytes(),
        );
        e.key = Some(key.into_bytes());
        e.headers = vec![("event-type".to_owned(), ty.as_bytes().to_vec())];
        db.savepoint().unwrap();
        instance.handle(&e, ty).unwrap();
        db.release().unwrap();
    }
    db.commit().unwrap();
}
