//! A hostile plugin: every event type is one attack on ferry's sandbox (or,
//! for `Healthy`, none). The tests in `tests/tests/it/hostile.rs` replay
//! `[Healthy, <attack>, Healthy]` through it and check the documented
//! outcome of each attack.
//!
//! It owns `games(id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER, note
//! TEXT)` (AUTOINCREMENT, so SQLite keeps a counter for it in
//! `sqlite_sequence` next to ferry's) and may be granted `games_view`.
//! Attacks that get a store error return it as the event's error, unless
//! their name says they swallow it.

#![expect(clippy::panic, reason = "trapping on purpose is one of the attacks")]

use std::collections::HashMap;
use std::fmt::Write as _;

use ferry_sdk::{Event, HandleError, Handled, Projection, Store, Value, describe};

/// The hostile projection.
#[derive(Debug)]
pub struct Hostile;

fn note(store: &impl Store, event: &Event<'_>, note: &str) -> Result<Handled, HandleError> {
    store.execute(
        "INSERT INTO games (at, note) VALUES (?1, ?2)",
        &[event.offset.into(), note.into()],
    )?;
    Ok(Handled::Applied)
}

fn exec(store: &impl Store, sql: &str) -> Result<Handled, HandleError> {
    store.execute_batch(sql)?;
    Ok(Handled::Applied)
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Null => "null".into(),
        Value::Real(r) => r.to_string(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

fn rows(store: &impl Store, sql: &str) -> Result<String, HandleError> {
    let r = store.query(sql, &[])?;
    Ok(r.rows
        .iter()
        .map(|row| row.iter().map(text).collect::<Vec<_>>().join(":"))
        .collect::<Vec<_>>()
        .join(","))
}

fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    if n == 0 {
        pad[1]
    } else {
        recurse(n - 1).wrapping_add(pad[63])
    }
}

/// What the sandbox lets a plugin see of randomness and time: a hash map's
/// iteration order (std seeds it from WASI), random bytes, both clocks.
fn entropy(event: &Event<'_>) -> String {
    let map: HashMap<String, u32> = ('a'..='z').map(|c| (c.to_string(), c as u32)).collect();
    let order: String = map.keys().map(String::as_str).collect();
    let mut bytes = [0u8; 8];
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
        Err(e) => format!("no random: {e}"),
    };
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let ferry_clock = ferry_sdk::bindings::v0_2::ferry::plugin::clock::now_ms();
    format!("{order}|{random}|{wall}|{ferry_clock}|{}", event.offset)
}

impl Projection for Hostile {
    const VERSION: &'static str = "0.0.1-hostile";
    const SCHEMA: u32 = 1;

