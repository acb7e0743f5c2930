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

/// Longest line kept before it is logged anyway.
const MAX_LINE: usize = 8 * 1024;

/// A plugin's stdout or stderr. Complete lines become log lines at info
/// (stdout) or warn (stderr) level.
#[derive(Clone)]
pub struct LogStream {
    output: Output,
    stream: &'static str,
    pending: Arc<Mutex<Vec<u8>>>,
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

    /// Appends `bytes`, logging every complete line.
    pub fn push(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock();
        pending.extend_from_slice(bytes);
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if pending.len() > MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    /// The last few meaningful lines written since the previous call,
    /// joined with ` / ` (flushing a partial line first); a Rust panic's
    /// location and message end up here.
    pub fn take_recent(&self) -> Option<String> {
        self.flush_partial();
        let lines: Vec<String> = self.recent.lock().drain(..).collect();
        (!lines.is_empty()).then(|| lines.join(" / "))
    }

    /// Logs a trailing partial line, if any.
    pub fn flush_partial(&self) {
        let line: Vec<u8> = std::mem::take(&mut *self.pending.lock());
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
        self.flush_partial();
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
        self.flush_partial();
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
        assert_eq!(&*s.pending.lock(), b"wor");
        s.push(b"ld\n");
        assert!(s.pending.lock().is_empty());
        s.push(&vec![b'x'; MAX_LINE + 1]);
        assert!(s.pending.lock().is_empty());
    }
}
