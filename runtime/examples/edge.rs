//! Embedding ferry in an edge host, without a broker: an HTTP event feed
//! is projected by the game-projection plugin into a local SQLite file,
//! which the host reads directly and through the read API.
//!
//! ```sh
//! scripts/build-plugins
//! cargo run -p ferry --example edge --no-default-features --features http-feed
//! ```
//!
//! It starts a sample feed of its own (so it runs anywhere), builds a
//! [`ferry::Runtime`] from TOML, runs it on a Tokio runtime, waits until
//! the feed's last sequence number is applied, reads the projection, asks
//! the read API for one game, and stops.

#[path = "support/feed.rs"]
mod feed;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

fn plugin() -> PathBuf {
    std::env::var_os("FERRY_PLUGIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/plugins/game_projection.wasm"),
        PathBuf::from,
    )
}

/// `GET path` on the read API.
fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.lines().next().unwrap_or_default().to_owned();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok(format!("{status} {body}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let events = feed::sample_events(500);
    let last = events.last().map_or(0, |e| e.0);
    let feed = feed::SampleFeed::start(events)?;
    let dir = tempfile_dir()?;
    let plugin = plugin();
    anyhow::ensure!(
        plugin.exists(),
        "{} is missing: run scripts/build-plugins first",
        plugin.display()
    );
    let config = format!(
        r#"
[store]
path = "edge.db"

[api]
listen = "127.0.0.1:0"

[[plugins]]
name = "game-projection"
path = {plugin:?}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]

[[sources]]
name = "catalog"
kind = "http-feed"
url = "{url}"
page_size = 100
poll_interval_ms = 200
"#,
        plugin = plugin.display().to_string(),
        url = feed.url(),
    );
    let runtime = ferry::Runtime::builder()
        .config_toml(&config, &dir)?
        .serve_api(true)
        .build()?;
    let handle = runtime.handle();
    let running = tokio::spawn(runtime.run());
    handle.wait_running().await?;
    anyhow::ensure!(
        handle
            .wait_applied("catalog", 0, last, Duration::from_secs(30))
            .await,
        "the feed was not applied within 30 s"
    );
    let db = handle.read_only()?;
    let games: i64 = db.query_row("SELECT count(*) FROM games", [], |r| r.get(0))?;
    let (name, price): (String, String) = db.query_row(
        "SELECT name, price FROM games WHERE id = ?1",
        [feed::game_id(3)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    println!(
        "edge: {games} games projected from the feed (sequence numbers 1..={last}) into {}",
        dir.join("edge.db").display()
    );
    println!("edge: game 3 is {name:?} at {price}");
    if let Some(addr) = handle.api_addr() {
        let answer = get(
            addr,
            &format!(
                "/plugins/game-projection/query/get-game?id={}",
                feed::game_id(3)
            ),
        )?;
        println!("edge: read API get-game: {answer}");
        anyhow::ensure!(answer.contains(" 200 "), "the read API did not find game 3");
    }
    for p in handle.plugins() {
        println!(
            "edge: plugin {} {} ({}), counters {:?}",
            p.info.name, p.info.version, p.info.digest, p.counters
        );
    }
    handle.stop();
    running.await??;
    println!("edge: stopped cleanly");
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-edge-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
