//! `brokers = "embedded"`: librdkafka's in-process mock cluster (a real
//! Kafka-protocol listener on a loopback port, so any Kafka client can
//! produce to it) and a sample publisher playing Catalog.
//!
//! The mock cluster keeps only about the newest 5 MB / 100k message sets
//! per partition; it is a demo and test broker, not storage.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::config::EmbeddedConfig;

/// The running embedded broker (and publisher, if enabled).
pub struct Embedded {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bootstrap: String,
    publisher: Option<Publisher>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// Starts a one-broker mock cluster with `topics`, each with
    /// `config.partitions` partitions.
    pub fn start(config: &EmbeddedConfig, topics: &[String]) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(1).context("starting the embedded Kafka broker")?;
        for t in topics {
            cluster
                .create_topic(t, config.partitions, 1)
                .with_context(|| format!("creating topic `{t}` on the embedded broker"))?;
        }
        let bootstrap = cluster.bootstrap_servers();
        Ok(Self {
            cluster,
            bootstrap,
            publisher: None,
        })
    }

    /// `host:port` of the embedded broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The mock cluster (for fault injection in tests).
    pub fn cluster(&self) -> &MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        &self.cluster
    }

    /// Starts the sample Catalog publisher on `topic`.
    pub fn start_publisher(&mut self, config: &EmbeddedConfig, topic: &str) -> anyhow::Result<()> {
        self.publisher = Some(Publisher::start(
            &self.bootstrap,
            topic,
            config.publish_rate,
            config.games,
        )?);
        Ok(())
    }

    /// Events the publisher has produced so far.
    pub fn published(&self) -> u64 {
        self.publisher
            .as_ref()
            .map_or(0, |p| p.sent.load(Ordering::Relaxed))
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.stop();
        }
    }
}

/// A background thread producing Catalog's game events.
struct Publisher {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    fn start(bootstrap: &str, topic: &str, rate: u32, games: u32) -> anyhow::Result<Self> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .create()
            .context("creating the sample publisher")?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, count, topic) = (Arc::clone(&stop), Arc::clone(&sent), topic.to_owned());
        let thread = std::thread::Builder::new()
            .name("ferry-publisher".into())
            .spawn(move || publish(&producer, &topic, rate, games, &flag, &count))?;
        Ok(Self {
            stop,
            sent,
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stable UUID for game number `n`.
pub fn game_id(n: u32) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        0x6a3e_0000u32 | (n >> 16),
        u64::from(n)
    )
}

/// One Catalog event: `(event type, key, JSON payload)`.
pub fn catalog_event(
    rng: &mut impl Rng,
    live: &mut BTreeSet<u32>,
    games: u32,
) -> (&'static str, String, String) {
    let n = rng.random_range(0..games.max(1));
    let id = game_id(n);
    if !live.contains(&n) {
        live.insert(n);
        let cents: u32 = rng.random_range(99..9_999);
        let payload = format!(
            r#"{{"id":"{id}","name":"Game {n}","price":{}.{:02},"imageUri":"https://catalog.example/img/{n}.png"}}"#,
            cents / 100,
            cents % 100
        );
        return ("GameCreated", id, payload);
    }
    if rng.random_range(0..10) == 0 {
        live.remove(&n);
        return ("GameDeleted", id.clone(), format!(r#"{{"id":"{id}"}}"#));
    }
    let cents: u32 = rng.random_range(99..9_999);
    let payload = format!(
        r#"{{"id":"{id}","name":"Game {n} (rev {})","price":{}.{:02},"imageUri":"https://catalog.example/img/{n}.png"}}"#,
        rng.random_range(1..100),
        cents / 100,
        cents % 100
    );
    ("GameUpdated", id, payload)
}

fn publish(
    producer: &BaseProducer,
    topic: &str,
    rate: u32,
    games: u32,
    stop: &AtomicBool,
    sent: &AtomicU64,
) {
    let mut rng = rand::rng();
    let mut live = BTreeSet::new();
    let start = Instant::now();
    let mut produced: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        if produced >= due {
            producer.poll(Duration::from_millis(5));
            continue;
        }
        let (ty, key, payload) = catalog_event(&mut rng, &mut live, games);
        let headers = OwnedHeaders::new().insert(Header {
            key: "event-type",
            value: Some(ty),
        });
        let record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        match producer.send(record) {
            Ok(()) => {
                produced += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                tracing::debug!(error = %e, "The sample publisher's queue is full; waiting.");
                producer.poll(Duration::from_millis(50));
            }
        }
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(5));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_events_create_before_they_update_or_delete() {
        let mut rng = rand::rng();
        let mut live = BTreeSet::new();
        let mut created = BTreeSet::new();
        for _ in 0..2_000 {
            let (ty, key, payload) = catalog_event(&mut rng, &mut live, 50);
            assert!(payload.contains(&key));
            match ty {
                "GameCreated" => {
                    created.insert(key);
                }
                _ => assert!(created.contains(&key), "{ty} before create"),
            }
        }
        assert_eq!(game_id(1).len(), 36);
    }
}
