//! What a source needs from the store, as ports the run loop implements
//! over SQLite (`run::ports`): a source never opens the database itself.

use crate::delivery::Outgoing;

/// Where each partition stands: the last offset applied in SQLite.
pub trait Positions: Send + Sync {
    /// The checkpoint of `partition` of checkpoint key `key` (`None`: none
    /// yet). `Err` says why it could not be read.
    fn checkpoint(&self, key: &str, partition: i32) -> Result<Option<i64>, String>;
}

/// The outbox of dead letters waiting for a source's dead-letter topic.
pub trait Outbox: Send {
    /// Up to `limit` messages of `source`, oldest first.
    fn fetch(&mut self, source: &str, limit: usize) -> Result<Vec<Outgoing>, String>;
    /// The broker acknowledged these messages: forget them.
    fn delivered(&mut self, ids: &[i64]) -> Result<(), String>;
    /// Sending message `id` failed with `error`; it stays for a later round.
    fn failed(&mut self, id: i64, error: &str) -> Result<(), String>;
}

#[cfg(test)]
pub mod fixed {
    //! In-memory ports for unit tests.

    use std::collections::HashMap;

    /// Checkpoints from a map.
    #[derive(Debug, Default)]
    pub struct FixedPositions(pub HashMap<(String, i32), i64>);

    impl super::Positions for FixedPositions {
        fn checkpoint(&self, key: &str, partition: i32) -> Result<Option<i64>, String> {
            Ok(self.0.get(&(key.to_owned(), partition)).copied())
        }
    }
}
