//! Re-running dead letters through the current plugin version
//! (`ferry dlq retry`): in offset order per partition, so per key; a key
//! whose dead letter fails again holds back its later dead letters.

use std::collections::HashSet;

use super::{Outcome, Pipeline};
use crate::failure::{Failure, FailureKind};
use crate::plugin::Handled;
use crate::store::{DeadLetter, dead_letter};

/// What happened to one retried dead letter.
#[derive(Debug, Clone)]
pub enum Redriven {
    /// Applied (or skipped by the plugin); the dead letter is gone.
    Applied(Handled),
    /// Failed again; the dead letter is kept with one more attempt.
    Failed(Failure),
    /// Not tried: an earlier dead letter of the same key failed again.
    HeldBack,
}

impl Pipeline {
    /// Retries `letters` (sorted here by source, partition and offset). The
    /// checkpoint is not touched: the dead letter was already moved past.
    pub fn redrive(
        &mut self,
        mut letters: Vec<DeadLetter>,
    ) -> anyhow::Result<Vec<(DeadLetter, Redriven)>> {
        letters.sort_by(|a, b| {
            (&*a.event.source, a.event.partition, a.event.offset).cmp(&(
                &*b.event.source,
                b.event.partition,
                b.event.offset,
            ))
        });
        let mut failed_keys: HashSet<(String, i32, Option<Vec<u8>>)> = HashSet::new();
        let mut out = Vec::with_capacity(letters.len());
        for dl in letters {
            let key = (
                dl.event.source.to_string(),
                dl.event.partition,
                dl.event.key.clone(),
            );
            if dl.event.key.is_some() && failed_keys.contains(&key) {
                out.push((dl, Redriven::HeldBack));
                continue;
            }
            let result = self.redrive_one(&dl)?;
            if matches!(result, Redriven::Failed(_)) {
                failed_keys.insert(key);
            }
            out.push((dl, result));
        }
        Ok(out)
    }

    fn redrive_one(&mut self, dl: &DeadLetter) -> anyhow::Result<Redriven> {
        let ev = &dl.event;
        let ty = ev.event_type.clone().unwrap_or_default();
        let Some(i) = ev.event_type.as_deref().and_then(|t| self.router.route(t)) else {
            let why = if dl.error_class == FailureKind::MalformedEnvelope.as_str() {
                "a malformed envelope is not an event and cannot be retried; purge it".to_owned()
            } else if dl.error_class == FailureKind::Gap.as_str() {
                "a gap (sequence numbers missing from a feed, or Kafka offsets the broker no longer has) is not an event and cannot be retried; purge it"
                    .to_owned()
            } else {
                format!("no plugin handles event type `{ty}`")
            };
            return Ok(Redriven::Failed(Failure::new(
                FailureKind::UnknownEventType,
                why,
            )));
        };
        self.db.begin()?;
        let attempt = (|| -> anyhow::Result<Redriven> {
            self.db.savepoint()?;
            match self.slots[i].active.handle(ev, &ty) {
                Ok(handled) => {
                    self.db.release()?;
                    self.db.with(|c| dead_letter::delete(c, dl.id))?;
                    Ok(Redriven::Applied(handled))
                }
                Err(failure) => {
                    self.db.rollback_event()?;
                    let slot = &self.slots[i];
                    let (name, digest) = (slot.name.to_string(), slot.active.digest());
                    self.record_dead_letter(ev, Some((&name, &digest)), &failure, 1, None)?;
                    Ok(Redriven::Failed(failure))
                }
            }
        })();
        match attempt {
            Ok(r) => {
                self.db.commit()?;
                let plugin = self.slots[i].config.name.clone();
                let outcome = match &r {
                    Redriven::Applied(_) => Outcome::Applied,
                    _ => Outcome::DeadLettered,
                };
                self.stats.add(&plugin, &ty, outcome, 1);
                Ok(r)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }
}
