//! The plugin call in progress: its deadline, and what makes it
//! deterministic. Inside a call the plugin's random numbers come from a
//! generator seeded with the plugin's digest and the call's identity (for
//! `handle`, the event's source, partition and offset), and its clocks read
//! the event's timestamp, so the same events through the same plugin
//! version give the same table, byte for byte (`ferry rebuild`, replays).
//! A plugin granted the host clock (`clock = "host"`) reads real time
//! instead.
//!
//! The generator is SHA-256 in counter mode over the seed: a fixed,
//! documented algorithm, so a rebuild by a later ferry gives the same
//! numbers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::event::Position;

/// Time a plugin call may go on past its deadline before its sleep or
/// poll returns: two ticks of the epoch that interrupts the guest, so the
/// guest finds its deadline passed as soon as it runs again.
pub const SLEEP_SLACK: Duration = Duration::from_millis(10);

/// The wall-clock time a plugin sees when its call has no event time (an
/// event without a timestamp, `migrate`, a query): the Unix epoch.
pub const NO_EVENT_TIME_MS: i64 = 0;

/// What a call is for; seeds its random numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// `handle` of the event at this position, produced at this time.
    Event(Position, Option<i64>),
    /// `migrate`.
    Migrate,
    /// A read-API query function.
    Query(String),
    /// Instantiation and `metadata`.
    Load,
}

/// The call in progress, or the last one.
#[derive(Debug)]
pub struct CallContext {
    digest: Arc<str>,
    host_clock: bool,
    /// Largest random request, in bytes (the memory cap).
    pub max_random: u64,
    purpose: Purpose,
    deadline: Option<Instant>,
    rng: Option<Generator>,
}

impl CallContext {
    /// The context of plugin version `digest`'s calls; `host_clock` grants
    /// real time.
    pub fn new(digest: Arc<str>, host_clock: bool, max_random: u64) -> Self {
        Self {
            digest,
            host_clock,
            max_random,
            purpose: Purpose::Load,
            deadline: None,
            rng: None,
        }
    }

    /// A new call for `purpose`, ending at `deadline`.
    pub fn begin(&mut self, purpose: Purpose, deadline: Option<Instant>) {
        self.purpose = purpose;
        self.deadline = deadline;
        self.rng = None;
    }

    /// The call's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The event being handled, for log lines.
    pub fn event(&self) -> Option<&Position> {
        match &self.purpose {
            Purpose::Event(p, _) => Some(p),
            _ => None,
        }
    }

    /// What the plugin's wall clock reads: the event's timestamp (or
    /// [`NO_EVENT_TIME_MS`]), or real time with the host-clock grant.
    pub fn now_ms(&self) -> i64 {
        if self.host_clock {
            return crate::event::now_ms();
        }
        match &self.purpose {
            Purpose::Event(_, Some(t)) => *t,
            _ => NO_EVENT_TIME_MS,
        }
    }

    /// How long a sleep or poll asked for `asked` may really last: never
    /// past the deadline (plus [`SLEEP_SLACK`]).
    pub fn bounded(&self, asked: Duration) -> Duration {
        match self.deadline {
            Some(d) => asked.min(
                d.saturating_duration_since(Instant::now())
                    .saturating_add(SLEEP_SLACK),
            ),
            None => asked,
        }
    }

    /// The call's random generator, seeded on first use.
    pub fn rng(&mut self) -> &mut Generator {
        let (digest, purpose) = (&self.digest, &self.purpose);
        self.rng
            .get_or_insert_with(|| Generator::new(&seed(digest, purpose)))
    }

    /// The plugin version's hash seed (`wasi:random/insecure-seed`): the
    /// same for every instance of a version.
    pub fn insecure_seed(&self) -> (u64, u64) {
        let h = Sha256::new()
            .chain_update(b"ferry insecure-seed\0")
            .chain_update(self.digest.as_bytes())
            .finalize();
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        (word(0), word(8))
    }
}

fn seed(digest: &str, purpose: &Purpose) -> [u8; 32] {
    let mut h = Sha256::new()
        .chain_update(b"ferry random\0")
        .chain_update(digest.as_bytes())
        .chain_update([0]);
    match purpose {
        Purpose::Event(p, _) => {
            h.update(b"event\0");
            h.update(p.source.as_bytes());
            h.update([0]);
            h.update(p.partition.to_le_bytes());
            h.update(p.offset.to_le_bytes());
        }
        Purpose::Migrate => h.update(b"migrate"),
        Purpose::Query(name) => {
            h.update(b"query\0");
            h.update(name.as_bytes());
        }
        Purpose::Load => h.update(b"load"),
    }
    h.finalize().into()
}

/// SHA-256 in counter mode: block `n` is `sha256(seed || n as u64 LE)`.
#[derive(Debug)]
pub struct Generator {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl Generator {
    fn new(seed: &[u8; 32]) -> Self {
        Self {
            seed: *seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == self.block.len() {
                self.block = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize()
                    .into();
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }

    /// The next 64 bits of the stream.
    pub fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> Purpose {
        Purpose::Event(
            Position {
                source: "s".into(),
                partition: 0,
                offset,
            },
            Some(1_700_000_000_000),
        )
    }

    #[test]
    fn the_same_event_and_version_give_the_same_numbers() {
        let mut a = CallContext::new("sha256:a".into(), false, 1 << 20);
        let mut b = CallContext::new("sha256:a".into(), false, 1 << 20);
        a.begin(at(7), None);
        b.begin(at(7), None);
        let (x, y) = (a.rng().next_u64(), b.rng().next_u64());
        assert_eq!(x, y);
        b.begin(at(8), None);
        assert_ne!(x, b.rng().next_u64(), "another event, other numbers");
        let mut c = CallContext::new("sha256:c".into(), false, 1 << 20);
        c.begin(at(7), None);
        assert_ne!(x, c.rng().next_u64(), "another version, other numbers");
        assert_eq!(a.insecure_seed(), b.insecure_seed());
        assert_ne!(a.insecure_seed(), c.insecure_seed());
    }

    #[test]
    fn the_clock_reads_the_event_time_unless_the_host_clock_is_granted() {
        let mut c = CallContext::new("d".into(), false, 0);
        c.begin(at(1), None);
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        c.begin(Purpose::Migrate, None);
        assert_eq!(c.now_ms(), NO_EVENT_TIME_MS);
        let mut h = CallContext::new("d".into(), true, 0);
        h.begin(at(1), None);
        assert!(h.now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn sleeps_end_at_the_deadline() {
        let mut c = CallContext::new("d".into(), false, 0);
        c.begin(
            Purpose::Load,
            Some(Instant::now() + Duration::from_millis(20)),
        );
        assert!(c.bounded(Duration::from_secs(3600)) <= Duration::from_millis(30));
        assert_eq!(
            c.bounded(Duration::from_millis(1)),
            Duration::from_millis(1)
        );
        c.begin(Purpose::Load, None);
        assert_eq!(c.bounded(Duration::from_secs(9)), Duration::from_secs(9));
    }

    #[test]
    fn the_stream_does_not_depend_on_how_it_is_read() {
        let mut one = Generator::new(&[7; 32]);
        let mut whole = [0u8; 100];
        one.fill(&mut whole);
        let mut two = Generator::new(&[7; 32]);
        let mut parts = [0u8; 100];
        let (a, b) = parts.split_at_mut(33);
        two.fill(a);
        two.fill(b);
        assert_eq!(whole, parts);
    }
}
