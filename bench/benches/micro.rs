//! Micro-benchmarks (criterion) of the costs on ferry's hot path, so a
//! regression shows where it happens:
//!
//! - `host_call`: one host→plugin `handle` call the plugin answers without
//!   touching the store (a type it skips): the component boundary;
//! - `handle/wasm` and `handle/native`: one Game event through the game
//!   projection (JSON, exact price, upsert), as a component and natively;
//! - `store_call`: the host side of the `store.execute` import (authorizer
//!   scope, statement cache, upsert) without Wasm;
//! - `savepoint`: the per-event savepoint of a careful pass and its release;
//! - `batch_commit`: one pipeline batch of 1000 events, Wasm and native
//!   (optimistic pass: handlers, checkpoint row, commit).
//!
//! `cargo bench -p ferry-bench --bench micro` (build the plugins first:
//! `scripts/build-plugins`).

#![expect(clippy::unwrap_used, reason = "a benchmark aborts on a broken setup")]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferry::bindings::Value;
use ferry::config::{Config, PipelineConfig};
use ferry::event::Event;
use ferry::host::{HostState, StoreCtx};
use ferry::pipeline::{Pipeline, PluginCode, Stats};
use ferry::plugin::{Limits, LoadedPlugin, PluginHost, PluginInstance};
use ferry::store::{Db, Grant, StoreOptions};
use ferry_bench::native::NativeGames;
use ferry_bench::workload;

const KEYS: u64 = 10_000;

fn plugin_file() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/plugins/game_projection.wasm");
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins",
        p.display()
    );
    p
}

fn load() -> (PluginHost, Arc<LoadedPlugin>) {
    let host = PluginHost::new(None).unwrap();
    let p = host
        .load_file(
            "game-projection",
            &plugin_file(),
            &["games".into()],
            Limits::default(),
        )
        .unwrap();
    (host, Arc::new(p))
}

fn event(n: u64) -> Event {
    let (ty, key, payload) = workload::event(n, KEYS);
    let mut e = Event::new(
        "bench/games".into(),
        0,
        n as i64,
        Some(ty.to_owned()),
        payload.into_bytes(),
    );
    e.key = Some(key.into_bytes());
    e.headers = vec![("event-type".to_owned(), ty.as_bytes().to_vec())];
    e
}

fn db(dir: &tempfile::TempDir) -> Db {
    Db::open(&dir.path().join("bench.db"), &StoreOptions::default()).unwrap()
}

fn plugin_config() -> ferry::config::PluginConfig {
    Config::parse(
        r#"
[[plugins]]
name = "game-projection"
path = "x.wasm"
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#,
        std::path::Path::new("."),
    )
    .unwrap()
    .plugins
    .remove(0)
}

fn host_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let (_host, plugin) = load();
    let mut instance = PluginInstance::new(plugin, db.shared(), db.scope());
    let mut skipped = event(1);
    skipped.event_type = Some("CatalogReindexed".into());
    c.bench_function("host_call (skipped event, no store call)", |b| {
        b.iter(|| black_box(instance.handle(&skipped, "CatalogReindexed").unwrap()));
    });
}

fn handle(c: &mut Criterion) {
    let mut g = c.benchmark_group("handle one Game event (JSON, price, upsert)");
    let dir = tempfile::tempdir().unwrap();
    let mut db = db(&dir);
    let (_host, plugin) = load();
    let mut wasm = PluginInstance::new(Arc::clone(&plugin), db.shared(), db.scope());
    db.begin().unwrap();
    wasm.migrate(None).unwrap();
    db.commit().unwrap();
    let events: Vec<Event> = (0..KEYS * 2).map(event).collect();
    db.begin().unwrap();
    let mut i = 0usize;
    g.bench_function("wasm", |b| {
        b.iter(|| {
            let e = &events[i % events.len()];
            i += 1;
            black_box(wasm.handle(e, e.event_type.as_deref().unwrap()).unwrap())
        });
    });
    db.commit().unwrap();
    let mut native = ferry::plugin::NativeInstance::new(
        "game-projection",
        Box::new(NativeGames),
        &["games".into()],
        db.shared(),
        db.scope(),
    );
    db.begin().unwrap();
    g.bench_function("native", |b| {
        b.iter(|| {
            let e = &events[i % events.len()];
            i += 1;
            black_box(native.handle(e, e.event_type.as_deref().unwrap()).unwrap())
        });
    });
    db.commit().unwrap();
    g.finish();
}

