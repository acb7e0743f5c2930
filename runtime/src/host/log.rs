//! The `log` interface: plugin log lines into the host's `tracing` log,
//! tagged with the plugin and the event being handled (through
//! [`super::held::Output`], which holds them during an optimistic pass).

use super::HostState;
use super::held::Line;
use crate::bindings::Level;
use crate::bindings::{v0_1, v0_2};

use crate::failure::clip as cut;

/// Formats plugin-supplied fields as `k=v` pairs.
fn format_fields(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={:?}", cut(k), cut(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl HostState {
    /// Writes one plugin log line, tagged with the event being handled.
    fn log_line(&mut self, level: Level, message: String, fields: &[(String, String)]) {
        let event = match self.call.event() {
            Some(p) => p.to_string(),
            None => "-".to_owned(),
        };
        self.output.write(Line::Log {
            level,
            event,
            fields: format_fields(fields),
            message: crate::failure::clip_owned(message),
        });
    }
}

impl v0_2::ferry::plugin::log::Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        self.log_line(level, message, &fields);
    }
}

impl v0_1::ferry::plugin::log::Host for HostState {
    fn log(
        &mut self,
        level: v0_1::ferry::plugin::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        use v0_1::ferry::plugin::log::Level as L;
        let level = match level {
            L::Trace => Level::Trace,
            L::Debug => Level::Debug,
            L::Info => Level::Info,
            L::Warn => Level::Warn,
            L::Error => Level::Error,
        };
        self.log_line(level, message, &fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_formatted_and_cut() {
        assert_eq!(format_fields(&[("a".into(), "b".into())]), "a=\"b\"");
        let long = "x".repeat(crate::failure::MAX_PLUGIN_TEXT * 2);
        assert!(format_fields(&[("a".into(), long)]).len() < crate::failure::MAX_PLUGIN_TEXT + 64);
    }
}
