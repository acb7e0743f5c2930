//! ferry's own tables. Plugins can never see them (see `authorizer`).

/// Version of the schema below, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// Creates ferry's tables if they do not exist yet.
pub const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS ferry_checkpoints (
    source        TEXT    NOT NULL,
    "partition"   INTEGER NOT NULL,
    "offset"      INTEGER NOT NULL,
    plugin_digest TEXT    NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (source, "partition")
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ferry_dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    "partition"     INTEGER NOT NULL,
    "offset"        INTEGER NOT NULL,
    event_type      TEXT,
    event_key       BLOB,
    payload         BLOB    NOT NULL,
    headers         TEXT    NOT NULL,
    timestamp_ms    INTEGER,
    plugin          TEXT,
    plugin_digest   TEXT,
    error_class     TEXT    NOT NULL,
    error_message   TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    first_failed_at TEXT    NOT NULL,
    last_failed_at  TEXT    NOT NULL,
    UNIQUE (source, "partition", "offset")
);

CREATE TABLE IF NOT EXISTS ferry_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    event_key  BLOB,
    payload    BLOB    NOT NULL,
    headers    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE TABLE IF NOT EXISTS ferry_fences (
    source      TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    generation  INTEGER NOT NULL,
    owner       TEXT    NOT NULL,
    claimed_at  TEXT    NOT NULL,
    PRIMARY KEY (source, "partition")
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ferry_plugins (
    name           TEXT PRIMARY KEY,
    digest         TEXT    NOT NULL,
    version        TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    activated_at   TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ferry_plugin_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin      TEXT    NOT NULL,
    cause       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    old_digest  TEXT,
    old_version TEXT,
    new_digest  TEXT,
    new_version TEXT,
    error       TEXT,
    at          TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS ferry_plugin_history_positions (
    history_id  INTEGER NOT NULL REFERENCES ferry_plugin_history (id),
    source      TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    from_offset INTEGER NOT NULL,
    PRIMARY KEY (history_id, source, "partition")
) WITHOUT ROWID;
"#;

/// SQL expression for "now" as an RFC 3339 UTC timestamp with milliseconds.
pub const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
