//! One turn of `ferry run`'s loop for one source: poll a batch, fence it,
//! apply it in one transaction, then pause, commit or rewind per the
//! result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::Status;
use crate::config::PipelineConfig;
use crate::pipeline::{Backoff, BatchReport, Pipeline};
use crate::source::kafka::{KafkaSource, Polled};

/// Drives sources through a pipeline, one batch per [`Driver::step`].
#[derive(Debug)]
pub struct Driver {
    batch_size: usize,
    linger: Duration,
    retry: Backoff,
    host_failures: u32,
    polled: Vec<Polled>,
    status: Option<Arc<Status>>,
}

impl Driver {
    /// A driver with the batch size, linger and retry backoff of `config`.
    pub fn new(config: &PipelineConfig) -> Self {
        Self {
            batch_size: config.batch_size,
            linger: Duration::from_millis(config.linger_ms),
            retry: Backoff::new(&config.retry),
            host_failures: 0,
            polled: Vec::with_capacity(config.batch_size),
            status: None,
        }
    }

    /// Also records every committed batch (time, duration) in `status`.
    pub fn with_status(mut self, status: Arc<Status>) -> Self {
        self.status = Some(status);
        self
    }

    /// Polls one batch from `source` and applies it. Returns the report of
    /// a committed batch, `None` when nothing was polled or the batch was
    /// rolled back (its partitions then start again from it after a pause).
    pub fn step(
        &mut self,
        source: &mut KafkaSource,
        pipeline: &mut Pipeline,
    ) -> Option<BatchReport> {
        source.tick();
        self.polled.clear();
        source.poll_into(&mut self.polled, self.batch_size, self.linger);
        let (events, fences) = source.fence(std::mem::take(&mut self.polled));
        if events.is_empty() {
            return None;
        }
        let began = Instant::now();
        match pipeline.apply_fenced(&events, &fences) {
            Ok(report) => {
                self.host_failures = 0;
                if let Some(s) = &self.status
                    && !report.committed.is_empty()
                {
                    s.committed(began.elapsed());
                }
                source.after_batch(&report);
                Some(report)
            }
            Err(e) => {
                self.host_failures += 1;
                let delay = self.retry.delay(self.host_failures);
                tracing::error!(source = source.name(), error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                    "A batch could not be committed; nothing of it was applied, and its partitions start again from it after a pause.");
                source.rewind(&events, delay);
                None
            }
        }
    }
}
