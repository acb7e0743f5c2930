//! What the run loop shares with the operator's side (the HTTP API and
//! the embedding handle): the status the loop publishes ([`Status`]: phase,
//! partitions, plugins, counters, health verdicts) and the commands an
//! operator can send (`Command`, `Request`). Both sides use this module;
//! it imports neither of them.

mod command;
mod health;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};

use parking_lot::Mutex;

pub(crate) use command::{Command, Request, answer, refuse_unavailable};
pub use command::{ControlError, ControlErrorKind, Redriven, Reply};
pub use status::{
    Component, PartitionView, Phase, PluginView, Refusal, SourceView, Status, StreamView,
};

/// What the loop shares with the API and with embedding hosts.
pub struct Control {
    /// What the loop publishes.
    pub status: Arc<Status>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) reload: Arc<AtomicBool>,
    pub(crate) commands: Sender<Command>,
    pub(crate) requests: Sender<Request>,
    /// The SQLite file.
    pub db_path: PathBuf,
    pub(crate) api_addr: Mutex<Option<SocketAddr>>,
    /// `[api]` settings.
    pub api: crate::config::ApiConfig,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

/// The receiving ends of the control channels.
pub(crate) struct Inbox {
    pub(crate) commands: Receiver<Command>,
    pub(crate) requests: Receiver<Request>,
}
