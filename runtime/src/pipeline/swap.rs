//! Activating plugin versions: at start, by hot swap, by rollback and by
//! reconfiguration. Always between two batch transactions, never inside
//! one (invariant 6): the new version's `migrate`, the registry row and a
//! plugin-history entry (with the position of every partition) commit in
//! one transaction, and only then does the new version take over. If
//! anything fails, nothing of it is kept and the running version goes on.

use std::sync::Arc;

use super::Pipeline;
use super::probation::Probation;
use super::slot::{Handler, PluginCode, Slot, stamp};
use crate::config::PluginConfig;
use crate::plugin::{Failure, LoadedPlugin};
use crate::store::history::{self, NewEntry, Trigger, Version};
use crate::store::registry;

/// A plugin version as `(digest, version)`.
pub type VersionId = (String, String);

/// A version that took over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Activation {
    /// Plugin name.
    pub plugin: String,
    /// What caused it.
    pub trigger: String,
    /// Digest of the version it replaced (none on first activation).
    pub old_digest: Option<String>,
    /// Version it replaced.
    pub old_version: Option<String>,
    /// Digest of the version now active.
    pub new_digest: String,
    /// Its version.
    pub new_version: String,
    /// Its plugin-history entry (none when the same version was already
    /// active and nothing changed).
    pub history_id: Option<i64>,
}

/// Why a version did not take over. The running version keeps running.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// No plugin of that name is configured.
    #[error("no plugin named `{0}` is configured")]
    Unknown(String),
    /// Native projections are compiled in and cannot be swapped.
    #[error("plugin `{0}` is a native projection: only WebAssembly plugins can be swapped")]
    Native(String),
    /// There is no previous version in this process.
    #[error("plugin `{0}` has no previous version to roll back to in this process")]
    NoPrevious(String),
    /// `migrate` (or instantiating for it) failed; nothing it wrote was kept.
    #[error(
        "plugin `{plugin}`: `migrate` of version {version} ({digest}) failed, nothing it wrote was kept and the running version goes on: {failure}"
    )]
    Migrate {
        /// Plugin name.
        plugin: String,
        /// The refused version.
        version: String,
        /// Its digest.
        digest: String,
        /// What failed.
        failure: Failure,
    },
    /// The store failed while activating.
    #[error("activating a plugin version failed in the store: {0:#}")]
    Store(#[from] anyhow::Error),
}

/// A handler waiting to be activated, and who it replaces.
pub(super) struct Pending<'a> {
    pub(super) name: &'a str,
    pub(super) handler: &'a mut Handler,
    pub(super) old: Option<(String, String)>,
}

impl Pipeline {
    /// First activation of a configured plugin at start: `migrate`, the
    /// registry, and a history entry when the digest is new.
    pub(super) fn add_at_start(
        &mut self,
        config: PluginConfig,
        code: PluginCode,
    ) -> anyhow::Result<()> {
        let mut handler = Handler::new(&config, code, &self.db);
        let name = config.name.clone();
        let registered = self.db.with(|c| registry::get(c, &name))?;
        let old = registered
            .as_ref()
            .filter(|r| r.digest != handler.digest())
            .map(|r| (r.digest.clone(), r.version.clone()));
        let new_version = registered.is_none() || old.is_some();
        let mut pending = [Pending {
            name: &name,
            handler: &mut handler,
            old,
        }];
        self.activate_in_tx(&mut pending, Trigger::Start, new_version)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let activated_at = self.activated_at(&name)?;
        let latency = self.stats.latency(&name);
        tracing::info!(
            plugin = %name, version = %handler.version(), digest = %handler.digest(),
            schema = handler.schema(), "Activated the plugin; its tables are migrated."
        );
        self.slots
            .push(Slot::new(config, handler, activated_at, latency));
        Ok(())
    }

