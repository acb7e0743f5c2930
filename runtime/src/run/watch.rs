//! Watches every WebAssembly plugin's file and asks the deploy worker for
//! a hot swap when its content changes.
//!
//! A change is acted on only once the file has stayed the same (size,
//! modification time, inode) for one more check, so a file being written
//! in place is not compiled half-written; an atomic rename (write a
//! temporary file next to it, then `mv`) is the documented way to deploy.
//! A file whose content equals the active version, or the version last
//! tried, is left alone: touching a file does nothing, and a refused or
//! rolled-back version is not retried until the file changes again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::config::Config;
use crate::control::Request;
use crate::control::Status;
use crate::plugin::digest;
use crate::store::history::Trigger;

type Meta = (u64, Option<SystemTime>, u64);

#[derive(Debug, Default)]
struct Seen {
    meta: Option<Meta>,
    changed: bool,
    last_digest: Option<String>,
    missing_reported: bool,
}

/// The running watcher; stops when dropped.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn meta(path: &std::path::Path) -> Option<Meta> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.len(), m.modified().ok(), ino))
}

impl Watcher {
    /// Checks the files of `config`'s plugins every `interval`.
    pub(crate) fn start(
        config: Arc<Mutex<Config>>,
        status: Arc<Status>,
        requests: Sender<Request>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ferry-watch".into())
            .spawn(move || {
                let mut seen: HashMap<String, Seen> = HashMap::new();
                while !flag.load(Ordering::Relaxed) {
                    let plugins: Vec<(String, PathBuf)> = {
                        let c = config.lock();
                        c.plugins
                            .iter()
                            .map(|p| (p.name.clone(), c.resolve(&p.path)))
                            .collect()
                    };
                    let active: HashMap<String, String> = status
                        .plugins()
                        .into_iter()
                        .map(|p| (p.info.name, p.info.digest))
                        .collect();
                    seen.retain(|name, _| plugins.iter().any(|(n, _)| n == name));
                    for (name, path) in plugins {
                        let s = seen.entry(name.clone()).or_insert_with(|| Seen {
                            // First sight: compare the content with the
                            // active version once.
                            changed: true,
                            ..Seen::default()
                        });
                        let deployed = status.last_deployed(&name);
                        check(
                            &name,
                            &path,
                            s,
                            &[active.get(&name), deployed.as_ref()],
                            &requests,
                        );
                    }
                    std::thread::sleep(interval);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// Looks at one plugin's file; deploys its content if it settled and is
/// none of `known` (the active version, the last one deployed).
fn check(
    name: &str,
    path: &std::path::Path,
    s: &mut Seen,
    known: &[Option<&String>],
    requests: &Sender<Request>,
) {
    let now = meta(path);
    if now != s.meta {
        s.meta = now;
        s.changed = true;
        return;
    }
    if !s.changed {
        return;
    }
    s.changed = false;
    let bytes = match std::fs::read(path) {
        Ok(b) => {
            s.missing_reported = false;
            b
        }
        Err(e) => {
            if !s.missing_reported {
                tracing::warn!(plugin = name, path = %path.display(), error = %e,
                    "The plugin's file cannot be read; the running version keeps running.");
                s.missing_reported = true;
            }
            return;
        }
    };
    let d = digest(&bytes);
    if Some(&d) == s.last_digest.as_ref() || known.contains(&Some(&d)) {
        s.last_digest = Some(d);
        return;
    }
    tracing::info!(plugin = name, path = %path.display(), digest = %d,
        "The plugin's file changed; deploying the new version.");
    s.last_digest = Some(d);
    let _ = requests.send(Request::Deploy {
        name: name.to_owned(),
        bytes,
        origin: path.display().to_string(),
        trigger: Trigger::File,
        persist: false,
        reply: None,
    });
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_deployed_once_after_the_file_settles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"v1").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let active = digest(b"v1");
        let mut s = Seen {
            changed: true,
            ..Seen::default()
        };
        check("p", &path, &mut s, &[Some(&active)], &tx);
        check("p", &path, &mut s, &[Some(&active)], &tx);
        assert!(rx.try_recv().is_err(), "the active content is not deployed");
        std::fs::write(&path, b"v2-longer").unwrap();
        check("p", &path, &mut s, &[Some(&active)], &tx);
        assert!(
            rx.try_recv().is_err(),
            "a fresh change waits one more check"
        );
        check("p", &path, &mut s, &[Some(&active)], &tx);
        match rx.try_recv() {
            Ok(Request::Deploy { name, bytes, .. }) => {
                assert_eq!((name.as_str(), bytes.as_slice()), ("p", &b"v2-longer"[..]));
            }
            _ => panic!("no deploy request"),
        }
        for _ in 0..3 {
            check("p", &path, &mut s, &[Some(&active)], &tx);
        }
        assert!(rx.try_recv().is_err(), "the same content is tried once");
    }
}
