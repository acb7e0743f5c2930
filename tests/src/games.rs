//! Catalog's game events for tests: ids, payloads, and reading the
//! `games` table and the stamped plugins' `swap_log`.

use std::collections::BTreeMap;

/// The canonical id of game `n`.
pub fn game_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// A `GameCreated`/`GameUpdated` payload.
pub fn state(n: u64, name: &str, cents: u64) -> String {
    serde_json::json!({
        "id": game_id(n),
        "name": name,
        "price": serde_json::from_str::<serde_json::Value>(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap_or_default(),
        "imageUri": format!("https://img.example/{n}.png"),
    })
    .to_string()
}

/// A `GameDeleted` payload.
pub fn deleted(n: u64) -> String {
    serde_json::json!({ "id": game_id(n) }).to_string()
}

/// The `i`-th event of a deterministic Catalog workload over `games` ids:
/// creates, updates, and now and then a delete (re-created later).
pub fn workload(i: u64, games: u64) -> (&'static str, u64, String) {
    let n = i % games;
    let round = i / games;
    let ty = match (round, i % 37) {
        (0, _) => "GameCreated",
        (_, 0) => "GameDeleted",
        _ => "GameUpdated",
    };
    let payload = if ty == "GameDeleted" {
        deleted(n)
    } else {
        state(n, &format!("Game {n} v{round}"), 1_000 + i % 9_000)
    };
    (ty, n, payload)
}

/// `games` rows: id → (name, price, image_uri, updated_at_offset,
/// projected_by).
pub type GameRows = BTreeMap<String, (String, String, Option<String>, i64, Option<String>)>;

/// Every row of `games`.
pub fn games(conn: &rusqlite::Connection) -> GameRows {
    let mut s = conn
        .prepare("SELECT id, name, price, image_uri, updated_at_offset, projected_by FROM games")
        .expect("games table");
    s.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
        ))
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .collect()
}

/// `swap_log` rows in apply order: (partition, offset, version).
pub fn swap_log(conn: &rusqlite::Connection) -> Vec<(i32, i64, String)> {
    let mut s = conn
        .prepare("SELECT part, off, version FROM swap_log ORDER BY id")
        .expect("swap_log table");
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Produces events `from..from + n` of [`workload`] over `games` ids to
/// `topic` (game `g` to partition `g % partitions`) and waits for them.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, games: u64, from: u64, n: u64) {
    let p = crate::kafka::Producer::new(bootstrap);
    let parts = u64::try_from(partitions.max(1)).unwrap_or(1);
    for i in from..from + n {
        let (ty, g, payload) = workload(i, games);
        p.send(
            topic,
            i32::try_from(g % parts).unwrap_or(0),
            ty,
            &game_id(g),
            &payload,
        );
    }
    p.flush();
}
