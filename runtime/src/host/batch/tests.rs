//! The batch protocol as the host keeps it: chunk layout, and the breaches
//! of the protocol a guest written without the SDK can commit.

use super::*;

fn ev(offset: i64, payload: &[u8]) -> Event {
    let mut e = Event::new("s".into(), 0, offset, Some("A".into()), payload.to_vec());
    e.key = Some(b"k".to_vec());
    e.headers = vec![("h".into(), b"v".to_vec())];
    e
}

fn handle() -> Resource<Events> {
    Resource::new_borrow(0)
}

#[test]
fn an_event_completed_after_the_host_said_stop_is_not_counted_as_applied() {
    let (_dir, _db, mut st) = crate::host::store::tests::state(&[]);
    let (a, b) = (ev(1, b"{}"), ev(2, b"{}"));
    st.run
        .load(&[(&a, "A"), (&b, "A")], false, Duration::from_secs(1));
    assert_eq!(st.next_chunk(handle()).events.len(), 2);
    // Asking for more before completing the current event is a breach:
    // the host says stop with an empty chunk ...
    assert!(st.next_chunk(handle()).events.is_empty());
    // ... and takes no outcome afterwards.
    assert!(!st.complete(handle(), Ok(Handled02::Applied)));
    assert!(!st.complete(handle(), Ok(Handled02::Applied)));
    let f = st.run.finish();
    assert!(f.done.is_empty(), "nothing counts as applied: {:?}", f.done);
    assert!(f.current, "the first event is still current and fails");
    assert!(
        f.violation
            .as_deref()
            .is_some_and(|v| v.contains("next chunk")),
        "{:?}",
        f.violation
    );
}

#[test]
fn completing_again_after_a_failure_changes_nothing() {
    let (_dir, _db, mut st) = crate::host::store::tests::state(&[]);
    let (a, b) = (ev(1, b"{}"), ev(2, b"{}"));
    st.run
        .load(&[(&a, "A"), (&b, "A")], false, Duration::from_secs(1));
    st.next_chunk(handle());
    assert!(!st.complete(handle(), Err(HandleError02::Permanent("bad".into()))));
    assert!(!st.complete(handle(), Ok(Handled02::Applied)));
    let f = st.run.finish();
    assert_eq!(f.done.len(), 1, "only the failed event has an outcome");
    assert!(f.done[0].0.is_err());
    assert!(!f.current);
    assert_eq!(f.violation, None);
}

#[test]
fn events_are_laid_out_in_chunks_with_spans_into_one_buffer() {
    let a = ev(1, b"{}");
    let b = ev(2, &vec![b'x'; CHUNK_BYTES]);
    let c = ev(3, b"[]");
    let mut run = Run::default();
    run.load(
        &[(&a, "A"), (&b, "B"), (&c, "A")],
        false,
        Duration::from_secs(1),
    );
    assert_eq!(run.chunks.len(), 3, "the big event gets a chunk of its own");
    let first = &run.chunks[0];
    assert_eq!(first.source, "s");
    assert_eq!(first.event_types, ["A"]);
    let e = &first.events[0];
    let key = e
        .key
        .as_ref()
        .map(|s| &first.data[s.start as usize..][..s.len as usize]);
    assert_eq!(key, Some(&b"k"[..]));
    assert_eq!(
        &first.data[e.payload.start as usize..][..e.payload.len as usize],
        b"{}"
    );
    assert_eq!(e.header_count, 1);
    assert_eq!(run.chunks[2].event_types, ["A"]);
    assert_eq!(run.events.len(), 3);
    assert_eq!(run.headers.len(), 3);
}
