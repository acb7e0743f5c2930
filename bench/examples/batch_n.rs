//! Applies B batches of 1000 Game events through ferry's pipeline with the
//! native game projection, or with the Wasm plugin when a component is
//! given: a stable workload for instruction counts.
//!
//! `batch_n <batches> [keys] [component.wasm]`

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement harness aborts on a broken setup"
)]

use std::sync::Arc;

use ferry::config::{Config, PipelineConfig};
use ferry::event::Event;
use ferry::pipeline::{Pipeline, PluginCode, Stats};
use ferry::plugin::{Limits, PluginHost};
use ferry::store::{Db, StoreOptions};
use ferry_bench::native::NativeGames;
use ferry_bench::workload;

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().map_or(20, |a| a.parse().expect("batches"));
    let keys: u64 = args.next().map_or(10_000, |a| a.parse().expect("keys"));
    let code = match args.next() {
        Some(wasm) => {
            let host = PluginHost::new(None).unwrap();
            let plugin = host
                .load_file(
                    "game-projection",
                    std::path::Path::new(&wasm),
                    &["games".into()],
                    Limits::default(),
                )
                .unwrap();
            PluginCode::Wasm(Arc::new(plugin))
        }
        None => PluginCode::Native(Box::new(NativeGames)),
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        checkpoint_interval_ms: 0,
        ..StoreOptions::default()
    };
    let db = Db::open(&dir.path().join("b.db"), &opts).unwrap();
    let plugin = Config::parse(
        "[[plugins]]\nname = \"game-projection\"\npath = \"x.wasm\"\nevents = [\"GameCreated\", \"GameUpdated\"]\ntables = [\"games\"]\n",
        std::path::Path::new("."),
    )
    .unwrap()
    .plugins
    .remove(0);
    let mut pipeline = Pipeline::new(
        db,
        vec![(plugin, code)],
        &PipelineConfig::default(),
        Arc::new(Stats::default()),
    )
    .unwrap();
    for b in 0..batches {
        let events: Vec<Event> = (b * 1000..(b + 1) * 1000)
            .map(|i| {
                let (ty, key, payload) = workload::event(i, keys);
                let mut e = Event::new(
                    "bench/games".into(),
                    (i % 8) as i32,
                    i as i64,
                    Some(ty.to_owned()),
                    payload.into_bytes(),
                );
                e.key = Some(key.into_bytes());
                e.headers = vec![("event-type".to_owned(), ty.as_bytes().to_vec())];
                e
            })
            .collect();
        pipeline.apply_batch(&events).unwrap();
    }
}
