//! [`ChaosConfig`]: the test config most tests start from, the chaos plugin
//! (its `Append` events into table `log`, see `tests/plugins/chaos`) and a
//! source, with what each test changes said in one place.

use std::path::PathBuf;

use crate::Workspace;

/// A `config.toml` with the chaos plugin and one source.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    events: Vec<String>,
    tables: Vec<String>,
    plugin: String,
    pipeline: String,
    extra: String,
    source: String,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ChaosConfig {
    /// The chaos plugin on `Append` events, granted `log`, with the
    /// pipeline's defaults for tests (batches of 500, 10 ms linger) and no
    /// source yet.
    pub fn new() -> Self {
        Self {
            events: vec!["Append".into()],
            tables: vec!["log".into()],
            plugin: String::new(),
            pipeline: "batch_size = 500\nlinger_ms = 10\n".into(),
            extra: String::new(),
            source: String::new(),
        }
    }

    /// The event types routed to the plugin.
    pub fn events(mut self, events: &[&str]) -> Self {
        self.events = events.iter().map(|e| (*e).to_owned()).collect();
        self
    }

    /// The tables granted to the plugin.
    pub fn tables(mut self, tables: &[&str]) -> Self {
        self.tables = tables.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// More keys of the plugin's table (`max_attempts = 1`, …).
    pub fn plugin(mut self, keys: &str) -> Self {
        self.plugin.push_str(keys);
        self.plugin.push('\n');
        self
    }

    /// The keys of `[pipeline]` instead of the defaults.
    pub fn pipeline(mut self, keys: &str) -> Self {
        self.pipeline = format!("{keys}\n");
        self
    }

    /// Whole tables added to the file (`[pipeline.retry]`, `[api]`, …).
    pub fn with(mut self, tables: &str) -> Self {
        self.extra.push_str(tables);
        self.extra.push('\n');
        self
    }

    /// A Kafka source `src` on `topic` of `bootstrap`, with more keys.
    pub fn kafka(mut self, bootstrap: &str, topic: &str, keys: &str) -> Self {
        self.source = format!(
            "[[sources]]\nname = \"src\"\nkind = \"kafka\"\nbrokers = \"{bootstrap}\"\ntopics = [\"{topic}\"]\n{keys}\n"
        );
        self
    }

    /// An HTTP feed source `feed` at `url`, with more keys.
    pub fn feed(mut self, url: &str, keys: &str) -> Self {
        self.source = format!(
            "[[sources]]\nname = \"feed\"\nkind = \"http-feed\"\nurl = \"{url}\"\n{keys}\n"
        );
        self
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[store]\npath = \"ferry.db\"\n\n[pipeline]\n{pipeline}\n{extra}\n[[plugins]]\nname = \"chaos\"\npath = {{chaos}}\nevents = [{events}]\ntables = [{tables}]\n{plugin}\n{source}",
            pipeline = self.pipeline,
            extra = self.extra,
            events = list(&self.events),
            tables = list(&self.tables),
            plugin = self.plugin,
            source = self.source,
        )
    }

    /// Writes it as `config.toml` of `ws` (see [`Workspace::config`]).
    pub fn write(&self, ws: &Workspace) -> PathBuf {
        ws.config(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_parses_as_a_ferry_config() {
        let text = ChaosConfig::new()
            .events(&["Append", "FailKey"])
            .plugin("max_attempts = 1")
            .with("[pipeline.retry]\ninitial_backoff_ms = 10")
            .kafka(
                "127.0.0.1:9092",
                "events",
                "mode = \"group\"\ngroup_id = \"g\"",
            )
            .text()
            .replace("{chaos}", "\"chaos.wasm\"");
        let c = ferry::config::Config::parse(&text, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.plugins[0].events, ["Append", "FailKey"]);
        assert_eq!(c.plugins[0].max_attempts, 1);
        assert_eq!(c.pipeline.retry.initial_backoff_ms, 10);
        assert_eq!(c.sources.len(), 1);
    }
}
