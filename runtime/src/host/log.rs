//! The `log` interface: plugin log lines into the host's `tracing` log,
//! tagged with the plugin and the event being handled.

use super::HostState;
use crate::plugin::bindings::Level;
use crate::plugin::bindings::ferry::plugin::log::Host;

/// Longest message or field a plugin may log; longer ones are cut.
const MAX_LEN: usize = 8 * 1024;

fn cut(s: &str) -> &str {
    if s.len() <= MAX_LEN {
        return s;
    }
    let mut end = MAX_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Formats plugin-supplied fields as `k=v` pairs.
fn format_fields(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={:?}", cut(k), cut(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let plugin = &*self.plugin;
        let event = match &self.current_event {
            Some(p) => p.to_string(),
            None => "-".to_owned(),
        };
        let event = event.as_str();
        let message = cut(&message);
        let fields = format_fields(&fields);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_LEN);
        let c = cut(&s);
        assert!(c.len() <= MAX_LEN && c.is_char_boundary(c.len()));
        assert_eq!(format_fields(&[("a".into(), "b".into())]), "a=\"b\"");
    }
}
