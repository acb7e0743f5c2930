//! librdkafka's own log lines and errors, summarised. A client that cannot
//! reach its brokers reports the same failure many times a second; here a
//! problem is logged once when it starts, then as "… repeated N times in the
//! last 30 s" while it lasts, and once when it clears (a broker answers
//! again, or the problem has not come back for a minute). Lines that are not
//! problems go to the debug log. The source's health says what is wrong
//! meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

/// How often a lasting problem is summarised.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// A problem that has not come back for this long is over.
const QUIET_FOR: Duration = Duration::from_secs(60);

/// Connection failures reported this soon after a broker answered are
/// stale: librdkafka delivers errors it queued before the broker came back
/// (seen: "all brokers down" 0.1 ms after the first answer). A real outage
/// goes on being reported, so it opens its problem a moment later.
const STALE_AFTER_UP: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Problem {
    /// The first line of it, as logged.
    text: String,
    since: Instant,
    last_seen: Instant,
    window_start: Instant,
    repeats: u64,
    /// A failure to reach a broker: over as soon as one answers.
    connection: bool,
}

/// The summarised client log of one Kafka source.
#[derive(Debug)]
pub struct ClientLog {
    source: String,
    brokers: String,
    problems: Mutex<HashMap<String, Problem>>,
    /// When a broker last answered.
    broker_up_at: Mutex<Option<Instant>>,
}

/// Whether a librdkafka error or log facility is about reaching brokers.
fn is_connection(key: &str) -> bool {
    [
        "AllBrokersDown",
        "BrokerTransportFailure",
        "Resolve",
        "Transport",
        "FAIL",
        "metadata",
    ]
    .iter()
    .any(|k| key.contains(k))
}

/// A line's grouping key: every failure to reach a broker is one problem
/// (librdkafka reports it as a log line, a transport error and "all
/// brokers down"); others are their kind and text with numbers (ports,
/// counts, durations) and librdkafka's own repeat counts taken out, so
/// that repeats of one failure fall together.
fn key(kind: &str, text: &str) -> String {
    if is_connection(kind) || is_connection(text) {
        return "connection".to_owned();
    }
    let text = text.split(", ").next().unwrap_or(text);
    let mut k = String::with_capacity(kind.len() + text.len());
    k.push_str(kind);
    k.push(':');
    let mut digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !digits {
                k.push('#');
            }
            digits = true;
        } else {
            digits = false;
            k.push(c);
        }
    }
    k
}

impl ClientLog {
    /// The log of source `source`, whose client connects to `brokers`.
    pub fn new(source: &str, brokers: &str) -> Self {
        Self {
            source: source.to_owned(),
            brokers: brokers.to_owned(),
            problems: Mutex::default(),
            broker_up_at: Mutex::default(),
        }
    }

