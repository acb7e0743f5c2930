//! The benchmark's topic: realistic Game events (~200-byte JSON, key =
//! game id, `event-type` header) spread over the partitions, produced once
//! and read from the beginning by every scenario.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The topic every scenario consumes.
pub const TOPIC: &str = "catalog.games";

/// A deterministic UUID for game `i`.
pub fn game_id(i: u64) -> String {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h & 0xfff) as u16,
        (i & 0xfff) as u16,
        i & 0xffff_ffff_ffff
    )
}

/// Event `n` of the workload over `keys` games: the first event of a game
/// creates it, later ones update it. About 200 bytes of JSON.
pub fn event(n: u64, keys: u64) -> (&'static str, String, String) {
    let g = n % keys;
    let id = game_id(g);
    let ty = if n < keys {
        "GameCreated"
    } else {
        "GameUpdated"
    };
    let payload = format!(
        r#"{{"id":"{id}","name":"Game {g} - Deluxe Edition","price":{}.{:02},"imageUri":"https://cdn.example.com/games/{id}/cover.jpg","rev":{n}}}"#,
        10 + n % 60,
        n % 100
    );
    (ty, id, payload)
}

/// Produces events `0..n` over `keys` games (partitioned by key) and waits
/// for every acknowledgement.
pub fn produce(bootstrap: &str, n: u64, keys: u64) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the workload producer")?;
    for i in 0..n {
        let (ty, key, payload) = event(i, keys);
        let mut record =
            BaseRecord::to(TOPIC)
                .key(&key)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event-type",
                    value: Some(ty),
                }));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the workload")?;
    Ok(())
}
