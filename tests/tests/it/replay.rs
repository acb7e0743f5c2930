//! `ferry replay`: exact projection from a fixture, idempotence, and the
//! documented outcome of every kind of bad input, with line numbers.

use std::time::Duration;

use ferry_tests::{Workspace, count, repo_root};

const LIMIT: Duration = Duration::from_secs(60);

const GAMES_CONFIG: &str = r#"
[store]
path = "ferry.db"

[pipeline]
batch_size = 4

[pipeline.retry]
initial_backoff_ms = 1
max_backoff_ms = 5

[[plugins]]
name = "game-projection"
path = {games}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
max_attempts = 2
"#;

type Row = (String, String, String, Option<String>, i64);

fn games(ws: &Workspace) -> Vec<Row> {
    let c = ws.open_db();
    let mut s = c
        .prepare("SELECT id, name, price, image_uri, updated_at_offset FROM games ORDER BY id")
        .unwrap();
    s.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn expected() -> Vec<Row> {
    vec![
        (
            "11111111-1111-1111-1111-111111111111".into(),
            "Doom (1993)".into(),
            "4.99".into(),
            Some("https://img/doom.png".into()),
            4,
        ),
        (
            "22222222-2222-2222-2222-222222222222".into(),
            "Quake".into(),
            "17.49".into(),
            None,
            10,
        ),
        (
            "44444444-4444-4444-4444-444444444444".into(),
            "Portal".into(),
            "14.50".into(),
            None,
            6,
        ),
        (
            "55555555-5555-5555-5555-555555555555".into(),
            "Braid".into(),
            "0.00".into(),
            None,
            9,
        ),
    ]
}

fn fixture() -> String {
    repo_root()
        .join("tests/fixtures/games.jsonl")
        .display()
        .to_string()
}

#[test]
fn replaying_the_fixture_yields_exactly_the_expected_rows_and_is_idempotent() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", &fixture()],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(out.stdout.contains("10 event(s)"), "{}", out.stdout);
    assert_eq!(games(&ws), expected());
    let c = ws.open_db();
    assert_eq!(
        count(
            &c,
            r#"SELECT "offset" FROM ferry_checkpoints WHERE source = 'replay' AND "partition" = 0"#
        ),
        10
    );
    let digest: String = c
        .query_row("SELECT plugin_digest FROM ferry_checkpoints", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(digest.starts_with("game-projection@sha256:"), "{digest}");
    drop(c);

    // Again: the checkpoint skips everything.
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", &fixture()],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(out.stdout.contains("already-applied"), "{}", out.stdout);
    assert_eq!(games(&ws), expected());

    // Without the checkpoint the handlers themselves are idempotent.
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .execute("DELETE FROM ferry_checkpoints", [])
        .unwrap();
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", &fixture()],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert_eq!(games(&ws), expected());
}

#[test]
fn db_flag_overrides_the_configured_store() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    let other = ws.path("elsewhere.db");
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            &fixture(),
            "--db",
            other.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(other.exists());
    assert!(!ws.db().exists());
}

#[test]
fn bad_input_gets_its_documented_outcome_with_the_line_number() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    let good = r#"{"type":"GameCreated","payload":{"id":"11111111-1111-1111-1111-111111111111","name":"A","price":1}}"#;
    let mut file = Vec::new();
    file.extend_from_slice(good.as_bytes());
    file.extend_from_slice(b"\n{\"type\": \"GameCreated\", \"payload\": {oops}\n");
    file.extend_from_slice(
        br#"{"type":"GameCreated","payload":{"id":"22222222-2222-2222-2222-222222222222","price":1}}"#,
    );
    file.extend_from_slice(b"\n{\"type\":\"GameRated\",\"payload\":{}}\n");
    file.extend_from_slice(b"{\"type\":\"GameCreated\",\"payload\":\"\xff\xfe\"}\n\n");
    file.extend_from_slice(
        br#"{"type":"GameCreated","payload":{"id":"33333333-3333-3333-3333-333333333333","name":"C","price":3}}"#,
    );
    file.push(b'\n');
    ws.write("bad.jsonl", &file);
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "bad.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "failures make the exit code 1: {out:#?}");
    let s = &out.stdout;
    assert!(
        s.contains("line 2 ") && s.contains("malformed-envelope: line 2: not a valid envelope"),
        "{s}"
    );
    assert!(
        s.contains("line 3 ") && s.contains("missing field `name`"),
        "{s}"
    );
    assert!(
        s.contains("line 5 ") && s.contains("line 5: not valid UTF-8"),
        "{s}"
    );
    assert!(s.contains("3 event(s) failed"), "{s}");
    assert!(
        !s.contains("line 4 "),
        "an unknown type is skipped, not failed: {s}"
    );
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM games"),
        2,
        "good lines around bad ones are applied"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 3);
    assert_eq!(
        count(
            &c,
            r#"SELECT "offset" FROM ferry_dead_letters WHERE error_class = 'permanent'"#
        ),
        3
    );
    assert_eq!(
        count(&c, r#"SELECT "offset" FROM ferry_checkpoints"#),
        7,
        "line 7 is the last event"
    );
    // The skipped type shows in the summary as skipped.
    assert!(
        s.lines()
            .any(|l| l.contains("GameRated") && l.split_whitespace().nth(2) == Some("1")),
        "{s}"
    );
}

