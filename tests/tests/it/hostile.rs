//! Hostile plugins: every attack on the sandbox that ferry knows of, each a
//! mode of `tests/plugins/hostile`, replayed as `[Healthy, attack,
//! Healthy]` by `ferry replay` in a child process with `timeout_ms = 1000`,
//! `memory_mb = 64` and `max_attempts = 1`. Each test checks the attack's
//! documented outcome (README, "The sandbox"): the failure class and
//! message of its dead letter, ferry's peak RSS, the wall time, the
//! checkpoint and dead letters intact, and the healthy event after it
//! applied.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ferry_tests::{Output, Usage, Workspace, count, ferry_bin, run_measured};

const TIMEOUT_MS: u64 = 1_000;

/// Peak RSS of a `ferry replay` facing one attack: the process itself
/// (~50 MB with the compiled component mapped) plus three times the
/// 64 MiB cap: the plugin's linear memory, query results counted against
/// the same cap, and the one value SQLite holds while it is copied (or a
/// plugin's error text lifted before it is cut).
const RSS_BOUND: u64 = (50 + 3 * 64) << 20;

/// Wall time of one replay: start-up and three events, one of which may
/// run up to its 1000 ms deadline.
const WALL_BOUND: Duration = Duration::from_millis(TIMEOUT_MS + 4_000);

const MODES: &[&str] = &[
    "Healthy",
    "SequenceWrite",
    "SequenceDelete",
    "SequenceRead",
    "SchemaRead",
    "SchemaReadQualified",
    "SchemaCopy",
    "CountFerry",
    "ViewOverFerry",
    "SwallowedView",
    "TriggerOverFerry",
    "GrantedView",
    "Reindex",
    "Analyze",
    "RenameTable",
    "WithRecursive",
    "SqlRandom",
    "SqlNow",
    "Loop",
    "Sleep",
    "CrossJoin",
    "Alloc",
    "StackOverflow",
    "ZeroBlobs",
    "BigRows",
    "HugeError",
    "HugeSkip",
    "LogFlood",
    "Trap",
    "Exit3",
    "ExitStd",
    "WriteSecret",
    "FerryTable",
    "Attach",
    "Pragma",
    "Commit",
    "TempTable",
    "ReadFile",
    "Env",
    "Socket",
    "Entropy",
];

fn config(ws: &Workspace) {
    let events: Vec<String> = MODES.iter().map(|m| format!("{m:?}")).collect();
    ws.config(&format!(
        r#"
[store]
path = "ferry.db"

[[plugins]]
name = "hostile"
path = {{hostile}}
events = [{}]
tables = ["games", "games_view"]
timeout_ms = {TIMEOUT_MS}
memory_mb = 64
max_attempts = 1
"#,
        events.join(", ")
    ));
}

/// Compiles the hostile component into the shared component cache once,
/// so that no measured run includes the compiler's memory.
fn warm() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let ws = Workspace::new();
        config(&ws);
        let out = ws.ferry(
            &["check", "--config", "config.toml"],
            Duration::from_secs(120),
        );
        assert_eq!(out.code(), 0, "{out:#?}");
    });
}

struct Replayed {
    ws: Workspace,
    out: Output,
    usage: Usage,
}

impl Replayed {
    fn db(&self) -> rusqlite::Connection {
        self.ws.open_db()
    }

    fn notes(&self) -> Vec<(i64, String)> {
        let db = self.db();
        let mut s = db
            .prepare("SELECT at, note FROM games ORDER BY id")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn dead_letter(&self) -> (String, String) {
        self.db()
            .query_row(
                r#"SELECT error_class, error_message FROM ferry_dead_letters WHERE "offset" = 2"#,
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("no dead letter at offset 2 ({e}): {:#?}", self.out))
    }

    /// The checkpoint is past the attack and ferry's own AUTOINCREMENT
    /// counter still counts its dead letters.
    fn intact(&self) {
        let db = self.db();
        assert_eq!(
            count(
                &db,
                r#"SELECT "offset" FROM ferry_checkpoints WHERE source = 'replay'"#
            ),
            3,
            "{:#?}",
            self.out
        );
        let letters = count(&db, "SELECT count(*) FROM ferry_dead_letters");
        let seq = count(
            &db,
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'ferry_dead_letters'), 0)",
        );
        assert_eq!(seq, letters, "ferry's dead-letter counter");
        assert!(
            self.usage.max_rss < RSS_BOUND,
            "peak RSS {} MB",
            self.usage.max_rss >> 20
        );
        assert!(self.usage.wall < WALL_BOUND, "took {:?}", self.usage.wall);
    }
}

