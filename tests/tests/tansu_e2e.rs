//! End to end against a real Kafka-protocol broker in its own process
//! (Tansu, in-memory storage) with events produced by kafka-python, a
//! client ferry did not write. Replica mode (Tansu's consumer groups are
//! immature). `scripts/test` installs both; set `FERRY_TANSU` and
//! `FERRY_PYTHON` to use others.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_tests::kafka::{Running, wait_for};
use ferry_tests::{Workspace, repo_root, run_bounded, toml_path};

fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("FERRY_TANSU") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/ferry/tansu/bin/tansu");
    assert!(
        cached.exists(),
        "Tansu is not installed: run scripts/test (it installs it), or set FERRY_TANSU"
    );
    cached
}

fn python() -> String {
    std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".into())
}

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let b = Broker { child, port };
    assert!(
        wait_for(Duration::from_secs(20), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "tansu did not listen on {port}"
    );
    b
}

/// The fixture's events as producer input (payload text kept exactly).
fn producer_file(ws: &Workspace, name: &str, lines: &[&str]) -> PathBuf {
    let mut out = String::new();
    for line in lines {
        #[derive(serde::Deserialize)]
        struct Env<'a> {
            #[serde(rename = "type")]
            ty: String,
            key: String,
            #[serde(borrow)]
            payload: &'a serde_json::value::RawValue,
        }
        let e: Env<'_> = serde_json::from_str(line).unwrap();
        out.push_str(
            &serde_json::json!({ "type": e.ty, "key": e.key, "raw": e.payload.get() }).to_string(),
        );
        out.push('\n');
    }
    ws.write(name, out)
}

fn produce(port: u16, file: &PathBuf) {
    let out = run_bounded(
        Command::new(python())
            .arg(repo_root().join("tests/e2e/produce.py"))
            .args([&format!("127.0.0.1:{port}"), "catalog.games"])
            .arg(file),
        Duration::from_secs(120),
    );
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "kafka-python failed: {out:#?}"
    );
}

type Row = (String, String, String, Option<String>);

fn games(ws: &Workspace) -> Vec<Row> {
    if !ws.db().exists() {
        return Vec::new();
    }
    let Ok(c) =
        rusqlite::Connection::open_with_flags(ws.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut s) = c.prepare("SELECT id, name, price, image_uri FROM games ORDER BY id") else {
        return Vec::new();
    };
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// The same fixture replayed through `ferry replay`: the reference table.
fn replayed(lines: &[&str]) -> Vec<Row> {
    let ws = Workspace::new();
    ws.config(
        r#"
[[plugins]]
name = "game-projection"
path = {games}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#,
    );
    ws.write("f.jsonl", lines.join("\n"));
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--db",
            "ferry.db",
            "--events",
            "f.jsonl",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    games(&ws)
}

#[test]
fn ferry_projects_a_topic_on_tansu_fed_by_kafka_python_across_a_sigkill() {
    let fixture = std::fs::read_to_string(repo_root().join("tests/fixtures/games.jsonl")).unwrap();
    let lines: Vec<&str> = fixture.lines().filter(|l| !l.trim().is_empty()).collect();
    let (first, second) = lines.split_at(6);
    let broker = start_broker();
    let out = run_bounded(
        Command::new(tansu()).args([
            "topic",
            "create",
            "catalog.games",
            "--broker",
            &format!("tcp://127.0.0.1:{}", broker.port),
            "--partitions",
            "3",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(0),
        "topic create: {out:#?}"
    );

    let ws = Workspace::new();
    let plugin = repo_root().join("dist/plugins/game_projection.wasm");
    ws.write(
        "config.toml",
        format!(
            r#"
[store]
path = "ferry.db"

[runtime]
progress_interval_ms = 500

[pipeline]
linger_ms = 10

[[plugins]]
name = "game-projection"
path = {plugin}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]

[[sources]]
name = "catalog"
kind = "kafka"
brokers = "127.0.0.1:{port}"
topics = ["catalog.games"]
mode = "replica"
"#,
            plugin = toml_path(&plugin),
            port = broker.port
        ),
    );
    produce(broker.port, &producer_file(&ws, "first.jsonl", first));
    let want_first = replayed(first);
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(60), || games(&ws) == want_first),
        "first half not projected: {:?}\n{}",
        games(&ws),
        run.output()
    );
    run.kill();

    // While ferry is down, the rest arrives; after a restart it resumes from
    // its SQLite checkpoints.
    produce(broker.port, &producer_file(&ws, "second.jsonl", second));
    let want = replayed(&lines);
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(60), || games(&ws) == want),
        "not projected: {:?}\nwant {:?}\n{}",
        games(&ws),
        want,
        run.output()
    );
    let (status, out) = run.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert_eq!(games(&ws), want, "identical to the replayed projection");
}
