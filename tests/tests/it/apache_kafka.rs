//! End to end against Apache Kafka itself (a single-node KRaft broker that
//! `scripts/test` starts from Maven Central's jars; `FERRY_KAFKA`), with
//! events produced by kafka-python and read back by Kafka's own console
//! consumer: restarts inside multi-record batches, group members killed
//! and rejoining, dead-letter topics, retention, re-created topics,
//! transactions and compaction, the embedded broker's hint, and a broker
//! that is down.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use ferry_tests::apache::{self, CHAOS, GAMES, Rec, appends, applied};
use ferry_tests::games::{game_id, games, workload};
use ferry_tests::kafka::{Running, checkpoints, wait_for};
use ferry_tests::{Workspace, api_addr, count, http_get, repo_root, run_bounded};

const MINUTE: Duration = Duration::from_secs(60);

fn key(topic: &str) -> String {
    format!("src/{topic}")
}

/// Whether `db`'s checkpoints reached the end of every partition of
/// `topic` (the last offset that holds an event, end - 1, or further when
/// transaction markers follow it).
fn caught_up(db: &std::path::Path, topic: &str, ends: &BTreeMap<i32, (i64, i64)>) -> bool {
    let c = checkpoints(db, &key(topic));
    ends.iter()
        .all(|(p, (start, end))| end <= start || c.get(p).is_some_and(|o| *o >= end - 1))
}

fn sources(addr: &str) -> serde_json::Value {
    let (_, body) = http_get(addr, "/sources").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Every `n` applied in `db`, checked to be applied once and in order per
/// key (`keys` keys, key of `n` = `n % keys`).
fn once_in_order(db: &rusqlite::Connection, keys: i64) -> BTreeSet<i64> {
    let all = applied(db);
    let set: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "an event was applied twice");
    let mut last: HashMap<i64, i64> = HashMap::new();
    for n in all {
        if let Some(prev) = last.insert(n % keys, n) {
            assert!(n > prev, "key {}: {n} applied after {prev}", n % keys);
        }
    }
    set
}

/// `(base offset, last offset)` of every record batch of `partition` of
/// `topic`, from the broker's own log (Kafka's `DumpLogSegments`).
fn record_batches(topic: &str, partition: i32) -> Vec<(i64, i64)> {
    let dir = std::env::var("FERRY_KAFKA_DIR").expect("FERRY_KAFKA_DIR (set by scripts/test)");
    let part = std::path::Path::new(&dir)
        .join("data")
        .join(format!("{topic}-{partition}"));
    let mut files: Vec<_> = std::fs::read_dir(&part)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let o = run_bounded(
            Command::new(repo_root().join("scripts/kafka")).args([
                "run",
                "org.apache.kafka.tools.DumpLogSegments",
                "--files",
                f.to_str().unwrap(),
            ]),
            MINUTE,
        );
        for line in o.stdout.lines() {
            let field = |name: &str| {
                line.split(name)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|v| v.parse::<i64>().ok())
            };
            if let (Some(b), Some(l)) = (field("baseOffset: "), field("lastOffset: ")) {
                out.push((b, l));
            }
        }
    }
    assert!(
        !out.is_empty(),
        "DumpLogSegments printed no batches for {}",
        part.display()
    );
    out
}