fn replay(mode: &str, prepare: impl FnOnce(&Workspace)) -> Replayed {
    warm();
    let ws = Workspace::new();
    config(&ws);
    prepare(&ws);
    let line = |ty: &str, offset: i64| {
        serde_json::json!({"type": ty, "payload": {}, "offset": offset, "timestamp_ms": 1_700_000_000_000i64 + offset})
            .to_string()
    };
    ws.write(
        "events.jsonl",
        [line("Healthy", 1), line(mode, 2), line("Healthy", 3)].join("\n"),
    );
    let (out, usage) = run_measured(
        Command::new(ferry_bin())
            .args([
                "replay",
                "--config",
                "config.toml",
                "--events",
                "events.jsonl",
            ])
            .current_dir(ws.dir.path())
            .env("FERRY_LOG", "warn"),
        Duration::from_secs(60),
    );
    Replayed { ws, out, usage }
}

/// The attack is dead-lettered with `class` and a message containing
/// `says`; the events around it are applied.
fn contained(mode: &str, class: &str, says: &str) -> Replayed {
    contained_in(mode, class, says, |_| {})
}

fn contained_in(mode: &str, class: &str, says: &str, prepare: impl FnOnce(&Workspace)) -> Replayed {
    let r = replay(mode, prepare);
    assert_eq!(r.out.code(), 1, "{mode}: {:#?}", r.out);
    let (c, message) = r.dead_letter();
    assert_eq!(c, class, "{mode}: {message}");
    assert!(message.contains(says), "{mode}: {message}");
    assert_eq!(
        r.notes(),
        [(1, "ok".to_owned()), (3, "ok".to_owned())],
        "{mode}: only the healthy events were applied"
    );
    r.intact();
    r
}

/// The mode is not an attack the sandbox stops: every event applies.
fn allowed(mode: &str) -> Replayed {
    let r = replay(mode, |_| {});
    assert_eq!(r.out.code(), 0, "{mode}: {:#?}", r.out);
    r.intact();
    r
}

fn object_exists(r: &Replayed, name: &str) -> bool {
    count(
        &r.db(),
        &format!("SELECT count(*) FROM sqlite_master WHERE name = '{name}'"),
    ) > 0
}

#[test]
fn writing_sqlite_sequence_is_denied_and_dead_letters_keep_counting() {
    contained(
        "SequenceWrite",
        "denied",
        "`sqlite_sequence` is not accessible",
    );
}

#[test]
fn emptying_sqlite_sequence_is_denied() {
    contained(
        "SequenceDelete",
        "denied",
        "`sqlite_sequence` is not accessible",
    );
}

#[test]
fn reading_sqlite_sequence_is_denied() {
    contained(
        "SequenceRead",
        "denied",
        "`sqlite_sequence` is not accessible",
    );
}

#[test]
fn sqlite_master_shows_only_the_plugins_own_tables() {
    let r = allowed("SchemaRead");
    assert_eq!(r.notes()[1], (2, "games".to_owned()));
    let r = allowed("SchemaReadQualified");
    assert_eq!(r.notes()[1], (2, "0".to_owned()), "no ferry_* row");
}

#[test]
fn copying_the_schema_table_into_a_granted_table_is_denied() {
    contained("SchemaCopy", "denied", "may not read `sqlite_temp_master`");
}

#[test]
fn counting_the_rows_of_a_ferry_table_is_denied() {
    contained(
        "CountFerry",
        "denied",
        "`ferry_dead_letters` is internal to ferry",
    );
}

#[test]
fn a_view_over_ferry_tables_is_refused_when_it_is_created() {
    let r = contained(
        "ViewOverFerry",
        "denied",
        "view `games` reads what plugin `hostile` may not",
    );
    assert_eq!(
        count(
            &r.db(),
            "SELECT count(*) FROM sqlite_master WHERE name = 'games' AND type = 'table'"
        ),
        1,
        "games is still a table"
    );
}

#[test]
fn a_refused_view_is_rolled_back_even_when_the_plugin_swallows_the_error() {
    let r = allowed("SwallowedView");
    assert!(!object_exists(&r, "games_view"));
}

#[test]
fn a_trigger_that_writes_ferry_tables_is_refused_when_it_is_created() {
    let r = contained(
        "TriggerOverFerry",
        "denied",
        "trigger `wipe` on `games` does what plugin `hostile` may not",
    );
    assert!(!object_exists(&r, "wipe"));
}

