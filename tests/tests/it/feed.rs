//! The HTTP event feed source (issue 6) against a test feed server on
//! loopback serving the seed shape: restarts, 503/429 with Retry-After,
//! garbage, gaps, a 404 and a SIGKILL of ferry lose and duplicate nothing;
//! the same events from Kafka and from the feed give identical tables.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_tests::feed::{Feed, FeedServer, Mode};
use ferry_tests::games::{self, workload};
use ferry_tests::kafka::{Producer, Running, checkpoints, wait_for};
use ferry_tests::{ChaosConfig, Workspace, api_addr, count, http_get};

fn appends(from: u64, n: u64) -> Vec<(String, serde_json::Value)> {
    (from..from + n)
        .map(|i| ("Append".to_owned(), serde_json::json!({ "n": i })))
        .collect()
}

/// The chaos plugin fed by the test feed at `url`; `extra` goes to the
/// source's table.
fn feed_config(ws: &Workspace, url: &str, extra: &str) {
    ChaosConfig::new()
        .events(&["Append", "Permanent"])
        .plugin("max_attempts = 1")
        .pipeline(
            "batch_size = 40
linger_ms = 5",
        )
        .with(
            "[pipeline.retry]
initial_backoff_ms = 20
max_backoff_ms = 300",
        )
        .feed(
            url,
            &format!(
                "page_size = 25
poll_interval_ms = 50
timeout_ms = 2000
{extra}"
            ),
        )
        .write(ws);
}

fn start(ws: &Workspace) -> Running {
    let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
    assert!(
        wait_for(Duration::from_secs(30), || run
            .output()
            .contains("ferry is running")),
        "{}",
        run.output()
    );
    run
}

fn checkpoint(ws: &Workspace) -> i64 {
    checkpoints(&ws.db(), "feed").get(&0).copied().unwrap_or(-1)
}

/// The projection of a run of `Append` events, checked for exactly-once.
fn assert_appended_exactly_once(ws: &Workspace, n: i64) {
    let c = ws.open_db();
    assert_eq!(count(&c, "SELECT count(*) FROM log"), n, "rows");
    assert_eq!(
        count(&c, "SELECT count(DISTINCT payload) FROM log"),
        n,
        "duplicates"
    );
    let offsets: Vec<i64> = c
        .prepare("SELECT event_offset FROM log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "applied out of order"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM ferry_dead_letters"), 0);
}

/// The feed server restarting, answering 503 and 429 with Retry-After,
/// answering garbage, and ferry itself being SIGKILLed: every event is
/// applied exactly once, in sequence, and Retry-After is honoured.
#[test]
fn a_feed_survives_restarts_throttling_garbage_and_a_sigkill_without_loss_or_duplicates() {
    let feed = Arc::new(Feed::default());
    feed.push(1, appends(0, 300));
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let port = server.addr().port();
    let ws = Workspace::new();
    feed_config(&ws, &server.url(), "");
    let run = start(&ws);
    assert!(
        wait_for(Duration::from_secs(30), || checkpoint(&ws) >= 150),
        "{}",
        run.output()
    );

    // 503 with Retry-After: 2 — ferry comes back after 2 s, not sooner.
    feed.set_mode(Mode::Unavailable(2));
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("status=503")),
        "{}",
        run.output()
    );
    let before = feed.requests.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1_500));
    let during = feed.requests.load(Ordering::Relaxed) - before;
    assert!(
        during <= 1,
        "{during} requests while Retry-After asked for 2 s"
    );
    // Garbage: reported, retried with backoff, nothing applied from it.
    feed.set_mode(Mode::Garbage);
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("not a JSON array")),
        "{}",
        run.output()
    );
    // 429 with Retry-After: 1.
    feed.set_mode(Mode::TooMany(1));
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("status=429")),
        "{}",
        run.output()
    );
    feed.set_mode(Mode::Normal);
    assert!(
        wait_for(Duration::from_secs(30), || checkpoint(&ws) == 300),
        "{}",
        run.output()
    );

    // The server goes away; more events are written meanwhile.
    server.stop();
    feed.push(1, appends(300, 300));
    assert!(
        wait_for(Duration::from_secs(10), || run
            .output()
            .contains("Connection refused")),
        "{}",
        run.output()
    );
    let server = FeedServer::start(Arc::clone(&feed), port);
    // SIGKILL ferry while it catches up, then restart it.
    assert!(
        wait_for(Duration::from_secs(30), || checkpoint(&ws) > 350),
        "checkpoint {}\n{}",
        checkpoint(&ws),
        run.output()
    );
    let out = run.output();
    run.kill();
    assert!(
        out.contains("The feed asked ferry to come back later"),
        "{out}"
    );
    assert!(out.contains("honoured_retry_after=true"), "{out}");
    assert!(out.contains("Reading the feed failed"), "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    let run = start(&ws);
    assert!(
        wait_for(Duration::from_secs(60), || checkpoint(&ws) == 600),
        "{}",
        run.output()
    );
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert_appended_exactly_once(&ws, 600);
    drop(server);
}

