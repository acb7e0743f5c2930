//! Routing: the plugin that handles each event type.

use std::collections::HashMap;

/// Maps event types to plugin indices.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Router {
    /// A router from `(plugin index, event types)` pairs.
    pub fn new<'a>(plugins: impl IntoIterator<Item = (usize, &'a [String])>) -> Self {
        let mut routes = HashMap::default();
        for (i, events) in plugins {
            for e in events {
                routes.insert(e.clone(), i);
            }
        }
        Self { routes }
    }

    /// The plugin index handling `event_type`, if any.
    pub fn route(&self, event_type: &str) -> Option<usize> {
        self.routes.get(event_type).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let a = vec!["A".to_string(), "B".to_string()];
        let c = vec!["C".to_string()];
        let r = Router::new([(0, a.as_slice()), (1, c.as_slice())]);
        assert_eq!(r.route("B"), Some(0));
        assert_eq!(r.route("C"), Some(1));
        assert_eq!(r.route("D"), None);
    }
}
