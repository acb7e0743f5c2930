//! What an operator (the API, an embedding host, the file watcher, a
//! `SIGHUP`) can ask of ferry: requests to the deploy worker (compile and
//! validate a version, reload the configuration) and commands the run loop
//! carries out between two batches (swaps, rollbacks, reconfiguration,
//! dead-letter retries), and how they answer.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, PluginConfig};
use crate::pipeline::{Activation, PluginCode, SwapError};
use crate::plugin::LoadedPlugin;
use crate::store::history::Trigger;

/// Why a control request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// What kind of problem it is.
    pub kind: ControlErrorKind,
    /// What happened, in words.
    pub message: String,
}

/// The kinds of [`ControlError`] (they map to HTTP statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlErrorKind {
    /// No such plugin, source or dead letter (404).
    NotFound,
    /// Not possible in the current state, e.g. nothing to roll back to
    /// (409).
    Conflict,
    /// The request or its component is invalid (422).
    Invalid,
    /// ferry is not running (503).
    Unavailable,
}

impl ControlError {
    /// An error of `kind`.
    pub fn new(kind: ControlErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// ferry is not (or no longer) running.
    pub fn unavailable() -> Self {
        Self::new(
            ControlErrorKind::Unavailable,
            "ferry is not running (it stopped or has not started)",
        )
    }
}

impl From<SwapError> for ControlError {
    fn from(e: SwapError) -> Self {
        let kind = match &e {
            SwapError::Unknown(_) => ControlErrorKind::NotFound,
            SwapError::Native(_) | SwapError::NoPrevious(_) => ControlErrorKind::Conflict,
            SwapError::Migrate { .. } => ControlErrorKind::Invalid,
            SwapError::Store(_) => ControlErrorKind::Unavailable,
        };
        Self::new(kind, e.to_string())
    }
}

/// Where a control request's answer goes.
pub type Reply<T> = tokio::sync::oneshot::Sender<Result<T, ControlError>>;

/// Sends `r` if anybody waits for it.
pub(crate) fn answer<T>(reply: Option<Reply<T>>, r: Result<T, ControlError>) {
    if let Some(tx) = reply {
        let _ = tx.send(r);
    }
}

/// What the worker is asked to do.
pub(crate) enum Request {
    /// Compile `bytes` as the new version of plugin `name`.
    Deploy {
        name: String,
        bytes: Vec<u8>,
        /// Where the bytes came from, for messages.
        origin: String,
        trigger: Trigger,
        /// Write the bytes over the plugin's configured file once active.
        persist: bool,
        reply: Option<Reply<Activation>>,
    },
    /// Load what changed in `config` and reconfigure.
    Reload {
        config: Box<Config>,
        reply: Option<Reply<Vec<Activation>>>,
    },
    /// Stop the worker.
    Stop,
}

/// What the loop is asked to do.
pub(crate) enum Command {
    /// Activate a compiled, validated version (hot swap).
    Activate {
        name: String,
        plugin: Arc<LoadedPlugin>,
        trigger: Trigger,
        /// Write the bytes to this path once active (API deployments, so
        /// a restart keeps them).
        persist: Option<(PathBuf, Arc<Vec<u8>>)>,
        reply: Option<Reply<Activation>>,
    },
    /// A version was refused before reaching the loop (bad file,
    /// contract mismatch): record it.
    Refused {
        name: String,
        digest: Option<String>,
        version: Option<String>,
        trigger: Trigger,
        error: String,
    },
    /// Go back to the previous version.
    Rollback {
        name: String,
        reply: Option<Reply<Activation>>,
    },
    /// Apply a reloaded configuration (plugins and pipeline settings).
    Reconfigure {
        plugins: Vec<(PluginConfig, Option<PluginCode>)>,
        config: Box<Config>,
        reply: Option<Reply<Vec<Activation>>>,
    },
    /// Retry dead letters through the current versions.
    Redrive {
        ids: Vec<i64>,
        reply: Reply<Vec<Redriven>>,
    },
}

/// The outcome of retrying one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Redriven {
    /// Dead letter id.
    pub id: i64,
    /// `applied`, `skipped`, `failed` or `held-back`.
    pub outcome: &'static str,
    /// Why it failed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answers a command the loop will never carry out (it is stopping).
pub(crate) fn refuse_unavailable(command: Command) {
    match command {
        Command::Activate { reply, .. } | Command::Rollback { reply, .. } => {
            answer(reply, Err(ControlError::unavailable()));
        }
        Command::Reconfigure { reply, .. } => answer(reply, Err(ControlError::unavailable())),
        Command::Redrive { reply, .. } => {
            let _ = reply.send(Err(ControlError::unavailable()));
        }
        Command::Refused { .. } => {}
    }
}
