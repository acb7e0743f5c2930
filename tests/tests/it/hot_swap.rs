//! Hot swap (issue 5): replacing a running plugin without a restart, and
//! without losing, duplicating or reordering an event.
//!
//! The plugins are `games-a` and `games-b`: the game projection stamping
//! its version (`a` or `b`) into every row and appending every event it
//! applies to `swap_log` (whose UNIQUE key makes a second application a
//! dead letter, and whose AUTOINCREMENT id records the apply order).
//! `games-a` is built against contract 0.2 and `games-b` against 0.1, so
//! every swap between them changes the contract too, with the same tables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_tests::games::{self, swap_log, workload};
use ferry_tests::kafka::{Producer, Running, caught_up, high_watermarks, wait_for};
use ferry_tests::{Workspace, api_addr, count, deploy_file, http_get, http_request, plugin};

const TOPIC: &str = "games";
const KEY: &str = "catalog/games";
const PARTITIONS: i32 = 4;
const GAMES: u64 = 400;

fn digest(bytes: &[u8]) -> String {
    ferry::plugin::digest(bytes)
}

fn setup(ws: &Workspace, bootstrap: &str, plugin_extra: &str, tables: &str) -> (Running, String) {
    std::fs::copy(plugin("games_a"), ws.path("games.wasm")).unwrap();
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[runtime]
progress_interval_ms = 0
watch_interval_ms = 50
component_cache = {cache}

[pipeline]
batch_size = 500
linger_ms = 5

[pipeline.retry]
initial_backoff_ms = 20
max_backoff_ms = 200

[[plugins]]
name = "games"
path = "games.wasm"
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = [{tables}]
{plugin_extra}

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
        wait_for(Duration::from_secs(60), || api_addr(&run.output())
            .is_some()
            && run.output().contains("ferry is running")),
        "{}",
        run.output()
    );
    let addr = api_addr(&run.output()).unwrap();
    (run, addr)
}

/// Plugin `games` as the API shows it.
fn games_info(addr: &str) -> Option<serde_json::Value> {
    let (code, body) = http_get(addr, "/plugins").ok()?;
    (code == 200).then_some(())?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?.iter().find(|p| p["name"] == "games").cloned()
}

/// The active digest of plugin `games`, from the API.
fn active(addr: &str) -> Option<String> {
    let (code, body) = http_get(addr, "/plugins").ok()?;
    (code == 200).then_some(())?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?.iter().find(|p| p["name"] == "games")?["digest"]
        .as_str()
        .map(str::to_owned)
}

/// Produces `n` workload events from `from`, each game to its own
/// partition (`n % PARTITIONS`), and returns how many were sent.
fn produce(bootstrap: &str, from: u64, n: u64) -> u64 {
    games::produce(bootstrap, TOPIC, PARTITIONS, GAMES, from, n);
    n
}

