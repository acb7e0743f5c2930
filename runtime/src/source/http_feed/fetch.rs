//! The fetcher thread: fetches pages ahead of the pipeline into a bounded
//! channel (backpressure: at most two pages wait), follows the sequence
//! numbers and their gaps, and obeys seeks (retry an event, restart after a
//! failed batch) and halts (a stopped or fenced source). Pages carry the
//! epoch of the seek they follow, so pages fetched before a seek are
//! recognised and dropped by the source.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::client::{Client, FetchError};
use super::page::{self, Entry};
use super::time::parse_ms;
use crate::backoff::Backoff;
use crate::config::{GapPolicy, HttpFeedSourceConfig};
use crate::event::Event;
use crate::failure::{Failure, FailureKind};
use crate::source::event_type::TypeExtractor;

/// What the source tells the fetcher.
pub(super) enum Cmd {
    /// From `at` on, fetch from sequence number `from`.
    Seek { epoch: u64, from: i64, at: Instant },
    /// Fetch nothing until the next seek.
    Halt { epoch: u64 },
    /// End the thread.
    Shutdown,
}

/// A fetched page's events.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) epoch: u64,
    pub(super) events: Vec<Event>,
}

/// How the fetcher is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Condition {
    #[default]
    Running,
    /// Waiting: throttled (429/503) or waiting for a gap to fill.
    Waiting,
    /// The feed cannot be read right now (retried with backoff).
    Failing,
    /// The feed answered in a way that needs a person (a 4xx, a gap
    /// with `on_gap = "stop"`).
    Stopped,
}

/// What the fetcher publishes.
#[derive(Debug, Clone, Default)]
pub(super) struct FeedState {
    pub(super) condition: Condition,
    pub(super) detail: Option<String>,
    /// The last page was not full: the fetcher has reached the feed's head.
    pub(super) caught_up: bool,
    /// Highest sequence number delivered.
    pub(super) head: Option<i64>,
}

/// The running fetcher thread.
pub(super) struct Fetcher {
    pub(super) commands: Sender<Cmd>,
    pub(super) thread: Option<JoinHandle<()>>,
}

struct Worker {
    config: HttpFeedSourceConfig,
    key: Arc<str>,
    client: Client,
    extractor: Option<TypeExtractor>,
    backoff: Backoff,
    state: Arc<Mutex<FeedState>>,
    pages: SyncSender<Page>,
    epoch: u64,
    next: Option<i64>,
    resume_at: Instant,
    halted: bool,
    failures: u32,
    gap: Option<(i64, Instant)>,
}

impl Fetcher {
    pub(super) fn start(
        config: &HttpFeedSourceConfig,
        key: Arc<str>,
        next: Option<i64>,
        backoff: Backoff,
        state: Arc<Mutex<FeedState>>,
        pages: SyncSender<Page>,
    ) -> std::io::Result<Self> {
        let (commands, rx) = std::sync::mpsc::channel();
        let extractor = config
            .event_type
            .pointer
            .is_some()
            .then(|| TypeExtractor::new(&config.event_type));
        let mut w = Worker {
            client: Client::new(config),
            config: config.clone(),
            key,
            extractor,
            backoff,
            state,
            pages,
            epoch: 0,
            next,
            resume_at: Instant::now(),
            halted: false,
            failures: 0,
            gap: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("ferry-feed-{}", config.name))
            .spawn(move || w.run(&rx))?;
        Ok(Self {
            commands,
            thread: Some(thread),
        })
    }
}