fn store_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = db(&dir);
    db.with(|c| c.execute_batch(game_projection::SCHEMA_V2))
        .unwrap();
    let grant = Arc::new(Grant::new("game-projection", &["games".into()]));
    let mut state = HostState::new(
        "game-projection".into(),
        StoreCtx::new(Some(db.shared()), db.scope(), grant, 64 << 20),
        64 << 20,
        ferry::host::held::Output::new("game-projection".into()),
        ferry::host::call::CallContext::new("sha256:bench".into(), false, 64 << 20),
    );
    let sql = "INSERT INTO games (id, name, price, image_uri, updated_at_offset, projected_by)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, price = excluded.price,
      image_uri = excluded.image_uri, updated_at_offset = excluded.updated_at_offset,
      projected_by = excluded.projected_by";
    db.begin().unwrap();
    state.store.begin_call(None);
    let mut i = 0u64;
    c.bench_function("store_call (host side of store.execute: upsert)", |b| {
        b.iter(|| {
            i += 1;
            let params = vec![
                Value::Text(workload::game_id(i % KEYS)),
                Value::Text(format!("Game {i}")),
                Value::Text("12.34".into()),
                Value::Null,
                Value::Integer(i as i64),
                Value::Text("0.1.0".into()),
            ];
            black_box(state.store.execute(sql, &params).unwrap())
        });
    });
    let mut prepared = state.store.prepare_statement(sql).unwrap();
    c.bench_function(
        "store_call, prepared (host side of statement.execute: upsert)",
        |b| {
            b.iter(|| {
                i += 1;
                let params = vec![
                    Value::Text(workload::game_id(i % KEYS)),
                    Value::Text(format!("Game {i}")),
                    Value::Text("12.34".into()),
                    Value::Null,
                    Value::Integer(i as i64),
                    Value::Text("0.1.0".into()),
                ];
                black_box(
                    state
                        .store
                        .execute_statement(&mut prepared, &params)
                        .unwrap(),
                )
            });
        },
    );
    drop(prepared);
    state.store.end_call();
    db.commit().unwrap();
}

fn savepoint(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = db(&dir);
    db.begin().unwrap();
    c.bench_function("savepoint + release (per event, careful pass)", |b| {
        b.iter(|| {
            db.savepoint().unwrap();
            db.release().unwrap();
        });
    });
    db.commit().unwrap();
}

fn batch_commit(c: &mut Criterion) {
    let mut g =
        c.benchmark_group("batch of 1000 events (optimistic pass: handlers, checkpoint, commit)");
    g.sample_size(20);
    let (_host, plugin) = load();
    for (name, code) in [
        ("wasm", PluginCode::Wasm(Arc::clone(&plugin))),
        ("native", PluginCode::Native(Box::new(NativeGames))),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut pipeline = Pipeline::new(
            db(&dir),
            vec![(plugin_config(), code)],
            &PipelineConfig::default(),
            Arc::new(Stats::default()),
        )
        .unwrap();
        let mut next = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let batch: Vec<Event> = (next..next + 1000).map(event).collect();
                    next += 1000;
                    batch
                },
                |batch| black_box(pipeline.apply_batch(&batch).unwrap().applied),
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    host_call,
    handle,
    store_call,
    savepoint,
    batch_commit
);
criterion_main!(benches);