    /// A librdkafka log line.
    pub fn line(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                self.problem(&key(fac, message), fac, &format!("{fac}: {message}"))
            }
            _ => {
                tracing::debug!(target: "librdkafka", source = %self.source, fac, "{message}");
            }
        }
    }

    /// A librdkafka error callback.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let kind = error
            .rdkafka_error_code()
            .map_or_else(|| "error".to_owned(), |c| format!("{c:?}"));
        self.problem(&key(&kind, reason), &kind, &format!("{error}: {reason}"));
    }

    /// Something ferry itself failed to get from the brokers (metadata).
    pub fn ferry_problem(&self, kind: &str, text: &str) {
        self.problem(&key(kind, text), kind, text);
    }

    /// Ends ferry's own problems of `kind` whose text starts with `prefix`
    /// (the topic it could not find is there now).
    pub fn ferry_resolved(&self, kind: &str, prefix: &str) {
        let mut problems = self.problems.lock();
        problems.retain(|k, p| {
            let over = k.starts_with(&format!("{kind}:")) && p.text.starts_with(prefix);
            if over {
                tracing::info!(source = %self.source, error = %p.text, lasted_s = p.since.elapsed().as_secs(),
                    repeats = p.repeats, "The Kafka client's problem has cleared.");
            }
            !over
        });
    }

    fn problem(&self, key: &str, kind: &str, text: &str) {
        let now = Instant::now();
        let stale = key == "connection"
            && self
                .broker_up_at
                .lock()
                .is_some_and(|up| now.duration_since(up) < STALE_AFTER_UP);
        if stale {
            tracing::debug!(source = %self.source, kind, error = %text,
                "A connection failure queued before a broker answered is not a problem any more.");
            return;
        }
        let mut problems = self.problems.lock();
        match problems.get_mut(key) {
            Some(p) => {
                p.repeats += 1;
                p.last_seen = now;
            }
            None => {
                let text = if key == "connection" {
                    format!("cannot reach the Kafka brokers at {}: {text}", self.brokers)
                } else {
                    text.to_owned()
                };
                tracing::error!(source = %self.source, kind, error = %text,
                    "The Kafka client reports a problem; while it lasts it is summarised every 30 s.");
                problems.insert(
                    key.to_owned(),
                    Problem {
                        text,
                        since: now,
                        last_seen: now,
                        window_start: now,
                        repeats: 0,
                        connection: is_connection(kind),
                    },
                );
            }
        }
        drop(problems);
        self.tick(false);
    }

    /// Summarises lasting problems whose window is over and clears those
    /// that ended: connection problems when `broker_up` (a broker answers),
    /// others after a minute without a repeat.
    pub fn tick(&self, broker_up: bool) {
        let now = Instant::now();
        if broker_up {
            *self.broker_up_at.lock() = Some(now);
        }
        let mut problems = self.problems.lock();
        problems.retain(|_, p| {
            let over = (p.connection && broker_up) || now.duration_since(p.last_seen) >= QUIET_FOR;
            if over {
                tracing::info!(source = %self.source, error = %p.text, lasted_s = p.since.elapsed().as_secs(),
                    repeats = p.repeats, "The Kafka client's problem has cleared.");
                return false;
            }
            if now.duration_since(p.window_start) >= SUMMARY_EVERY {
                if p.repeats > 0 {
                    tracing::warn!(source = %self.source, error = %p.text, repeats = p.repeats,
                        window_s = SUMMARY_EVERY.as_secs(), since_s = p.since.elapsed().as_secs(),
                        "The Kafka client's problem goes on: repeated {} times in the last {} s.",
                        p.repeats, SUMMARY_EVERY.as_secs());
                }
                p.repeats = 0;
                p.window_start = now;
            }
            true
        });
    }

    /// What is wrong now, in words, if anything (for health).
    pub fn current(&self) -> Option<String> {
        let problems = self.problems.lock();
        let mut now: Vec<String> = problems
            .values()
            .map(|p| format!("{} (for {} s)", p.text, p.since.elapsed().as_secs()))
            .collect();
        now.sort();
        (!now.is_empty()).then(|| now.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_failure_queued_before_a_broker_answered_does_not_reopen_the_problem() {
        let log = ClientLog::new("s", "127.0.0.1:1");
        let down = KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown);
        log.error(&down, "1/1 brokers are down");
        log.tick(true);
        assert!(log.current().is_none(), "a broker answered");
        log.error(&down, "1/1 brokers are down");
        assert!(
            log.current().is_none(),
            "stale: delivered right after the answer"
        );
        *log.broker_up_at.lock() = Instant::now().checked_sub(STALE_AFTER_UP);
        log.error(&down, "1/1 brokers are down");
        assert!(
            log.current().is_some(),
            "a real outage later is a problem again"
        );
    }

    #[test]
    fn repeats_of_one_failure_fall_together_and_a_broker_clears_them() {
        let log = ClientLog::new("s", "127.0.0.1:1");
        for port in [1, 2, 3] {
            log.line(
                RDKafkaLogLevel::Error,
                "FAIL",
                &format!("127.0.0.1:{port}/bootstrap: Connect failed after {port}ms"),
            );
        }
        log.error(
            &KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        log.line(RDKafkaLogLevel::Debug, "FETCH", "not a problem");
        assert_eq!(log.problems.lock().len(), 1, "one connection problem");
        assert_eq!(
            log.problems.lock().values().map(|p| p.repeats).sum::<u64>(),
            3
        );
        assert!(
            log.current()
                .unwrap()
                .contains("cannot reach the Kafka brokers at 127.0.0.1:1: FAIL")
        );
        log.tick(false);
        assert_eq!(log.problems.lock().len(), 1, "still going");
        log.tick(true);
        assert!(log.current().is_none(), "a broker answers: over");
    }

    #[test]
    fn a_topic_that_appears_clears_its_own_problem_only() {
        let log = ClientLog::new("s", "127.0.0.1:1");
        log.ferry_problem("topic", "topic `a` does not exist (yet): 3");
        log.ferry_problem("topic", "topic `b` does not exist (yet): 3");
        log.ferry_resolved("topic", "topic `a` ");
        let now = log.current().unwrap();
        assert!(!now.contains("`a`") && now.contains("`b`"), "{now}");
    }

    #[test]
    fn keys_ignore_numbers_and_connection_failures_are_one_problem() {
        assert_eq!(key("THROTTLE", "a:1 b 22ms"), key("THROTTLE", "a:9 b 7ms"));
        assert_ne!(key("SASL", "a"), key("SSL", "a"));
        assert_eq!(key("FAIL", "x"), key("AllBrokersDown", "y"));
    }
}
