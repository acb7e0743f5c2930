//! Precompiled plugins (`ferry compile`) in whatever build runs this test,
//! the runtime-only one included (`--no-default-features --features
//! http-feed`, no Cranelift): the game projection replays the fixture into
//! the expected table, the sandbox's deadline and memory cap hold exactly
//! as in the JIT build, and artifacts that cannot run here are refused
//! naming why. Artifacts come from `FERRY_AOT_DIR` (`scripts/test` makes
//! them with the default build's `ferry compile`); a build with the
//! compiler makes them itself.

#![expect(
    clippy::unwrap_used,
    reason = "a test and its helpers fail the test by panicking"
)]

#[path = "support/aot.rs"]
mod aot;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aot::{FERRY, artifact, loadable, repo, text};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(FERRY)
        .args(args)
        .current_dir(dir)
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap()
}

fn workspace(
    plugin: &Path,
    name: &str,
    events: &str,
    tables: &str,
    limits: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            r#"
[store]
path = "ferry.db"

[[plugins]]
name = "{name}"
path = {plugin:?}
events = [{events}]
tables = [{tables}]
max_attempts = 1
{limits}
"#,
            plugin = plugin.display().to_string()
        ),
    )
    .unwrap();
    dir
}

fn query(dir: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("ferry.db")).unwrap();
    let mut s = conn.prepare(sql).unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_precompiled_game_projection_replays_the_fixture_into_the_expected_table() {
    let a = artifact("game_projection", ferry::plugin::aot::HOST_TARGET);
    let ws = workspace(
        &a,
        "game-projection",
        r#""GameCreated", "GameUpdated", "GameDeleted""#,
        r#""games""#,
        "",
    );
    let check = ferry(ws.path(), &["check", "--config", "config.toml"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("loaded precompiled"),
        "{}",
        text(&check)
    );
    let fixture = repo().join("tests/fixtures/games.jsonl");
    let out = ferry(
        ws.path(),
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            &fixture.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows = query(
        ws.path(),
        "SELECT id || '|' || name || '|' || price FROM games ORDER BY id",
    );
    assert!(!rows.is_empty(), "{}", text(&out));
    assert!(
        rows.iter()
            .any(|r| r.starts_with("11111111-1111-1111-1111-111111111111|")),
        "{rows:?}"
    );
    // The digest recorded is the component's, as on a JIT host.
    let wasm = std::fs::read(repo().join("dist/plugins/game_projection.wasm")).unwrap();
    let applied_by = query(
        ws.path(),
        "SELECT DISTINCT plugin_digest FROM ferry_checkpoints",
    );
    assert_eq!(
        applied_by,
        [format!("game-projection@{}", ferry::plugin::digest(&wasm))]
    );
}

fn chaos(limits: &str, events: &str) -> (tempfile::TempDir, Output, Duration) {
    let a = artifact("chaos_plugin", ferry::plugin::aot::HOST_TARGET);
    let ws = workspace(
        &a,
        "chaos",
        r#""Append", "Loop", "Alloc""#,
        r#""log""#,
        limits,
    );
    std::fs::write(ws.path().join("events.jsonl"), events).unwrap();
    let began = Instant::now();
    let out = ferry(
        ws.path(),
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
    );
    (ws, out, began.elapsed())
}

#[test]
fn the_deadline_cuts_a_precompiled_plugin_that_never_returns() {
    let (ws, out, took) = chaos(
        "timeout_ms = 300",
        "{\"type\":\"Loop\",\"payload\":{}}\n{\"type\":\"Append\",\"payload\":{\"n\":1}}\n",
    );
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}: {}",
        text(&out)
    );
    failed_alone(&ws, &out, "timeout");
}

/// The first event was dead-lettered with `class`, and the one after it
/// applied.
fn failed_alone(ws: &tempfile::TempDir, out: &Output, class: &str) {
    let classes = query(ws.path(), "SELECT error_class FROM ferry_dead_letters");
    assert_eq!(classes, [class], "{}", text(out));
    assert_eq!(
        query(ws.path(), "SELECT payload FROM log").len(),
        1,
        "the next event applied"
    );
}

#[test]
fn the_memory_cap_holds_for_a_precompiled_plugin() {
    let (ws, out, _) = chaos(
        "memory_mb = 32",
        "{\"type\":\"Alloc\",\"payload\":{}}\n{\"type\":\"Append\",\"payload\":{\"n\":1}}\n",
    );
    failed_alone(&ws, &out, "memory");
}

#[test]
fn an_artifact_for_another_target_is_refused_naming_both_targets() {
    let host = ferry::plugin::aot::HOST_TARGET;
    let other = if host.starts_with("aarch64") {
        "x86_64-unknown-linux-gnu"
    } else {
        "aarch64-unknown-linux-gnu"
    };
    let a = artifact("game_projection", other);
    let ws = workspace(&a, "game-projection", r#""GameCreated""#, r#""games""#, "");
    let out = ferry(ws.path(), &["check", "--config", "config.toml"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains(other) && said.contains(host), "{said}");
    assert!(said.contains("ferry compile --target"), "{said}");
}

#[cfg(not(feature = "jit"))]
#[test]
fn a_component_is_refused_without_a_compiler_saying_to_compile_it() {
    let wasm = repo().join("dist/plugins/game_projection.wasm");
    let ws = workspace(
        &wasm,
        "game-projection",
        r#""GameCreated""#,
        r#""games""#,
        "",
    );
    let out = ferry(ws.path(), &["check", "--config", "config.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("compile it with `ferry compile`"),
        "{}",
        text(&out)
    );
    let out = ferry(ws.path(), &["compile", &wasm.display().to_string()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no compiler"), "{}", text(&out));
}

#[test]
fn what_this_build_loads_passes_check_saying_how_it_was_loaded() {
    let p = loadable("game_projection");
    let ws = workspace(&p, "game-projection", r#""GameCreated""#, r#""games""#, "");
    let out = ferry(ws.path(), &["check", "--config", "config.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let how = if cfg!(feature = "jit") {
        "compiled"
    } else {
        "loaded precompiled"
    };
    assert!(text(&out).contains(how), "{}", text(&out));
}
