//! The read API and operations endpoints (issue 6) with the game
//! projection's query functions, fed by a test HTTP feed: "projection not
//! ready" (503 + Retry-After) versus "does not exist" (404), waiting for a
//! consistency token, and `/metrics` checked with the reference Prometheus
//! text parser (Python's prometheus_client).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_tests::feed::{Feed, FeedServer, Mode};
use ferry_tests::games::{game_id, state};
use ferry_tests::kafka::{Running, checkpoints, wait_for};
use ferry_tests::{Workspace, api_addr, http_get, http_request, repo_root};

fn start(ws: &Workspace, url: &str) -> (Running, String) {
    start_with(ws, url, "listen = \"127.0.0.1:0\"")
}

/// `ferry run` of the game projection fed by `url`, with `api` as the
/// `[api]` section's settings; returns it and a loopback address of its API.
pub(super) fn start_with(ws: &Workspace, url: &str, api: &str) -> (Running, String) {
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 50
linger_ms = 5

[api]
{api}
ready_max_lag = 0

[[plugins]]
name = "game-projection"
path = {{games}}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
max_attempts = 1

[[sources]]
name = "catalog"
kind = "http-feed"
url = "{url}"
page_size = 20
poll_interval_ms = 50
"#
    ));
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(30), || run
            .output()
            .contains("ferry is running")),
        "{}",
        run.output()
    );
    let addr = api_addr(&run.output()).unwrap();
    // A listener on every address is reached through loopback.
    let addr = addr.replace("0.0.0.0:", "127.0.0.1:");
    (run, addr)
}

fn created(from: u64, n: u64) -> Vec<(String, serde_json::Value)> {
    (from..from + n)
        .map(|g| {
            (
                "GameCreated".to_owned(),
                serde_json::from_str(&state(g, &format!("Game {g}"), 1_999)).unwrap(),
            )
        })
        .collect()
}

/// 503 with Retry-After while the projection is behind, 200 once the event
/// is applied, 404 when caught up and absent; `wait` returns as soon as
/// the offset is applied and times out cleanly otherwise.
#[test]
fn the_read_api_answers_503_while_behind_200_once_applied_and_404_when_caught_up() {
    let feed = Arc::new(Feed::default());
    feed.push(1, created(0, 50));
    feed.set_mode(Mode::Unavailable(1));
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let ws = Workspace::new();
    let (run, addr) = start(&ws, &server.url());
    let get = |path: &str| http_request(&addr, "GET", path, b"").unwrap();

    // Behind: the feed has not answered yet.
    let r = get(&format!(
        "/plugins/game-projection/query/get-game?id={}",
        game_id(0)
    ));
    assert_eq!(r.status, 503, "{}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // A wait that times out says so cleanly.
    let began = Instant::now();
    let r = get("/sources/catalog/wait?offset=50&timeout=300ms");
    let took = began.elapsed();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["applied"], false);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A long wait returns as soon as the offset is applied.
    let waiter = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let r = http_request(
                &addr,
                "GET",
                "/sources/catalog/wait?offset=50&timeout=30s",
                b"",
            )
            .unwrap();
            (r, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let opened = Instant::now();
    feed.set_mode(Mode::Normal);
    let (r, answered) = waiter.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], true);
    assert!(r.json()["checkpoint"].as_i64().unwrap() >= 50);
    assert!(
        answered.duration_since(opened) < Duration::from_secs(5),
        "the wait returned {:?} after the feed opened",
        answered.duration_since(opened)
    );

    // Applied: 200 with the row.
    let r = get(&format!(
        "/plugins/game-projection/query/get-game?id={}",
        game_id(7).to_uppercase()
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let g = r.json();
    assert_eq!(g["id"], game_id(7));
    assert_eq!(g["name"], "Game 7");
    assert_eq!(g["price"], "19.99");
    assert_eq!(g["updated-at-offset"], 8);
    let r = get(&format!(
        "/plugins/game-projection/query/list-games?ids={},{},{}",
        game_id(3),
        game_id(999),
        game_id(5)
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = r.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Game 3", "Game 5"]);
    // Caught up and absent: 404.
    assert!(
        wait_for(Duration::from_secs(10), || get(&format!(
            "/plugins/game-projection/query/get-game?id={}",
            game_id(999)
        ))
        .status
            == 404),
        "{}",
        get("/sources").body
    );
    // Bad requests say what is wrong.
    let r = get("/plugins/game-projection/query/get-game?id=nope");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("UUID"), "{}", r.body);
    let r = get("/plugins/game-projection/query/get-game");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("parameter `id`"), "{}", r.body);
    let r = get("/plugins/game-projection/query/drop-games");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains("`get-game`") && r.body.contains("`list-games`"),
        "{}",
        r.body
    );
    let r = get("/plugins/game-projection");
    assert!(r.body.contains("\"name\":\"get-game\""), "{}", r.body);

    // Behind again: a new game not applied yet is "not there yet".
    feed.set_mode(Mode::Unavailable(1));
    feed.push(1, created(50, 1));
    assert!(
        wait_for(Duration::from_secs(10), || get(&format!(
            "/plugins/game-projection/query/get-game?id={}",
            game_id(50)
        ))
        .status
            == 503),
        "{}",
        get("/sources").body
    );
    drop(run);
    drop(server);
}

