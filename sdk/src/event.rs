//! Typed access to events.

use serde::de::DeserializeOwned;

use crate::{Event, HandleError};

/// Helpers on [`Event`].
pub trait EventExt {
    /// Decodes the JSON payload. A payload that does not fit `T` is a
    /// permanent error whose message names the event type, the offset and
    /// serde's reason (e.g. ``missing field `name` ``).
    fn json<T: DeserializeOwned>(&self) -> Result<T, HandleError>;
    /// The key as UTF-8 text, if there is one and it is text.
    fn key_str(&self) -> Option<&str>;
    /// The first header named `name`, as UTF-8 text.
    fn header(&self, name: &str) -> Option<&str>;
}

impl EventExt for Event {
    fn json<T: DeserializeOwned>(&self) -> Result<T, HandleError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            HandleError::Permanent(format!(
                "invalid {} payload at {}/{}@{}: {e}",
                self.event_type, self.source, self.partition, self.offset
            ))
        })
    }

    fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }
}