impl Worker {
    fn run(&mut self, commands: &Receiver<Cmd>) {
        loop {
            let wait = if self.halted {
                Duration::from_secs(3_600)
            } else {
                self.resume_at.saturating_duration_since(Instant::now())
            };
            let cmd = if wait.is_zero() {
                commands.try_recv().ok()
            } else {
                match commands.recv_timeout(wait) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            match cmd {
                Some(Cmd::Seek { epoch, from, at }) => {
                    self.epoch = epoch;
                    self.next = Some(from);
                    self.resume_at = at;
                    self.halted = false;
                    self.gap = None;
                    self.failures = 0;
                    continue;
                }
                Some(Cmd::Halt { epoch }) => {
                    self.epoch = epoch;
                    self.halted = true;
                    continue;
                }
                Some(Cmd::Shutdown) => return,
                None => {}
            }
            if self.halted || Instant::now() < self.resume_at {
                continue;
            }
            if !self.fetch_once() {
                return;
            }
        }
    }

    fn set(&self, condition: Condition, detail: Option<String>) {
        let mut s = self.state.lock();
        s.condition = condition;
        s.detail = detail;
    }

    /// One request; returns false when the source is gone.
    fn fetch_once(&mut self) -> bool {
        let start = self.next.unwrap_or(self.config.start_sequence);
        let size = i64::from(self.config.page_size);
        let end = start.saturating_add(size - 1);
        let name = self.config.name.clone();
        let result = self
            .client
            .page(start, end)
            .and_then(|body| page::parse(&body).map_err(FetchError::Transient));
        let entries = match result {
            Ok(e) => e,
            Err(FetchError::Throttled {
                status,
                retry_after,
            }) => {
                self.failures += 1;
                let delay = retry_after.unwrap_or_else(|| self.backoff.delay(self.failures));
                tracing::warn!(source = %name, status, retry_in_ms = delay.as_millis() as u64,
                    honoured_retry_after = retry_after.is_some(),
                    "The feed asked ferry to come back later; polling pauses.");
                self.set(
                    Condition::Waiting,
                    Some(format!(
                        "the feed answered {status}; next request in {} ms",
                        delay.as_millis()
                    )),
                );
                self.resume_at = Instant::now() + delay;
                return true;
            }
            Err(FetchError::Transient(e)) => {
                self.failures += 1;
                let delay = self.backoff.delay(self.failures);
                tracing::warn!(source = %name, start, error = %e, attempt = self.failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "Reading the feed failed; nothing of the page was applied and ferry retries it.");
                self.set(Condition::Failing, Some(e));
                self.resume_at = Instant::now() + delay;
                return true;
            }
            Err(FetchError::Fatal(e)) => {
                tracing::error!(source = %name, url = %self.config.url, error = %e,
                    "The feed refused the request; the source stops until ferry is restarted with a fixed configuration.");
                self.set(Condition::Stopped, Some(e));
                self.halted = true;
                return true;
            }
        };
        self.failures = 0;
        // More may follow when the page reached the end of the range asked
        // for (a feed starting above `start` returns fewer entries than
        // asked without being at its head) or was as long as a page.
        let full = entries.len() as i64 >= size || entries.last().is_some_and(|e| e.seq >= end);
        tracing::debug!(source = %name, start, end, entries = entries.len(), full,
            "Fetched a page of the feed.");
        let (events, waiting, stop) = self.assemble(entries);
        let delivered = events.last().map(|e| e.offset);
        if let Some(last) = delivered {
            self.next = Some(last + 1);
            let mut s = self.state.lock();
            s.head = Some(s.head.map_or(last, |h| h.max(last)));
        }
        let caught_up = !full && waiting.is_none() && stop.is_none();
        {
            let mut s = self.state.lock();
            s.caught_up = caught_up;
            match (&stop, &waiting) {
                (Some(why), _) => {
                    s.condition = Condition::Stopped;
                    s.detail = Some(why.clone());
                }
                (None, Some(why)) => {
                    s.condition = Condition::Waiting;
                    s.detail = Some(why.clone());
                }
                (None, None) => {
                    s.condition = Condition::Running;
                    s.detail = None;
                }
            }
        }
        if !events.is_empty()
            && self
                .pages
                .send(Page {
                    epoch: self.epoch,
                    events,
                })
                .is_err()
        {
            return false;
        }
        if stop.is_some() {
            self.halted = true;
        } else if waiting.is_some() {
            let left = self
                .gap
                .map(|(_, since)| {
                    Duration::from_millis(self.config.gap_timeout_ms)
                        .saturating_sub(since.elapsed())
                })
                .unwrap_or_default();
            let poll = Duration::from_millis(self.config.poll_interval_ms);
            self.resume_at = Instant::now() + poll.min(left).max(Duration::from_millis(10));
        } else if !full {
            self.resume_at = Instant::now() + Duration::from_millis(self.config.poll_interval_ms);
        }
        true
    }

    /// The events of a page in sequence: up to a gap that is still waited
    /// for (`waiting`), past a gap that timed out (a rejected event for it,
    /// with `on_gap = "dead-letter"`), or up to it (`stop`).
    fn assemble(&mut self, entries: Vec<Entry>) -> (Vec<Event>, Option<String>, Option<String>) {
        let mut events = Vec::with_capacity(entries.len());
        let mut expected = self.next;
        for e in entries {
            if let Some(x) = expected {
                if e.seq < x {
                    continue;
                }
                if e.seq > x {
                    let now = Instant::now();
                    let since = match self.gap {
                        Some((at, since)) if at == x => since,
                        _ => {
                            tracing::warn!(source = %self.config.name, missing_from = x, missing_to = e.seq - 1,
                                wait_ms = self.config.gap_timeout_ms,
                                "Sequence numbers are missing from the feed; waiting for them before going past.");
                            self.gap = Some((x, now));
                            now
                        }
                    };
                    let waited = now.duration_since(since);
                    let what = if x == e.seq - 1 {
                        format!("sequence number {x} is missing from the feed")
                    } else {
                        format!(
                            "sequence numbers {x} to {} are missing from the feed",
                            e.seq - 1
                        )
                    };
                    if waited < Duration::from_millis(self.config.gap_timeout_ms) {
                        return (
                            events,
                            Some(format!("{what}; waiting for it up to gap_timeout_ms")),
                            None,
                        );
                    }
                    self.gap = None;
                    let message = format!("{what} (waited {} ms)", waited.as_millis());
                    match self.config.on_gap {
                        GapPolicy::Stop => {
                            tracing::error!(source = %self.config.name, missing_from = x, missing_to = e.seq - 1,
                                "The gap did not fill in time; the source stops at it (on_gap = \"stop\").");
                            return (events, None, Some(message));
                        }
                        GapPolicy::DeadLetter => {
                            tracing::error!(source = %self.config.name, missing_from = x, missing_to = e.seq - 1,
                                "The gap did not fill in time; it is recorded as a dead letter and the feed goes on.");
                            let mut gap = Event::new(
                                Arc::clone(&self.key),
                                0,
                                e.seq - 1,
                                None,
                                message.clone().into_bytes(),
                            );
                            gap.rejected = Some(Failure::new(FailureKind::Gap, message));
                            events.push(gap);
                        }
                    }
                }
            }
            expected = Some(e.seq + 1);
            events.push(self.event(e));
        }
        (events, None, None)
    }

    fn event(&self, e: Entry) -> Event {
        let mut headers = Vec::new();
        let timestamp_ms = e.occurred_at.as_deref().and_then(parse_ms);
        if let Some(at) = e.occurred_at {
            headers.push(("occurred-at".to_owned(), at.into_bytes()));
        }
        let missing: Vec<&str> = [("name", e.name.is_none()), ("content", e.payload.is_none())]
            .into_iter()
            .filter_map(|(f, m)| m.then_some(f))
            .collect();
        let rejected = (!missing.is_empty()).then(|| {
            Failure::new(
                FailureKind::MalformedEnvelope,
                format!("feed entry {} has no `{}`", e.seq, missing.join("` or `")),
            )
        });
        let payload = match (&rejected, e.payload) {
            (None, Some(p)) => p,
            _ => e.raw,
        };
        let event_type = match &self.extractor {
            Some(x) if rejected.is_none() => x.extract(&[], &payload),
            _ => e.name,
        };
        Event {
            source: Arc::clone(&self.key),
            partition: 0,
            offset: e.seq,
            key: None,
            event_type,
            payload,
            headers,
            timestamp_ms,
            rejected,
        }
    }
}
