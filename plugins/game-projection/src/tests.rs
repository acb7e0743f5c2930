//! Native tests of the projection logic against a real SQLite.

use ferry_sdk::native::SqliteStore;
use ferry_sdk::{Event, HandleError, Handled, Projection};
use rusqlite::Connection;

use super::{GameProjection, canonical_uuid};

const ID: &str = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
const ID_LC: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

fn event<'a>(offset: i64, ty: &'a str, payload: &'a str) -> Event<'a> {
    let mut e = Event::new(ty, payload.as_bytes());
    e.offset = offset;
    e
}

fn db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    GameProjection::migrate(&SqliteStore::new(&c), None).unwrap();
    c
}

fn rows(c: &Connection) -> Vec<(String, String, String, Option<String>, i64)> {
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

fn handle(c: &Connection, e: &Event<'_>) -> Result<Handled, HandleError> {
    GameProjection::handle(&SqliteStore::new(c), e)
}

#[test]
fn created_updated_deleted() {
    let c = db();
    let created = format!(
        r#"{{"id":"{ID}","name":"Doom","price":59.990,"imageUri":"http://x/d.png","extra":[1]}}"#
    );
    assert!(matches!(
        handle(&c, &event(1, "GameCreated", &created)),
        Ok(Handled::Applied)
    ));
    assert_eq!(
        rows(&c),
        vec![(
            ID_LC.into(),
            "Doom".into(),
            "59.99".into(),
            Some("http://x/d.png".into()),
            1
        )]
    );
    let updated = format!(r#"{{"id":"{ID_LC}","name":"Doom II","price":1E1}}"#);
    handle(&c, &event(2, "GameUpdated", &updated)).unwrap();
    assert_eq!(
        rows(&c),
        vec![(ID_LC.into(), "Doom II".into(), "10.00".into(), None, 2)]
    );
    let deleted = format!(r#"{{"id":"{ID}"}}"#);
    handle(&c, &event(3, "GameDeleted", &deleted)).unwrap();
    assert!(rows(&c).is_empty());
    // Deleting an unknown id is nothing to do.
    assert!(matches!(
        handle(&c, &event(4, "GameDeleted", &deleted)),
        Ok(Handled::Applied)
    ));
}

#[test]
fn an_update_for_an_unknown_id_creates_the_row_and_redelivery_converges() {
    let c = db();
    let updated = format!(r#"{{"id":"{ID}","name":"Quake","price":"19.99"}}"#);
    for _ in 0..3 {
        handle(&c, &event(9, "GameUpdated", &updated)).unwrap();
    }
    assert_eq!(
        rows(&c),
        vec![(ID_LC.into(), "Quake".into(), "19.99".into(), None, 9)]
    );
}

#[test]
fn missing_or_bad_fields_are_permanent_errors_naming_the_field() {
    let c = db();
    for (payload, field) in [
        (
            format!(r#"{{"id":"{ID}","price":1}}"#),
            "missing field `name`",
        ),
        (
            format!(r#"{{"id":"{ID}","name":"x"}}"#),
            "missing field `price`",
        ),
        (
            r#"{"name":"x","price":1}"#.to_string(),
            "missing field `id`",
        ),
        (
            format!(r#"{{"id":"{ID}","name":"x","price":"cheap"}}"#),
            "field `price`",
        ),
        (
            r#"{"id":"nope","name":"x","price":1}"#.to_string(),
            "field `id` must be a UUID",
        ),
        ("not json".to_string(), "expected ident"),
    ] {
        match handle(&c, &event(1, "GameCreated", &payload)) {
            Err(HandleError::Permanent(m)) => {
                assert!(m.contains(field), "{payload}: {m}");
                assert!(m.contains("GameCreated"), "{m}");
            }
            other => panic!("{payload}: {other:?}"),
        }
    }
    assert!(rows(&c).is_empty());
}

#[test]
fn other_event_types_are_skipped() {
    let c = db();
    assert!(matches!(
        handle(&c, &event(1, "GameRated", "{}")),
        Ok(Handled::Skipped(_))
    ));
}

#[test]
fn uuids_are_canonicalised() {
    assert_eq!(canonical_uuid(ID).unwrap(), ID_LC);
    assert_eq!(canonical_uuid(&ID_LC.replace('-', "")).unwrap(), ID_LC);
    assert!(canonical_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c330").is_err());
    assert!(canonical_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c330g").is_err());
    assert!(canonical_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c33-0").is_err());
    assert_eq!(
        canonical_uuid("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap(),
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    );
    assert!(canonical_uuid("3f2504e04-f89-11d3-9a0c-0305e82c3301").is_err());
}

#[test]
fn schema_1_tables_gain_the_version_stamp() {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(
        "CREATE TABLE games (id TEXT PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL,
           image_uri TEXT, updated_at_offset INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO games VALUES ('x', 'Old', '1', NULL, 3);",
    )
    .unwrap();
    GameProjection::migrate(&SqliteStore::new(&c), Some(1)).unwrap();
    GameProjection::migrate(&SqliteStore::new(&c), Some(2)).unwrap();
    GameProjection::migrate(&SqliteStore::new(&c), Some(3)).unwrap();
    let created = format!(r#"{{"id":"{ID}","name":"Doom","price":1}}"#);
    handle(&c, &event(9, "GameCreated", &created)).unwrap();
    let stamps: Vec<(String, Option<String>)> = c
        .prepare("SELECT id, projected_by FROM games ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stamps,
        vec![
            (ID_LC.to_owned(), Some(env!("CARGO_PKG_VERSION").to_owned())),
            ("x".to_owned(), None)
        ]
    );
}

#[test]
fn queries_find_games_by_any_uuid_spelling() {
    use super::queries::{get_game, list_games};
    let c = db();
    let created = format!(r#"{{"id":"{ID}","name":"Doom","price":59.990}}"#);
    handle(&c, &event(4, "GameCreated", &created)).unwrap();
    let store = SqliteStore::new(&c);
    let g = get_game(&store, ID).unwrap().unwrap();
    assert_eq!(
        (g.id.as_str(), g.price.as_str(), g.updated_at_offset),
        (ID_LC, "59.99", 4)
    );
    let other = "00000000-0000-0000-0000-000000000001";
    assert_eq!(get_game(&store, other).unwrap(), None);
    assert!(get_game(&store, "nope").unwrap_err().contains("UUID"));
    let listed = list_games(&store, &[other.to_owned(), ID_LC.to_owned()]).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Doom");
}
