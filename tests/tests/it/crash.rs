//! Crash safety with a real child process: SIGKILL `ferry replay` at random
//! moments, run it again, and the effect is exactly once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::{Workspace, count, ferry_bin, sigkill, wait_bounded};

const EVENTS: i64 = 30_000;

#[test]
fn f11_sigkill_during_replay_then_rerun_loses_and_duplicates_nothing() {
    let ws = Workspace::new();
    ws.config(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 100

[[plugins]]
name = "chaos"
path = {chaos}
events = ["Append"]
tables = ["log"]
"#,
    );
    let mut lines = String::new();
    for i in 1..=EVENTS {
        lines.push_str(&format!(
            "{{\"type\":\"Append\",\"key\":\"k{}\",\"payload\":{{\"n\":{i}}}}}\n",
            i % 97
        ));
    }
    ws.write("events.jsonl", lines);
    let run = || {
        Command::new(ferry_bin())
            .args([
                "replay",
                "--config",
                "config.toml",
                "--events",
                "events.jsonl",
            ])
            .current_dir(ws.dir.path())
            .env("FERRY_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let checkpoint = || {
        if !ws.db().exists() {
            return 0;
        }
        let c = ws.open_db();
        c.query_row(
            r#"SELECT coalesce(max("offset"), 0) FROM ferry_checkpoints"#,
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
    };
    let mut interrupted = 0;
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..5 {
        let before = checkpoint();
        if before >= EVENTS {
            break;
        }
        let mut child = run();
        // Wait for progress past `before`, then kill after a random delay.
        let deadline = Instant::now() + Duration::from_secs(60);
        while checkpoint() <= before && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 150));
        sigkill(&child);
        let status = wait_bounded(&mut child, Duration::from_secs(10));
        if status.is_some_and(|s| s.code().is_none()) && checkpoint() < EVENTS {
            interrupted += 1;
        }
    }
    assert!(
        interrupted >= 1,
        "no run was killed mid-stream; the test proved nothing"
    );
    let mut child = run();
    let status = wait_bounded(&mut child, Duration::from_secs(120)).expect("final replay finished");
    assert!(status.success());
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM log"),
        EVENTS,
        "every event applied once"
    );
    assert_eq!(
        count(&c, "SELECT count(DISTINCT event_offset) FROM log"),
        EVENTS
    );
    assert_eq!(
        count(&c, r#"SELECT "offset" FROM ferry_checkpoints"#),
        EVENTS
    );
    // Rows were applied in offset order.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM log a JOIN log b ON b.id = a.id + 1 WHERE b.event_offset != a.event_offset + 1"
        ),
        0
    );
}
