//! The 0.1 contract's event record: one per call, refilled for every event
//! so that its buffers are reused instead of allocated per event.

use crate::bindings::{WitEvent, v0_1::ferry::plugin::types::Header};
use crate::event::Event;

/// An empty event record to refill.
pub(crate) fn empty() -> WitEvent {
    WitEvent {
        source: String::new(),
        partition: 0,
        offset: 0,
        key: None,
        event_type: String::new(),
        payload: Vec::new(),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

/// Largest buffer kept between events; a bigger one is released after use.
const KEEP_BYTES: usize = 1 << 20;

/// Refills the reusable WIT event with `e` (reusing its allocations).
pub(crate) fn fill_wit(w: &mut WitEvent, e: &Event, event_type: &str) {
    if w.source != *e.source {
        w.source.clear();
        w.source.push_str(&e.source);
    }
    w.partition = e.partition;
    w.offset = e.offset;
    match (&mut w.key, &e.key) {
        (Some(k), Some(src)) => {
            k.clear();
            k.extend_from_slice(src);
        }
        (slot, src) => *slot = src.clone(),
    }
    w.event_type.clear();
    w.event_type.push_str(event_type);
    if w.payload.capacity() > KEEP_BYTES {
        w.payload = Vec::new();
    }
    w.payload.clear();
    w.payload.extend_from_slice(&e.payload);
    w.headers.truncate(e.headers.len());
    for (i, (name, value)) in e.headers.iter().enumerate() {
        match w.headers.get_mut(i) {
            Some(h) => {
                h.name.clear();
                h.name.push_str(name);
                h.value.clear();
                h.value.extend_from_slice(value);
            }
            None => w.headers.push(Header {
                name: name.clone(),
                value: value.clone(),
            }),
        }
    }
    w.timestamp_ms = e.timestamp_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_event_is_refilled_exactly() {
        let mut w = empty();
        let mut e = Event::new("s/t".into(), 3, 9, Some("A".into()), b"{\"x\":1}".to_vec());
        e.key = Some(b"k".to_vec());
        e.headers = vec![("h1".into(), b"v1".to_vec()), ("h2".into(), b"v2".to_vec())];
        e.timestamp_ms = Some(7);
        fill_wit(&mut w, &e, "A");
        assert_eq!((w.source.as_str(), w.partition, w.offset), ("s/t", 3, 9));
        assert_eq!(w.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(w.headers.len(), 2);
        let mut f = Event::new("s/u".into(), 1, 10, Some("B".into()), b"[]".to_vec());
        f.headers = vec![("only".into(), b"x".to_vec())];
        fill_wit(&mut w, &f, "B");
        assert_eq!((w.source.as_str(), w.event_type.as_str()), ("s/u", "B"));
        assert_eq!(w.key, None);
        assert_eq!(w.payload, b"[]");
        assert_eq!(w.headers.len(), 1);
        assert_eq!(
            (w.headers[0].name.as_str(), &w.headers[0].value[..]),
            ("only", &b"x"[..])
        );
        assert_eq!(w.timestamp_ms, None);
    }
}
