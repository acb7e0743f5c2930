//! The plugin registry table: which version of each plugin is active and
//! which schema version its tables are at (handed to `migrate(from)`).

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::NOW;
use super::{SqlContext, StoreError};

/// One registered plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPlugin {
    /// Plugin name from the config.
    pub name: String,
    /// Content digest of the active component.
    pub digest: String,
    /// The plugin's self-reported version.
    pub version: String,
    /// Schema version its tables were migrated to.
    pub schema_version: u32,
    /// When this version was activated (RFC 3339, UTC).
    pub activated_at: String,
}

/// The registry row of `name`, if the plugin was ever activated.
pub fn get(conn: &Connection, name: &str) -> Result<Option<RegisteredPlugin>, StoreError> {
    conn.query_row(
        "SELECT name, digest, version, schema_version, activated_at FROM ferry_plugins WHERE name = ?1",
        params![name],
        |r| {
            Ok(RegisteredPlugin {
                name: r.get(0)?,
                digest: r.get(1)?,
                version: r.get(2)?,
                schema_version: r.get(3)?,
                activated_at: r.get(4)?,
            })
        },
    )
    .optional()
    .during("reading the plugin registry")
}

/// Records that `name` is now active at `digest` with its tables at
/// `schema_version`. Runs in the migration transaction.
pub fn activate(
    conn: &Connection,
    name: &str,
    digest: &str,
    version: &str,
    schema_version: u32,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO ferry_plugins (name, digest, version, schema_version, activated_at)
         VALUES (?1, ?2, ?3, ?4, {NOW})
         ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, version = excluded.version,
           schema_version = excluded.schema_version, activated_at = excluded.activated_at"
    );
    conn.execute(&sql, params![name, digest, version, schema_version])
        .during("writing the plugin registry")?;
    Ok(())
}
