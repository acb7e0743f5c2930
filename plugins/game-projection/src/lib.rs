//! game-projection: ferry's reference plugin.
//!
//! Keeps `games(id, name, price, image_uri, updated_at_offset,
//! projected_by)` up to date from Catalog's events:
//!
//! - `GameCreated` / `GameUpdated` carry the full state
//!   `{"id": "<uuid>", "name": "…", "price": 59.99, "imageUri": "…"}` and
//!   upsert the row (an update for an unknown id creates it);
//! - `GameDeleted` carries `{"id": "<uuid>"}` and removes the row (an
//!   unknown id is nothing to do).
//!
//! `id`, `name` and `price` are required (a payload without one is a
//! permanent error naming the field); `imageUri` is optional; unknown
//! fields are ignored. The price is stored exactly, as canonical decimal
//! text parsed from the number's own text (see [`decimal`]). Every handler
//! is idempotent, so a redelivery or a rebuild from scratch converges to
//! the same table. `projected_by` records the plugin version that wrote
//! each row (schema 2; schema 1 tables are migrated by adding it).
//!
//! It also exports read-only query functions (`wit/queries.wit`):
//! `get-game(id)` and `list-games(ids)`, served by ferry's read API.

pub mod decimal;
pub mod queries;

use std::borrow::Cow;

use ferry_sdk::{Event, EventExt, HandleError, Handled, Projection, Sql, Store};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The projection.
#[derive(Debug)]
pub struct GameProjection;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GameState<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(default, borrow)]
    image_uri: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GameDeleted {
    id: String,
}

/// Lower-case hyphenated form of a UUID, or an error naming the value.
pub fn canonical_uuid(id: &str) -> Result<String, String> {
    let b = id.as_bytes();
    let canonical = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        });
    if canonical {
        return Ok(id.to_owned());
    }
    let s = id.trim();
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = s.len() == 32
        || (s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-'));
    if hex.len() != 32 || !hyphens_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("field `id` must be a UUID, got `{id}`"));
    }
    let h = hex.to_ascii_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn permanent(event: &Event<'_>, msg: String) -> HandleError {
    HandleError::Permanent(format!(
        "invalid {} payload at {}/{}@{}: {msg}",
        event.event_type, event.source, event.partition, event.offset
    ))
}

/// The DDL of the current schema (version 2).
pub const SCHEMA_V2: &str = "CREATE TABLE IF NOT EXISTS games (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    price             TEXT NOT NULL,
    image_uri         TEXT,
    updated_at_offset INTEGER NOT NULL,
    projected_by      TEXT
) WITHOUT ROWID";

/// Schema 1 to 2: the version stamp.
pub const V1_TO_V2: &str = "ALTER TABLE games ADD COLUMN projected_by TEXT";

static UPSERT: Sql = Sql::new(
    "INSERT INTO games (id, name, price, image_uri, updated_at_offset, projected_by)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, price = excluded.price,
      image_uri = excluded.image_uri, updated_at_offset = excluded.updated_at_offset,
      projected_by = excluded.projected_by",
);

static DELETE: Sql = Sql::new("DELETE FROM games WHERE id = ?1");

/// Creates or upgrades the `games` table: schema 1 gains `projected_by`;
/// a table at schema 2 or newer (left by a newer version this one was
/// rolled back from) is kept as it is.
pub fn migrate_games(store: &impl Store, from: Option<u32>) -> Result<(), String> {
    let sql = match from {
        Some(1) => V1_TO_V2,
        _ => SCHEMA_V2,
    };
    store
        .execute_batch(sql)
        .map_err(|e| ferry_sdk::describe(&e))
}

impl Projection for GameProjection {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SCHEMA: u32 = 2;

    fn migrate(store: &impl Store, from: Option<u32>) -> Result<(), String> {
        migrate_games(store, from)
    }

    fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
        apply(store, event, Self::VERSION)
    }
}

/// Applies one Catalog event to `games`, stamping `projected_by` (the
/// logic of [`GameProjection`], reusable by plugins that wrap it).
pub fn apply(
    store: &impl Store,
    event: &Event<'_>,
    projected_by: &str,
) -> Result<Handled, HandleError> {
    match event.event_type {
        "GameCreated" | "GameUpdated" => {
            let game: GameState<'_> = event.json_borrowed()?;
            let id = canonical_uuid(&game.id).map_err(|m| permanent(event, m))?;
            if game.name.trim().is_empty() {
                return Err(permanent(event, "field `name` must not be empty".into()));
            }
            let price = decimal::canonical(game.price.get())
                .map_err(|m| permanent(event, format!("field `price`: {m}")))?;
            store.run(
                &UPSERT,
                &[
                    id.into(),
                    game.name.into_owned().into(),
                    price.into(),
                    game.image_uri.map(Cow::into_owned).into(),
                    event.offset.into(),
                    projected_by.into(),
                ],
            )?;
            Ok(Handled::Applied)
        }
        "GameDeleted" => {
            let gone: GameDeleted = event.json()?;
            let id = canonical_uuid(&gone.id).map_err(|m| permanent(event, m))?;
            store.run(&DELETE, &[id.into()])?;
            Ok(Handled::Applied)
        }
        other => Ok(Handled::Skipped(format!(
            "game-projection does not handle `{other}`"
        ))),
    }
}

/// Borrowing JSON decoding (the price stays a slice of the payload).
trait JsonBorrowed {
    fn json_borrowed<'a, T: Deserialize<'a>>(&'a self) -> Result<T, HandleError>;
}

impl JsonBorrowed for Event<'_> {
    fn json_borrowed<'a, T: Deserialize<'a>>(&'a self) -> Result<T, HandleError> {
        serde_json::from_slice(self.payload).map_err(|e| permanent(self, e.to_string()))
    }
}

#[cfg(feature = "export")]
ferry_sdk::export_projection!(GameProjection);

#[cfg(test)]
mod tests;
