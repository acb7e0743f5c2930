//! A configuration reload: the plugin set and the pipeline settings
//! replaced together, between two batch transactions. New and changed
//! versions migrate in one transaction; if any fails, nothing changes.

use std::sync::Arc;

use super::Pipeline;
use super::probation::Probation;
use super::slot::{Handler, PluginCode, Slot};
use super::swap::{Activation, Pending, SwapError, VersionId, activation};
use crate::config::{PipelineConfig, PluginConfig};
use crate::store::history::Trigger;

impl Pipeline {
    /// Replaces the plugin set and the pipeline settings (a configuration
    /// reload). Each entry is a plugin's new configuration with its new
    /// code, or `None` to keep the running code (same file, limits and
    /// tables). New and changed versions are migrated in one transaction;
    /// if any fails, nothing changes. Plugins not listed are removed.
    pub fn reconfigure(
        &mut self,
        plugins: Vec<(PluginConfig, Option<PluginCode>)>,
        settings: &PipelineConfig,
        trigger: Trigger,
    ) -> Result<Vec<Activation>, SwapError> {
        for (c, code) in &plugins {
            let current = self.slots.iter().find(|s| *s.name == *c.name);
            match (current, code) {
                (None, None) => return Err(SwapError::Unknown(c.name.clone())),
                (Some(s), Some(PluginCode::Wasm(_))) if s.active.wasm().is_none() => {
                    return Err(SwapError::Native(c.name.clone()));
                }
                _ => {}
            }
        }
        let mut fresh: Vec<(PluginConfig, Option<Handler>, Option<VersionId>)> = plugins
            .into_iter()
            .map(|(c, code)| {
                let old = self
                    .slots
                    .iter()
                    .find(|s| *s.name == *c.name)
                    .map(|s| (s.active.digest(), s.active.version()));
                let handler = code.map(|code| Handler::new(&c, code, &self.db));
                (c, handler, old)
            })
            .collect();
        let ids = {
            let mut pending: Vec<Pending<'_>> = fresh
                .iter_mut()
                .filter_map(|(c, h, old)| {
                    h.as_mut().map(|handler| Pending {
                        name: &c.name,
                        handler,
                        old: old.clone(),
                    })
                })
                .collect();
            self.activate_in_tx(&mut pending, trigger, true)?
        };
        let mut ids = ids.into_iter();
        let mut old_slots = std::mem::take(&mut self.slots);
        let mut activations = Vec::new();
        for (config, handler, old) in fresh {
            let existing = old_slots
                .iter()
                .position(|s| *s.name == *config.name)
                .map(|i| old_slots.remove(i));
            let slot = match (existing, handler) {
                (Some(mut s), None) => {
                    s.config = config;
                    s
                }
                (existing, Some(handler)) => {
                    let id = ids.next().flatten();
                    let name = config.name.clone();
                    activations.push(activation(&name, trigger, old, &handler, id));
                    let activated_at = self.activated_at(&name).unwrap_or_default();
                    let mut s = Slot::new(config, handler, activated_at, self.stats.latency(&name));
                    self.state.probations.remove(&s.name);
                    if let Some(prev) = existing {
                        let mut replaced = prev.active;
                        replaced.retire();
                        s.previous = Some((replaced, prev.stamp));
                        if let Some(p) = s.config.auto_rollback.as_ref().map(Probation::new) {
                            self.state.probations.insert(Arc::clone(&s.name), p);
                        }
                    }
                    s
                }
                (None, None) => continue,
            };
            self.slots.push(slot);
        }
        for removed in old_slots {
            tracing::warn!(plugin = %removed.name, events = ?removed.config.events,
                "The plugin was removed by the reload; its event types now follow pipeline.unknown_event_type.");
        }
        self.unknown = settings.unknown_event_type;
        self.backoff = settings.retry.backoff();
        self.guard = settings.dead_letter_guard.clone();
        self.reroute();
        for a in &activations {
            tracing::info!(plugin = %a.plugin, trigger = %a.trigger, old_digest = ?a.old_digest, new_digest = %a.new_digest,
                "A plugin version took over after a configuration reload.");
        }
        Ok(activations)
    }
}
