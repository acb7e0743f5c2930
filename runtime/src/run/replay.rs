//! `ferry replay`'s loop: the lines of a JSON Lines file (parsed by
//! [`crate::source::replay`]) through the pipeline in batches, waiting out
//! retries, stopping where a partition stops.

use std::io::BufRead;
use std::sync::Arc;

use crate::event::Event;
use crate::pipeline::{Blocked, Note, Pipeline};
use crate::source::replay::{Line, SOURCE, parse_line};

/// A failing event worth showing, with the line it came from.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Line number in the file.
    pub line: u64,
    /// What happened.
    pub note: Note,
}

/// The result of a replay.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// Lines read (including blank ones).
    pub lines: u64,
    /// Events (non-blank lines).
    pub events: u64,
    /// Dead letters and stops, in file order.
    pub problems: Vec<Problem>,
    /// Set when the partition stopped (policy `stop-partition` or
    /// `unknown_event_type = "fail"`): the replay ended there.
    pub stopped: Option<(u64, Blocked)>,
}

/// Feeds `reader` through `pipeline` in batches of `batch_size`. Retries
/// wait out the pipeline's backoff; `progress` is called with the bytes
/// read so far.
pub fn replay(
    pipeline: &mut Pipeline,
    reader: impl BufRead,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<ReplaySummary> {
    let source: Arc<str> = SOURCE.into();
    let mut summary = ReplaySummary::default();
    let mut batch: Vec<(u64, Event)> = Vec::with_capacity(batch_size);
    let mut reader = reader;
    let mut buf = Vec::new();
    let mut read = 0u64;
    let mut last_offset: Option<i64> = None;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        summary.lines += 1;
        let line = summary.lines;
        let mut bytes = trim_line(&buf);
        if line == 1 {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.events += 1;
        match parse_line(&source, line, bytes) {
            Line::Event(ev) => {
                if let Some(prev) = last_offset.filter(|p| ev.offset <= *p) {
                    flush(pipeline, &mut batch, &mut summary)?;
                    anyhow::bail!(
                        "line {line}: offset {} is not greater than the previous event's offset {prev}; \
                         offsets in a replay file must increase (lines before it were applied)",
                        ev.offset
                    );
                }
                last_offset = Some(ev.offset);
                batch.push((line, ev));
                if batch.len() >= batch_size && !flush(pipeline, &mut batch, &mut summary)? {
                    return Ok(summary);
                }
            }
            Line::Malformed(ev, failure) => {
                if !flush(pipeline, &mut batch, &mut summary)? {
                    return Ok(summary);
                }
                if !pipeline.reject(&ev, &failure)? {
                    progress(read);
                    continue;
                }
                tracing::error!(line, error = %failure.message,
                    "A replay line is not a valid event; it was recorded as a dead letter.");
                summary.problems.push(Problem {
                    line,
                    note: Note {
                        partition: (Arc::clone(&source), 0),
                        offset: ev.offset,
                        event_type: None,
                        outcome: crate::pipeline::Outcome::DeadLettered,
                        failure,
                    },
                });
            }
        }
        progress(read);
    }
    flush(pipeline, &mut batch, &mut summary)?;
    progress(read);
    Ok(summary)
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &buf[..end]
}

/// Applies the buffered events; returns `false` if the partition stopped.
fn flush(
    pipeline: &mut Pipeline,
    batch: &mut Vec<(u64, Event)>,
    summary: &mut ReplaySummary,
) -> anyhow::Result<bool> {
    let mut start = 0;
    while start < batch.len() {
        let events: Vec<Event> = batch[start..].iter().map(|(_, e)| e.clone()).collect();
        let report = pipeline.apply_batch(&events)?;
        let line_of = |offset: i64| {
            batch
                .iter()
                .find(|(_, e)| e.offset == offset)
                .map_or(0, |(l, _)| *l)
        };
        for note in report.notes {
            summary.problems.push(Problem {
                line: line_of(note.offset),
                note,
            });
        }
        let Some((_, blocked)) = report.delivery.blocked.into_iter().next() else {
            break;
        };
        let Some(delay) = blocked.retry_after else {
            summary.stopped = Some((line_of(blocked.offset), blocked));
            batch.clear();
            return Ok(false);
        };
        std::thread::sleep(delay);
        start = batch
            .iter()
            .position(|(_, e)| e.offset == blocked.offset)
            .unwrap_or(batch.len());
    }
    batch.clear();
    Ok(true)
}