#[test]
fn an_unknown_type_can_be_dead_lettered_or_stop_the_partition() {
    let ws = Workspace::new();
    ws.config(&GAMES_CONFIG.replace(
        "batch_size = 4",
        "batch_size = 4\nunknown_event_type = \"dead-letter\"",
    ));
    ws.write("e.jsonl", "{\"type\":\"GameRated\",\"payload\":{}}\n");
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "e.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "{out:#?}");
    assert!(
        out.stdout
            .contains("unknown-event-type: no plugin handles event type `GameRated`"),
        "{}",
        out.stdout
    );

    let ws = Workspace::new();
    ws.config(&GAMES_CONFIG.replace(
        "batch_size = 4",
        "batch_size = 4\nunknown_event_type = \"fail\"",
    ));
    let good = r#"{"type":"GameCreated","payload":{"id":"11111111-1111-1111-1111-111111111111","name":"A","price":1}}"#;
    ws.write(
        "e.jsonl",
        format!("{good}\n{{\"type\":\"GameRated\",\"payload\":{{}}}}\n{good}\n"),
    );
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "e.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 1, "{out:#?}");
    assert!(out.stdout.contains("stopped at line 2"), "{}", out.stdout);
    assert_eq!(
        count(&ws.open_db(), r#"SELECT "offset" FROM ferry_checkpoints"#),
        1
    );
}

#[test]
fn an_empty_file_is_reported_and_changes_nothing() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    ws.write("empty.jsonl", "");
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "empty.jsonl",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(out.stdout.contains("holds no events"), "{}", out.stdout);
    assert_eq!(
        count(&ws.open_db(), "SELECT count(*) FROM ferry_checkpoints"),
        0
    );
}

#[test]
fn a_missing_events_file_is_a_clear_error() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "nope.jsonl",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(
        out.stderr
            .contains("cannot open the events file nope.jsonl"),
        "{}",
        out.stderr
    );
}

#[test]
fn offsets_that_go_backwards_stop_the_replay_with_the_line_number() {
    let ws = Workspace::new();
    ws.config(GAMES_CONFIG);
    let ev = |id: u8, offset: i64| {
        format!(
            r#"{{"type":"GameCreated","offset":{offset},"payload":{{"id":"{id}{id}{id}{id}{id}{id}{id}{id}-1111-1111-1111-111111111111","name":"A","price":1}}}}"#
        )
    };
    ws.write(
        "e.jsonl",
        format!("\u{feff}{}\n{}\n{}\n", ev(1, 10), ev(2, 20), ev(3, 15)),
    );
    let out = ws.ferry(
        &["replay", "--config", "config.toml", "--events", "e.jsonl"],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(
        out.stderr
            .contains("line 3: offset 15 is not greater than the previous event's offset 20"),
        "{}",
        out.stderr
    );
    let c = ws.open_db();
    assert_eq!(
        count(&c, "SELECT count(*) FROM games"),
        2,
        "the BOM line and line 2 were applied"
    );
    assert_eq!(count(&c, r#"SELECT "offset" FROM ferry_checkpoints"#), 20);
}
