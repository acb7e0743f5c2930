// Shared by the `games-a` and `games-b` test plugins (each defines
// `STAMP`, includes this file and exports `Stamped`: `games-a` against
// contract 0.2, `games-b` against 0.1): the game projection's logic stamping
// `STAMP` into every row, plus an audit log of every applied event. The
// log's UNIQUE key turns a second application of an event into a
// constraint error (so a dead letter), and its AUTOINCREMENT id records
// the order events were applied in.

use ferry_sdk::{Event, HandleError, Handled, Projection, Store};

/// The stamped projection.
#[derive(Debug)]
pub struct Stamped;

const LOG: &str = "CREATE TABLE IF NOT EXISTS swap_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    source  TEXT    NOT NULL,
    part    INTEGER NOT NULL,
    off     INTEGER NOT NULL,
    version TEXT    NOT NULL,
    UNIQUE (source, part, off)
)";

impl Projection for Stamped {
    const VERSION: &'static str = STAMP;
    const SCHEMA: u32 = 2;

    fn migrate(store: &impl Store, from: Option<u32>) -> Result<(), String> {
        game_projection::migrate_games(store, from)?;
        store
            .execute_batch(LOG)
            .map_err(|e| ferry_sdk::describe(&e))
    }

    fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
        let handled = game_projection::apply(store, event, STAMP)?;
        store.execute(
            "INSERT INTO swap_log (source, part, off, version) VALUES (?1, ?2, ?3, ?4)",
            &[
                event.source.into(),
                i64::from(event.partition).into(),
                event.offset.into(),
                STAMP.into(),
            ],
        )?;
        Ok(handled)
    }
}