#[test]
fn a_view_over_granted_tables_is_allowed() {
    let r = allowed("GrantedView");
    assert!(object_exists(&r, "games_view"));
}

#[test]
fn reindex_is_denied() {
    contained("Reindex", "denied", "REINDEX is not allowed");
}

#[test]
fn analyze_is_denied() {
    contained("Analyze", "denied", "ANALYZE is not allowed");
}

#[test]
fn renaming_a_table_to_an_ungranted_name_is_denied_naming_the_name() {
    let r = contained(
        "RenameTable",
        "denied",
        "renaming table `games` to `x` is not allowed: table `x` is not granted",
    );
    assert!(!object_exists(&r, "x"));
}

#[test]
fn with_recursive_over_granted_tables_works() {
    let r = allowed("WithRecursive");
    assert_eq!(r.notes()[1], (2, "cte 5".to_owned()));
}

#[test]
fn sql_random_and_the_sql_clock_are_denied() {
    contained("SqlRandom", "denied", "`random()` is not allowed");
    contained("SqlNow", "denied", "CURRENT_TIMESTAMP");
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    contained("Loop", "timeout", "deadline exceeded");
}

#[test]
fn a_sleep_of_an_hour_ends_at_the_deadline() {
    contained("Sleep", "timeout", "deadline exceeded");
}

#[test]
fn a_long_query_is_interrupted_at_the_deadline() {
    contained("CrossJoin", "timeout", "deadline exceeded");
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    contained("Alloc", "memory", "memory cap exceeded");
}

#[test]
fn a_stack_overflow_is_a_trap() {
    contained("StackOverflow", "trap", "");
}

#[test]
fn query_results_past_the_memory_cap_are_a_memory_failure() {
    contained("ZeroBlobs", "memory", "memory cap exceeded");
    contained("BigRows", "memory", "memory cap exceeded");
}

#[test]
fn a_40_mib_error_message_is_cut_where_it_is_stored_and_logged() {
    let r = contained("HugeError", "permanent", "(cut: 41943040 bytes in all)");
    let (_, message) = r.dead_letter();
    assert!(message.len() < 17 << 10, "{} bytes", message.len());
    assert!(
        r.out.stdout.len() + r.out.stderr.len() < 1 << 20,
        "output: {} + {} bytes",
        r.out.stdout.len(),
        r.out.stderr.len()
    );
}

#[test]
fn a_40_mib_skip_reason_is_cut() {
    let r = allowed("HugeSkip");
    assert_eq!(r.notes().len(), 2);
    assert!(r.out.stdout.len() + r.out.stderr.len() < 1 << 20);
}

