//! A plugin's output (its `log` calls and its stdout/stderr lines), held
//! back while the pipeline runs a batch optimistically: if that pass is
//! abandoned the batch runs again and the plugin says it all again, so the
//! held lines are dropped; if it commits they are logged then, in order.
//! Either way each line of a committed event's handling is logged once.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::bindings::Level;

/// Most bytes of text held for one instance; beyond it everything held is
/// logged at once and the rest of the pass is logged as it comes (a pass
/// abandoned after that logs those lines again when the batch re-runs).
const MAX_HELD_BYTES: usize = 4 << 20;

/// One line of plugin output.
#[derive(Debug, Clone)]
pub enum Line {
    /// A `log` call.
    Log {
        /// Its level.
        level: Level,
        /// The event being handled (`source/partition@offset`, or `-`).
        event: String,
        /// Extra fields, formatted `k="v"`.
        fields: String,
        /// The message.
        message: String,
    },
    /// A line written to stdout or stderr.
    Stream {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The line, without its newline.
        text: String,
    },
}

impl Line {
    fn len(&self) -> usize {
        match self {
            Line::Log {
                event,
                fields,
                message,
                ..
            } => event.len() + fields.len() + message.len(),
            Line::Stream { text, .. } => text.len(),
        }
    }

    /// Logs the line for `plugin`.
    pub fn emit(&self, plugin: &str) {
        match self {
            Line::Log {
                level,
                event,
                fields,
                message,
            } => {
                let event = event.as_str();
                match level {
                    Level::Trace => {
                        tracing::trace!(target: "ferry::plugin", plugin, event, %fields, "{message}")
                    }
                    Level::Debug => {
                        tracing::debug!(target: "ferry::plugin", plugin, event, %fields, "{message}")
                    }
                    Level::Info => {
                        tracing::info!(target: "ferry::plugin", plugin, event, %fields, "{message}")
                    }
                    Level::Warn => {
                        tracing::warn!(target: "ferry::plugin", plugin, event, %fields, "{message}")
                    }
                    Level::Error => {
                        tracing::error!(target: "ferry::plugin", plugin, event, %fields, "{message}")
                    }
                }
            }
            Line::Stream { stream, text } => {
                if *stream == "stderr" {
                    tracing::warn!(target: "ferry::plugin", plugin, stream, "{text}");
                } else {
                    tracing::info!(target: "ferry::plugin", plugin, stream, "{text}");
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    holding: bool,
    lines: Vec<Line>,
    bytes: usize,
}

/// The output of one plugin instance: logged at once, or held.
#[derive(Debug, Clone)]
pub struct Output {
    plugin: Arc<str>,
    state: Arc<Mutex<State>>,
}

impl Output {
    /// The output of `plugin`, logged at once.
    pub fn new(plugin: Arc<str>) -> Self {
        Self {
            plugin,
            state: Arc::default(),
        }
    }

    /// Logs `line`, or keeps it while holding.
    pub fn write(&self, line: Line) {
        let mut s = self.state.lock();
        if !s.holding {
            drop(s);
            line.emit(&self.plugin);
            return;
        }
        s.bytes += line.len();
        s.lines.push(line);
        if s.bytes > MAX_HELD_BYTES {
            let lines = std::mem::take(&mut s.lines);
            s.holding = false;
            s.bytes = 0;
            drop(s);
            for l in &lines {
                l.emit(&self.plugin);
            }
        }
    }

    /// Holds every line from now on.
    pub fn hold(&self) {
        let mut s = self.state.lock();
        s.holding = true;
    }

    /// Logs what was held and stops holding.
    pub fn release(&self) {
        let lines = {
            let mut s = self.state.lock();
            s.holding = false;
            s.bytes = 0;
            std::mem::take(&mut s.lines)
        };
        for l in &lines {
            l.emit(&self.plugin);
        }
    }

    /// Drops what was held and stops holding.
    pub fn discard(&self) {
        let mut s = self.state.lock();
        s.holding = false;
        s.bytes = 0;
        s.lines.clear();
    }

    /// Lines held right now.
    pub fn held(&self) -> usize {
        self.state.lock().lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line {
        Line::Stream {
            stream: "stdout",
            text: text.into(),
        }
    }

    #[test]
    fn held_lines_wait_for_release_or_are_dropped() {
        let out = Output::new("p".into());
        out.write(line("now"));
        assert_eq!(out.held(), 0);
        out.hold();
        out.write(line("a"));
        out.write(line("b"));
        assert_eq!(out.held(), 2);
        out.discard();
        assert_eq!(out.held(), 0);
        out.write(line("logged at once again"));
        assert_eq!(out.held(), 0);
        out.hold();
        out.write(line("c"));
        out.release();
        assert_eq!(out.held(), 0);
    }

    #[test]
    fn too_much_held_output_is_logged_instead_of_growing() {
        let out = Output::new("p".into());
        out.hold();
        let big = "x".repeat(MAX_HELD_BYTES / 2 + 1);
        out.write(line(&big));
        assert_eq!(out.held(), 1);
        out.write(line(&big));
        assert_eq!(out.held(), 0);
        out.write(line("after"));
        assert_eq!(out.held(), 0);
    }
}
