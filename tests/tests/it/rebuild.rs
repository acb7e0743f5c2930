//! `ferry rebuild` (issue 5): re-projecting a plugin's tables into a
//! shadow copy while the live ferry keeps serving, then cutting over
//! atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_tests::games::{self, GameRows};
use ferry_tests::kafka::{Running, caught_up, high_watermarks, wait_for};
use ferry_tests::{Workspace, api_addr, count, deploy_file, http_get, plugin};

const TOPIC: &str = "games";
const KEY: &str = "catalog/games";
const PARTITIONS: i32 = 2;
const GAMES: u64 = 300;

fn config(ws: &Workspace, bootstrap: &str, wasm: &str) -> Running {
    std::fs::copy(plugin(wasm), ws.path("games.wasm")).unwrap();
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[runtime]
progress_interval_ms = 0
watch_interval_ms = 50
component_cache = {cache}

[pipeline]
batch_size = 200
linger_ms = 5

[[plugins]]
name = "games"
path = "games.wasm"
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games", "swap_log"]

[[sources]]
name = "catalog"
kind = "kafka"
brokers = "{bootstrap}"
topics = ["{TOPIC}"]
"#,
        cache = ferry_tests::toml_path(&std::env::temp_dir().join("ferry-test-component-cache")),
    ));
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(60), || run
            .output()
            .contains("ferry is running")),
        "{}",
        run.output()
    );
    run
}

fn produce(bootstrap: &str, from: u64, n: u64) {
    games::produce(bootstrap, TOPIC, PARTITIONS, GAMES, from, n);
}

fn settle(ws: &Workspace, bootstrap: &str, run: &Running) {
    let high = high_watermarks(bootstrap, TOPIC, PARTITIONS);
    assert!(
        wait_for(Duration::from_secs(60), || caught_up(&ws.db(), KEY, &high)),
        "{}",
        run.output()
    );
}

fn restamp(rows: &GameRows, stamp: &str) -> GameRows {
    rows.iter()
        .map(|(k, (n, p, i, o, _))| {
            (
                k.clone(),
                (n.clone(), p.clone(), i.clone(), *o, Some(stamp.to_owned())),
            )
        })
        .collect()
}

/// Version `a` projects a topic; version `b` (different stamps) is
/// deployed, then `ferry rebuild` re-projects every past event with it
/// while the live ferry runs. Readers during the rebuild see the old
/// table, whole, until the cut-over and the new one, whole, after it;
/// the result equals a from-scratch projection by `b`; the live ferry goes
/// on applying new events afterwards.
#[test]
fn a_rebuild_equals_a_from_scratch_replay_and_readers_never_see_a_half_built_table() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let live = config(&ws, &bootstrap, "games_a");
    let addr = api_addr(&live.output()).unwrap();
    produce(&bootstrap, 0, 3_000);
    settle(&ws, &bootstrap, &live);
    let old = games::games(&ws.open_db());
    assert!(old.len() > 100);
    assert!(old.values().all(|r| r.4.as_deref() == Some("a")));
    let new = restamp(&old, "b");

    // Deploy version b: from now on the live ferry applies with it.
    deploy_file(
        &ws.path("games.wasm"),
        &std::fs::read(plugin("games_b")).unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || http_get(&addr, "/plugins")
            .unwrap()
            .1
            .contains("\"version\":\"b\"")),
        "{}",
        live.output()
    );

    // A reader checks every snapshot while the rebuild runs.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, db, old, new) = (Arc::clone(&stop), ws.db(), old.clone(), new.clone());
        std::thread::spawn(move || {
            let (mut saw_old, mut saw_new) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let c = rusqlite::Connection::open_with_flags(
                    &db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let rows = games::games(&c);
                if rows == old {
                    saw_old += 1;
                } else if rows == new {
                    saw_new += 1;
                } else {
                    let stamps: std::collections::BTreeSet<_> =
                        rows.values().map(|r| r.4.clone()).collect();
                    panic!(
                        "a reader saw a table that is neither the old nor the rebuilt one: {} rows, stamps {stamps:?}",
                        rows.len()
                    );
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (saw_old, saw_new)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let out = ws.ferry(
        &["rebuild", "games", "--config", "config.toml"],
        Duration::from_secs(180),
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(
        out.stdout.contains("rebuilt plugin games"),
        "{}",
        out.stdout
    );
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (saw_old, saw_new) = reader.join().expect("the reader saw a half-built table");
    assert!(saw_old > 0 && saw_new > 0, "old {saw_old}, new {saw_new}");
    assert_eq!(games::games(&ws.open_db()), new);
    assert!(
        !ws.path("ferry.db.rebuild-games").exists(),
        "the shadow is removed"
    );

    // The same table as a from-scratch projection by b.
    let scratch = Workspace::new();
    let fresh = config(&scratch, &bootstrap, "games_b");
    settle(&scratch, &bootstrap, &fresh);
    assert_eq!(games::games(&scratch.open_db()), new);
    let sorted = |db: &rusqlite::Connection| {
        let mut log = games::swap_log(db);
        log.sort();
        log
    };
    assert_eq!(sorted(&ws.open_db()), sorted(&scratch.open_db()));
    drop(fresh);

    // The live ferry goes on after the cut-over.
    produce(&bootstrap, 3_000, 500);
    settle(&ws, &bootstrap, &live);
    let (status, out) = live.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    let c = ws.open_db();
    assert_eq!(count(&c, "SELECT count(*) FROM swap_log"), 3_500);
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 0);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM ferry_plugin_history WHERE cause = 'rebuild'"
        ),
        1
    );
}

/// A rebuild refuses to run with a file that is not the live version.
#[test]
fn a_rebuild_with_a_version_that_is_not_live_is_refused() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let live = config(&ws, &bootstrap, "games_a");
    produce(&bootstrap, 0, 100);
    settle(&ws, &bootstrap, &live);
    drop(live);
    std::fs::copy(plugin("games_b"), ws.path("games.wasm")).unwrap();
    let out = ws.ferry(
        &["rebuild", "games", "--config", "config.toml"],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(
        out.stderr.contains("deploy the file first"),
        "{}",
        out.stderr
    );
}