/// Every sample of `/metrics`, parsed by Python's prometheus_client.
fn parse_metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/e2e/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test installs prometheus_client)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let labels = v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                v["name"].as_str().unwrap().to_owned(),
                labels,
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// `/metrics` parses with the reference Prometheus parser, and its
/// counters match what the test sent.
#[test]
fn metrics_parse_with_the_reference_prometheus_parser_and_count_what_was_sent() {
    let feed = Arc::new(Feed::default());
    feed.push(1, created(0, 60));
    feed.push(
        1,
        (0..20).map(|g| {
            (
                "GameUpdated".to_owned(),
                serde_json::from_str(&state(g, "Renamed", 2_500)).unwrap(),
            )
        }),
    );
    feed.push(
        1,
        (40..50).map(|g| {
            (
                "GameDeleted".to_owned(),
                serde_json::json!({ "id": game_id(g) }),
            )
        }),
    );
    feed.push(
        1,
        (0..5).map(|g| {
            (
                "GameCreated".to_owned(),
                serde_json::json!({ "id": game_id(100 + g), "price": 1 }),
            )
        }),
    );
    feed.push(
        1,
        (0..3).map(|_| ("CatalogReindexed".to_owned(), serde_json::json!({}))),
    );
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let ws = Workspace::new();
    let (run, addr) = start(&ws, &server.url());
    assert!(
        wait_for(Duration::from_secs(30), || checkpoints(&ws.db(), "catalog")
            .get(&0)
            == Some(&98)
            && http_get(&addr, "/health/ready").unwrap().0 == 200),
        "{}\n{}",
        http_get(&addr, "/health/ready").unwrap().1,
        run.output()
    );
    // The partition view is published every 250 ms.
    assert!(wait_for(Duration::from_secs(5), || http_get(
        &addr, "/metrics"
    )
    .unwrap()
    .1
    .contains(
        "ferry_partition_checkpoint{source=\"catalog\",partition=\"0\"} 98"
    )));
    let text = http_get(&addr, "/metrics").unwrap().1;
    let samples = parse_metrics(&text);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"))
    };
    let events = |plugin: &str, ty: &str, outcome: &str| {
        value(
            "ferry_events_total",
            &[("plugin", plugin), ("event_type", ty), ("outcome", outcome)],
        )
    };
    assert_eq!(events("game-projection", "GameCreated", "applied"), 60.0);
    assert_eq!(events("game-projection", "GameUpdated", "applied"), 20.0);
    assert_eq!(events("game-projection", "GameDeleted", "applied"), 10.0);
    assert_eq!(
        events("game-projection", "GameCreated", "dead-lettered"),
        5.0
    );
    assert_eq!(events("-", "CatalogReindexed", "skipped"), 3.0);
    assert_eq!(value("ferry_dead_letters", &[]), 5.0);
    // The dead letters failed in a batch's optimistic pass: it re-ran.
    assert!(value("ferry_batch_reruns_total", &[]) >= 1.0);
    assert_eq!(
        value("ferry_dead_letters_total", &[("plugin", "game-projection")]),
        5.0
    );
    assert_eq!(
        value(
            "ferry_handler_seconds_count",
            &[("plugin", "game-projection")]
        ),
        95.0
    );
    assert_eq!(
        value(
            "ferry_handler_seconds_bucket",
            &[("plugin", "game-projection"), ("le", "+Inf")]
        ),
        95.0
    );
    assert_eq!(
        value(
            "ferry_partition_checkpoint",
            &[("source", "catalog"), ("partition", "0")]
        ),
        98.0
    );
    assert_eq!(
        value(
            "ferry_partition_lag",
            &[("source", "catalog"), ("partition", "0")]
        ),
        0.0
    );
    assert_eq!(
        value(
            "ferry_partition_state",
            &[("source", "catalog"), ("state", "running")]
        ),
        1.0
    );
    assert_eq!(value("ferry_ready", &[]), 1.0);
    assert_eq!(value("ferry_live", &[]), 1.0);
    assert!(value("ferry_batch_commit_seconds_count", &[]) >= 1.0);
    assert!(value("ferry_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(
        value(
            "ferry_plugin_info",
            &[("plugin", "game-projection"), ("kind", "wasm")]
        ),
        1.0
    );
    // The dead letters are served too.
    let letters = http_get(&addr, "/dead-letters").unwrap().1;
    let letters: serde_json::Value = serde_json::from_str(&letters).unwrap();
    assert_eq!(letters.as_array().unwrap().len(), 5, "{letters}");
    assert!(
        letters[0]["error_message"]
            .as_str()
            .unwrap()
            .contains("`name`"),
        "{letters}"
    );
    let id = letters[0]["id"].as_i64().unwrap();
    let one = http_get(&addr, &format!("/dead-letters/{id}")).unwrap().1;
    assert!(one.contains("\"payload\":{\"text\":"), "{one}");
    let r = http_request(&addr, "POST", &format!("/dead-letters/{id}/retry"), b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"outcome\":\"failed\""), "{}", r.body);
    let r = http_request(&addr, "DELETE", &format!("/dead-letters/{id}"), b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http_get(&addr, &format!("/dead-letters/{id}")).unwrap().0,
        404
    );
    drop(run);
    drop(server);
}
