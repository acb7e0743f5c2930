//! Polling a batch: messages of owned, unheld partitions become events,
//! tagged with the assignment generation they were polled under; before
//! the batch is applied, events of partitions lost meanwhile are dropped
//! and each partition's fence is decided.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::context::TopicPartition;
use super::{KafkaSource, Polled};
use crate::delivery::{Fence, Fences};
use crate::event::Event;

/// What the source knows about one partition while polling a batch (read
/// once per batch, so a message costs no lock and no allocation to
/// classify).
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) tp: TopicPartition,
    pub(super) key: Arc<str>,
    pub(super) generation: u64,
    held: bool,
}

impl KafkaSource {
    fn refresh_known(&mut self) {
        let own = self.shared.ownership.lock();
        self.known.clear();
        for (tp, g) in &own.owned {
            if let Some(key) = self.keys.get(&tp.0) {
                self.known.push(Known {
                    tp: tp.clone(),
                    key: Arc::clone(key),
                    generation: *g,
                    held: self.holds.contains_key(tp),
                });
            }
        }
    }

    /// The first half of [`crate::source::Source::poll`]: polls up to
    /// `max` events, waiting up to `idle` for the first one, then at most
    /// `linger` more for the batch to fill. Each remembers the assignment
    /// generation it was polled under; [`Self::fence_into`] is the second
    /// half.
    pub fn poll_into(
        &mut self,
        out: &mut Vec<Polled>,
        max: usize,
        idle: Duration,
        linger: Duration,
    ) {
        self.refresh_known();
        let mut deadline: Option<Instant> = None;
        // The clock is read for the first event and then every 32 polls, not
        // for each of the thousands of events of a busy batch.
        let mut since_clock = 0u32;
        let mut timeout = idle;
        let mut out_of_range = false;
        while out.len() < max {
            match self.consumer.poll(timeout) {
                None => {
                    if deadline.is_none() || timeout.is_zero() {
                        break;
                    }
                    // It waited: look at the clock now.
                    since_clock = u32::MAX - 1;
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    out_of_range = true;
                    break;
                }
                Some(Err(e)) => {
                    match &self.shared.client_log {
                        Some(log) => log.error(
                            &e,
                            "while consuming; the client reconnects and retries by itself",
                        ),
                        None => tracing::warn!(source = %self.config.name, error = %e,
                            "The Kafka client reported an error; it reconnects and retries by itself."),
                    }
                    if deadline.is_none() {
                        break;
                    }
                }
                Some(Ok(m)) => {
                    if let Some(p) = self.convert(&m) {
                        out.push(p);
                        if deadline.is_none() {
                            deadline = Some(Instant::now() + linger);
                            timeout = linger;
                            since_clock = 0;
                        }
                    }
                }
            }
            since_clock = since_clock.saturating_add(1);
            if let Some(d) = deadline
                && (since_clock >= 32 || timeout.is_zero())
            {
                since_clock = 0;
                let now = Instant::now();
                if now >= d {
                    break;
                }
                timeout = d - now;
            }
        }
        if out_of_range {
            self.recover_out_of_range(out);
        }
    }

    fn convert(&self, m: &BorrowedMessage<'_>) -> Option<Polled> {
        let (topic, partition) = (m.topic(), m.partition());
        let index = self
            .known
            .iter()
            .position(|k| k.tp.1 == partition && k.tp.0 == topic)?;
        let known = &self.known[index];
        if known.held {
            return None;
        }
        let headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let payload = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
        let event_type = self.extractor.extract(&headers, &payload);
        Some(Polled {
            event: Event {
                source: Arc::clone(&known.key),
                partition,
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                event_type,
                payload,
                headers,
                timestamp_ms: m.timestamp().to_millis(),
                rejected: None,
            },
            known: index,
            generation: known.generation,
        })
    }

    /// Moves the events of `polled` whose partition is still owned under
    /// the generation they were polled in to `out` (a zombie never writes
    /// for a partition it lost), and records each partition's fence: the
    /// SQLite generation it was claimed with, or a claim for its first
    /// batch.
    pub fn fence_into(&self, polled: &mut Vec<Polled>, out: &mut Vec<Event>, fences: &mut Fences) {
        let own = self.shared.ownership.lock();
        let before = polled.len();
        let mut kept = 0;
        for p in polled.drain(..) {
            let tp = &self.known[p.known].tp;
            if own.owned.get(tp) != Some(&p.generation) {
                continue;
            }
            kept += 1;
            let key = (Arc::clone(&p.event.source), p.event.partition);
            fences
                .entry(key)
                .or_insert_with(|| match own.claims.get(tp) {
                    Some(g) => Fence::Hold(*g),
                    None => Fence::Claim(Arc::clone(&self.owner)),
                });
            out.push(p.event);
        }
        if kept < before {
            tracing::info!(source = %self.config.name, dropped = before - kept,
                "Dropped events polled for partitions this consumer no longer owns.");
        }
    }
}
