//! [`RuntimeHandle`]: an embedding host's remote control of a running
//! [`super::Runtime`]: stop, swap, roll back, reload, wait, read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::config::Config;
use crate::control::{Command, Control, ControlError, Phase, PluginView, Request, Status};
use crate::pipeline::Activation;
use crate::store::history::Trigger;

/// Controls a [`crate::Runtime`] from other threads or tasks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RuntimeHandle {
    control: Arc<Control>,
}

impl RuntimeHandle {
    pub(super) fn new(control: Arc<Control>) -> Self {
        Self { control }
    }

    /// Asks the loop to stop after its current batch (graceful).
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
    }

    /// Where the loop is.
    pub fn phase(&self) -> Phase {
        self.control.status.phase()
    }

    /// Waits until the loop runs (or fails to start).
    pub async fn wait_running(&self) -> anyhow::Result<()> {
        let mut changes = self.control.status.commits();
        loop {
            match self.control.status.phase() {
                Phase::Running => return Ok(()),
                Phase::Stopped(e) => anyhow::bail!(
                    "ferry stopped before running{}",
                    e.map(|e| format!(": {e}")).unwrap_or_default()
                ),
                Phase::Starting => {
                    if changes.changed().await.is_err() {
                        anyhow::bail!("ferry's status went away");
                    }
                }
            }
        }
    }

    /// The published status (partitions, plugins, counters, health).
    pub fn status(&self) -> &Status {
        &self.control.status
    }

    /// The plugins with their versions and counters.
    pub fn plugins(&self) -> Vec<PluginView> {
        self.control.status.plugins()
    }

    /// The HTTP API's address, when it is served.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        *self.control.api_addr.lock()
    }

    /// A read-only connection to the store (WAL: readers never block the
    /// writer and see committed batches only).
    pub fn read_only(&self) -> anyhow::Result<rusqlite::Connection> {
        let c = crate::store::open_read_only(&self.control.db_path)?;
        c.busy_timeout(Duration::from_secs(5))?;
        Ok(c)
    }

    /// Hot-swaps plugin `name` to the component `bytes` (compiled off the
    /// hot path, activated at a batch boundary). The plugin's file is not
    /// touched.
    pub async fn swap_plugin(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Activation, ControlError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control
            .requests
            .send(Request::Deploy {
                name: name.to_owned(),
                bytes,
                origin: "an embedding host's swap".to_owned(),
                trigger: Trigger::Api,
                persist: false,
                reply: Some(tx),
            })
            .map_err(|_| ControlError::unavailable())?;
        rx.await.map_err(|_| ControlError::unavailable())?
    }

    /// Rolls plugin `name` back to the version it replaced.
    pub async fn rollback_plugin(&self, name: &str) -> Result<Activation, ControlError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control
            .commands
            .send(Command::Rollback {
                name: name.to_owned(),
                reply: Some(tx),
            })
            .map_err(|_| ControlError::unavailable())?;
        rx.await.map_err(|_| ControlError::unavailable())?
    }

    /// Applies a new configuration's plugins and pipeline settings.
    pub async fn reload(&self, config: Config) -> Result<Vec<Activation>, ControlError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control
            .requests
            .send(Request::Reload {
                config: Box::new(config),
                reply: Some(tx),
            })
            .map_err(|_| ControlError::unavailable())?;
        rx.await.map_err(|_| ControlError::unavailable())?
    }

    /// Waits until `(key, partition)` (a checkpoint key: `<source>/<topic>`
    /// for Kafka, the source name for a feed) has applied `offset`; false
    /// on timeout. Needs a Tokio runtime with its time driver.
    pub async fn wait_applied(
        &self,
        key: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.control.status.commits();
        loop {
            if self
                .control
                .status
                .checkpoint(key, partition)
                .is_some_and(|c| c >= offset)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}