/// The activated versions of `games` in order, each with the offset of
/// every partition from which it applied events.
fn activations(conn: &rusqlite::Connection) -> Vec<(i64, String, String, BTreeMap<i32, i64>)> {
    let mut s = conn
        .prepare(
            "SELECT id, new_version, cause FROM ferry_plugin_history
             WHERE plugin = 'games' AND outcome = 'activated' ORDER BY id",
        )
        .unwrap();
    let entries: Vec<(i64, String, String)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    entries
        .into_iter()
        .map(|(id, version, cause)| {
            let mut p = conn
                .prepare(
                    r#"SELECT "partition", from_offset FROM ferry_plugin_history_positions
                       WHERE history_id = ?1 AND source = ?2"#,
                )
                .unwrap();
            let positions = p
                .query_map(rusqlite::params![id, KEY], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (id, version, cause, positions)
        })
        .collect()
}

/// The version the history says applied `(partition, offset)`.
fn version_at(history: &[(i64, String, String, BTreeMap<i32, i64>)], p: i32, off: i64) -> &str {
    history
        .iter()
        .rev()
        .find(|(_, _, _, pos)| pos.get(&p).is_none_or(|from| *from <= off))
        .map(|(_, v, _, _)| v.as_str())
        .unwrap_or("?")
}

/// Under a continuous stream of thousands of events per second, 20 swaps
/// between two versions (alternately by atomic file rename and by `PUT
/// /plugins/games`): every event applied exactly once, in partition order,
/// and every row stamped by the version the history says was active at its
/// offset.
#[test]
fn twenty_swaps_under_load_apply_every_event_exactly_once_in_order_by_the_version_the_history_names()
 {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let (run, addr) = setup(&ws, &bootstrap, "", r#""games", "swap_log""#);
    let a = std::fs::read(plugin("games_a")).unwrap();
    let b = std::fs::read(plugin("games_b")).unwrap();
    assert_eq!(active(&addr), Some(digest(&a)), "{}", run.output());

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (stop, sent, bootstrap) = (Arc::clone(&stop), Arc::clone(&sent), bootstrap.clone());
        std::thread::spawn(move || {
            let p = Producer::new(&bootstrap);
            let started = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // ~4,000 events per second, in bursts of 40 every 10 ms.
                let due = (started.elapsed().as_millis() as u64) * 4;
                while i < due {
                    let (ty, g, payload) = workload(i, GAMES);
                    p.send(
                        TOPIC,
                        (g % PARTITIONS as u64) as i32,
                        ty,
                        &games::game_id(g),
                        &payload,
                    );
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            p.flush();
            sent.store(i, Ordering::Relaxed);
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for swap in 0..20 {
        let (bytes, by_file) = if swap % 2 == 0 {
            (&b, swap % 4 == 0)
        } else {
            (&a, swap % 4 == 1)
        };
        if by_file {
            deploy_file(&ws.path("games.wasm"), bytes);
        } else {
            let r = http_request(&addr, "PUT", "/plugins/games", bytes).unwrap();
            assert_eq!(r.status, 200, "swap {swap}: {}", r.body);
        }
        let want = digest(bytes);
        assert!(
            wait_for(Duration::from_secs(30), || active(&addr).as_ref()
                == Some(&want)),
            "swap {swap} did not take over: {:?}\n{}",
            active(&addr),
            run.output()
        );
        std::thread::sleep(Duration::from_millis(150));
        // The contract changed with the version, and the replaced
        // version's prepared statements did not outlive the swap.
        let info = games_info(&addr).unwrap();
        let contract = if std::ptr::eq(bytes, &a) {
            "ferry:plugin@0.2.0"
        } else {
            "ferry:plugin@0.1.0"
        };
        assert_eq!(info["contract"], contract, "{info}");
        assert_eq!(info["previous"]["statements"], 0, "{info}");
    }
    // The last version (a, contract 0.2) prepared its statements once.
    assert!(
        wait_for(Duration::from_secs(10), || games_info(&addr).is_some_and(
            |i| i["statements"].as_u64().is_some_and(|n| n >= 1)
        )),
        "{:?}",
        games_info(&addr)
    );
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let n = sent.load(Ordering::Relaxed);
    assert!(n > 10_000, "only {n} events were produced");
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert_eq!(high.iter().sum::<i64>() as u64, n);
    assert!(
        wait_for(Duration::from_secs(60), || caught_up(&ws.db(), KEY, &high)),
        "not caught up\n{}",
        run.output()
    );
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");

    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM ferry_dead_letters"),
        0,
        "{out}"
    );
    let log = swap_log(&c);
    assert_eq!(log.len() as u64, n, "every event applied once");
    // In partition order, none lost: each partition's offsets, in apply
    // order, are exactly 0, 1, 2, …
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, off, _) in &log {
        let want = next.entry(*p).or_insert(0);
        assert_eq!(
            *off, *want,
            "partition {p}: offset {off} applied where {want} was due"
        );
        *want += 1;
    }
    let history = activations(&c);
    let swaps = history
        .iter()
        .filter(|(_, _, cause, _)| cause != "start")
        .count();
    assert_eq!(swaps, 20, "{history:?}");
    assert!(history.iter().any(|(_, _, cause, _)| cause == "file"));
    assert!(history.iter().any(|(_, _, cause, _)| cause == "api"));
    for (p, off, version) in &log {
        assert_eq!(
            version,
            version_at(&history, *p, *off),
            "partition {p} offset {off} was applied by {version}"
        );
    }
    // Each row carries the stamp of the version that wrote it last.
    let by_offset: BTreeMap<(i32, i64), &str> =
        log.iter().map(|(p, o, v)| ((*p, *o), v.as_str())).collect();
    let rows = games::games(&c);
    assert!(!rows.is_empty());
    for (id, (_, _, _, offset, stamp)) in rows {
        let g = u64::from_str_radix(id.rsplit('-').next().unwrap(), 16).unwrap();
        let p = (g % PARTITIONS as u64) as i32;
        assert_eq!(
            stamp.as_deref(),
            Some(by_offset[&(p, offset)]),
            "game {id} at {p}@{offset}"
        );
        assert_eq!(stamp.as_deref(), Some(version_at(&history, p, offset)));
    }
    // Every checkpoint row names the version(s) that applied its batch.
    let stamps: Vec<String> = c
        .prepare("SELECT plugin_digest FROM ferry_checkpoints")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        stamps.iter().all(|s| s.starts_with("games@sha256:")),
        "{stamps:?}"
    );
}

/// A corrupt file, a component that does not match the contract, and a
/// version whose `migrate` fails are each refused while the old version
/// keeps processing; each refusal shows in the API (and its metric), the
/// history and the log.
#[test]
fn a_corrupt_file_a_foreign_component_and_a_failing_migrate_are_refused_while_the_old_version_runs()
{
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    // `log` is not granted: the chaos plugin's migrate creates it, which
    // the authorizer denies.
    let (run, addr) = setup(&ws, &bootstrap, "", r#""games", "swap_log""#);
    let a = digest(&std::fs::read(plugin("games_a")).unwrap());
    let mut sent = produce(&bootstrap, 0, 200);
    let check_progress = |sent: u64, run: &Running| {
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert_eq!(high.iter().sum::<i64>() as u64, sent);
        assert!(
            wait_for(Duration::from_secs(30), || caught_up(&ws.db(), KEY, &high)),
            "the old version stopped processing\n{}",
            run.output()
        );
    };
    check_progress(sent, &run);

    // 1. A corrupt file, deployed by rename: the watcher's attempt fails.
    deploy_file(&ws.path("games.wasm"), b"\0asm garbage, not a component");
    assert!(
        wait_for(Duration::from_secs(20), || run
            .output()
            .contains("A new plugin version was refused")),
        "{}",
        run.output()
    );
    sent += produce(&bootstrap, sent, 100);
    check_progress(sent, &run);
    assert_eq!(active(&addr), Some(a.clone()));

    // 2. A component that does not match the WIT contract, by PUT.
    let r = http_request(
        &addr,
        "PUT",
        "/plugins/games",
        &std::fs::read(plugin("mismatch_plugin")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("does not match the ferry:plugin contract"),
        "{}",
        r.body
    );

    // 3. A version whose migrate fails (it needs a table not granted).
    let r = http_request(
        &addr,
        "PUT",
        "/plugins/games",
        &std::fs::read(plugin("chaos_plugin")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("`migrate`"), "{}", r.body);
    assert!(
        r.body.contains("`log`"),
        "names the table it was denied: {}",
        r.body
    );

    sent += produce(&bootstrap, sent, 100);
    check_progress(sent, &run);
    assert_eq!(active(&addr), Some(a.clone()), "the old version still runs");
    let plugins = http_get(&addr, "/plugins").unwrap().1;
    assert!(plugins.contains("\"last_refusal\":{"), "{plugins}");
    let metrics = http_get(&addr, "/metrics").unwrap().1;
    assert!(
        metrics.contains("ferry_plugin_swaps_total{plugin=\"games\",result=\"refused\"} 3"),
        "{metrics}"
    );
    let history = http_get(&addr, "/plugins/games/history").unwrap().1;
    let entries: serde_json::Value = serde_json::from_str(&history).unwrap();
    let refused = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .count();
    assert_eq!(refused, 3, "{history}");
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(
        out.contains("is not a valid WebAssembly component"),
        "{out}"
    );
    let c = ws.open_db();
    assert_eq!(swap_log(&c).len() as u64, sent);
    assert!(swap_log(&c).iter().all(|(_, _, v)| v == "a"));
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 0);
}

/// Automatic rollback: a version that fails every event is rolled back
/// after its first probation failures (the events it failed are applied
/// by the previous version, exactly once); a healthy version passes its
/// probation and stays.
#[test]
fn auto_rollback_undoes_a_version_that_fails_every_event_and_keeps_a_healthy_one() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let (run, addr) = setup(
        &ws,
        &bootstrap,
        "auto_rollback = { events = 40, max_error_rate = 0.1 }",
        r#""games", "swap_log", "log""#,
    );
    let a = digest(&std::fs::read(plugin("games_a")).unwrap());
    let b = digest(&std::fs::read(plugin("games_b")).unwrap());
    let mut sent = produce(&bootstrap, 0, 200);
    let settle = |sent: u64, run: &Running| {
        let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
        assert_eq!(high.iter().sum::<i64>() as u64, sent);
        assert!(
            wait_for(Duration::from_secs(30), || caught_up(&ws.db(), KEY, &high)),
            "{}",
            run.output()
        );
    };
    settle(sent, &run);
    // The chaos plugin migrates fine but knows no Game event: it fails
    // every one of them.
    let r = http_request(
        &addr,
        "PUT",
        "/plugins/games",
        &std::fs::read(plugin("chaos_plugin")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    sent += produce(&bootstrap, sent, 200);
    settle(sent, &run);
    assert!(
        wait_for(Duration::from_secs(10), || active(&addr) == Some(a.clone())),
        "no automatic rollback: {:?}\n{}",
        active(&addr),
        run.output()
    );
    // A healthy version passes its probation.
    let r = http_request(
        &addr,
        "PUT",
        "/plugins/games",
        &std::fs::read(plugin("games_b")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    sent += produce(&bootstrap, sent, 200);
    settle(sent, &run);
    assert!(
        wait_for(Duration::from_secs(10), || {
            let p = http_get(&addr, "/plugins").unwrap().1;
            p.contains("\"probation\":null")
        }),
        "{}",
        http_get(&addr, "/plugins").unwrap().1
    );
    assert_eq!(active(&addr), Some(b));
    let metrics = http_get(&addr, "/metrics").unwrap().1;
    assert!(
        metrics.contains("ferry_plugin_swaps_total{plugin=\"games\",result=\"rolled-back\"} 1"),
        "{metrics}"
    );
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(out.contains("failed its probation"), "{out}");
    assert!(out.contains("passed its probation"), "{out}");
    let c = ws.open_db();
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 0);
    let log = swap_log(&c);
    assert_eq!(log.len() as u64, sent, "every event applied exactly once");
    let by_version = |v: &str| log.iter().filter(|(_, _, x)| x == v).count();
    assert_eq!(by_version("a") + by_version("b"), log.len());
    assert!(by_version("b") > 0);
    assert_eq!(
        count(&c, "SELECT count(*) FROM log"),
        0,
        "the failing version applied nothing"
    );
    let causes: Vec<String> = c
        .prepare("SELECT cause FROM ferry_plugin_history WHERE plugin = 'games' AND outcome = 'activated' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(causes, ["start", "api", "auto-rollback", "api"]);
}

/// SIGHUP re-reads the configuration: a plugin's routes and limits change
/// at a batch boundary; an invalid file is reported and changes nothing.
#[test]
fn sighup_reloads_routes_and_limits_and_an_invalid_file_changes_nothing() {
    let cluster = ferry_tests::kafka::cluster(TOPIC, PARTITIONS);
    let bootstrap = cluster.bootstrap_servers();
    let ws = Workspace::new();
    let (run, addr) = setup(&ws, &bootstrap, "", r#""games", "swap_log""#);
    let config = std::fs::read_to_string(ws.path("config.toml")).unwrap();
    // An invalid configuration: refused, every problem named.
    std::fs::write(
        ws.path("config.toml"),
        config.replace("batch_size = 500", "batch_size = 0"),
    )
    .unwrap();
    ferry_tests::signal(&run.child, libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("pipeline.batch_size must be between")),
        "{}",
        run.output()
    );
    // A valid one: GameDeleted is no longer routed, the deadline changes.
    std::fs::write(
        ws.path("config.toml"),
        config
            .replace(
                r#"events = ["GameCreated", "GameUpdated", "GameDeleted"]"#,
                r#"events = ["GameCreated", "GameUpdated"]"#,
            )
            .replace("[[plugins]]", "[[plugins]]\ntimeout_ms = 2500"),
    )
    .unwrap();
    ferry_tests::signal(&run.child, libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || {
            let p = http_get(&addr, "/plugins").unwrap().1;
            p.contains(r#""events":["GameCreated","GameUpdated"]"#)
        }),
        "{}\n{}",
        http_get(&addr, "/plugins").unwrap().1,
        run.output()
    );
    let sent = produce(&bootstrap, 0, (GAMES * 2) + 100);
    let high = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert_eq!(high.iter().sum::<i64>() as u64, sent);
    assert!(wait_for(Duration::from_secs(30), || caught_up(
        &ws.db(),
        KEY,
        &high
    )));
    let metrics = http_get(&addr, "/metrics").unwrap().1;
    assert!(
        metrics.contains(
            "ferry_events_total{plugin=\"-\",event_type=\"GameDeleted\",outcome=\"skipped\"}"
        ),
        "deletes are now unrouted (skipped per pipeline.unknown_event_type): {metrics}"
    );
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(
        out.contains("limits") || out.contains("took over after a configuration reload"),
        "{out}"
    );
    let c = ws.open_db();
    let routed = (0..sent)
        .filter(|i| workload(*i, GAMES).0 != "GameDeleted")
        .count();
    assert!(routed < sent as usize);
    assert_eq!(
        count(&c, "SELECT count(*) FROM swap_log") as usize,
        routed,
        "deletes are not routed to the plugin any more"
    );
}
