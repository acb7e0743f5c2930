//! The status page (`GET /`) in a real browser: headless Chromium driven by
//! playwright-core (`tests/browser/status-page.cjs`) against a running
//! ferry with the game projection and a plugin whose dead letter applies
//! when it is retried. The browser checks what the page shows against
//! `/sources` and `/plugins`, is refused a purge without the admin token,
//! retries one dead letter and purges the other from the page, and saves a
//! screenshot (`status-page.png` in `FERRY_ARTIFACTS`, default
//! `target/test-artifacts`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry_tests::feed::{Feed, FeedServer};
use ferry_tests::games::state;
use ferry_tests::kafka::{Running, wait_for};
use ferry_tests::{Workspace, api_addr, http_get, repo_root, run_bounded};

/// Where playwright-core is installed (`scripts/test` installs it).
fn node_modules() -> PathBuf {
    std::env::var_os("FERRY_NODE_MODULES").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/ferry/node/node_modules")
        },
        PathBuf::from,
    )
}

#[test]
fn the_status_page_shows_what_the_api_says_and_retries_and_purges_dead_letters() {
    let modules = node_modules();
    assert!(
        modules.join("playwright-core").exists(),
        "playwright-core is not installed in {}: scripts/test installs it",
        modules.display()
    );
    let feed = Arc::new(Feed::default());
    let mut events: Vec<(String, serde_json::Value)> = (0..20)
        .map(|g| {
            (
                "GameCreated".to_owned(),
                serde_json::from_str(&state(g, &format!("Game {g}"), 2_499)).unwrap(),
            )
        })
        .collect();
    // Never applies (no price): a permanent failure.
    events.push((
        "GameCreated".into(),
        serde_json::json!({ "id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "name": "No price" }),
    ));
    // Fails once, then applies: its retry from the page succeeds.
    events.push(("FailTimes".into(), serde_json::json!({ "times": 1 })));
    feed.push(1, events);
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let ws = Workspace::new();
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[api]
listen = "127.0.0.1:0"
admin_token = "page-token"

[[plugins]]
name = "game-projection"
path = {{games}}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
max_attempts = 1

[[plugins]]
name = "chaos"
path = {{chaos}}
events = ["FailTimes"]
tables = ["log"]
max_retryable_attempts = 1

[[sources]]
name = "catalog"
kind = "http-feed"
url = "{}"
page_size = 50
poll_interval_ms = 50
"#,
        server.url()
    ));
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(30), || api_addr(&run.output())
            .is_some_and(|a| http_get(&a, "/dead-letters")
                .is_ok_and(|(_, b)| b.matches("\"id\"").count() == 2))),
        "two dead letters never appeared: {}",
        run.output()
    );
    let api = api_addr(&run.output()).unwrap();
    let artifacts = std::env::var_os("FERRY_ARTIFACTS")
        .map_or_else(|| repo_root().join("target/test-artifacts"), PathBuf::from);
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_bounded(
        Command::new("node")
            .arg(repo_root().join("tests/browser/status-page.cjs"))
            .arg(format!("http://{api}"))
            .arg("page-token")
            .arg(&shot)
            .env("NODE_PATH", &modules),
        Duration::from_secs(120),
    );
    assert!(
        out.status.is_some_and(|s| s.success()),
        "the browser test failed:\n{}\n{}\nferry:\n{}",
        out.stdout,
        out.stderr,
        run.output()
    );
    assert!(out.stdout.contains("status page: ok"), "{}", out.stdout);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "the screenshot is not a picture of the page"
    );
}
