//! The outbox publisher: sends a Kafka source's queued dead letters to its
//! dead-letter topic, at least once, and deletes each row only after the
//! broker acknowledged it. Runs on its own thread with its own connection;
//! the SQLite commit that queued a message is the decision, this thread
//! only delivers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::config::KafkaSourceConfig;
use crate::source::Outbox;

/// Messages read from the outbox per round.
const ROUND: usize = 500;
/// Pause when the outbox is empty, and after a failed round.
const IDLE: Duration = Duration::from_millis(200);
const AFTER_FAILURE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Deliveries(Mutex<Vec<(i64, Result<(), String>)>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<i64>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<i64>) {
        let r = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        self.0.lock().push((*id, r));
    }
}

/// A running outbox publisher.
pub struct OutboxPublisher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OutboxPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxPublisher").finish_non_exhaustive()
    }
}

impl OutboxPublisher {
    /// Starts publishing `source`'s outbox rows from the database at
    /// `db_path` to `bootstrap`.
    pub fn start(
        source: &KafkaSourceConfig,
        bootstrap: &str,
        mut outbox: Box<dyn Outbox>,
    ) -> anyhow::Result<Self> {
        let mut config = ClientConfig::new();
        for (k, v) in &source.librdkafka {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .with_context(|| {
                format!(
                    "creating the dead-letter producer of source `{}`",
                    source.name
                )
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let name = source.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ferry-outbox-{name}"))
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match round(outbox.as_mut(), &producer, &name) {
                        Ok(0) => std::thread::sleep(IDLE),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(source = %name, error = %format!("{e:#}"),
                                "Publishing dead letters failed; they stay in the outbox and are sent later.");
                            std::thread::sleep(AFTER_FAILURE);
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for OutboxPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one round; returns how many messages were acknowledged.
fn round(
    outbox: &mut dyn Outbox,
    producer: &BaseProducer<Deliveries>,
    source: &str,
) -> anyhow::Result<usize> {
    let messages = outbox.fetch(source, ROUND).map_err(anyhow::Error::msg)?;
    if messages.is_empty() {
        return Ok(0);
    }
    for m in &messages {
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::with_opaque_to(&m.topic, Box::new(m.id))
            .payload(&m.payload)
            .headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k);
        }
        if let Err((e, _)) = producer.send(record) {
            outbox
                .failed(m.id, &e.to_string())
                .map_err(anyhow::Error::msg)?;
            break;
        }
    }
    // Wait for every acknowledgement (or its failure).
    let _ = producer.flush(Duration::from_secs(30));
    let results = std::mem::take(&mut *producer.context().0.lock());
    let sent: Vec<i64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| *id)
        .collect();
    for (id, r) in &results {
        if let Err(e) = r {
            outbox.failed(*id, e).map_err(anyhow::Error::msg)?;
        }
    }
    outbox.delivered(&sent).map_err(anyhow::Error::msg)?;
    if sent.len() < messages.len() {
        anyhow::bail!(
            "{} of {} dead letters were not acknowledged",
            messages.len() - sent.len(),
            messages.len()
        );
    }
    tracing::debug!(
        source,
        sent = sent.len(),
        "Published dead letters to the dead-letter topic."
    );
    Ok(sent.len())
}
