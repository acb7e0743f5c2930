//! A test plugin that misbehaves on purpose. Its behaviour is chosen by the
//! event type:
//!
//! - `Append`: appends `(offset, key, payload)` to `log` (an AUTOINCREMENT
//!   table, so a duplicate effect shows up as an extra row);
//! - `FailKey`: like `Append`, but a permanent error when the key equals
//!   the payload's `"bad"` field;
//! - `AppendThenTrap` / `AppendThenFail`: append, then panic or return a
//!   permanent error (the append must be rolled back);
//! - `Trap`: panics; `Loop`: never returns; `Alloc`: allocates past any
//!   sane memory cap; `WriteSecret`: writes a table it is not granted;
//! - `Retryable` / `Permanent`: returns that error;
//! - `FailTimes`: fails with a retryable error the first `"times"` times it
//!   sees an offset (counted in instance memory), then appends;
//! - `Slow`: spins for `"ms"` milliseconds (monotonic clock: real time,
//!   unlike the wall clock, which reads the event's time), then appends;
//! - `Skip`: skipped with a reason;
//! - `Say`: logs `said <offset>` through the `log` interface and prints
//!   `printed <offset>` to stdout, then appends.

#![expect(
    clippy::panic,
    reason = "trapping on purpose is what this plugin is for"
)]

use std::collections::HashMap;
use std::sync::Mutex;

use ferry_sdk::{Event, EventExt, HandleError, Handled, Projection, Store, Value};

/// The misbehaving projection.
#[derive(Debug)]
pub struct Chaos;

static SEEN: Mutex<Option<HashMap<i64, u32>>> = Mutex::new(None);

fn append(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
    store.execute(
        "INSERT INTO log (event_offset, event_key, payload) VALUES (?1, ?2, ?3)",
        &[
            event.offset.into(),
            event.key_str().map(str::to_owned).into(),
            Value::Text(String::from_utf8_lossy(event.payload).into_owned()),
        ],
    )?;
    Ok(Handled::Applied)
}

fn field(event: &Event<'_>, name: &str) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(event.payload)
        .ok()?
        .get(name)
        .cloned()
}

impl Projection for Chaos {
    const VERSION: &'static str = "0.0.1-chaos";
    const SCHEMA: u32 = 1;

    fn migrate(store: &impl Store, _from: Option<u32>) -> Result<(), String> {
        store
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_offset INTEGER NOT NULL,
                    event_key TEXT,
                    payload TEXT
                )",
            )
            .map_err(|e| ferry_sdk::describe(&e))
    }

    fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
        match event.event_type {
            "Append" => append(store, event),
            "FailKey" => {
                let bad = field(event, "bad").and_then(|v| v.as_str().map(str::to_owned));
                if bad.is_some() && bad.as_deref() == event.key_str() {
                    return Err(HandleError::Permanent(format!(
                        "key {} is poison",
                        event.key_str().unwrap_or_default()
                    )));
                }
                append(store, event)
            }
            "Trap" => panic!("chaos plugin panics at offset {}", event.offset),
            "AppendThenTrap" => {
                append(store, event)?;
                panic!(
                    "chaos plugin panics after writing at offset {}",
                    event.offset
                )
            }
            "AppendThenFail" => {
                append(store, event)?;
                Err(HandleError::Permanent("chaos fails after writing".into()))
            }
            "Loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "Alloc" => {
                let mut v: Vec<Vec<u8>> = Vec::new();
                loop {
                    v.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&v);
                }
            }
            "WriteSecret" => {
                store.execute("INSERT INTO secret VALUES (?1)", &[event.offset.into()])?;
                Ok(Handled::Applied)
            }
            "Retryable" => Err(HandleError::Retryable("chaos says: try again".into())),
            "Permanent" => Err(HandleError::Permanent("chaos says: never".into())),
            "FailTimes" => {
                let times = field(event, "times").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
                let mut seen = SEEN
                    .lock()
                    .map_err(|_| HandleError::Permanent("poisoned".into()))?;
                let n = seen
                    .get_or_insert_with(HashMap::new)
                    .entry(event.offset)
                    .or_insert(0);
                *n += 1;
                if *n <= times {
                    return Err(HandleError::Retryable(format!(
                        "attempt {n} of offset {} fails",
                        event.offset
                    )));
                }
                drop(seen);
                append(store, event)
            }
            "Slow" => {
                let ms = field(event, "ms").and_then(|v| v.as_u64()).unwrap_or(10);
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(ms) {}
                append(store, event)
            }
            "Skip" => Ok(Handled::Skipped("chaos skips this".into())),
            "Say" => {
                ferry_sdk::log::info(&format!("said {}", event.offset));
                println!("printed {}", event.offset);
                append(store, event)
            }
            other => Err(HandleError::Permanent(format!(
                "chaos does not know `{other}`"
            ))),
        }
    }
}

ferry_sdk::export_projection!(Chaos);
