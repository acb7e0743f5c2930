//! The health verdicts: live (the loop makes progress) and ready (every
//! partition caught up to within `api.ready_max_lag`).

use std::sync::atomic::Ordering;

use super::status::{Phase, Status};

impl Status {
    /// `Ok` while the loop makes progress: it turned within
    /// `stuck_after_ms`, and if events are waiting on a partition that is
    /// not stopped, a batch committed within it too.
    pub fn live(&self) -> Result<(), String> {
        match self.phase() {
            Phase::Starting => return Err("ferry is starting".to_owned()),
            Phase::Stopped(None) => return Err("ferry has stopped".to_owned()),
            Phase::Stopped(Some(e)) => return Err(format!("ferry stopped: {e}")),
            Phase::Running => {}
        }
        let now = self.now_ms();
        let limit = self.stuck_after.as_millis() as u64;
        let idle = now.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
        if idle > limit {
            return Err(format!(
                "the loop has not turned for {idle} ms (limit {limit} ms)"
            ));
        }
        let waiting: Vec<String> = self
            .partitions
            .lock()
            .iter()
            .filter(|p| p.lag.is_some_and(|l| l > 0))
            .filter(|p| p.state == "running" || p.state == "retrying")
            .map(|p| format!("{}/{}", p.source, p.partition))
            .collect();
        let since = now.saturating_sub(self.last_commit_ms.load(Ordering::Relaxed));
        if !waiting.is_empty() && since > limit {
            return Err(format!(
                "events are waiting on {} but nothing was committed for {since} ms (limit {limit} ms)",
                waiting.join(", ")
            ));
        }
        Ok(())
    }

    /// `Ok` when live, a partition is assigned, none is stopped, fenced or
    /// failing, and every lag is known and at most `ready_max_lag`.
    pub fn ready(&self) -> Result<(), String> {
        self.live()?;
        let sources: Vec<String> = self
            .source_problems()
            .into_iter()
            .map(|(s, why)| format!("source `{s}`: {why}"))
            .collect();
        let parts = self.partitions.lock();
        if parts.is_empty() {
            return Err(match sources.is_empty() {
                true => "no partition is assigned yet".to_owned(),
                false => format!("no partition is assigned yet; {}", sources.join("; ")),
            });
        }
        let mut problems = sources;
        for p in parts.iter() {
            let name = format!("{}/{}", p.source, p.partition);
            match (p.state.as_str(), p.lag) {
                ("stopped" | "fenced" | "failing", _) => problems.push(match &p.detail {
                    Some(d) => format!("{name} is {}: {d}", p.state),
                    None => format!("{name} is {}", p.state),
                }),
                (_, None) => problems.push(format!("{name} has not caught up yet (lag unknown)")),
                (_, Some(l)) if l as u64 > self.ready_max_lag => problems.push(format!(
                    "{name} lags {l} events (limit {})",
                    self.ready_max_lag
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Whether every partition feeding the projections has applied all it
    /// knows of (lag 0 and running): "not found" then means "does not
    /// exist" rather than "not there yet".
    pub fn caught_up(&self) -> bool {
        let parts = self.partitions.lock();
        !parts.is_empty()
            && parts
                .iter()
                .all(|p| p.lag == Some(0) && p.state == "running")
    }

    /// Events not applied yet over every partition, if all lags are known.
    pub fn total_lag(&self) -> Option<i64> {
        self.partitions.lock().iter().map(|p| p.lag).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::ApiConfig;
    use crate::control::PartitionView;
    use crate::pipeline::BatchReport;

    fn status(stuck_ms: u64) -> Status {
        let config = ApiConfig {
            stuck_after_ms: stuck_ms,
            ready_max_lag: 10,
            ..ApiConfig::default()
        };
        let s = Status::new(&config, Arc::default());
        s.set_phase(Phase::Running);
        s
    }

    fn part(lag: Option<i64>, state: &str) -> PartitionView {
        PartitionView {
            source: "s/t".into(),
            partition: 0,
            checkpoint: None,
            lag,
            state: state.into(),
            detail: None,
        }
    }

    fn commit(s: &Status) {
        let mut r = BatchReport::default();
        r.delivery.committed.insert(("s/t".into(), 0), 1);
        s.batch_committed(&r, Duration::from_millis(1));
    }

    #[test]
    fn a_loop_that_stops_turning_or_committing_is_not_live() {
        let s = status(100);
        s.heartbeat();
        assert_eq!(s.ready(), Err("no partition is assigned yet".into()));
        s.set_partitions(vec![part(Some(3), "running")]);
        assert!(s.ready().is_ok());
        std::thread::sleep(Duration::from_millis(150));
        s.heartbeat();
        let e = s.live().unwrap_err();
        assert!(e.contains("nothing was committed"), "{e}");
        assert!(s.ready().is_err());
        commit(&s);
        assert!(s.live().is_ok());
        assert_eq!(s.checkpoint("s/t", 0), Some(1));
        std::thread::sleep(Duration::from_millis(150));
        assert!(s.live().unwrap_err().contains("has not turned"));
    }

    #[test]
    fn stopped_unknown_or_lagging_partitions_are_not_ready() {
        let s = status(10_000);
        s.heartbeat();
        s.set_partitions(vec![part(Some(0), "stopped")]);
        assert!(s.live().is_ok(), "a stopped partition is not a stuck loop");
        assert!(s.ready().unwrap_err().contains("s/t/0 is stopped"));
        s.set_partitions(vec![part(None, "running")]);
        assert!(s.ready().unwrap_err().contains("lag unknown"));
        s.set_partitions(vec![part(Some(11), "running")]);
        assert!(s.ready().unwrap_err().contains("lags 11"));
        assert!(!s.caught_up());
        s.set_partitions(vec![part(Some(0), "running")]);
        assert!(s.caught_up());
    }

    #[test]
    fn a_starting_or_stopped_loop_is_not_live() {
        let s = Status::new(&ApiConfig::default(), Arc::default());
        assert!(s.live().unwrap_err().contains("starting"));
        s.set_phase(Phase::Stopped(Some("boom".into())));
        assert!(s.live().unwrap_err().contains("boom"));
    }
}