    /// Runs every pending handler's `migrate` and records the activations
    /// in one transaction. `history` false: the same version restarts.
    pub(super) fn activate_in_tx(
        &mut self,
        pending: &mut [Pending<'_>],
        trigger: Trigger,
        history: bool,
    ) -> Result<Vec<Option<i64>>, SwapError> {
        self.db.begin().map_err(anyhow::Error::from)?;
        let mut ids = Vec::with_capacity(pending.len());
        for p in pending.iter_mut() {
            let from = self
                .db
                .with(|c| registry::get(c, p.name))
                .map_err(anyhow::Error::from)
                .map(|r| r.map(|r| r.schema_version));
            let from = match from {
                Ok(f) => f,
                Err(e) => {
                    self.db.rollback();
                    return Err(e.into());
                }
            };
            if let Err(failure) = p.handler.migrate(from) {
                self.db.rollback();
                return Err(SwapError::Migrate {
                    plugin: p.name.to_owned(),
                    version: p.handler.version(),
                    digest: p.handler.digest(),
                    failure,
                });
            }
            let (digest, version) = (p.handler.digest(), p.handler.version());
            // The tables' schema never goes down: a rollback to an older
            // version leaves them at the newer version's schema.
            let schema = from.map_or(p.handler.schema(), |f| f.max(p.handler.schema()));
            let recorded = self.db.with(|c| {
                registry::activate(c, p.name, &digest, &version, schema)?;
                if !history {
                    return Ok(None);
                }
                history::record(
                    c,
                    &NewEntry {
                        plugin: p.name,
                        trigger,
                        old: p.old.as_ref().map(|(d, v)| Version {
                            digest: d,
                            version: v,
                        }),
                        new: Some(Version {
                            digest: &digest,
                            version: &version,
                        }),
                        error: None,
                    },
                )
                .map(Some)
            });
            match recorded {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.db.rollback();
                    return Err(anyhow::Error::from(e).into());
                }
            }
        }
        self.db.commit().map_err(anyhow::Error::from)?;
        Ok(ids)
    }