    fn migrate(store: &impl Store, _from: Option<u32>) -> Result<(), String> {
        store
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS games (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at INTEGER NOT NULL,
                    note TEXT
                )",
            )
            .map_err(|e| describe(&e))
    }

    fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
        match event.event_type {
            "Healthy" => note(store, event, "ok"),
            // SQLite's own tables.
            "SequenceWrite" => exec(
                store,
                "INSERT OR REPLACE INTO sqlite_sequence(name, seq) VALUES ('ferry_dead_letters', 9223372036854775807)",
            ),
            "SequenceDelete" => exec(store, "DELETE FROM sqlite_sequence"),
            "SequenceRead" => note(
                store,
                event,
                &rows(store, "SELECT name, seq FROM sqlite_sequence")?,
            ),
            "SchemaRead" => note(
                store,
                event,
                &rows(store, "SELECT name FROM sqlite_master ORDER BY name")?,
            ),
            "SchemaReadQualified" => note(
                store,
                event,
                &rows(
                    store,
                    "SELECT count(*) FROM main.sqlite_schema WHERE name LIKE 'ferry%'",
                )?,
            ),
            "SchemaCopy" => exec(
                store,
                "CREATE TABLE games_view AS SELECT sql FROM sqlite_temp_master",
            ),
            "CountFerry" => note(
                store,
                event,
                &rows(store, "SELECT count(*) FROM ferry_dead_letters")?,
            ),
            // Views, triggers, renames, maintenance.
            "ViewOverFerry" => exec(
                store,
                "DROP TABLE games; CREATE VIEW games AS SELECT * FROM ferry_checkpoints",
            ),
            "SwallowedView" => {
                let _ = store
                    .execute_batch("CREATE VIEW games_view AS SELECT * FROM ferry_checkpoints");
                note(store, event, "swallowed")
            }
            "TriggerOverFerry" => exec(
                store,
                "CREATE TRIGGER wipe AFTER INSERT ON games BEGIN DELETE FROM ferry_checkpoints; END",
            ),
            "GrantedView" => exec(
                store,
                "CREATE VIEW IF NOT EXISTS games_view AS SELECT at, note FROM games",
            ),
            "Reindex" => exec(store, "REINDEX"),
            "Analyze" => exec(store, "ANALYZE games"),
            "RenameTable" => exec(store, "ALTER TABLE games RENAME TO x"),
            "WithRecursive" => {
                store.execute(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5)
                     INSERT INTO games (at, note) SELECT ?1, 'cte ' || count(*) FROM c",
                    &[event.offset.into()],
                )?;
                Ok(Handled::Applied)
            }
            "SqlRandom" => exec(store, "INSERT INTO games (at, note) VALUES (0, random())"),
            "SqlNow" => exec(
                store,
                "INSERT INTO games (at, note) VALUES (0, CURRENT_TIMESTAMP)",
            ),
            // Time.
            "Loop" => loop {
                std::hint::black_box(());
            },
            "Sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                note(store, event, "slept an hour")
            }
            "CrossJoin" => note(
                store,
                event,
                &rows(
                    store,
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
                     SELECT count(*) FROM n a, n b, n c",
                )?,
            ),
            // Memory.
            "Alloc" => {
                let mut v: Vec<Vec<u8>> = Vec::new();
                loop {
                    v.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&v);
                }
            }
            "StackOverflow" => note(store, event, &recurse(u64::MAX).to_string()),
            "ZeroBlobs" => note(
                store,
                event,
                &rows(
                    store,
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 9)
                     SELECT zeroblob(100000000) FROM n",
                )?,
            ),
            "BigRows" => note(
                store,
                event,
                &rows(
                    store,
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 40)
                     SELECT zeroblob(50000000) FROM n",
                )?,
            ),
            "RandomFlood" => {
                let mut big = vec![0u8; 200 << 20];
                getrandom::fill(&mut big).map_err(|e| HandleError::Permanent(e.to_string()))?;
                note(store, event, "filled")
            }
            // Text the host keeps.
            "HugeError" => Err(HandleError::Permanent("e".repeat(40 << 20))),
            "HugeSkip" => Ok(Handled::Skipped("s".repeat(40 << 20))),
            "LogFlood" => {
                let line = "l".repeat(100 << 10);
                for _ in 0..50 {
                    ferry_sdk::log::info(&line);
                    println!("{line}");
                }
                note(store, event, "flooded")
            }
            // Traps and exits.
            "Trap" => panic!("hostile plugin panics at offset {}", event.offset),
            "Exit3" => {
                wasip2::cli::exit::exit_with_code(3);
                Ok(Handled::Applied)
            }
            "ExitStd" => std::process::exit(3),
            // Outside the grant.
            "WriteSecret" => exec(store, "INSERT INTO secret VALUES (1)"),
            "FerryTable" => exec(store, "UPDATE ferry_checkpoints SET \"offset\" = 0"),
            "Attach" => exec(store, "ATTACH DATABASE '/tmp/hostile.db' AS other"),
            "Pragma" => exec(store, "PRAGMA writable_schema = ON"),
            "Commit" => exec(store, "COMMIT"),
            "TempTable" => exec(store, "CREATE TEMP TABLE t(x)"),
            // WASI with nothing granted.
            "ReadFile" => match std::fs::read_to_string("/etc/passwd") {
                Ok(s) => note(store, event, &format!("read {} bytes", s.len())),
                Err(e) => Err(HandleError::Permanent(format!("no file: {e}"))),
            },
            "Env" => match std::env::var("HOME") {
                Ok(v) => note(store, event, &format!("HOME={v}")),
                Err(e) => Err(HandleError::Permanent(format!("no env: {e}"))),
            },
            "Socket" => match std::net::TcpStream::connect("127.0.0.1:9") {
                Ok(_) => note(store, event, "connected"),
                Err(e) => Err(HandleError::Permanent(format!("no network: {e}"))),
            },
            // Determinism.
            "Entropy" => note(store, event, &entropy(event)),
            other => Err(HandleError::Permanent(format!(
                "hostile does not know `{other}`"
            ))),
        }
    }
}

ferry_sdk::export_projection!(Hostile);
