//! The `batch` interface (contract 0.2): the events of one `handle-batch`
//! call, handed to the guest chunk by chunk, and the outcome it reports for
//! each with `complete`.
//!
//! The host lays a call's events out before the call: per chunk the source
//! and the event-type names once, every event's key and payload in one byte
//! buffer (moved into the guest's memory in one piece), and the headers in
//! an arena of their own, copied out only when the guest asks. The current
//! event (handed, not completed) owns the call's context: the deadline,
//! what the clock reads, the random seed, the event named by log lines, the
//! store call report, and on the careful pass its savepoint, which
//! `complete` releases or rolls back. A failure ends the call (`complete`
//! answers `false`), so the pipeline decides what the failure means before
//! any later event is handled.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use wasmtime::component::Resource;

use super::HostState;
use super::call::Purpose;
use crate::bindings::v0_2::ferry::plugin::batch::{
    Chunk, Event as WitEvent, Events, HandleError as HandleError02, Handled as Handled02, Host,
    HostEvents, Span,
};
use crate::bindings::{HandleError, Handled, Header};
use crate::event::{Event, Position};
use crate::failure::{Failure, FailureKind, clip_owned};
use crate::store::EventSavepoint;

/// Most events in one chunk.
pub const CHUNK_EVENTS: usize = 1024;

/// Most key and payload bytes in one chunk (a single larger event gets a
/// chunk of its own).
pub const CHUNK_BYTES: usize = 1 << 20;

/// How one event of a call ended: its outcome and how long it took.
pub type Done = (Result<Handled, Failure>, Duration);

/// What the host keeps about an event of the call while it waits.
#[derive(Debug)]
struct Pending {
    position: Position,
    timestamp_ms: Option<i64>,
    /// Its headers: a range of `Run::headers`.
    headers: Range<usize>,
}

/// One header in the arena: name and value ranges of `Run::header_bytes`.
#[derive(Debug, Clone)]
struct HeaderAt {
    name: Range<usize>,
    value: Range<usize>,
}

/// The events of the call in progress and what became of them.
#[derive(Debug, Default)]
pub struct Run {
    chunks: VecDeque<Chunk>,
    events: Vec<Pending>,
    headers: Vec<HeaderAt>,
    header_bytes: Vec<u8>,
    /// Events handed to the guest so far.
    handed: usize,
    /// The event being handled: begun (its context set) and not completed.
    current: Option<usize>,
    /// Outcomes of the events completed so far, in order.
    done: Vec<Done>,
    /// A savepoint per event (the careful pass).
    careful: bool,
    /// The guest was told to stop.
    stopped: bool,
    /// When the current event was handed out.
    started: Option<Instant>,
    timeout: Duration,
    /// The guest broke the protocol (the message says how).
    violation: Option<String>,
    /// A savepoint could not be opened, kept or discarded: the batch
    /// cannot go on.
    store_error: Option<String>,
}