    pub(super) fn activated_at(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .db
            .with(|c| registry::get(c, name))?
            .map(|r| r.activated_at)
            .unwrap_or_default())
    }

    fn slot_index(&self, name: &str) -> Result<usize, SwapError> {
        self.slots
            .iter()
            .position(|s| &*s.name == name)
            .ok_or_else(|| SwapError::Unknown(name.to_owned()))
    }

    /// Replaces plugin `name`'s active version by `plugin` (compiled and
    /// validated by the caller, off the hot path). The replaced version is
    /// kept for rollback and, with `auto_rollback`, for probation. The
    /// same digest as the active one changes nothing.
    pub fn swap(
        &mut self,
        name: &str,
        plugin: Arc<LoadedPlugin>,
        trigger: Trigger,
    ) -> Result<Activation, SwapError> {
        let i = self.slot_index(name)?;
        let slot = &self.slots[i];
        if slot.active.wasm().is_none() {
            return Err(SwapError::Native(name.to_owned()));
        }
        let old = (slot.active.digest(), slot.active.version());
        if plugin.digest == old.0 {
            return Ok(Activation {
                plugin: name.to_owned(),
                trigger: trigger.to_string(),
                old_digest: Some(old.0.clone()),
                old_version: Some(old.1.clone()),
                new_digest: old.0,
                new_version: old.1,
                history_id: None,
            });
        }
        let mut handler = Handler::new(&slot.config, PluginCode::Wasm(plugin), &self.db);
        let id = self.activate_one(name, &mut handler, Some(old.clone()), trigger)?;
        let activated_at = self.activated_at(name)?;
        let slot = &mut self.slots[i];
        let new_stamp = stamp(name, &handler);
        let mut replaced = std::mem::replace(&mut slot.active, handler);
        // Its prepared statements go now: they never outlive the swap.
        replaced.retire();
        let replaced_stamp = std::mem::replace(&mut slot.stamp, new_stamp);
        slot.previous = Some((replaced, replaced_stamp));
        slot.activated_at = activated_at;
        let on_probation = match slot.config.auto_rollback.as_ref().map(Probation::new) {
            Some(p) => {
                self.state.probations.insert(Arc::clone(&slot.name), p);
                true
            }
            None => {
                self.state.probations.remove(&slot.name);
                false
            }
        };
        let activation = activation(name, trigger, Some(old), &slot.active, id);
        tracing::info!(
            plugin = name, trigger = %trigger, old_digest = ?activation.old_digest, new_digest = %activation.new_digest,
            new_version = %activation.new_version, probation = on_probation,
            "A new plugin version took over at a batch boundary."
        );
        Ok(activation)
    }

    fn activate_one(
        &mut self,
        name: &str,
        handler: &mut Handler,
        old: Option<(String, String)>,
        trigger: Trigger,
    ) -> Result<Option<i64>, SwapError> {
        let new = (handler.digest(), handler.version());
        let mut pending = [Pending {
            name,
            handler,
            old: old.clone(),
        }];
        match self.activate_in_tx(&mut pending, trigger, true) {
            Ok(ids) => Ok(ids.into_iter().next().flatten()),
            Err(e) => {
                self.record_refusal(
                    name,
                    old.as_ref().map(|(d, v)| (d.as_str(), v.as_str())),
                    Some((&new.0, &new.1)),
                    trigger,
                    &e.to_string(),
                );
                Err(e)
            }
        }
    }

    /// Goes back to the version plugin `name` replaced (kept since the last
    /// swap): its `migrate` runs again with the current schema version.
    pub fn rollback(&mut self, name: &str, trigger: Trigger) -> Result<Activation, SwapError> {
        let i = self.slot_index(name)?;
        let Some((mut previous, previous_stamp)) = self.slots[i].previous.take() else {
            return Err(SwapError::NoPrevious(name.to_owned()));
        };
        let old = (
            self.slots[i].active.digest(),
            self.slots[i].active.version(),
        );
        let id = match self.activate_one(name, &mut previous, Some(old.clone()), trigger) {
            Ok(id) => id,
            Err(e) => {
                self.slots[i].previous = Some((previous, previous_stamp));
                return Err(e);
            }
        };
        let activated_at = self.activated_at(name)?;
        let slot = &mut self.slots[i];
        slot.active = previous;
        slot.stamp = previous_stamp;
        slot.activated_at = activated_at;
        self.state.probations.remove(&slot.name);
        let activation = activation(name, trigger, Some(old), &slot.active, id);
        tracing::warn!(
            plugin = name, trigger = %trigger, rolled_back = ?activation.old_digest, now = %activation.new_digest,
            "The plugin was rolled back to its previous version at a batch boundary."
        );
        Ok(activation)
    }

    /// Records a version that was not activated (bad file, contract
    /// mismatch, failed `migrate`) in the plugin history. Best effort: a
    /// store error is logged.
    pub fn record_refusal(
        &mut self,
        name: &str,
        old: Option<(&str, &str)>,
        new: Option<(&str, &str)>,
        trigger: Trigger,
        error: &str,
    ) {
        let entry = NewEntry {
            plugin: name,
            trigger,
            old: old.map(|(digest, version)| Version { digest, version }),
            new: new.map(|(digest, version)| Version { digest, version }),
            error: Some(error),
        };
        if let Err(e) = self.db.with(|c| history::record(c, &entry)) {
            tracing::warn!(plugin = name, error = %e, "Recording a refused plugin version in the history failed.");
        }
    }

    /// The active version of `name` and the one it replaced, if any.
    pub fn versions(&self, name: &str) -> Option<(VersionId, Option<VersionId>)> {
        let s = self.slots.iter().find(|s| &*s.name == name)?;
        Some((
            (s.active.digest(), s.active.version()),
            s.previous.as_ref().map(|(h, _)| (h.digest(), h.version())),
        ))
    }
}

pub(super) fn activation(
    name: &str,
    trigger: Trigger,
    old: Option<(String, String)>,
    active: &Handler,
    history_id: Option<i64>,
) -> Activation {
    let (old_digest, old_version) = old.map_or((None, None), |(d, v)| (Some(d), Some(v)));
    Activation {
        plugin: name.to_owned(),
        trigger: trigger.to_string(),
        old_digest,
        old_version,
        new_digest: active.digest(),
        new_version: active.version(),
        history_id,
    }
}
