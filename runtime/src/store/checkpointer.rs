//! WAL checkpoints on a background thread.
//!
//! A checkpoint copies committed pages from the write-ahead log into the
//! database file and syncs it (even with `synchronous = NORMAL`). Inline,
//! SQLite runs one inside whichever COMMIT crosses `wal_autocheckpoint`
//! pages, so the writer — ferry's pipeline — waits for the copy and the
//! fsync. Here a thread with its own connection runs `PRAGMA
//! wal_checkpoint(PASSIVE)` every interval instead: it never blocks the
//! writer or readers, and copies each page once however many commits
//! rewrote it meanwhile. The writer keeps a large inline threshold as a
//! safety net, so the log stays bounded even if this thread falls behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Inline checkpoint threshold of the writer when the background thread
/// runs (pages; about 256 MiB of log at 4 KiB pages).
pub const SAFETY_NET_PAGES: u32 = 65_536;

/// The running checkpoint thread; stops when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Checkpoints the database at `path` every `interval`.
    pub fn start(path: &Path, interval: Duration) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_millis(100))
            .map_err(open_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let name = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("ferry-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    match r {
                        Ok((log, done)) => {
                            failing = false;
                            tracing::trace!(db = %name, log, done, "Checkpointed the write-ahead log.");
                        }
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(db = %name, error = %e,
                                "A background WAL checkpoint failed; it is tried again (the writer checkpoints itself past the safety limit).");
                        }
                        Err(_) => {}
                    }
                }
                // One last passive checkpoint so a clean stop leaves a short
                // log behind.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            })
            .map_err(|e| {
                open_err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot start the checkpoint thread: {e}")),
                ))
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_copied_into_the_database_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = {SAFETY_NET_PAGES}; CREATE TABLE t(x);"
            ))
            .unwrap();
        writer.execute_batch("BEGIN").unwrap();
        for _ in 0..500 {
            writer
                .execute("INSERT INTO t VALUES (randomblob(1000))", [])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let before = db_len();
        let c = Checkpointer::start(&path, Duration::from_millis(10)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db_len() <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(c);
        assert!(db_len() > before + 400_000, "{before} -> {}", db_len());
    }
}
