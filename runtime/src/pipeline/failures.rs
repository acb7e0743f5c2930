//! What happens to an event that cannot be applied: unknown types, failed
//! attempts (retry with backoff, then the plugin's `on_failure` policy),
//! malformed input, and the dead-letter flood guard.

use std::sync::Arc;

use super::apply::{Touched, advance};
use super::{Attempts, BatchReport, Blocked, Note, Outcome, PartitionKey, Pipeline};
use crate::config::{FailurePolicy, UnknownEventPolicy};
use crate::event::Event;
use crate::failure::{Failure, FailureKind};
use crate::store::{NewDeadLetter, checkpoint, dead_letter, outbox, schema::NOW};

impl Pipeline {
    /// An event no plugin handles: the `unknown_event_type` policy.
    pub(super) fn unroutable(
        &mut self,
        ev: &Event,
        key: &PartitionKey,
        ty: &Arc<str>,
        report: &mut BatchReport,
        touched: &mut Touched,
    ) -> anyhow::Result<()> {
        let failure = Failure::new(
            FailureKind::UnknownEventType,
            match &ev.event_type {
                Some(t) => format!("no plugin handles event type `{t}`"),
                None => {
                    "the event has no event type (no type header, ce_type or pointer match)".into()
                }
            },
        );
        match self.unknown {
            UnknownEventPolicy::Skip => {
                report.skipped += 1;
                self.tally.add(&self.no_plugin, ty, Outcome::Skipped);
                self.guard_record(key, false);
                tracing::debug!(event = %ev.at(), event_type = &**ty, "Skipped an event no plugin handles.");
            }
            UnknownEventPolicy::DeadLetter => {
                if let Some(stop) = self.guard_trips(key, ev, &failure, None, 1) {
                    self.tally.add(&self.no_plugin, ty, Outcome::Stopped);
                    report
                        .notes
                        .push(note(key, ev, Outcome::Stopped, &stop.failure));
                    report.delivery.blocked.insert(key.clone(), stop);
                    return Ok(());
                }
                self.dead_letter(ev, None, &failure, 1, None)?;
                report.dead_lettered += 1;
                self.tally.add(&self.no_plugin, ty, Outcome::DeadLettered);
                tracing::error!(event = %ev.at(), event_type = &**ty, error = %failure,
                    "Recorded an event no plugin handles as a dead letter.");
                report
                    .notes
                    .push(note(key, ev, Outcome::DeadLettered, &failure));
            }
            UnknownEventPolicy::Fail => {
                self.tally.add(&self.no_plugin, ty, Outcome::Stopped);
                tracing::error!(event = %ev.at(), event_type = &**ty, error = %failure,
                    "Stopped the partition at an event no plugin handles (unknown_event_type = \"fail\").");
                report.notes.push(note(key, ev, Outcome::Stopped, &failure));
                report
                    .delivery
                    .blocked
                    .insert(key.clone(), blocked(ev, None, failure, 1, None));
                return Ok(());
            }
        }
        advance(touched, key.clone(), ev.offset, None);
        Ok(())
    }

