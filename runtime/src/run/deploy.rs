//! The deploy worker: compiles and validates new plugin versions off the
//! hot path (a bad file never interrupts the running version), then hands
//! them to the run loop, which activates them between two batches.
//!
//! Requests come from the file watcher, `SIGHUP` (a configuration reload),
//! the admin API and embedding hosts.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::config::{Config, PluginConfig};
use crate::control::{
    Command, ControlError, ControlErrorKind, Refusal, Reply, Request, Status, answer,
};
use crate::pipeline::{Activation, PluginCode};
use crate::plugin::{PluginHost, digest};
use crate::store::history::Trigger;

/// The running worker.
pub(crate) struct Deployer {
    requests: Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

/// What the worker shares with the loop.
pub(crate) struct Context {
    pub(crate) host: Arc<PluginHost>,
    /// The configuration in force (the loop replaces it after a reload).
    pub(crate) config: Arc<Mutex<Config>>,
    /// Native projections' configurations (kept across reloads).
    pub(crate) natives: Vec<PluginConfig>,
    pub(crate) status: Arc<Status>,
    pub(crate) commands: Sender<Command>,
}

impl Deployer {
    /// Starts the worker on `requests` (whose sender is `sender`).
    pub(crate) fn start(
        ctx: Context,
        sender: Sender<Request>,
        requests: Receiver<Request>,
    ) -> std::io::Result<Self> {
        let thread = std::thread::Builder::new()
            .name("ferry-deploy".into())
            .spawn(move || {
                while let Ok(r) = requests.recv() {
                    match r {
                        Request::Deploy {
                            name,
                            bytes,
                            origin,
                            trigger,
                            persist,
                            reply,
                        } => ctx.deploy(&name, bytes, &origin, trigger, persist, reply),
                        Request::Reload { config, reply } => ctx.reload(*config, reply),
                        Request::Stop => break,
                    }
                }
            })?;
        Ok(Self {
            requests: sender,
            thread: Some(thread),
        })
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Context {
    fn refuse(&self, name: &str, digest: Option<String>, trigger: Trigger, error: &str) {
        tracing::error!(plugin = name, trigger = %trigger, digest = ?digest, error,
            "A new plugin version was refused; the running version keeps running.");
        self.status.refused(
            name,
            Refusal {
                at_ms: crate::event::now_ms(),
                trigger: trigger.to_string(),
                digest: digest.clone(),
                error: error.to_owned(),
            },
        );
        let _ = self.commands.send(Command::Refused {
            name: name.to_owned(),
            digest,
            version: None,
            trigger,
            error: error.to_owned(),
        });
    }

    fn deploy(
        &self,
        name: &str,
        bytes: Vec<u8>,
        origin: &str,
        trigger: Trigger,
        persist: bool,
        reply: Option<Reply<Activation>>,
    ) {
        let (plugin, path) = {
            let config = self.config.lock();
            match config.plugins.iter().find(|p| p.name == name) {
                Some(p) => (p.clone(), config.resolve(&p.path)),
                None => {
                    let native = self.natives.iter().any(|p| p.name == name);
                    let message = if native {
                        format!(
                            "plugin `{name}` is a native projection: only WebAssembly plugins can be swapped"
                        )
                    } else {
                        format!("no plugin named `{name}` is configured")
                    };
                    let kind = if native {
                        ControlErrorKind::Conflict
                    } else {
                        ControlErrorKind::NotFound
                    };
                    return answer(reply, Err(ControlError::new(kind, message)));
                }
            }
        };
        let d = digest(&bytes);
        // The file watcher leaves this content alone from now on (an API
        // deployment is written over the plugin's file; a version rolled
        // back must not come back from there).
        self.status.note_deployed(name, &d);
        tracing::info!(plugin = name, trigger = %trigger, origin, digest = %d,
            "Compiling and validating a new plugin version off the hot path.");
        match self
            .host
            .load_bytes(name, origin, &bytes, &plugin.tables, plugin.limits())
        {
            Ok(loaded) => {
                let persist = persist.then(|| (path, Arc::new(bytes)));
                let sent = self.commands.send(Command::Activate {
                    name: name.to_owned(),
                    plugin: Arc::new(loaded),
                    trigger,
                    persist,
                    reply,
                });
                if let Err(std::sync::mpsc::SendError(Command::Activate { reply, .. })) = sent {
                    answer(reply, Err(ControlError::unavailable()));
                }
            }
            Err(e) => {
                let error = e.to_string();
                self.refuse(name, Some(d), trigger, &error);
                answer(
                    reply,
                    Err(ControlError::new(ControlErrorKind::Invalid, error)),
                );
            }
        }
    }

    /// Loads every plugin of `config` whose code, limits or tables changed
    /// and asks the loop to reconfigure; if any fails to load, nothing
    /// changes and every problem is reported.
    fn reload(&self, config: Config, reply: Option<Reply<Vec<Activation>>>) {
        let current = self.config.lock().clone();
        let active: std::collections::HashMap<String, String> = self
            .status
            .plugins()
            .into_iter()
            .map(|p| (p.info.name, p.info.digest))
            .collect();
        let mut plugins = Vec::new();
        let mut problems = Vec::new();
        for p in &config.plugins {
            let path = config.resolve(&p.path);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    let error = format!("plugin `{}`: cannot read {}: {e}", p.name, path.display());
                    self.refuse(&p.name, None, Trigger::Reload, &error);
                    problems.push(error);
                    continue;
                }
            };
            let d = digest(&bytes);
            let unchanged = current.plugins.iter().any(|c| {
                c.name == p.name
                    && c.tables == p.tables
                    && c.limits() == p.limits()
                    && active.get(&p.name) == Some(&d)
            });
            if unchanged {
                plugins.push((p.clone(), None));
                continue;
            }
            match self.host.load_bytes(
                &p.name,
                &path.display().to_string(),
                &bytes,
                &p.tables,
                p.limits(),
            ) {
                Ok(l) => plugins.push((p.clone(), Some(PluginCode::Wasm(Arc::new(l))))),
                Err(e) => {
                    let error = e.to_string();
                    self.refuse(&p.name, Some(d), Trigger::Reload, &error);
                    problems.push(error);
                }
            }
        }
        if !problems.is_empty() {
            let message = format!(
                "the reloaded configuration was not applied; {} plugin(s) could not be loaded:\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            );
            tracing::error!(problems = problems.len(), "{message}");
            return answer(
                reply,
                Err(ControlError::new(ControlErrorKind::Invalid, message)),
            );
        }
        plugins.extend(self.natives.iter().map(|n| (n.clone(), None)));
        let sent = self.commands.send(Command::Reconfigure {
            plugins,
            config: Box::new(config),
            reply,
        });
        if let Err(std::sync::mpsc::SendError(Command::Reconfigure { reply, .. })) = sent {
            answer(reply, Err(ControlError::unavailable()));
        }
    }
}