#[test]
fn sigkills_inside_multi_record_batches_then_a_restart_lose_and_duplicate_nothing() {
    ferry_tests::bounded(Duration::from_secs(600), || {
        let topic = apache::topic("kills");
        apache::create(&topic, 3, &[]);
        let ws = Workspace::new();
        const N: u64 = 12_000;
        const KEYS: u64 = 48;
        // Big producer batches (linger 100 ms, up to 1 MiB): hundreds of
        // records each; ferry commits every 97 events, so its checkpoints
        // fall inside them.
        let mut records = appends(0, N, KEYS);
        records.extend((0..600).map(|i| {
            let (ty, n, payload) = workload(i, 40);
            Rec::new(ty, game_id(n), payload)
        }));
        apache::produce(
            &ws,
            &topic,
            &records,
            &["--linger-ms", "100", "--batch-size", "1048576"],
        );
        let path = apache::config(&ws, &topic, &format!("{CHAOS}\n{GAMES}"), "");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("batch_size = 500", "batch_size = 97");
        std::fs::write(&path, text).unwrap();
        let ends = apache::offsets(&topic);
        let mut restarts: Vec<BTreeMap<i32, i64>> = Vec::new();
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..5 {
            let before = checkpoints(&ws.db(), &key(&topic));
            restarts.push(before.clone());
            let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
            assert!(
                wait_for(MINUTE, || {
                    checkpoints(&ws.db(), &key(&topic)).values().sum::<i64>()
                        > before.values().sum::<i64>()
                        || caught_up(&ws.db(), &topic, &ends)
                }),
                "{}",
                run.output()
            );
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % 150));
            run.kill();
        }
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE * 2, || caught_up(&ws.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        let (status, out) = run.interrupt(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{out}");

        // At least one restart began inside a record batch of the broker's
        // log: the case a broker that mishandles mid-batch fetches stalls on.
        let batches: BTreeMap<i32, Vec<(i64, i64)>> =
            (0..3).map(|p| (p, record_batches(&topic, p))).collect();
        assert!(
            batches.values().flatten().any(|(b, l)| l > b),
            "no multi-record batch: {batches:?}"
        );
        let inside = restarts.iter().flatten().any(|(p, cp)| {
            let next = cp + 1;
            batches[p].iter().any(|(b, l)| *b < next && next <= *l)
        });
        assert!(
            inside,
            "no restart inside a batch: {restarts:?} {batches:?}"
        );

        let got = once_in_order(&ws.open_db(), KEYS as i64);
        assert_eq!(
            got,
            (0..N as i64).collect::<BTreeSet<_>>(),
            "every event, once"
        );
        // The games table equals a clean projection of the same topic.
        let clean = Workspace::new();
        apache::config(&clean, &topic, &format!("{CHAOS}\n{GAMES}"), "");
        let run = Running::start(clean.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || caught_up(&clean.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        drop(run.interrupt(Duration::from_secs(30)));
        assert_eq!(
            games(&ws.open_db()),
            games(&clean.open_db()),
            "byte-identical games table"
        );
    });
}

#[test]
fn group_members_joining_killed_and_rejoining_apply_each_event_once_per_database_and_all_of_them() {
    ferry_tests::bounded(Duration::from_secs(600), || {
        let topic = apache::topic("group");
        apache::create(&topic, 6, &[]);
        let group = apache::topic("ferry-group");
        let extra = format!(
            r#"mode = "group"
group_id = "{group}"
start_without_checkpoint = "committed"
librdkafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}"#
        );
        let members: Vec<Workspace> = (0..3).map(|_| Workspace::new()).collect();
        for m in &members {
            apache::config(m, &topic, CHAOS, &extra);
        }
        let producer = Workspace::new();
        const KEYS: i64 = 36;
        let start =
            |m: &Workspace| Running::start(m.dir.path(), &["run", "--config", "config.toml"]);
        let union = |upto: i64| {
            let mut all = BTreeSet::new();
            for m in &members {
                if m.db().exists()
                    && let Ok(c) = rusqlite::Connection::open_with_flags(
                        m.db(),
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )
                    && let Ok(mut s) = c.prepare("SELECT payload FROM log")
                {
                    let ns: Vec<String> = s
                        .query_map([], |r| r.get(0))
                        .map(|r| r.filter_map(Result::ok).collect())
                        .unwrap_or_default();
                    for p in ns {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&p) {
                            all.insert(v["n"].as_i64().unwrap_or(-1));
                        }
                    }
                }
            }
            (0..upto).all(|n| all.contains(&n))
        };
        let overlap = || {
            let sets: Vec<BTreeSet<i64>> = members
                .iter()
                .filter(|m| m.db().exists())
                .map(|m| applied(&m.open_db()).into_iter().collect())
                .collect();
            let mut seen = BTreeSet::new();
            let mut twice = 0;
            for s in &sets {
                for n in s {
                    if !seen.insert(*n) {
                        twice += 1;
                    }
                }
            }
            twice
        };
        let (a, mut b) = (start(&members[0]), start(&members[1]));
        apache::produce(
            &producer,
            &topic,
            &appends(0, 3_000, KEYS as u64),
            &["--linger-ms", "20"],
        );
        assert!(
            wait_for(MINUTE * 2, || union(3_000)),
            "A: {}\nB: {}",
            a.output(),
            b.output()
        );
        // A third member joins: a rebalance hands partitions over at the
        // offsets the old owners committed, after their SQLite commit.
        let c = start(&members[2]);
        assert!(
            wait_for(MINUTE, || !checkpoints(&members[2].db(), &key(&topic))
                .is_empty()
                || c.output().contains("assigned")),
            "C never got a partition: {}",
            c.output()
        );
        apache::produce(
            &producer,
            &topic,
            &appends(3_000, 3_000, KEYS as u64),
            &["--linger-ms", "20"],
        );
        assert!(wait_for(MINUTE * 2, || union(6_000)));
        assert_eq!(
            overlap(),
            0,
            "a graceful rebalance applied an event in two databases"
        );
        // B dies mid-stream; A and C take its partitions from the group's
        // committed offsets.
        apache::produce(
            &producer,
            &topic,
            &appends(6_000, 3_000, KEYS as u64),
            &["--linger-ms", "20"],
        );
        b.kill();
        assert!(
            wait_for(MINUTE * 2, || union(9_000)),
            "A: {}\nC: {}",
            a.output(),
            c.output()
        );
        // B comes back with its own database.
        b = start(&members[1]);
        apache::produce(
            &producer,
            &topic,
            &appends(9_000, 3_000, KEYS as u64),
            &["--linger-ms", "20"],
        );
        assert!(wait_for(MINUTE * 2, || union(12_000)), "B: {}", b.output());
        for r in [a, b, c] {
            let (status, out) = r.interrupt(Duration::from_secs(30));
            assert!(status.is_some_and(|s| s.success()), "{out}");
        }
        // In every database each event at most once and in key order;
        // together, every event.
        for m in &members {
            once_in_order(&m.open_db(), KEYS);
        }
        assert!(union(12_000));
    });
}