fn span(start: usize, len: usize) -> Span {
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        len: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

impl Run {
    /// Lays out `events` (each with the event type it was routed by) for a
    /// call; `careful`: a savepoint per event.
    pub fn load(&mut self, events: &[(&Event, &str)], careful: bool, timeout: Duration) {
        self.chunks.clear();
        self.events.clear();
        self.headers.clear();
        self.header_bytes.clear();
        self.handed = 0;
        self.current = None;
        self.done.clear();
        self.careful = careful;
        self.stopped = false;
        self.started = None;
        self.timeout = timeout;
        self.violation = None;
        self.store_error = None;
        let mut chunk: Option<Chunk> = None;
        for (ev, ty) in events {
            let size = ev.payload.len() + ev.key.as_ref().map_or(0, Vec::len);
            let full = chunk.as_ref().is_some_and(|c| {
                c.events.len() >= CHUNK_EVENTS
                    || (c.data.len() + size > CHUNK_BYTES)
                    || c.source != *ev.source
            });
            if full && let Some(c) = chunk.take() {
                self.chunks.push_back(c);
            }
            let c = chunk.get_or_insert_with(|| Chunk {
                source: ev.source.to_string(),
                event_types: Vec::new(),
                events: Vec::new(),
                data: Vec::new(),
            });
            let type_index = match c.event_types.iter().position(|t| t == ty) {
                Some(i) => i,
                None => {
                    c.event_types.push((*ty).to_owned());
                    c.event_types.len() - 1
                }
            };
            let key = ev.key.as_ref().map(|k| {
                let s = span(c.data.len(), k.len());
                c.data.extend_from_slice(k);
                s
            });
            let payload = span(c.data.len(), ev.payload.len());
            c.data.extend_from_slice(&ev.payload);
            let first_header = self.headers.len();
            for (name, value) in &ev.headers {
                let n = self.header_bytes.len();
                self.header_bytes.extend_from_slice(name.as_bytes());
                let v = self.header_bytes.len();
                self.header_bytes.extend_from_slice(value);
                self.headers.push(HeaderAt {
                    name: n..v,
                    value: v..self.header_bytes.len(),
                });
            }
            c.events.push(WitEvent {
                partition: ev.partition,
                offset: ev.offset,
                event_type: u32::try_from(type_index).unwrap_or(u32::MAX),
                key,
                payload,
                timestamp_ms: ev.timestamp_ms,
                header_count: u32::try_from(ev.headers.len()).unwrap_or(u32::MAX),
            });
            self.events.push(Pending {
                position: ev.at(),
                timestamp_ms: ev.timestamp_ms,
                headers: first_header..self.headers.len(),
            });
        }
        if let Some(c) = chunk {
            self.chunks.push_back(c);
        }
    }

    /// The index of the current event (begun, not completed), if any.
    fn current(&self) -> Option<usize> {
        self.current
    }

    /// Ends the call's bookkeeping: the completed events' outcomes, and the
    /// problems it left (a protocol violation, a store error).
    pub fn finish(&mut self) -> Finished {
        Finished {
            done: std::mem::take(&mut self.done),
            current: self.current_after_finish(),
            violation: self.violation.take(),
            store_error: self.store_error.take(),
            careful: self.careful,
        }
    }

    fn current_after_finish(&self) -> bool {
        self.current().is_some()
    }
}

/// What a finished call left: outcomes of the completed events, whether an
/// event was still current (its handling trapped or the guest returned
/// early), and the problems met.
#[derive(Debug)]
pub struct Finished {
    /// Outcomes of the completed events, in order.
    pub done: Vec<Done>,
    /// An event was handed and not completed (it is `done.len()`).
    pub current: bool,
    /// How the guest broke the protocol, if it did.
    pub violation: Option<String>,
    /// A savepoint operation failed: the batch cannot commit.
    pub store_error: Option<String>,
    /// The call ran with a savepoint per event.
    pub careful: bool,
}

impl HostState {
    /// Makes event `index` of the run the current one: its deadline, time,
    /// random seed and log tag, a fresh store report and, on the careful
    /// pass, its savepoint.
    fn begin_event(&mut self, index: usize) {
        let Some(p) = self.run.events.get(index) else {
            return;
        };
        let now = Instant::now();
        let deadline = now + self.run.timeout;
        self.call.begin(
            Purpose::Event(p.position.clone(), p.timestamp_ms),
            Some(deadline),
        );
        self.limiter.reset();
        self.stderr.take_recent();
        self.store.begin_call(Some(deadline));
        self.run.started = Some(now);
        self.run.current = Some(index);
        if self.run.careful
            && let Err(e) = self.store.event_savepoint(EventSavepoint::Open)
        {
            self.run.store_error.get_or_insert(e);
        }
    }

    /// Keeps or discards the current event's writes on the careful pass.
    pub(crate) fn settle_event(&mut self, keep: bool) {
        if !self.run.careful {
            return;
        }
        let op = if keep {
            EventSavepoint::Keep
        } else {
            EventSavepoint::Discard
        };
        if let Err(e) = self.store.event_savepoint(op) {
            self.run.store_error.get_or_insert(e);
        }
    }

    /// The time the current event has taken so far.
    pub(crate) fn event_took(&self) -> Duration {
        self.run.started.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// The 0.2 outcome in the pipeline's (0.1) terms, with oversized text cut.
fn outcome(o: Result<Handled02, HandleError02>) -> Result<Handled, HandleError> {
    match o {
        Ok(Handled02::Applied) => Ok(Handled::Applied),
        Ok(Handled02::Skipped(r)) => Ok(Handled::Skipped(clip_owned(r))),
        Err(HandleError02::Retryable(m)) => Err(HandleError::Retryable(m)),
        Err(HandleError02::Permanent(m)) => Err(HandleError::Permanent(m)),
    }
}

impl Host for HostState {}

impl HostEvents for HostState {
    fn next_chunk(&mut self, _events: Resource<Events>) -> Chunk {
        let empty = || Chunk {
            source: String::new(),
            event_types: Vec::new(),
            events: Vec::new(),
            data: Vec::new(),
        };
        if self.run.stopped || self.run.store_error.is_some() {
            return empty();
        }
        if self.run.current().is_some() || self.run.done.len() < self.run.handed {
            self.run.violation.get_or_insert_with(|| {
                "it asked for the next chunk before completing every event of the last one"
                    .to_owned()
            });
            self.run.stopped = true;
            return empty();
        }
        let Some(chunk) = self.run.chunks.pop_front() else {
            return empty();
        };
        let first = self.run.handed;
        self.run.handed += chunk.events.len();
        self.begin_event(first);
        chunk
    }

    fn headers(&mut self, _events: Resource<Events>) -> Vec<Header> {
        let Some(index) = self.run.current() else {
            return Vec::new();
        };
        let Some(p) = self.run.events.get(index) else {
            return Vec::new();
        };
        let bytes = &self.run.header_bytes;
        self.run.headers[p.headers.clone()]
            .iter()
            .map(|h| Header {
                name: String::from_utf8_lossy(&bytes[h.name.clone()]).into_owned(),
                value: bytes[h.value.clone()].to_vec(),
            })
            .collect()
    }

    fn complete(
        &mut self,
        _events: Resource<Events>,
        result: Result<Handled02, HandleError02>,
    ) -> bool {
        if self.run.stopped {
            // Once the host has said stop (a failed event, a protocol
            // breach), no outcome counts any more: an event still current
            // fails as a trap naming the breach when the call ends, and a
            // guest that goes on completing after a failure changes nothing.
            if self.run.current().is_some() {
                self.run.violation.get_or_insert_with(|| {
                    "it completed an event after the host had told it to stop".to_owned()
                });
            }
            return false;
        }
        if self.run.current().is_none() {
            self.run
                .violation
                .get_or_insert_with(|| "it completed an event it had not been handed".to_owned());
            self.run.stopped = true;
            return false;
        }
        let report = self.store.end_call();
        let took = self.event_took();
        let timeout = self.run.timeout;
        let result = match outcome(result) {
            Ok(handled) => Ok(handled),
            Err(err) => Err(super::outcome::classify(err, report, timeout)),
        };
        let failed = result.is_err();
        self.settle_event(!failed);
        self.run.current = None;
        self.run.done.push((result, took));
        if failed || self.run.store_error.is_some() {
            self.run.stopped = true;
            return false;
        }
        if self.run.done.len() < self.run.handed {
            self.begin_event(self.run.done.len());
        }
        true
    }

    fn drop(&mut self, _events: Resource<Events>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// The failure of the event that was current when a call ended without
/// completing it normally (the guest returned early or broke the protocol).
pub fn incomplete(violation: Option<String>) -> Failure {
    Failure::new(
        FailureKind::Trap,
        match violation {
            Some(v) => format!("the plugin broke the batch protocol: {v}"),
            None => "the plugin returned from `handle-batch` before completing the event".into(),
        },
    )
}

#[cfg(test)]
mod tests;
