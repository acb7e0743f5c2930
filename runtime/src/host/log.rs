//! The `log` interface: plugin log lines into the host's `tracing` log,
//! tagged with the plugin and the event being handled (through
//! [`super::held::Output`], which holds them during an optimistic pass).

use super::HostState;
use super::held::Line;
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
        let event = match &self.current_event {
            Some(p) => p.to_string(),
            None => "-".to_owned(),
        };
        self.output.write(Line::Log {
            level,
            event,
            fields: format_fields(&fields),
            message: cut(&message).to_owned(),
        });
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
