//! WASI stdout/stderr of a plugin, forwarded line by line into the host log.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamResult};

use super::held::{Line, Output};

/// Longest line logged; the rest of a longer line is dropped (see
/// [`crate::failure::MAX_PLUGIN_TEXT`]).
const MAX_LINE: usize = crate::failure::MAX_PLUGIN_TEXT;

/// The line being written: its bytes so far, and whether it is already
/// past [`MAX_LINE`] (its beginning was logged, the rest is dropped up to
/// the next newline).
#[derive(Debug, Default)]
struct Pending {
    line: Vec<u8>,
    cut: bool,
}

/// A plugin's stdout or stderr. Complete lines become log lines at info
/// (stdout) or warn (stderr) level.
#[derive(Clone)]
pub struct LogStream {
    output: Output,
    stream: &'static str,
    pending: Arc<Mutex<Pending>>,
    recent: Arc<Mutex<std::collections::VecDeque<String>>>,
}

/// How many recent lines are kept to explain a trap.
const RECENT: usize = 4;

impl LogStream {
    /// A stream named `stream` (`stdout` or `stderr`) written to `output`.
    pub fn new(output: Output, stream: &'static str) -> Self {
        Self {
            output,
            stream,
            pending: Arc::default(),
            recent: Arc::default(),
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if !text.trim().is_empty() && !text.starts_with("note: run with `RUST_BACKTRACE") {
            let mut recent = self.recent.lock();
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(text.to_owned());
        }
        self.output.write(Line::Stream {
            stream: self.stream,
            text: text.to_owned(),
        });
    }

    /// Appends `bytes`, logging every complete line (and the first
    /// `MAX_LINE` bytes of a longer one, once).
    pub fn push(&self, mut bytes: &[u8]) {
        let mut p = self.pending.lock();
        while !bytes.is_empty() {
            let (part, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(nl) => (&bytes[..nl], true),
                None => (bytes, false),
            };
            bytes = &bytes[(part.len() + usize::from(newline)).min(bytes.len())..];
            if !p.cut {
                let room = MAX_LINE.saturating_sub(p.line.len());
                p.line.extend_from_slice(&part[..part.len().min(room)]);
                if part.len() > room {
                    let mut line = std::mem::take(&mut p.line);
                    line.extend_from_slice(format!("… (cut at {MAX_LINE} bytes)").as_bytes());
                    self.emit(&line);
                    p.cut = true;
                }
            }
            if newline {
                if !p.cut {
                    let line = std::mem::take(&mut p.line);
                    self.emit(&line);
                }
                p.cut = false;
            }
        }
    }

    /// The last few meaningful lines written since the previous call,
    /// joined with ` / ` (flushing a partial line first); a Rust panic's
    /// location and message end up here.
    pub fn take_recent(&self) -> Option<String> {
        self.flush_partial();
        self.pending.lock().cut = false;
        let lines: Vec<String> = self.recent.lock().drain(..).collect();
        (!lines.is_empty()).then(|| lines.join(" / "))
    }

    /// Logs a trailing partial line, if any (a line already cut stays cut
    /// until its newline).
    pub fn flush_partial(&self) {
        let line: Vec<u8> = std::mem::take(&mut self.pending.lock().line);
        if !line.is_empty() {
            self.emit(&line);
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // A guest flushes between the chunks of one long write: the line
        // is logged when it ends (or at the next call, or a trap).
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_are_emitted_and_partial_ones_kept() {
        let s = LogStream::new(Output::new("p".into()), "stdout");
        s.push(b"hello\nwor");
        assert_eq!(s.pending.lock().line, b"wor");
        s.push(b"ld\n");
        assert!(s.pending.lock().line.is_empty());
    }

    #[test]
    fn a_long_line_is_logged_once_cut_and_the_rest_dropped() {
        let out = Output::new("p".into());
        let s = LogStream::new(out.clone(), "stdout");
        out.hold();
        s.push(&vec![b'x'; MAX_LINE * 3]);
        s.push(&vec![b'x'; MAX_LINE]);
        assert!(s.pending.lock().line.is_empty() && s.pending.lock().cut);
        s.push(b"xx\nnext\n");
        assert_eq!(out.held(), 2, "the cut line and `next`");
        assert!(!s.pending.lock().cut);
    }
}
