//! Carrying out control requests between two batches.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Driver, publish_plugins};
use crate::config::Config;
use crate::control::{Command, ControlError, ControlErrorKind, Redriven, answer};
use crate::control::{Refusal, Status};
use crate::pipeline::Pipeline;
use crate::pipeline::redrive::Redriven as Outcome;
use crate::plugin::Handled;
use crate::store::dead_letter;
use crate::store::history::Trigger;

/// What a command may touch.
pub(super) struct Executor<'a> {
    pub(super) pipeline: &'a mut Pipeline,
    pub(super) driver: &'a mut Driver,
    pub(super) status: &'a Arc<Status>,
    pub(super) config: &'a Arc<Mutex<Config>>,
}

impl Executor<'_> {
    pub(super) fn execute(&mut self, command: Command) {
        match command {
            Command::Activate {
                name,
                plugin,
                trigger,
                persist,
                reply,
            } => {
                let (digest, version) = (plugin.digest.clone(), plugin.metadata.version.clone());
                match self.pipeline.swap(&name, plugin, trigger) {
                    Ok(a) => {
                        if a.history_id.is_some() {
                            self.status.count_swap(&name, "activated");
                        }
                        if let Some((path, bytes)) = persist {
                            persist_component(&name, &path, &bytes);
                        }
                        publish_plugins(self.status, self.pipeline);
                        answer(reply, Ok(a));
                    }
                    Err(e) => {
                        self.status.refused(
                            &name,
                            Refusal {
                                at_ms: crate::event::now_ms(),
                                trigger: trigger.to_string(),
                                digest: Some(digest),
                                error: e.to_string(),
                            },
                        );
                        tracing::error!(plugin = %name, version = %version, error = %e,
                            "A new plugin version was refused; the running version keeps running.");
                        answer(reply, Err(e.into()));
                    }
                }
            }
            Command::Refused {
                name,
                digest,
                version,
                trigger,
                error,
            } => {
                let current = self.pipeline.versions(&name).map(|(a, _)| a);
                let new = digest
                    .as_deref()
                    .map(|d| (d, version.as_deref().unwrap_or("?")));
                self.pipeline.record_refusal(
                    &name,
                    current.as_ref().map(|(d, v)| (d.as_str(), v.as_str())),
                    new,
                    trigger,
                    &error,
                );
            }
            Command::Rollback { name, reply } => {
                let r = self.pipeline.rollback(&name, Trigger::Rollback);
                if r.is_ok() {
                    self.status.count_swap(&name, "rolled-back");
                    publish_plugins(self.status, self.pipeline);
                }
                answer(reply, r.map_err(ControlError::from));
            }
            Command::Reconfigure {
                plugins,
                config,
                reply,
            } => {
                let r = self
                    .pipeline
                    .reconfigure(plugins, &config.pipeline, Trigger::Reload);
                if let Ok(activations) = &r {
                    self.driver.reconfigure(&config.pipeline);
                    warn_about_restart(&self.config.lock(), &config);
                    for a in activations {
                        self.status.count_swap(&a.plugin, "activated");
                    }
                    let mut current = self.config.lock();
                    current.plugins = config.plugins.clone();
                    current.pipeline = config.pipeline.clone();
                    drop(current);
                    publish_plugins(self.status, self.pipeline);
                }
                answer(reply, r.map_err(ControlError::from));
            }
            Command::Redrive { ids, reply } => {
                let _ = reply.send(self.redrive(&ids));
            }
        }
    }

    fn redrive(&mut self, ids: &[i64]) -> Result<Vec<Redriven>, ControlError> {
        let letters = self
            .pipeline
            .db()
            .with(|c| {
                ids.iter()
                    .map(|id| dead_letter::get(c, *id).map(|d| (id, d)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| ControlError::new(ControlErrorKind::Unavailable, e.to_string()))?;
        let mut found = Vec::new();
        for (id, letter) in letters {
            match letter {
                Some(l) => found.push(l),
                None => {
                    return Err(ControlError::new(
                        ControlErrorKind::NotFound,
                        format!("no dead letter with id {id}"),
                    ));
                }
            }
        }
        let results = self
            .pipeline
            .redrive(found)
            .map_err(|e| ControlError::new(ControlErrorKind::Unavailable, format!("{e:#}")))?;
        Ok(results
            .into_iter()
            .map(|(dl, r)| {
                let (outcome, error) = match r {
                    Outcome::Applied(Handled::Applied) => ("applied", None),
                    Outcome::Applied(Handled::Skipped(_)) => ("skipped", None),
                    Outcome::Failed(f) => ("failed", Some(f.to_string())),
                    Outcome::HeldBack => ("held-back", None),
                };
                Redriven {
                    id: dl.id,
                    outcome,
                    error,
                }
            })
            .collect())
    }
}

/// Writes a component deployed through the API over the plugin's file
/// (atomically: a temporary file, then a rename), so a restart keeps it.
fn persist_component(name: &str, path: &Path, bytes: &[u8]) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file}.{}.deploy", std::process::id()));
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    match r {
        Ok(()) => tracing::info!(plugin = name, path = %path.display(),
            "Wrote the deployed version over the plugin's file, so a restart keeps it."),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(plugin = name, path = %path.display(), error = %e,
                "The deployed version runs, but writing it over the plugin's file failed: a restart would load the old file.");
        }
    }
}

/// A reload applies plugins and pipeline settings; other sections need a
/// restart, which the log says.
fn warn_about_restart(current: &Config, new: &Config) {
    let mut sections = Vec::new();
    if current.sources != new.sources {
        sections.push("[[sources]]");
    }
    if current.store != new.store {
        sections.push("[store]");
    }
    if current.api != new.api {
        sections.push("[api]");
    }
    if current.embedded != new.embedded {
        sections.push("[embedded]");
    }
    if current.runtime != new.runtime {
        sections.push("[runtime]");
    }
    if !sections.is_empty() {
        tracing::warn!(sections = %sections.join(", "),
            "The reload applied the plugins and [pipeline]; changes to these sections take effect after a restart.");
    }
}
