//! The read API (`wit/queries.wit`): `get-game` and `list-games`, run by
//! ferry on a read-only connection.

use ferry_sdk::{Store, StoreExt, Value};

use crate::canonical_uuid;

/// A game row as the read API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameRow {
    /// Canonical id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Exact decimal price.
    pub price: String,
    /// Image URI.
    pub image_uri: Option<String>,
    /// Offset of the event that last wrote it.
    pub updated_at_offset: i64,
    /// Plugin version that wrote it.
    pub projected_by: Option<String>,
}

const SELECT: &str =
    "SELECT id, name, price, image_uri, updated_at_offset, projected_by FROM games WHERE id = ?1";

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn row(values: &[Value]) -> Option<GameRow> {
    Some(GameRow {
        id: text(values.first()?)?,
        name: text(values.get(1)?)?,
        price: text(values.get(2)?)?,
        image_uri: values.get(3).and_then(text),
        updated_at_offset: match values.get(4)? {
            Value::Integer(i) => *i,
            _ => return None,
        },
        projected_by: values.get(5).and_then(text),
    })
}

/// The game with this id, if any.
pub fn get_game(store: &impl Store, id: &str) -> Result<Option<GameRow>, String> {
    let id = canonical_uuid(id)?;
    let found = store
        .query_row(SELECT, &[id.into()])
        .map_err(|e| ferry_sdk::describe(&e))?;
    Ok(found.as_deref().and_then(row))
}

/// The games among `ids` that exist, in the order asked.
pub fn list_games(store: &impl Store, ids: &[String]) -> Result<Vec<GameRow>, String> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(g) = get_game(store, id)? {
            out.push(g);
        }
    }
    Ok(out)
}

#[cfg(all(target_arch = "wasm32", feature = "export"))]
#[expect(unsafe_code, reason = "the bindings wit-bindgen generates")]
mod export {
    wit_bindgen::generate!({
        path: "wit",
        world: "game-queries",
    });

    use exports::ferry_examples::games::queries::{Game, Guest};

    struct Queries;

    fn game(g: super::GameRow) -> Game {
        Game {
            id: g.id,
            name: g.name,
            price: g.price,
            image_uri: g.image_uri,
            updated_at_offset: g.updated_at_offset,
            projected_by: g.projected_by,
        }
    }

    impl Guest for Queries {
        fn get_game(id: String) -> Result<Option<Game>, String> {
            super::get_game(&ferry_sdk::HostStore, &id).map(|g| g.map(game))
        }

        fn list_games(ids: Vec<String>) -> Result<Vec<Game>, String> {
            super::list_games(&ferry_sdk::HostStore, &ids)
                .map(|v| v.into_iter().map(game).collect())
        }
    }

    export!(Queries);
}