    /// One failed attempt at `ev` by plugin `i`: retry later, or apply the
    /// plugin's policy once the attempts are used up.
    #[expect(
        clippy::too_many_arguments,
        reason = "one failed attempt: its plugin, event, partition, type, failure, and the batch it belongs to"
    )]
    pub(super) fn failed(
        &mut self,
        i: usize,
        ev: &Event,
        key: PartitionKey,
        ty: &Arc<str>,
        failure: Failure,
        report: &mut BatchReport,
        touched: &mut Touched,
    ) -> anyhow::Result<()> {
        let slot = &self.slots[i];
        let config = &slot.config;
        let (max_attempts, max_retryable, policy) = (
            config.max_attempts,
            config.max_retryable_attempts,
            config.on_failure,
        );
        let plugin = Arc::clone(&slot.name);
        let digest = slot.active.digest();
        let stamp = Arc::clone(&slot.stamp);
        let now: String = self
            .db
            .with(|c| c.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0)))?;
        let entry = self
            .state
            .attempts
            .entry(key.clone())
            .or_insert_with(|| Attempts {
                offset: ev.offset,
                count: 0,
                first_failed_at: now.clone(),
            });
        if entry.offset != ev.offset {
            *entry = Attempts {
                offset: ev.offset,
                count: 0,
                first_failed_at: now,
            };
        }
        entry.count += 1;
        let (n, first_failed_at) = (entry.count, entry.first_failed_at.clone());
        // A deterministic rejection is final at once (invariant 7); traps,
        // deadlines and the memory cap may be transient and get their
        // attempts; `retryable` waits with backoff.
        let exhausted = if failure.kind.is_deterministic() {
            true
        } else if failure.kind.is_transient() {
            max_retryable.is_some_and(|m| n >= m)
        } else {
            n >= max_attempts
        };
        let who = Some(&*plugin);
        if !exhausted {
            let delay = self.backoff.delay(n);
            self.tally.add(&plugin, ty, Outcome::Retried);
            tracing::warn!(
                plugin = %plugin, event = %ev.at(), event_type = &**ty, attempt = n,
                retry_in_ms = delay.as_millis() as u64, error_class = %failure.kind, error = %failure.message,
                "An event failed; its partition waits and retries it."
            );
            report
                .delivery
                .blocked
                .insert(key, blocked(ev, who, failure, n, Some(delay)));
            return Ok(());
        }
        let stop = match policy {
            FailurePolicy::StopPartition => Some(blocked(ev, who, failure.clone(), n, None)),
            FailurePolicy::DeadLetter => self.guard_trips(&key, ev, &failure, who, n),
        };
        if let Some(stop) = stop {
            self.tally.add(&plugin, ty, Outcome::Stopped);
            tracing::error!(
                plugin = %plugin, event = %ev.at(), event_type = &**ty, attempts = n,
                error_class = %stop.failure.kind, error = %stop.failure.message,
                "An event used up its attempts; its partition is stopped."
            );
            report
                .notes
                .push(note(&key, ev, Outcome::Stopped, &stop.failure));
            report.delivery.blocked.insert(key, stop);
            return Ok(());
        }
        self.dead_letter(
            ev,
            Some((&plugin, &digest)),
            &failure,
            n,
            Some(&first_failed_at),
        )?;
        self.state.attempts.remove(&key);
        report.dead_lettered += 1;
        self.tally.add(&plugin, ty, Outcome::DeadLettered);
        tracing::error!(
            plugin = %plugin, event = %ev.at(), event_type = &**ty, attempts = n,
            error_class = %failure.kind, error = %failure.message,
            "An event used up its attempts and was recorded as a dead letter."
        );
        report
            .notes
            .push(note(&key, ev, Outcome::DeadLettered, &failure));
        advance(touched, key, ev.offset, Some(&stamp));
        Ok(())
    }

    /// Records whether the newest event of a partition was dead-lettered,
    /// for the flood guard's window.
    pub(super) fn guard_record(&mut self, key: &PartitionKey, dead_lettered: bool) {
        let window = self.guard.window_events as usize;
        if self.guard.max_dead_letters == 0 || window == 0 {
            return;
        }
        let w = self.state.guard_windows.entry(key.clone()).or_default();
        if w.len() == window {
            w.pop_front();
        }
        w.push_back(dead_lettered);
    }

    /// If dead-lettering `ev` would exceed the flood guard's limit, the
    /// partition stops instead; otherwise the dead letter is counted.
    pub(super) fn guard_trips(
        &mut self,
        key: &PartitionKey,
        ev: &Event,
        failure: &Failure,
        plugin: Option<&str>,
        attempts: u32,
    ) -> Option<Blocked> {
        let (window, max) = (self.guard.window_events, self.guard.max_dead_letters);
        if max == 0 {
            return None;
        }
        let recent = self
            .state
            .guard_windows
            .get(key)
            .map_or(0, |w| w.iter().filter(|d| **d).count());
        if recent < max as usize {
            self.guard_record(key, true);
            return None;
        }
        let guarded = Failure::new(
            failure.kind,
            format!(
                "dead-letter flood guard: {recent} of the last {window} events of this partition were already dead-lettered (limit {max}), so the partition stops instead; the event failed with: {}",
                failure.message
            ),
        );
        Some(blocked(ev, plugin, guarded, attempts, None))
    }

    /// Records a dead letter for an event that is not a valid event at all
    /// (for example a malformed replay line) and advances the checkpoint
    /// past it, in one transaction. Returns `false` (and records nothing)
    /// when the checkpoint is already past it.
    pub fn reject(&mut self, ev: &Event, failure: &Failure) -> anyhow::Result<bool> {
        let key: PartitionKey = (Arc::clone(&ev.source), ev.partition);
        if self.checkpoint(&key)?.is_some_and(|c| ev.offset <= c) {
            self.stats.add("-", "-", Outcome::AlreadyApplied, 1);
            return Ok(false);
        }
        self.db.begin()?;
        let r = self.dead_letter(ev, None, failure, 1, None).and_then(|()| {
            self.db
                .with(|c| checkpoint::write(c, &ev.source, ev.partition, ev.offset, "", 0))?;
            self.db.commit()?;
            Ok(())
        });
        if let Err(e) = r {
            self.db.rollback();
            return Err(e);
        }
        let c = self.checkpoints.entry(key).or_insert(None);
        *c = Some(c.map_or(ev.offset, |o| o.max(ev.offset)));
        let ty = ev.event_type.as_deref().unwrap_or("-");
        self.stats.add("-", ty, Outcome::DeadLettered, 1);
        Ok(true)
    }

    /// Records a dead letter and, if the event's source has a dead-letter
    /// topic, queues it in the outbox, in the current transaction.
    pub(super) fn dead_letter(
        &self,
        ev: &Event,
        plugin: Option<(&str, &str)>,
        failure: &Failure,
        attempts: u32,
        first_failed_at: Option<&str>,
    ) -> anyhow::Result<()> {
        self.record_dead_letter(ev, plugin, failure, attempts, first_failed_at)?;
        let source = ev.source.split('/').next().unwrap_or(&ev.source);
        if let Some(topic) = self.dead_letter_topics.get(source) {
            let mut headers = ev.headers.clone();
            headers.extend(dead_letter_headers(ev, plugin, failure, attempts));
            self.db.with(|c| {
                outbox::enqueue(c, source, topic, ev.key.as_deref(), &ev.payload, &headers)
            })?;
        }
        Ok(())
    }

    /// Records (or updates) the dead letter only.
    pub(super) fn record_dead_letter(
        &self,
        ev: &Event,
        plugin: Option<(&str, &str)>,
        failure: &Failure,
        attempts: u32,
        first_failed_at: Option<&str>,
    ) -> anyhow::Result<()> {
        self.db.with(|c| {
            dead_letter::record(
                c,
                &NewDeadLetter {
                    event: ev,
                    plugin: plugin.map(|p| p.0),
                    plugin_digest: plugin.map(|p| p.1),
                    error_class: failure.kind.as_str(),
                    error_message: &failure.message,
                    attempts,
                    first_failed_at,
                },
            )
        })?;
        Ok(())
    }
}

