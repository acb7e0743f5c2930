//! Clocks and counters: CPU time of this process, medians.

use std::time::Duration;

/// User + system CPU time of this process so far.
pub fn cpu_self() -> Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

#[expect(unsafe_code, reason = "getrusage(2) has no safe wrapper in std")]
fn rusage_cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    unsafe { libc::getrusage(who, &raw mut u) };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A `timeval` as a duration.
pub fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        f64::midpoint(v[m - 1], v[m])
    }
}

/// One run of one scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Events applied.
    pub events: u64,
    /// Wall time from the first poll to the last commit.
    pub wall: Duration,
    /// CPU time spent (process, or the child's for `ferry run`).
    pub cpu: Duration,
    /// Peak RSS in KiB, where measured on its own (the child process).
    pub peak_rss_kib: Option<u64>,
    /// Start of the process to its first applied event (`ferry run`).
    pub first_event: Option<Duration>,
    /// Time spent applying batches (ferry in process only).
    pub applying: Option<Duration>,
}

impl Sample {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// CPU seconds per million events.
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / (self.events.max(1) as f64)
    }
}

/// The `q` quantile of `v` (sorted in place; nearest rank); 0 when empty.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut [3.0], 0.99), 3.0);
    }
}
