//! The ports sources use, implemented over the store: checkpoints read
//! from SQLite (a read-only connection per question: they are asked at
//! assignments and restarts, not per event) and the dead-letter outbox.

use std::path::PathBuf;

use crate::delivery::Outgoing;
use crate::source::{Outbox, Positions};
use crate::store::{StoreOptions, checkpoint, open_read_only, outbox::PublisherConn};

/// Checkpoints of the database at a path.
#[derive(Debug, Clone)]
pub struct StorePositions {
    path: PathBuf,
}

impl StorePositions {
    /// Positions read from the database at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl Positions for StorePositions {
    fn checkpoint(&self, key: &str, partition: i32) -> Result<Option<i64>, String> {
        if !self.path.exists() {
            return Ok(None);
        }
        let conn = open_read_only(&self.path).map_err(|e| e.to_string())?;
        checkpoint::load(&conn, key, partition).map_err(|e| e.to_string())
    }
}

/// The outbox of the database at a path, through its own connection.
#[derive(Debug)]
pub struct StoreOutbox(PublisherConn);

impl StoreOutbox {
    /// Opens the outbox of the database at `path` with `options`' pragmas.
    pub fn open(path: &std::path::Path, options: &StoreOptions) -> anyhow::Result<Self> {
        Ok(Self(PublisherConn::open(path, options)?))
    }
}

impl Outbox for StoreOutbox {
    fn fetch(&mut self, source: &str, limit: usize) -> Result<Vec<Outgoing>, String> {
        self.0.fetch(source, limit).map_err(|e| e.to_string())
    }

    fn delivered(&mut self, ids: &[i64]) -> Result<(), String> {
        self.0.delivered(ids).map_err(|e| e.to_string())
    }

    fn failed(&mut self, id: i64, error: &str) -> Result<(), String> {
        self.0.failed(id, error).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    #[test]
    fn positions_come_from_the_database_and_a_missing_one_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let p = StorePositions::new(path.clone());
        assert_eq!(p.checkpoint("s/t", 0), Ok(None));
        let db = Db::open(&path, &StoreOptions::default()).unwrap();
        db.with(|c| checkpoint::write(c, "s/t", 0, 41, "", 0))
            .unwrap();
        assert_eq!(p.checkpoint("s/t", 0), Ok(Some(41)));
        assert_eq!(p.checkpoint("s/t", 1), Ok(None));
    }
}
