//! `ferry::Runtime` embedded in a host, with the HTTP feed (no broker):
//! runs in the default build, the edge build (`--no-default-features
//! --features http-feed,jit`) and the runtime-only build (`--features
//! http-feed`, with precompiled artifacts). Needs `dist/plugins`
//! (`scripts/build-plugins`). It is a test binary of its own, apart from
//! `tests/tests/it`, because the edge build compiles ferry with other
//! features than the test crate does.

#[path = "support/aot.rs"]
mod aot;
#[path = "../examples/support/feed.rs"]
mod feed;

use std::path::PathBuf;
use std::time::Duration;

use ferry::plugin::{HandleError, Handled};
use ferry::{Event, NativeProjection};

fn plugin() -> PathBuf {
    aot::loadable("game_projection")
}

/// Counts events per type, natively (the host's own code).
struct TypeCounter;

impl NativeProjection for TypeCounter {
    fn version(&self) -> String {
        "1.0.0".into()
    }
    fn schema(&self) -> u32 {
        1
    }
    fn migrate(&mut self, conn: &rusqlite::Connection, _from: Option<u32>) -> Result<(), String> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS seen (event_type TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        )
        .map_err(|e| e.to_string())
    }
    fn handle(
        &mut self,
        conn: &rusqlite::Connection,
        _event: &Event,
        event_type: &str,
    ) -> Result<Handled, HandleError> {
        conn.execute(
            "INSERT INTO seen VALUES (?1, 1) ON CONFLICT (event_type) DO UPDATE SET n = n + 1",
            [event_type],
        )
        .map(|_| Handled::Applied)
        .map_err(|e| HandleError::Permanent(e.to_string()))
    }
}

fn config(url: &str) -> String {
    format!(
        r#"
[[plugins]]
name = "game-projection"
path = {plugin:?}
events = ["GameCreated", "GameUpdated"]
tables = ["games"]

[[sources]]
name = "catalog"
kind = "http-feed"
url = "{url}"
page_size = 64
poll_interval_ms = 50
"#,
        plugin = plugin().display().to_string()
    )
}

/// A host builds a runtime from TOML plus a native projection, runs it on
/// its own Tokio runtime, waits for a consistency token, reads the store,
/// swaps the plugin through the handle, and stops it.
#[test]
fn an_embedded_runtime_projects_a_feed_and_is_controlled_through_its_handle() {
    let events = feed::sample_events(300);
    let deletes = events.iter().filter(|e| e.1 == "GameDeleted").count() as i64;
    let feed = feed::SampleFeed::start(events).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runtime = ferry::Runtime::builder()
            .config_toml(&config(&feed.url()), dir.path())
            .unwrap()
            .store_path(dir.path().join("embedded.db"))
            .native_plugin("counter", &["GameDeleted"], &["seen"], TypeCounter)
            .build()
            .unwrap();
        let handle = runtime.handle();
        assert!(
            handle.api_addr().is_none(),
            "the API is off by default when embedded"
        );
        let running = tokio::spawn(runtime.run());
        handle.wait_running().await.unwrap();
        assert!(
            handle
                .wait_applied("catalog", 0, 300, Duration::from_secs(30))
                .await
        );
        assert!(
            !handle
                .wait_applied("catalog", 0, 301, Duration::from_millis(200))
                .await
        );
        let db = handle.read_only().unwrap();
        let games: i64 = db
            .query_row("SELECT count(*) FROM games", [], |r| r.get(0))
            .unwrap();
        assert_eq!(games, 150);
        let seen: i64 = db
            .query_row(
                "SELECT n FROM seen WHERE event_type = 'GameDeleted'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(seen, deletes);
        let kinds: Vec<(String, &'static str)> = handle
            .plugins()
            .into_iter()
            .map(|p| (p.info.name, p.info.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("game-projection".to_owned(), "wasm"),
                ("counter".to_owned(), "native")
            ]
        );
        // A swap through the handle (same logic, new bytes: the same
        // component with a custom section appended; without a compiler,
        // the artifact of the same projection built on contract 0.1).
        let bytes = if cfg!(feature = "jit") {
            let mut b = std::fs::read(plugin()).unwrap();
            b.extend_from_slice(&[0, 8, 4, b'n', b'o', b't', b'e', 1, 2, 3]);
            b
        } else {
            std::fs::read(aot::loadable("games_v01")).unwrap()
        };
        let a = handle.swap_plugin("game-projection", bytes).await.unwrap();
        assert_ne!(a.old_digest.as_deref(), Some(a.new_digest.as_str()));
        let e = handle.swap_plugin("counter", vec![0, 1]).await.unwrap_err();
        assert!(e.message.contains("native"), "{e}");
        let e = handle
            .swap_plugin("game-projection", b"garbage".to_vec())
            .await
            .unwrap_err();
        let refusal = if cfg!(feature = "jit") {
            "not a valid WebAssembly component"
        } else {
            "compile it with `ferry compile`"
        };
        assert!(e.message.contains(refusal), "{e}");
        handle.stop();
        running.await.unwrap().unwrap();
        assert!(matches!(handle.phase(), ferry::api::Phase::Stopped(None)));
    });
}
