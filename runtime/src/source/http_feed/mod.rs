//! The HTTP event feed source: polls `GET {url}?start={seq}&end={seq}`,
//! which answers a JSON array of `{sequenceNumber, occuredAt, name,
//! content}` — the way many .NET services expose their events without a
//! broker.
//!
//! The next `start` is the checkpoint (last applied sequence number + 1),
//! stored in SQLite in the same transaction as the plugins' writes, so a
//! crash or restart loses and duplicates nothing. A full page is followed
//! at once by the next one (catch-up); otherwise the source waits
//! `poll_interval_ms`. 429 and 503 are honoured with their `Retry-After`;
//! timeouts, connection errors, 5xx and malformed pages are reported and
//! retried with backoff (nothing of a malformed page is applied); another
//! 4xx stops the source with the feed's answer. Missing sequence numbers
//! are waited for (`gap_timeout_ms`), then recorded as a dead letter or
//! stop the source (`on_gap`). Event type = `name`, payload = `content`:
//! same plugins, routing, outcomes and dead letters as Kafka (partition 0).

mod client;
mod fetch;
mod page;
mod time;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::Mutex;

use super::{PartitionState, PartitionStatus, Source};
use crate::backoff::Backoff;
use crate::config::HttpFeedSourceConfig;
use crate::delivery::{Fence, Fences, PartitionKey, Verdicts};
use crate::event::Event;
use fetch::{Cmd, Condition, FeedState, Fetcher, Page};

/// Pages fetched ahead of the pipeline.
const PREFETCH_PAGES: usize = 2;

/// Why the source is held by the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    /// Retrying the event at `offset` from `until`.
    Retry { until: Instant, why: String },
    /// Stopped at an event until restart.
    Stopped { offset: i64 },
    /// Another consumer claimed the feed's checkpoint in SQLite.
    Fenced,
}

/// A running HTTP feed source.
pub struct HttpFeedSource {
    config: HttpFeedSourceConfig,
    key: Arc<str>,
    epoch: u64,
    pages: Option<Receiver<Page>>,
    pending: VecDeque<Event>,
    fetcher: Fetcher,
    state: Arc<Mutex<FeedState>>,
    hold: Option<Hold>,
    claim: Option<i64>,
    owner: Arc<str>,
}

impl std::fmt::Debug for HttpFeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFeedSource")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl HttpFeedSource {
    /// Starts polling `config.url` from its checkpoint in `positions`;
    /// failed requests back off per `backoff`.
    pub fn start(
        config: &HttpFeedSourceConfig,
        positions: &dyn crate::source::Positions,
        backoff: Backoff,
    ) -> anyhow::Result<Self> {
        let key: Arc<str> = config.name.as_str().into();
        let next = positions
            .checkpoint(&key, 0)
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading the checkpoint of feed source `{}`: {e}",
                    config.name
                )
            })?
            .map(|c| c + 1);
        let state = Arc::new(Mutex::new(FeedState::default()));
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH_PAGES);
        let fetcher = Fetcher::start(
            config,
            Arc::clone(&key),
            next,
            backoff,
            Arc::clone(&state),
            tx,
        )
        .with_context(|| format!("starting the fetcher of feed source `{}`", config.name))?;
        tracing::info!(source = %config.name, url = %config.url,
            start = next.map_or_else(|| format!("{} (no checkpoint yet)", config.start_sequence), |n| n.to_string()),
            "Polling the HTTP event feed; it starts after its SQLite checkpoint.");
        Ok(Self {
            config: config.clone(),
            key,
            epoch: 0,
            pages: Some(rx),
            pending: VecDeque::new(),
            fetcher,
            state,
            hold: None,
            claim: None,
            owner: Arc::from(format!(
                "ferry pid {} source {}",
                std::process::id(),
                config.name
            )),
        })
    }

    fn seek(&mut self, from: i64, at: Instant) {
        self.epoch += 1;
        self.pending.clear();
        let _ = self.fetcher.commands.send(Cmd::Seek {
            epoch: self.epoch,
            from,
            at,
        });
    }

    fn halt(&mut self) {
        self.epoch += 1;
        self.pending.clear();
        let _ = self.fetcher.commands.send(Cmd::Halt { epoch: self.epoch });
    }
}