#[test]
fn dead_letters_reach_the_dead_letter_topic_and_kafkas_console_consumer_reads_them() {
    ferry_tests::bounded(Duration::from_secs(300), || {
        let (topic, dlq) = (apache::topic("dl"), apache::topic("dl-out"));
        apache::create(&topic, 2, &[]);
        apache::create(&dlq, 1, &[]);
        let ws = Workspace::new();
        apache::config(
            &ws,
            &topic,
            CHAOS,
            &format!(r#"dead_letter_topic = "{dlq}""#),
        );
        let records: Vec<Rec> = (0..40)
            .map(|i| {
                Rec::new(
                    "FailKey",
                    format!("k{}", i % 4),
                    format!(r#"{{"n":{i},"bad":"k1"}}"#),
                )
            })
            .collect();
        apache::produce(&ws, &topic, &records, &[]);
        let ends = apache::offsets(&topic);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || caught_up(&ws.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        let lines = apache::console_consume(&dlq, 10);
        drop(run.interrupt(Duration::from_secs(30)));
        assert_eq!(lines.len(), 10, "{lines:?}");
        for l in &lines {
            assert!(l.contains("ferry-error-class:permanent"), "{l}");
            assert!(l.contains("ferry-plugin:chaos"), "{l}");
            assert!(l.contains("key k1 is poison"), "{l}");
            assert!(l.contains(r#""bad":"k1""#), "the original payload: {l}");
        }
        assert_eq!(
            count(&ws.open_db(), "SELECT count(*) FROM ferry_dead_letters"),
            10
        );
    });
}

#[test]
fn retention_deleting_unread_events_is_a_gap_dead_letter_from_the_real_broker() {
    ferry_tests::bounded(Duration::from_secs(300), || {
        let topic = apache::topic("retention");
        apache::create(&topic, 1, &["segment.ms=500", "file.delete.delay.ms=0"]);
        let ws = Workspace::new();
        apache::config(&ws, &topic, CHAOS, "");
        apache::produce(&ws, &topic, &appends(0, 100, 4), &[]);
        let ends = apache::offsets(&topic);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || caught_up(&ws.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        drop(run.interrupt(Duration::from_secs(30)));
        // While ferry is down, retention shrinks to a second, 500 more
        // events arrive and retention deletes them (and the first 100)
        // before ferry is back; 300 newer ones stay.
        apache::cli(&["alter", &apache::bootstrap(), &topic, "retention.ms=1000"]);
        apache::produce(&ws, &topic, &appends(100, 500, 4), &[]);
        std::thread::sleep(Duration::from_millis(2_600));
        apache::produce(&ws, &topic, &appends(600, 300, 4), &[]);
        assert!(
            wait_for(MINUTE, || apache::offsets(&topic)[&0].0 >= 600),
            "retention did not delete the segment: {:?}",
            apache::offsets(&topic)
        );
        let ends = apache::offsets(&topic);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || caught_up(&ws.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        drop(run.interrupt(Duration::from_secs(30)));
        let (class, message): (String, String) = ws
            .open_db()
            .query_row(
                r#"SELECT error_class, error_message FROM ferry_dead_letters"#,
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(class, "gap", "{message}");
        let start = ends[&0].0;
        assert!(
            message.contains(&format!("offsets 100 to {}", start - 1)),
            "{message}"
        );
        let got: BTreeSet<i64> = applied(&ws.open_db()).into_iter().collect();
        let want: BTreeSet<i64> = (0..100).chain(start..900).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn a_recreated_topic_stops_the_partition_whose_checkpoint_is_past_the_log_end() {
    ferry_tests::bounded(Duration::from_secs(300), || {
        let topic = apache::topic("recreated");
        apache::create(&topic, 1, &[]);
        let ws = Workspace::new();
        apache::config(&ws, &topic, CHAOS, "");
        apache::produce(&ws, &topic, &appends(0, 50, 2), &[]);
        let ends = apache::offsets(&topic);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || caught_up(&ws.db(), &topic, &ends)),
            "{}",
            run.output()
        );
        drop(run.interrupt(Duration::from_secs(30)));
        apache::delete(&topic);
        apache::create(&topic, 1, &[]);
        apache::produce(&ws, &topic, &appends(1_000, 10, 2), &[]);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        let mut addr = None;
        let stopped = wait_for(MINUTE, || {
            addr = addr.clone().or_else(|| api_addr(&run.output()));
            addr.as_deref().is_some_and(|a| {
                sources(a)
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["state"] == "stopped"))
            })
        });
        let (_, out) = run.interrupt(Duration::from_secs(30));
        assert!(stopped, "{out}");
        assert!(
            out.contains("past the log end") || out.contains("re-created"),
            "{out}"
        );
        assert_eq!(
            applied(&ws.open_db()).len(),
            50,
            "nothing of the new topic applied"
        );
    });
}

#[test]
fn a_transactional_producer_with_an_aborted_transaction_is_never_applied_and_readers_see_caught_up()
{
    ferry_tests::bounded(Duration::from_secs(300), || {
        let topic = apache::topic("tx");
        apache::create(&topic, 1, &[]);
        let ws = Workspace::new();
        apache::config(&ws, &topic, GAMES, "");
        // Three transactions of 20 games: the second is aborted.
        let records: Vec<Rec> = (0..60)
            .map(|n| {
                let (ty, id, payload) = workload(n, 1_000);
                Rec::new(ty, game_id(id), payload)
            })
            .collect();
        let tid = apache::topic("ferry-tx");
        let (produced, aborted) = apache::produce(
            &ws,
            &topic,
            &records,
            &[
                "--transactional-id",
                &tid,
                "--transaction-size",
                "20",
                "--abort",
                "1",
            ],
        );
        assert_eq!((produced, aborted), (40, 20));
        let ends = apache::offsets(&topic);
        assert!(
            ends[&0].1 > 60,
            "commit and abort markers take up offsets: {ends:?}"
        );
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        let mut addr = None;
        assert!(
            wait_for(MINUTE, || {
                addr = addr.clone().or_else(|| api_addr(&run.output()));
                addr.as_deref().is_some_and(|a| {
                    sources(a)[0]["lag"] == 0
                        && http_get(a, "/health/ready").is_ok_and(|(s, _)| s == 200)
                })
            }),
            "never caught up: {}",
            run.output()
        );
        let a = addr.clone().unwrap();
        // A committed game is there; an aborted one and an unknown one are
        // "does not exist" (404), not "not there yet" (503).
        let get = |n: u64| {
            http_get(
                &a,
                &format!("/plugins/game-projection/query/get-game?id={}", game_id(n)),
            )
            .unwrap()
            .0
        };
        assert_eq!(get(5), 200);
        assert_eq!(get(25), 404, "aborted");
        assert_eq!(get(999), 404, "unknown");
        let (status, out) = run.interrupt(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{out}");
        let ids: BTreeSet<String> = games(&ws.open_db()).into_keys().collect();
        let want: BTreeSet<String> = (0..20).chain(40..60).map(game_id).collect();
        assert_eq!(
            ids, want,
            "the aborted transaction's games were never applied"
        );
    });
}

#[test]
fn a_compacted_topic_read_after_compaction_gives_the_latest_state_across_offset_gaps() {
    ferry_tests::bounded(Duration::from_secs(300), || {
        let topic = apache::topic("compacted");
        apache::create(
            &topic,
            1,
            &[
                "cleanup.policy=compact",
                "segment.ms=200",
                "min.cleanable.dirty.ratio=0.001",
                "min.compaction.lag.ms=0",
                "delete.retention.ms=100",
            ],
        );
        let ws = Workspace::new();
        let mut all = Vec::new();
        for round in 0..6u64 {
            let records: Vec<Rec> = (round * 40..(round + 1) * 40)
                .map(|i| {
                    let (ty, id, payload) = workload(i, 20);
                    Rec::new(ty, game_id(id), payload)
                })
                .collect();
            apache::produce(&ws, &topic, &records, &["--linger-ms", "20"]);
            all.extend(records);
            std::thread::sleep(Duration::from_millis(400));
        }
        assert!(
            wait_for(MINUTE * 2, || apache::count(&topic) < all.len() as u64),
            "the broker did not compact the topic"
        );
        // The reference: every event, replayed.
        let reference = Workspace::new();
        reference.config(GAMES);
        let lines: Vec<String> = all
            .iter()
            .map(|r| {
                serde_json::json!({"type": r.ty, "key": r.key, "payload": serde_json::from_str::<serde_json::Value>(&r.raw).unwrap()})
                    .to_string()
            })
            .collect();
        reference.write("all.jsonl", lines.join("\n"));
        let out = reference.ferry(
            &["replay", "--config", "config.toml", "--events", "all.jsonl"],
            MINUTE,
        );
        assert_eq!(out.code(), 0, "{out:#?}");

        apache::config(&ws, &topic, GAMES, "");
        let ends = apache::offsets(&topic);
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        let mut addr = None;
        assert!(
            wait_for(MINUTE, || {
                addr = addr.clone().or_else(|| api_addr(&run.output()));
                caught_up(&ws.db(), &topic, &ends)
                    && addr.as_deref().is_some_and(|a| {
                        sources(a)[0]["lag"] == 0
                            && http_get(a, "/health/ready").is_ok_and(|(s, _)| s == 200)
                    })
            }),
            "{}",
            run.output()
        );
        let (status, out) = run.interrupt(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{out}");
        let strip = |rows: ferry_tests::games::GameRows| -> Vec<(String, String, String)> {
            rows.into_iter()
                .map(|(id, (name, price, ..))| (id, name, price))
                .collect()
        };
        assert_eq!(
            strip(games(&ws.open_db())),
            strip(games(&reference.open_db()))
        );
        assert_eq!(
            count(&ws.open_db(), "SELECT count(*) FROM ferry_dead_letters"),
            0,
            "no gap"
        );
    });
}

#[test]
fn the_embedded_brokers_hint_is_true_for_the_client_it_names() {
    ferry_tests::bounded(Duration::from_secs(180), || {
        let ws = Workspace::new();
        ws.config(&format!(
            r#"
[store]
path = "ferry.db"
[embedded]
publisher = false
{GAMES}
[[sources]]
name = "catalog"
kind = "kafka"
brokers = "embedded"
topics = ["catalog.games"]
"#
        ));
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        assert!(
            wait_for(MINUTE, || run.output().contains("Producer({")),
            "{}",
            run.output()
        );
        let out = run.output();
        let hint = out.lines().find(|l| l.contains("Producer({")).unwrap();
        assert!(hint.contains("confluent-kafka"), "{hint}");
        let call = &hint[hint.find("Producer(").unwrap()..];
        let id = game_id(7);
        let payload = ferry_tests::games::state(7, "From the hint", 1234);
        let script = format!(
            "from confluent_kafka import Producer\np = {call}\np.produce('catalog.games', key={id:?}, value={payload:?}, headers=[('event-type', b'GameCreated')])\nassert p.flush(30) == 0\n"
        );
        let o = run_bounded(Command::new(apache::python()).args(["-c", &script]), MINUTE);
        assert!(o.status.is_some_and(|s| s.success()), "{o:#?}");
        let a = api_addr(&run.output()).unwrap();
        assert!(wait_for(MINUTE, || {
            http_get(
                &a,
                &format!("/plugins/game-projection/query/get-game?id={id}"),
            )
            .is_ok_and(|(s, b)| s == 200 && b.contains("From the hint"))
        }));
        drop(run.interrupt(Duration::from_secs(30)));
    });
}

#[test]
fn a_broker_that_is_down_is_summarised_in_the_log_and_health_says_why_until_it_is_back() {
    ferry_tests::bounded(Duration::from_secs(300), || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let topic = "ferry-down";
        let ws = Workspace::new();
        ws.config(&format!(
            r#"
[store]
path = "ferry.db"
[runtime]
progress_interval_ms = 0
{CHAOS}
[[sources]]
name = "src"
kind = "kafka"
brokers = "127.0.0.1:{port}"
topics = ["{topic}"]
"#
        ));
        let run = Running::start(ws.dir.path(), &["run", "--config", "config.toml"]);
        // Health answers from the first moment, and says why it is not ready.
        let mut addr = None;
        assert!(
            wait_for(Duration::from_secs(5), || {
                addr = addr.clone().or_else(|| api_addr(&run.output()));
                addr.is_some()
            }),
            "{}",
            run.output()
        );
        let a = addr.unwrap();
        let (status, why) = http_get(&a, "/health/ready").unwrap();
        assert_eq!(status, 503, "{why}");
        assert!(
            wait_for(Duration::from_secs(15), || http_get(&a, "/health/ready")
                .is_ok_and(|(_, b)| b.contains(&format!(
                    "cannot reach the Kafka brokers at 127.0.0.1:{port}"
                )))),
            "{:?}",
            http_get(&a, "/health/ready")
        );
        std::thread::sleep(Duration::from_secs(7));
        let client_lines = |out: &str| {
            out.lines()
                .filter(|l| {
                    l.contains("Kafka client")
                        || l.contains("librdkafka")
                        || l.contains("AllBrokersDown")
                })
                .count()
        };
        let early = run.output();
        assert!(client_lines(&early) <= 3, "the log floods:\n{early}");
        // The broker comes up on that port.
        let dir = Workspace::new();
        let started = run_bounded(
            Command::new(repo_root().join("scripts/kafka"))
                .args(["start", dir.dir.path().to_str().unwrap()])
                .env("FERRY_KAFKA_PORT", port.to_string()),
            Duration::from_secs(120),
        );
        assert!(started.status.is_some_and(|s| s.success()), "{started:#?}");
        let stop = || {
            let _ = run_bounded(
                Command::new(repo_root().join("scripts/kafka"))
                    .args(["stop", dir.dir.path().to_str().unwrap()]),
                MINUTE,
            );
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let b = format!("127.0.0.1:{port}");
            apache::cli(&["create", &b, topic, "1"]);
            let records =
                serde_json::json!({"type": "Append", "key": "k", "raw": "{\"n\":1}"}).to_string();
            let f = ws.write("one.jsonl", records);
            apache::cli(&["produce", &b, topic, f.to_str().unwrap()]);
            assert!(
                wait_for(MINUTE, || http_get(&a, "/health/ready")
                    .is_ok_and(|(s, _)| s == 200)),
                "{:?}\n{}",
                http_get(&a, "/health/ready"),
                run.output()
            );
        }));
        let (_, out) = run.interrupt(Duration::from_secs(30));
        stop();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
        // The connection problem cleared once; any other problem on the way
        // (the topic not created yet) cleared while running, not at the stop.
        let running = out.split("Stopping:").next().unwrap_or(&out);
        let cleared = |l: &&str| l.contains("The Kafka client's problem has cleared");
        assert_eq!(
            running
                .lines()
                .filter(cleared)
                .filter(|l| l.contains("cannot reach the Kafka brokers"))
                .count(),
            1,
            "{out}"
        );
        assert_eq!(
            running.lines().filter(cleared).count(),
            running
                .matches("The Kafka client reports a problem")
                .count(),
            "{out}"
        );
        assert_eq!(applied(&ws.open_db()), [1]);
    });
}
