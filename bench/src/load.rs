//! A producer thread sending Game events at a fixed rate (each stamped with
//! its send time), for the scenarios that measure under offered load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::workload;

/// A running paced producer.
#[derive(Debug)]
pub struct Paced {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Paced {
    /// Sends up to `total` events to `topic` at `rate` per second (keys over
    /// `keys` games), each with its send time as the record timestamp.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        rate: u64,
        total: u64,
        keys: u64,
    ) -> anyhow::Result<Self> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "1")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .context("creating the paced producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, count, topic) = (Arc::clone(&stop), Arc::clone(&sent), topic.to_owned());
        let thread = std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || {
                let started = Instant::now();
                let mut i = 0u64;
                while i < total && !flag.load(Ordering::Relaxed) {
                    let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                    while i < due {
                        let (ty, key, payload) = workload::event(i, keys);
                        let mut record = BaseRecord::to(&topic)
                            .key(&key)
                            .payload(&payload)
                            .timestamp(ferry::event::now_ms())
                            .headers(OwnedHeaders::new().insert(Header {
                                key: "event-type",
                                value: Some(ty),
                            }));
                        loop {
                            match producer.send(record) {
                                Ok(()) => break,
                                Err((_, r)) => {
                                    record = r;
                                    producer.poll(Duration::from_millis(1));
                                }
                            }
                        }
                        i += 1;
                        count.store(i, Ordering::Relaxed);
                    }
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(1));
                }
                producer
                    .flush(Duration::from_secs(60))
                    .context("flushing the paced producer")?;
                Ok(())
            })?;
        Ok(Self {
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// Events sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until everything is sent and acknowledged.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the paced producer panicked"))??;
        }
        Ok(self.sent())
    }
}

impl Drop for Paced {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