impl Source for HttpFeedSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        "http-feed"
    }

    fn tick(&mut self) {
        if let Some(Hold::Retry { until, .. }) = &self.hold
            && *until <= Instant::now()
        {
            self.hold = None;
        }
    }

    fn poll(
        &mut self,
        out: &mut Vec<Event>,
        fences: &mut Fences,
        max: usize,
        idle: Duration,
        linger: Duration,
    ) {
        let Some(pages) = &self.pages else {
            return;
        };
        let first_deadline = Instant::now() + idle;
        let mut linger_deadline: Option<Instant> = None;
        while out.len() < max {
            if let Some(e) = self.pending.pop_front() {
                out.push(e);
                linger_deadline.get_or_insert_with(|| Instant::now() + linger);
                continue;
            }
            let deadline = linger_deadline.unwrap_or(first_deadline);
            let left = deadline.saturating_duration_since(Instant::now());
            let page = if left.is_zero() {
                pages.try_recv().ok()
            } else {
                pages.recv_timeout(left).ok()
            };
            match page {
                Some(p) if p.epoch == self.epoch => self.pending.extend(p.events),
                Some(_) => {}
                None => break,
            }
        }
        if !out.is_empty() {
            let fence = match self.claim {
                Some(g) => Fence::Hold(g),
                None => Fence::Claim(Arc::clone(&self.owner)),
            };
            fences.insert((Arc::clone(&self.key), 0), fence);
        }
    }

    fn after_batch(&mut self, report: &Verdicts) {
        let key: PartitionKey = (Arc::clone(&self.key), 0);
        if let Some(g) = report.claimed.get(&key) {
            self.claim = Some(*g);
        }
        if report.fenced.contains_key(&key) {
            tracing::error!(source = %self.config.name,
                "Another ferry claimed this feed's checkpoint in the same database; this one stops consuming it.");
            self.claim = None;
            self.hold = Some(Hold::Fenced);
            self.halt();
            return;
        }
        if let Some(b) = report.blocked.get(&key) {
            match b.retry_after {
                Some(d) => {
                    let until = Instant::now() + d;
                    self.hold = Some(Hold::Retry {
                        until,
                        why: b.failure.to_string(),
                    });
                    self.seek(b.offset, until);
                    tracing::info!(source = %self.config.name, offset = b.offset,
                        event_type = b.event_type.as_deref().unwrap_or("-"),
                        plugin = b.plugin.as_deref().unwrap_or("-"), error = %b.failure,
                        retry_in_ms = d.as_millis() as u64,
                        "The feed resumes at the event being retried after the backoff.");
                }
                None => {
                    self.hold = Some(Hold::Stopped { offset: b.offset });
                    self.halt();
                }
            }
        }
    }

    fn rewind(&mut self, events: &[Event], delay: Duration) {
        if let Some(first) = events.iter().find(|e| e.source == self.key) {
            let until = Instant::now() + delay;
            self.hold = Some(Hold::Retry {
                until,
                why: "the batch could not be committed".to_owned(),
            });
            self.seek(first.offset, until);
        }
    }

    fn partitions(
        &self,
        checkpoint: &mut dyn FnMut(&PartitionKey) -> Option<i64>,
    ) -> Vec<PartitionStatus> {
        let cp = checkpoint(&(Arc::clone(&self.key), 0));
        let s = self.state.lock().clone();
        let (state, detail) = match &self.hold {
            Some(Hold::Retry { why, .. }) => (PartitionState::Retrying, Some(why.clone())),
            Some(Hold::Stopped { offset }) => (
                PartitionState::Stopped,
                Some(format!("stopped at sequence number {offset} until restart")),
            ),
            Some(Hold::Fenced) => (
                PartitionState::Fenced,
                Some("another consumer claimed it in SQLite".to_owned()),
            ),
            None => match s.condition {
                Condition::Running => (PartitionState::Running, None),
                Condition::Waiting => (PartitionState::Retrying, s.detail.clone()),
                Condition::Failing => (PartitionState::Failing, s.detail.clone()),
                Condition::Stopped => (PartitionState::Stopped, s.detail.clone()),
            },
        };
        let lag = match (s.caught_up, s.head, cp) {
            (false, _, _) | (true, Some(_), None) => None,
            (true, Some(h), Some(c)) => Some((h - c).max(0)),
            (true, None, _) => Some(0),
        };
        vec![PartitionStatus {
            source: Arc::clone(&self.key),
            partition: 0,
            lag,
            state,
            detail,
        }]
    }

    fn key_for(&self, topic: Option<&str>) -> Result<Arc<str>, String> {
        match topic {
            None => Ok(Arc::clone(&self.key)),
            Some(t) => Err(format!(
                "source `{}` is an HTTP feed and has no topic `{t}`",
                self.config.name
            )),
        }
    }

    fn close(mut self: Box<Self>) {
        let _ = self.fetcher.commands.send(Cmd::Shutdown);
        drop(self.pages.take());
        if let Some(t) = self.fetcher.thread.take() {
            let _ = t.join();
        }
        tracing::info!(source = %self.config.name, "Stopped polling the HTTP event feed.");
    }
}