#[test]
fn a_log_flood_is_cut_line_by_line_and_memory_stays_bounded() {
    warm();
    let ws = Workspace::new();
    config(&ws);
    ws.write("events.jsonl", r#"{"type":"LogFlood","payload":{}}"#);
    let (out, usage) = run_measured(
        Command::new(ferry_bin())
            .args([
                "replay",
                "--config",
                "config.toml",
                "--events",
                "events.jsonl",
            ])
            .current_dir(ws.dir.path())
            .env("FERRY_LOG", "info"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{:?}", out.status);
    let flood: Vec<&str> = out.stderr.lines().filter(|l| l.contains("lll")).collect();
    assert_eq!(flood.len(), 100, "50 log lines and 50 stdout lines");
    for line in flood {
        assert!(
            line.len() < (16 << 10) + 512,
            "a line of {} bytes",
            line.len()
        );
    }
    assert!(
        usage.max_rss < RSS_BOUND,
        "peak RSS {} MB",
        usage.max_rss >> 20
    );
}

#[test]
fn a_panic_is_a_trap_with_its_message() {
    contained("Trap", "trap", "hostile plugin panics at offset 2");
}

#[test]
fn exit_3_is_reported_as_the_plugin_exiting_with_status_3() {
    contained("Exit3", "trap", "the plugin exited with status 3");
    // Rust's std::process::exit(3) reaches WASI 0.2 as `exit(err)`, which
    // carries no number: status 1.
    contained("ExitStd", "trap", "the plugin exited with status 1");
}

#[test]
fn writing_an_ungranted_table_is_denied_naming_it() {
    contained_in(
        "WriteSecret",
        "denied",
        "table `secret` is not granted to plugin `hostile`",
        |ws| {
            rusqlite::Connection::open(ws.db())
                .unwrap()
                .execute_batch("CREATE TABLE secret(x)")
                .unwrap();
        },
    );
}

#[test]
fn ferry_tables_attach_pragma_transactions_and_temp_objects_are_denied() {
    contained(
        "FerryTable",
        "denied",
        "`ferry_checkpoints` is internal to ferry",
    );
    contained("Attach", "denied", "ATTACH is not allowed");
    contained("Pragma", "denied", "PRAGMA writable_schema is not allowed");
    contained("Commit", "denied", "transaction control is the host's job");
    contained(
        "TempTable",
        "denied",
        "temporary schema objects are not allowed",
    );
}

#[test]
fn files_environment_and_network_are_not_there() {
    contained("ReadFile", "permanent", "no file");
    contained("Env", "permanent", "no env");
    contained("Socket", "permanent", "no network");
}

#[test]
fn a_component_of_another_world_is_refused_with_what_is_missing() {
    let ws = Workspace::new();
    ws.config(
        r#"
[[plugins]]
name = "other"
path = {mismatch}
events = ["A"]
"#,
    );
    ws.write("events.jsonl", r#"{"type":"A","payload":{}}"#);
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(
        out.stderr.contains(
            "does not export `ferry:plugin/handler@0.2.0` or `ferry:plugin/handler@0.1.0`"
        ),
        "{out:#?}"
    );
}

/// Replays `n` `Entropy` events into a fresh database and returns the
/// table.
fn entropy_table(n: i64) -> (Workspace, Vec<(i64, String)>) {
    warm();
    let ws = Workspace::new();
    config(&ws);
    let lines: Vec<String> = (1..=n)
        .map(|o| {
            serde_json::json!({"type": "Entropy", "payload": {}, "offset": o, "timestamp_ms": 1_700_000_000_000i64 + o})
                .to_string()
        })
        .collect();
    ws.write("events.jsonl", lines.join("\n"));
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    let r = Replayed {
        out,
        usage: Usage {
            wall: Duration::ZERO,
            max_rss: 0,
        },
        ws,
    };
    let notes = r.notes();
    (r.ws, notes)
}

#[test]
fn random_numbers_hash_maps_and_clocks_give_the_same_table_on_every_replay_and_rebuild() {
    let (ws, first) = entropy_table(20);
    let (_, second) = entropy_table(20);
    assert_eq!(first, second, "two replays of the same events");
    let (at, note) = &first[0];
    let parts: Vec<&str> = note.split('|').collect();
    assert_eq!(parts.len(), 5, "{note}");
    assert_eq!(
        parts[2],
        (1_700_000_000_000i64 + at).to_string(),
        "WASI wall clock"
    );
    assert_eq!(parts[3], parts[2], "ferry's clock");
    assert!(!parts[1].starts_with("no random"), "{note}");
    let randoms: std::collections::HashSet<&str> = first
        .iter()
        .map(|(_, n)| n.split('|').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        randoms.len(),
        first.len(),
        "each event gets its own random numbers"
    );
    // A rebuild from the same events gives the same table.
    let out = ws.ferry(
        &[
            "rebuild",
            "hostile",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    let rebuilt = Replayed {
        out,
        usage: Usage {
            wall: Duration::ZERO,
            max_rss: 0,
        },
        ws,
    }
    .notes();
    assert_eq!(rebuilt, first, "a rebuild of the same events");
}

#[test]
fn the_host_clock_is_an_explicit_grant_that_check_shows() {
    warm();
    let ws = Workspace::new();
    config(&ws);
    let path = ws.path("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("max_attempts = 1", "max_attempts = 1\nclock = \"host\""),
    )
    .unwrap();
    let check = ws.ferry(
        &["check", "--config", "config.toml"],
        Duration::from_secs(60),
    );
    assert_eq!(check.code(), 0, "{check:#?}");
    assert!(
        check.stdout.contains("clock: the HOST's real time"),
        "{}",
        check.stdout
    );
    ws.write(
        "events.jsonl",
        r#"{"type":"Entropy","payload":{},"offset":1,"timestamp_ms":1000}"#,
    );
    let out = ws.ferry(
        &[
            "replay",
            "--config",
            "config.toml",
            "--events",
            "events.jsonl",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "{out:#?}");
    let note: String = ws
        .open_db()
        .query_row("SELECT note FROM games", [], |r| r.get(0))
        .unwrap();
    let wall: i64 = note.split('|').nth(2).unwrap().parse().unwrap();
    assert!(
        wall > 1_700_000_000_000,
        "real time, not the event's: {note}"
    );
}
