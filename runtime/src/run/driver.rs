//! One turn of the run loop for one source: poll a batch, fence it, apply
//! it in one transaction, then pause, commit or rewind per the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::PipelineConfig;
use crate::control::Status;
use crate::event::Event;
use crate::pipeline::{Backoff, BatchReport, Fences, Pipeline};
use crate::source::Source;

/// Longest wait for the first event of a batch when one source is
/// configured (divided among several, so each gets its turn).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Drives sources through a pipeline, one batch per [`Driver::step`].
#[derive(Debug)]
pub struct Driver {
    batch_size: usize,
    linger: Duration,
    idle: Duration,
    retry: Backoff,
    host_failures: u32,
    events: Vec<Event>,
    fences: Fences,
    status: Option<Arc<Status>>,
    applying: Duration,
}

impl Driver {
    /// A driver with the batch size, linger and retry backoff of `config`.
    pub fn new(config: &PipelineConfig) -> Self {
        Self {
            batch_size: config.batch_size,
            linger: Duration::from_millis(config.linger_ms),
            idle: IDLE_POLL,
            retry: config.retry.backoff(),
            host_failures: 0,
            events: Vec::with_capacity(config.batch_size),
            fences: Fences::new(),
            status: None,
            applying: Duration::ZERO,
        }
    }

    /// Takes new batch settings (a configuration reload).
    pub fn reconfigure(&mut self, config: &PipelineConfig) {
        self.batch_size = config.batch_size;
        self.linger = Duration::from_millis(config.linger_ms);
        self.retry = config.retry.backoff();
    }

    /// Shares the idle wait among `sources` sources.
    pub fn for_sources(mut self, sources: usize) -> Self {
        let n = u32::try_from(sources.max(1)).unwrap_or(u32::MAX);
        self.idle = (IDLE_POLL / n).max(Duration::from_millis(5));
        self
    }

    /// Also records every committed batch (time, duration, events) in
    /// `status`.
    pub fn with_status(mut self, status: Arc<Status>) -> Self {
        self.status = Some(status);
        self
    }

    /// Time spent inside batch transactions so far (applying, not
    /// polling).
    pub fn applying(&self) -> Duration {
        self.applying
    }

    /// Polls one batch from `source` and applies it. Returns the report of
    /// a committed batch, `None` when nothing was polled or the batch was
    /// rolled back (its partitions then start again from it after a pause).
    pub fn step(
        &mut self,
        source: &mut dyn Source,
        pipeline: &mut Pipeline,
    ) -> Option<BatchReport> {
        source.tick();
        self.events.clear();
        self.fences.clear();
        source.poll(
            &mut self.events,
            &mut self.fences,
            self.batch_size,
            self.idle,
            self.linger,
        );
        if self.events.is_empty() {
            return None;
        }
        let began = Instant::now();
        let applied = pipeline.apply_fenced(&self.events, &self.fences);
        self.applying += began.elapsed();
        match applied {
            Ok(report) => {
                self.host_failures = 0;
                if let Some(s) = &self.status {
                    s.batch_committed(&report, began.elapsed());
                }
                source.after_batch(&report.delivery);
                Some(report)
            }
            Err(e) => {
                self.host_failures += 1;
                let delay = self.retry.delay(self.host_failures);
                tracing::error!(source = source.name(), error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                    "A batch could not be committed; nothing of it was applied, and its partitions start again from it after a pause.");
                source.rewind(&self.events, delay);
                None
            }
        }
    }
}
