use std::path::Path;

use super::*;

fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("/etc/ferry")).unwrap()
}

const MINIMAL: &str = r#"
[[plugins]]
name = "games"
path = "games.wasm"
events = ["GameCreated"]
tables = ["games"]
"#;

#[test]
fn defaults_and_relative_paths() {
    let c = parse(MINIMAL);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert_eq!(c.pipeline.batch_size, 5000);
    assert_eq!(c.db_path(), Path::new("/etc/ferry/ferry.db"));
    assert_eq!(
        c.component_cache_dir(&c.db_path()),
        Some(Path::new("/etc/ferry/.ferry-cache").to_owned())
    );
    assert_eq!(
        c.resolve(&c.plugins[0].path),
        Path::new("/etc/ferry/games.wasm")
    );
    assert_eq!(c.plugins[0].limits().memory_bytes, 64 << 20);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let e = Config::parse("[pipeline]\nbatch = 3\n", Path::new(".")).unwrap_err();
    assert!(e.contains("unknown field `batch`"), "{e}");
}

#[test]
fn every_problem_is_listed_naming_its_key() {
    let c = parse(
        r#"
[pipeline]
batch_size = 0
linger_ms = 70000

[pipeline.retry]
initial_backoff_ms = 500
max_backoff_ms = 100
jitter = 2.0

[[plugins]]
name = "a b"
path = ""
events = []
tables = ["ferry_x", "bad-name"]
timeout_ms = 0
memory_mb = 0
max_attempts = 0

[[plugins]]
name = "b"
path = "b.wasm"
events = ["E", "E"]
tables = ["t"]

[[plugins]]
name = "c"
path = "c.wasm"
events = ["F"]
tables = ["T"]

[[sources]]
name = "replay"
kind = "kafka"
brokers = ""
topics = ["ok", "bad topic"]
mode = "group"
event_type = { header = "x", pointer = "y" }
librdkafka = { "enable.auto.commit" = "true" }
"#,
    );
    let p = c.validate();
    for expected in [
        "pipeline.batch_size",
        "pipeline.linger_ms",
        "pipeline.retry.max_backoff_ms (100) must not be below pipeline.retry.initial_backoff_ms (500)",
        "pipeline.retry.jitter",
        "plugins[0].name `a b`",
        "plugins[0].path",
        "plugins[0].events (plugin `a b`) must list at least one",
        "plugins[0].tables: `ferry_x` is reserved",
        "plugins[0].tables: `bad-name` is not a plain table name",
        "plugins[0].timeout_ms",
        "plugins[0].memory_mb",
        "plugins[0].max_attempts",
        "plugins[1].events: event type `E` is claimed by both `b` and `b`",
        "plugins[2].tables: table `T` is granted to both `b` and `c`",
        "sources[0].name `replay` is reserved",
        "sources[0].event_type: set either `header` or `pointer`",
        "sources[0].event_type.pointer `y` must be a JSON pointer",
        "sources[0].brokers must name at least one broker",
        "sources[0].topics: `bad topic` is not a valid Kafka topic name",
        "sources[0].group_id is required when mode = \"group\"",
        "sources[0].librdkafka.\"enable.auto.commit\" is not allowed",
    ] {
        assert!(
            p.iter().any(|m| m.contains(expected)),
            "missing {expected:?} in {p:#?}"
        );
    }
    // A build without Kafka also says so.
    let without_kafka = usize::from(!cfg!(feature = "kafka"));
    assert_eq!(p.len(), 21 + without_kafka, "{p:#?}");
}

#[test]
fn a_feed_source_is_validated_naming_every_key() {
    let c = parse(&format!(
        r#"{MINIMAL}
[[sources]]
name = "feed"
kind = "http-feed"
url = "ftp://example.org/events"
page_size = 0
poll_interval_ms = 0
timeout_ms = 0
max_redirects = 50
start_sequence = -1
headers = {{ "bad header" = "x" }}
event_type = {{ header = "x" }}
"#
    ));
    let p = c.validate();
    for expected in [
        "sources[0].url must be an http:// or https:// address",
        "sources[0].page_size",
        "sources[0].poll_interval_ms",
        "sources[0].timeout_ms",
        "sources[0].max_redirects",
        "sources[0].start_sequence",
        "sources[0].headers: `bad header`",
        "sources[0].event_type.header does not apply to a feed",
    ] {
        assert!(
            p.iter().any(|m| m.contains(expected)),
            "missing {expected:?} in {p:#?}"
        );
    }
    let without_feed = usize::from(!cfg!(feature = "http-feed"));
    assert_eq!(p.len(), 8 + without_feed, "{p:#?}");
    let ok = parse(&format!(
        "{MINIMAL}\n[[sources]]\nname = \"feed\"\nkind = \"http-feed\"\nurl = \"https://catalog.example/events?tenant=7\"\n"
    ));
    assert_eq!(ok.validate().len(), without_feed, "{:?}", ok.validate());
}

#[test]
fn an_empty_cache_path_turns_the_cache_off() {
    let c = parse(&format!("{MINIMAL}\n[runtime]\ncomponent_cache = \"\"\n"));
    assert_eq!(c.component_cache_dir(Path::new("x.db")), None);
}

#[test]
#[cfg(feature = "kafka")]
fn the_documented_root_config_toml_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.plugins[0].name, "game-projection");
    assert_eq!(c.sources.len(), 1);
}

#[test]
#[cfg(not(feature = "kafka"))]
fn the_documented_root_config_toml_needs_only_the_kafka_feature() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
    let text = match Config::load(&path) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(
        text.contains("1 problem") && text.contains("cargo feature `kafka`"),
        "{text}"
    );
}

#[test]
fn unknown_keys_are_reported_with_every_other_problem_each_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "{MINIMAL}\ncolour = \"blue\"\n[pipeline]\nbatch_size = 0\nlinger = 3\n[store]\nbusy_timeout_ms = \"soon\"\n"
        ),
    )
    .unwrap();
    let Err(ConfigError::Invalid { problems, .. }) = Config::load(&path) else {
        panic!("accepted")
    };
    for expected in [
        "colour: unknown key",
        "pipeline.linger: unknown key",
        "store.busy_timeout_ms: wrong value",
        "pipeline.batch_size must be between 1 and 100000",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(expected) || p.contains(expected)),
            "missing {expected:?} in {problems:#?}"
        );
    }
}
