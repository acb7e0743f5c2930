//! Capped exponential backoff with jitter (a plain type: the schedule
//! `[pipeline.retry]` describes, built by `config`).

use std::time::Duration;

use rand::Rng;

/// Delay schedule between attempts at a failing event.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Backoff {
    /// Delays from `initial`, growing by `multiplier` per failed attempt up
    /// to `max`, spread by ±`jitter` (a share of the delay).
    pub fn new(initial: Duration, max: Duration, multiplier: f64, jitter: f64) -> Self {
        Self {
            initial,
            max,
            multiplier,
            jitter,
        }
    }

    /// The delay before attempt `failed + 1`, without jitter:
    /// `min(max, initial * multiplier^(failed - 1))`.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before attempt `failed + 1`, with jitter, never above
    /// `max`.
    pub fn delay(&self, failed: u32) -> Duration {
        let base = self.base_delay(failed).as_secs_f64();
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((base * (1.0 + spread)).max(0.0)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(jitter: f64) -> Backoff {
        Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(1_000),
            2.0,
            jitter,
        )
    }

    #[test]
    fn f12_backoff_grows_exponentially_and_is_capped() {
        let b = b(0.0);
        let ms: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn f12_jitter_stays_within_bounds_and_under_the_cap() {
        let b = b(0.5);
        for n in 1..=10 {
            let base = b.base_delay(n).as_secs_f64();
            for _ in 0..50 {
                let d = b.delay(n).as_secs_f64();
                assert!(
                    d >= base * 0.5 - 1e-9 && d <= (base * 1.5).min(1.0) + 1e-9,
                    "{n}: {d}"
                );
            }
        }
    }
}
