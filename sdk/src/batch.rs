//! Contract 0.2's `handle-batch`, driven by the SDK: take chunks, run the
//! projection's `handle` for each event, report each outcome, stop when
//! the host says so.

use crate::bindings::v0_2::ferry::plugin::batch::{Chunk, Events, Span};
use crate::event::Headers;
use crate::{Event, HostStore, Projection};

fn bytes(data: &[u8], span: Span) -> &[u8] {
    let start = span.start as usize;
    data.get(start..start.saturating_add(span.len as usize))
        .unwrap_or(&[])
}

/// Event `i` of `chunk` as a handler sees it.
fn event<'a>(chunk: &'a Chunk, i: usize, events: &'a Events) -> Option<Event<'a>> {
    let e = chunk.events.get(i)?;
    Some(Event {
        source: &chunk.source,
        partition: e.partition,
        offset: e.offset,
        key: e.key.map(|k| bytes(&chunk.data, k)),
        event_type: chunk
            .event_types
            .get(e.event_type as usize)
            .map_or("", String::as_str),
        payload: bytes(&chunk.data, e.payload),
        timestamp_ms: e.timestamp_ms,
        headers: Headers::Host(events, e.header_count),
    })
}

/// Handles every event of `events` with `P`.
pub fn drive<P: Projection>(events: &Events) {
    loop {
        let chunk = events.next_chunk();
        if chunk.events.is_empty() {
            return;
        }
        for i in 0..chunk.events.len() {
            let Some(ev) = event(&chunk, i, events) else {
                return;
            };
            let outcome = P::handle(&HostStore, &ev);
            if !events.complete(outcome.as_ref()) {
                return;
            }
        }
    }
}
