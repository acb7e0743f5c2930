//! Host bindings generated from `wit/` (world `projection`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "projection",
});

pub use self::exports::ferry::plugin::handler::{HandleError, Handled, PluginMetadata as Metadata};
pub use self::ferry::plugin::log::Level;
pub use self::ferry::plugin::types::{Event as WitEvent, Header, StoreError, Value};

/// The WIT package and version ferry implements.
pub const CONTRACT: &str = "ferry:plugin@0.1.0";
/// The interface every plugin must export.
pub const HANDLER_EXPORT: &str = "ferry:plugin/handler@0.1.0";