/// Headers ferry adds to a message on the dead-letter topic.
fn dead_letter_headers(
    ev: &Event,
    plugin: Option<(&str, &str)>,
    failure: &Failure,
    attempts: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        ("ferry-source".to_owned(), ev.source.as_bytes().to_vec()),
        (
            "ferry-partition".to_owned(),
            ev.partition.to_string().into_bytes(),
        ),
        (
            "ferry-offset".to_owned(),
            ev.offset.to_string().into_bytes(),
        ),
        (
            "ferry-error-class".to_owned(),
            failure.kind.as_str().as_bytes().to_vec(),
        ),
        (
            "ferry-error-message".to_owned(),
            failure.message.as_bytes().to_vec(),
        ),
        (
            "ferry-attempts".to_owned(),
            attempts.to_string().into_bytes(),
        ),
    ];
    if let Some(t) = &ev.event_type {
        h.push(("ferry-event-type".to_owned(), t.as_bytes().to_vec()));
    }
    if let Some((name, digest)) = plugin {
        h.push(("ferry-plugin".to_owned(), name.as_bytes().to_vec()));
        h.push(("ferry-plugin-digest".to_owned(), digest.as_bytes().to_vec()));
    }
    h
}

fn blocked(
    ev: &Event,
    plugin: Option<&str>,
    failure: Failure,
    attempts: u32,
    retry_after: Option<std::time::Duration>,
) -> Blocked {
    Blocked {
        offset: ev.offset,
        event_type: ev.event_type.clone(),
        plugin: plugin.map(str::to_owned),
        failure,
        attempts,
        retry_after,
    }
}

pub(super) fn note(key: &PartitionKey, ev: &Event, outcome: Outcome, failure: &Failure) -> Note {
    Note {
        partition: key.clone(),
        offset: ev.offset,
        event_type: ev.event_type.clone(),
        outcome,
        failure: failure.clone(),
    }
}
