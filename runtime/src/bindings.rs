//! Host bindings generated from `wit/`: one module per contract version
//! ferry serves, each the `projection` world of its package.
//!
//! - [`v0_2`]: `ferry:plugin@0.2.0` (`wit/ferry.wit`), the current one:
//!   batch calls, prepared statements. Its `store` types (`Value`,
//!   `StoreError`, `Rows`, `Header`) are the ones the host's store works in.
//! - [`v0_1`]: `ferry:plugin@0.1.0` (`wit/0.1.0/ferry.wit`), one call per
//!   event; still loaded unchanged. Its host imports convert to and from
//!   the 0.2 types, and its `Handled` / `HandleError` are the outcome types
//!   of the pipeline and of native projections.

/// `ferry:plugin@0.1.0`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "projection",
    });
}

/// `ferry:plugin@0.2.0`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "projection",
    });
}

pub use v0_1::exports::ferry::plugin::handler::{HandleError, Handled, PluginMetadata as Metadata};
pub use v0_1::ferry::plugin::types::Event as WitEvent;
pub use v0_2::ferry::plugin::log::Level;
pub use v0_2::ferry::plugin::store::Rows;
pub use v0_2::ferry::plugin::types::{Header, StoreError, Value};

/// A version of the plugin contract ferry serves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
pub enum Contract {
    /// `ferry:plugin@0.1.0`: one `handle` call per event.
    #[serde(rename = "ferry:plugin@0.1.0")]
    V0_1,
    /// `ferry:plugin@0.2.0`: `handle-batch`, prepared statements.
    #[serde(rename = "ferry:plugin@0.2.0")]
    V0_2,
}

impl Contract {
    /// Every version, newest first.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The WIT package and version, e.g. `ferry:plugin@0.2.0`.
    pub fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "ferry:plugin@0.1.0",
            Contract::V0_2 => "ferry:plugin@0.2.0",
        }
    }

    /// The interface a plugin of this version exports.
    pub fn handler_export(self) -> &'static str {
        match self {
            Contract::V0_1 => "ferry:plugin/handler@0.1.0",
            Contract::V0_2 => "ferry:plugin/handler@0.2.0",
        }
    }

    /// The ferry interfaces a plugin of this version may import.
    pub fn imports(self) -> &'static [&'static str] {
        match self {
            Contract::V0_1 => &[
                "ferry:plugin/types@0.1.0",
                "ferry:plugin/store@0.1.0",
                "ferry:plugin/log@0.1.0",
                "ferry:plugin/clock@0.1.0",
            ],
            Contract::V0_2 => &[
                "ferry:plugin/types@0.2.0",
                "ferry:plugin/store@0.2.0",
                "ferry:plugin/log@0.2.0",
                "ferry:plugin/clock@0.2.0",
                "ferry:plugin/batch@0.2.0",
            ],
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}

/// The newest contract (what `ferry new` and the SDK build against).
pub const CONTRACT: Contract = Contract::V0_2;
