//! The plugin contract versions (issue 12): a `ferry:plugin@0.1.0`
//! component still runs and projects exactly what its 0.2 build does;
//! `ferry check` names each plugin's contract; and inside one 0.2 batch
//! call every event keeps its own deadline, its own rollback and its own
//! outcome. (Swaps between a 0.1 and a 0.2 version under load:
//! `hot_swap.rs`.)

use std::time::Duration;

use ferry_tests::chaos::ChaosConfig;
use ferry_tests::{Workspace, count};

const LIMIT: Duration = Duration::from_secs(120);

/// Catalog events for `games` games, `n` of them, every `poison`-th one
/// missing its name (a permanent rejection).
fn catalog(n: u64, games: u64, poison: u64) -> String {
    let mut out = String::new();
    for i in 0..n {
        let id = format!("00000000-0000-4000-8000-{:012x}", i % games);
        let (ty, payload) = if i % poison == poison - 1 {
            ("GameCreated", format!(r#"{{"id":"{id}","price":1}}"#))
        } else if i % 17 == 16 {
            ("GameDeleted", format!(r#"{{"id":"{id}"}}"#))
        } else {
            (
                "GameUpdated",
                format!(
                    r#"{{"id":"{id}","name":"Game {i}","price":{}.{:02}}}"#,
                    i % 90,
                    i % 100
                ),
            )
        };
        out.push_str(&format!(
            r#"{{"type":"{ty}","key":"{id}","payload":{payload}}}"#
        ));
        out.push('\n');
    }
    out
}

fn games_config(plugin: &str) -> String {
    format!(
        r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 300

[[plugins]]
name = "games"
path = {{{plugin}}}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#
    )
}

type Table = Vec<(String, String, String, Option<String>, i64, Option<String>)>;

fn table(c: &rusqlite::Connection) -> Table {
    let mut s = c
        .prepare("SELECT id, name, price, image_uri, updated_at_offset, projected_by FROM games ORDER BY id")
        .unwrap();
    s.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn dead_letters(c: &rusqlite::Connection) -> Vec<(i64, String, String)> {
    let mut s = c
        .prepare(r#"SELECT "offset", error_class, error_message FROM ferry_dead_letters ORDER BY "offset""#)
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn replay(plugin: &str, events: &str) -> (Workspace, String) {
    let ws = Workspace::new();
    ws.config(&games_config(plugin));
    ws.write("events.jsonl", events);
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        LIMIT,
    );
    // Exit 1: some events were dead-lettered (the poison ones).
    assert_eq!(out.code(), 1, "{out:#?}");
    (ws, out.stdout)
}

#[test]
fn a_0_1_component_still_runs_and_projects_byte_for_byte_what_its_0_2_build_does() {
    let events = catalog(3_000, 250, 97);
    let (v02, _) = replay("games", &events);
    let (v01, _) = replay("games_v01", &events);
    let (a, b) = (v02.open_db(), v01.open_db());
    let rows = table(&a);
    assert!(rows.len() > 100, "{}", rows.len());
    assert_eq!(rows, table(&b));
    let letters = dead_letters(&a);
    assert_eq!(letters.len(), 3_000 / 97);
    assert!(
        letters
            .iter()
            .all(|(_, class, m)| class == "permanent" && m.contains("missing field `name`"))
    );
    assert_eq!(letters, dead_letters(&b));
}

#[test]
fn ferry_check_names_the_contract_of_each_plugin() {
    for (plugin, contract) in [
        ("games", "ferry:plugin@0.2.0"),
        ("games_v01", "ferry:plugin@0.1.0"),
    ] {
        let ws = Workspace::new();
        ws.config(&games_config(plugin));
        let out = ws.ferry(&["check", "--config", "config.toml"], LIMIT);
        assert_eq!(out.code(), 0, "{out:#?}");
        assert!(
            out.stdout.contains(&format!(", {contract}): handles")),
            "{}",
            out.stdout
        );
    }
}

/// One batch (one `handle-batch` call) with slow events, an endless loop,
/// a write followed by a failure and a write followed by a trap.
#[test]
fn inside_one_batch_call_each_event_has_its_own_deadline_rollback_and_outcome() {
    let ws = Workspace::new();
    ChaosConfig::new()
        .events(&["Append", "Slow", "Loop", "AppendThenFail", "AppendThenTrap"])
        .plugin("max_attempts = 1\ntimeout_ms = 400")
        .pipeline("batch_size = 100")
        .write(&ws);
    let mut lines = Vec::new();
    for i in 1..=12 {
        let (ty, payload) = match i {
            2..=5 => ("Slow", r#"{"ms":250}"#),
            7 => ("Loop", "{}"),
            9 => ("AppendThenFail", "{}"),
            10 => ("AppendThenTrap", "{}"),
            _ => ("Append", "{}"),
        };
        lines.push(format!(
            r#"{{"type":"{ty}","key":"k","payload":{payload}}}"#
        ));
    }
    ws.write("events.jsonl", lines.join("\n"));
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "{out:#?}");
    let c = ws.open_db();
    // Four slow events of 250 ms each: 1 s in all, each within its own
    // 400 ms deadline.
    let applied: Vec<i64> = c
        .prepare("SELECT event_offset FROM log ORDER BY event_offset")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(applied, [1, 2, 3, 4, 5, 6, 8, 11, 12], "{out:#?}");
    let letters: Vec<(i64, String)> = dead_letters(&c)
        .into_iter()
        .map(|(o, class, _)| (o, class))
        .collect();
    assert_eq!(
        letters,
        [
            (7, "timeout".to_owned()),
            (9, "permanent".to_owned()),
            (10, "trap".to_owned())
        ],
        "{out:#?}"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 3);
}
