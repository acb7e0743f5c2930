//! The runtime-only build cross-compiled for aarch64 (Debian's
//! `gcc-aarch64-linux-gnu` as linker) and run under `qemu-aarch64-static`
//! (issue 15): it replays the fixture through the game projection
//! precompiled for aarch64 into exactly the table the x86-64 build makes,
//! and follows an HTTP feed across a SIGTERM and a restart without losing
//! anything. `scripts/test` builds the binary (`FERRY_AARCH64`) and the
//! artifacts (`FERRY_AOT_DIR`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry_tests::feed::{Feed, FeedServer};
use ferry_tests::games::{game_id, state};
use ferry_tests::kafka::{Running, checkpoints, wait_for};
use ferry_tests::{Workspace, plugin, repo_root, run_bounded, toml_path};

const TARGET: &str = "aarch64-unknown-linux-gnu";

fn env_path(name: &str, what: &str) -> PathBuf {
    let p = std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: {what} (scripts/test sets it)"));
    assert!(p.exists(), "{name}={} does not exist", p.display());
    p
}

/// `ferry ARGS` of the aarch64 build, under qemu.
fn aarch64_ferry(args: &[&str]) -> Command {
    let bin = env_path("FERRY_AARCH64", "the aarch64 runtime-only ferry binary");
    let mut c = Command::new("qemu-aarch64-static");
    c.arg("-L")
        .arg("/usr/aarch64-linux-gnu")
        .arg(bin)
        .args(args);
    c.env("FERRY_LOG", "info");
    c
}

/// The game projection precompiled for aarch64.
fn aarch64_artifact() -> PathBuf {
    let bytes = std::fs::read(plugin("game_projection")).unwrap();
    let header = ferry::plugin::aot::Header::new(&ferry::plugin::digest(&bytes), TARGET);
    env_path("FERRY_AOT_DIR", "precompiled plugins").join(header.file_name())
}

fn config(ws: &Workspace, plugin: &Path, source: &str) {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 20
linger_ms = 5

[[plugins]]
name = "game-projection"
path = {}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
{source}
"#,
        toml_path(plugin)
    ));
}

fn table(ws: &Workspace) -> Vec<String> {
    let conn = ws.open_db();
    let mut s = conn
        .prepare(
            "SELECT id || '|' || name || '|' || price || '|' || coalesce(image_uri, '') || '|' \
             || updated_at_offset || '|' || projected_by FROM games ORDER BY id",
        )
        .unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_aarch64_build_under_qemu_replays_the_fixture_into_the_x86_64_table() {
    let fixture = repo_root().join("tests/fixtures/games.jsonl");
    let fixture = fixture.display().to_string();
    let x86 = Workspace::new();
    config(&x86, &plugin("game_projection"), "");
    let out = x86.ferry(
        &["replay", "--config", "config.toml", "--events", &fixture],
        Duration::from_secs(120),
    );
    assert!(out.status.is_some_and(|s| s.success()), "{out:?}");
    let arm = Workspace::new();
    config(&arm, &aarch64_artifact(), "");
    let mut replay = aarch64_ferry(&["replay", "--config", "config.toml", "--events", &fixture]);
    let out = run_bounded(replay.current_dir(arm.dir.path()), Duration::from_secs(300));
    assert!(out.status.is_some_and(|s| s.success()), "{out:?}");
    let expected = table(&x86);
    assert!(!expected.is_empty());
    assert_eq!(table(&arm), expected, "aarch64 and x86-64 tables differ");
}

#[test]
fn the_aarch64_build_under_qemu_follows_a_feed_across_sigterm_and_restart() {
    let created = |from: u64, n: u64| -> Vec<(String, serde_json::Value)> {
        (from..from + n)
            .map(|g| {
                let game = state(g, &format!("Game {g}"), 1_000 + g);
                (
                    "GameCreated".to_owned(),
                    serde_json::from_str(&game).unwrap(),
                )
            })
            .collect()
    };
    let feed = Arc::new(Feed::default());
    feed.push(1, created(0, 60));
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let ws = Workspace::new();
    config(
        &ws,
        &aarch64_artifact(),
        &format!(
            "[[sources]]\nname = \"catalog\"\nkind = \"http-feed\"\nurl = \"{}\"\npage_size = 25\npoll_interval_ms = 50\n",
            server.url()
        ),
    );
    let db = ws.db();
    let at = |seq: i64| {
        let db = db.clone();
        move || checkpoints(&db, "catalog").get(&0) == Some(&seq)
    };
    let run = Running::spawn(
        aarch64_ferry(&["run", "--config", "config.toml"]),
        ws.dir.path(),
    );
    assert!(
        wait_for(Duration::from_secs(120), at(60)),
        "{}",
        run.output()
    );
    let (status, out) = run.terminate(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM is a clean stop: {out}"
    );
    // Events published while it was down are applied after the restart,
    // from the checkpoint on.
    feed.push(1, created(60, 40));
    let run = Running::spawn(
        aarch64_ferry(&["run", "--config", "config.toml"]),
        ws.dir.path(),
    );
    assert!(
        wait_for(Duration::from_secs(120), at(100)),
        "{}",
        run.output()
    );
    let (status, out) = run.terminate(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    let rows = table(&ws);
    assert_eq!(rows.len(), 100, "nothing lost, nothing twice");
    for g in [0, 59, 60, 99] {
        assert!(
            rows.iter().any(|r| r.starts_with(&game_id(g))),
            "game {g} missing"
        );
    }
}
