//! `ferry check` lists every problem at once.

use std::time::Duration;

use ferry_tests::Workspace;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn three_mistakes_are_all_reported() {
    let ws = Workspace::new();
    ws.config(
        r#"
[pipeline]
batch_size = 0

[[plugins]]
name = "games"
path = {games}
events = ["GameCreated"]
tables = ["games", "ferry_checkpoints"]

[[plugins]]
name = "broken"
path = "does-not-exist.wasm"
events = ["GameCreated"]
"#,
    );
    let out = ws.ferry(&["check", "--config", "config.toml"], LIMIT);
    assert_eq!(out.code(), 1, "{out:#?}");
    let s = &out.stdout;
    assert!(
        s.contains("pipeline.batch_size must be between 1 and 100000, not 0"),
        "{s}"
    );
    assert!(
        s.contains("plugins[0].tables: `ferry_checkpoints` is reserved"),
        "{s}"
    );
    assert!(
        s.contains("event type `GameCreated` is claimed by both `games` and `broken`"),
        "{s}"
    );
    assert!(
        s.contains("plugin `broken`: cannot read") && s.contains("does-not-exist.wasm"),
        "{s}"
    );
    assert!(s.contains("has 4 problem(s)"), "{s}");
}

#[test]
fn an_unknown_key_is_named_with_its_path_among_the_other_problems() {
    let ws = Workspace::new();
    ws.config("[store]\npaht = \"x.db\"\n[api]\nlisten = 5\n");
    let out = ws.ferry(&["check", "--config", "config.toml"], LIMIT);
    assert_eq!(out.code(), 1, "{out:#?}");
    let s = &out.stdout;
    assert!(s.contains("store.paht: unknown key"), "{out:#?}");
    assert!(s.contains("api.listen"), "{out:#?}");
    assert!(
        s.contains("plugins: at least one [[plugins]] entry is needed"),
        "{out:#?}"
    );
    assert!(s.contains("has 3 problem(s)"), "{out:#?}");
}

#[test]
fn a_good_config_lists_its_plugins() {
    let ws = Workspace::new();
    ws.config(
        r#"
[[plugins]]
name = "games"
path = {games}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#,
    );
    let out = ws.ferry(&["check", "--config", "config.toml"], LIMIT);
    assert_eq!(out.code(), 0, "{out:#?}");
    assert!(
        out.stdout.contains("plugin games 0.1.0 (sha256:")
            && out.stdout.contains(", ferry:plugin@0.2.0): handles"),
        "{}",
        out.stdout
    );
}
