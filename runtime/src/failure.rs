//! How an event failed, as the host classifies it, and the size limit of
//! the text a plugin hands the host.

use std::fmt;

/// Longest text a plugin can make ferry store or log, in bytes: an error
/// message, a skip reason, a log message or field, a line of its stdout or
/// stderr. Longer text is cut at a character boundary and marked with how
/// long it was.
pub const MAX_PLUGIN_TEXT: usize = 16 * 1024;

/// `text` cut to [`MAX_PLUGIN_TEXT`] bytes (on a character boundary), with
/// a note of its full length when it was cut.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_PLUGIN_TEXT {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_PLUGIN_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… (cut: {} bytes in all)",
        &text[..end],
        text.len()
    ))
}

/// [`clip`] for an owned string (no copy when it is short enough).
pub fn clip_owned(text: String) -> String {
    match clip(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(cut) => cut,
    }
}

/// The class of a failed event; decides between retrying and the failure
/// policy, and is recorded with every dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The plugin returned `retryable`.
    Retryable,
    /// A host-side transient error (busy database, I/O) during the call.
    HostTransient,
    /// The plugin returned `permanent`.
    Permanent,
    /// A statement touched something the plugin was not granted.
    Denied,
    /// The plugin trapped (panic, unreachable, out-of-bounds access, …).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The instance asked for more memory than its cap.
    Memory,
    /// No plugin handles this event type (policy `dead-letter` or `fail`).
    UnknownEventType,
    /// The event could not even be decoded into an event (replay envelope,
    /// feed entry).
    MalformedEnvelope,
    /// Sequence numbers missing from a feed (recorded where the feed moves
    /// past them).
    Gap,
}

impl FailureKind {
    /// The name used in dead letters, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retryable => "retryable",
            FailureKind::HostTransient => "host-transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Denied => "denied",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::UnknownEventType => "unknown-event-type",
            FailureKind::MalformedEnvelope => "malformed-envelope",
            FailureKind::Gap => "gap",
        }
    }

    /// Whether the failure is transient: retried with backoff rather than
    /// counted towards `max_attempts`.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::Retryable | FailureKind::HostTransient)
    }

    /// Whether the plugin itself said the event can never be applied
    /// (`permanent`, also when a denied statement was the reason): waiting
    /// does not change that, so it is not retried.
    pub fn is_deterministic(self) -> bool {
        matches!(self, FailureKind::Permanent | FailureKind::Denied)
    }

    /// Whether the instance must be re-created before the next call.
    pub fn poisons_instance(self) -> bool {
        matches!(
            self,
            FailureKind::Trap | FailureKind::Timeout | FailureKind::Memory
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its class.
    pub kind: FailureKind,
    /// What happened, in words.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_plugin_text_is_cut_on_a_character_boundary_and_says_so() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(MAX_PLUGIN_TEXT);
        let cut = clip(&long);
        assert!(cut.len() < MAX_PLUGIN_TEXT + 64, "{}", cut.len());
        assert!(cut.ends_with(&format!("(cut: {} bytes in all)", long.len())));
        assert_eq!(clip_owned("x".repeat(10)), "x".repeat(10));
    }
}