/// The same Catalog events through Kafka (one partition, offsets 0…) and
/// through a feed (sequence numbers 0…) give identical `games` tables.
#[test]
fn kafka_and_the_feed_project_the_same_events_into_identical_tables() {
    const N: u64 = 800;
    let cluster = ferry_tests::kafka::cluster("games", 1);
    let bootstrap = cluster.bootstrap_servers();
    let producer = Producer::new(&bootstrap);
    let feed = Arc::new(Feed::default());
    let mut events = Vec::new();
    for i in 0..N {
        let (ty, g, payload) = workload(i, 200);
        producer.send("games", 0, ty, &games::game_id(g), &payload);
        events.push((ty.to_owned(), serde_json::from_str(&payload).unwrap()));
    }
    producer.flush();
    feed.push(0, events);
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let plugin = r#"
[[plugins]]
name = "game-projection"
path = {games}
events = ["GameCreated", "GameUpdated", "GameDeleted"]
tables = ["games"]
"#;
    let via_kafka = Workspace::new();
    via_kafka.config(&format!(
        "{plugin}\n[[sources]]\nname = \"catalog\"\nkind = \"kafka\"\nbrokers = \"{bootstrap}\"\ntopics = [\"games\"]\n"
    ));
    let via_feed = Workspace::new();
    via_feed.config(&format!(
        "{plugin}\n[[sources]]\nname = \"catalog\"\nkind = \"http-feed\"\nurl = \"{}\"\npage_size = 100\npoll_interval_ms = 50\n",
        server.url()
    ));
    let k = start(&via_kafka);
    let f = start(&via_feed);
    let last = (N - 1) as i64;
    assert!(
        wait_for(Duration::from_secs(60), || {
            checkpoints(&via_kafka.db(), "catalog/games").get(&0) == Some(&last)
                && checkpoints(&via_feed.db(), "catalog").get(&0) == Some(&last)
        }),
        "{}\n{}",
        k.output(),
        f.output()
    );
    drop((k, f));
    let (a, b) = (
        games::games(&via_kafka.open_db()),
        games::games(&via_feed.open_db()),
    );
    assert!(a.len() > 100);
    assert_eq!(a, b, "the same events must give the same table");
}

/// A gap in the sequence numbers is waited for; one that fills in time is
/// no problem, one that does not is recorded as a dead letter (class
/// `gap`) where the feed moves past it; an entry without a `name` is a
/// dead letter (class `malformed-envelope`); a 404 stops the source with
/// the feed's answer, visible in `/health/ready` and `/sources`.
#[test]
fn gaps_malformed_entries_and_a_404_get_their_documented_outcomes() {
    let feed = Arc::new(Feed::default());
    feed.push(1, appends(0, 40));
    feed.push(1, [(String::new(), serde_json::json!({ "n": 40 }))]);
    feed.push(1, appends(41, 19));
    *feed.hidden.lock().unwrap() = vec![8, 30];
    let server = FeedServer::start(Arc::clone(&feed), 0);
    let ws = Workspace::new();
    feed_config(&ws, &server.url(), "gap_timeout_ms = 1500");
    let run = start(&ws);
    let addr = api_addr(&run.output()).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(&ws) == 7),
        "{}",
        run.output()
    );
    // Waiting for 8: nothing past it yet.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(checkpoint(&ws), 7, "went past a gap without waiting");
    let sources = http_get(&addr, "/sources").unwrap().1;
    assert!(
        sources.contains("sequence number 8 is missing"),
        "{sources}"
    );
    // 8 never appears; 30 appears while ferry waits for it.
    assert!(
        wait_for(Duration::from_secs(10), || http_get(&addr, "/sources")
            .unwrap()
            .1
            .contains("sequence number 30 is missing")),
        "{}",
        run.output()
    );
    feed.hidden.lock().unwrap().retain(|s| *s != 30);
    assert!(
        wait_for(Duration::from_secs(20), || checkpoint(&ws) == 60),
        "{}",
        run.output()
    );
    let c = ws.open_db();
    let letters: Vec<(i64, String, String)> = c
        .prepare(
            r#"SELECT "offset", error_class, error_message FROM ferry_dead_letters ORDER BY 1"#,
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!((letters[0].0, letters[0].1.as_str()), (8, "gap"));
    assert!(
        letters[0].2.contains("sequence number 8 is missing"),
        "{letters:?}"
    );
    assert_eq!(
        (letters[1].0, letters[1].1.as_str()),
        (41, "malformed-envelope")
    );
    assert!(letters[1].2.contains("has no `name`"), "{letters:?}");
    assert_eq!(
        count(&c, "SELECT count(*) FROM log"),
        58,
        "60 entries but the missing 8 and the nameless 41"
    );
    // A 404: the source stops with the feed's answer.
    feed.set_mode(Mode::NotFound);
    feed.push(1, appends(60, 1));
    assert!(
        wait_for(Duration::from_secs(10), || {
            http_get(&addr, "/health/ready")
                .unwrap()
                .1
                .contains("the feed answered 404")
        }),
        "{}\n{}",
        http_get(&addr, "/health/ready").unwrap().1,
        run.output()
    );
    assert!(
        http_get(&addr, "/sources")
            .unwrap()
            .1
            .contains("\"state\":\"stopped\"")
    );
    let (status, out) = run.interrupt(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(out.contains("The feed refused the request"), "{out}");
    drop(server);
}
