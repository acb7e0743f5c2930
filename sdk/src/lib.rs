//! ferry-sdk: write ferry plugins in a few lines.
//!
//! A plugin is a type implementing [`Projection`], exported with
//! [`export_projection!`], built with `cargo build --target wasm32-wasip2`.
//!
//! ```ignore
//! use ferry_sdk::{Event, EventExt, HandleError, Handled, Projection, Store};
//!
//! struct Counter;
//!
//! impl Projection for Counter {
//!     const VERSION: &'static str = "1.0.0";
//!     const SCHEMA: u32 = 1;
//!
//!     fn migrate(store: &impl Store, _from: Option<u32>) -> Result<(), String> {
//!         store
//!             .execute_batch("CREATE TABLE IF NOT EXISTS seen (type TEXT PRIMARY KEY, n INTEGER)")
//!             .map_err(|e| e.to_string())
//!     }
//!
//!     fn handle(store: &impl Store, event: &Event) -> Result<Handled, HandleError> {
//!         store.execute(
//!             "INSERT INTO seen VALUES (?1, 1) ON CONFLICT (type) DO UPDATE SET n = n + 1",
//!             &[event.event_type.as_str().into()],
//!         )?;
//!         Ok(Handled::Applied)
//!     }
//! }
//!
//! ferry_sdk::export_projection!(Counter);
//! ```
//!
//! The logic is generic over [`Store`], so the same code runs natively
//! against SQLite in unit tests (feature `native`, [`native::SqliteStore`]).

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "projection",
        pub_export_macro: true,
        export_macro_name: "__export_projection_world",
        default_bindings_module: "ferry_sdk::bindings",
    });
}

mod event;
pub mod log;
#[cfg(feature = "native")]
pub mod native;
mod store;
mod value;

pub use bindings::exports::ferry::plugin::handler::{HandleError, Handled, PluginMetadata};
pub use bindings::ferry::plugin::store::Rows;
pub use bindings::ferry::plugin::types::{Event, Header, StoreError, Value};
pub use event::EventExt;
pub use store::{HostStore, Store, StoreExt, describe};

/// A projection: the logic of one ferry plugin.
pub trait Projection {
    /// The plugin's version, shown by `ferry check` and the admin API.
    const VERSION: &'static str;
    /// The schema version `migrate` brings the plugin's tables to.
    const SCHEMA: u32;

    /// Creates or alters the plugin's tables; `from` is the schema version
    /// they are at (`None` the first time). Runs in a transaction; must be
    /// idempotent when `from == Some(Self::SCHEMA)`.
    fn migrate(store: &impl Store, from: Option<u32>) -> Result<(), String>;

    /// Applies one event. An `Err` rolls back every write made for this
    /// event (and only those). May be called again for an event whose
    /// earlier call's writes were rolled back with its batch (see the WIT
    /// contract), so keep it free of effects outside the store.
    fn handle(store: &impl Store, event: &Event) -> Result<Handled, HandleError>;
}

/// Exports a [`Projection`] as the plugin's `handler`. Only when compiling
/// for WebAssembly: a native build of the same crate (unit tests, the
/// native benchmark) exports nothing.
#[macro_export]
macro_rules! export_projection {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __FerryExport;
            impl $crate::bindings::exports::ferry::plugin::handler::Guest for __FerryExport {
                fn metadata() -> $crate::PluginMetadata {
                    $crate::PluginMetadata {
                        version: <$ty as $crate::Projection>::VERSION.into(),
                        schema: <$ty as $crate::Projection>::SCHEMA,
                    }
                }
                fn migrate(from: Option<u32>) -> Result<(), String> {
                    <$ty as $crate::Projection>::migrate(&$crate::HostStore, from)
                }
                fn handle(event: $crate::Event) -> Result<$crate::Handled, $crate::HandleError> {
                    <$ty as $crate::Projection>::handle(&$crate::HostStore, &event)
                }
            }
    $crate::bindings::__export_projection_world!(__FerryExport with_types_in $crate::bindings);
        };
    };
}
