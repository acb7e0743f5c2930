//! ferry-sdk: write ferry plugins in a few lines.
//!
//! A plugin is a type implementing [`Projection`], exported with
//! [`export_projection!`], built with `cargo build --target wasm32-wasip2`.
//!
//! ```ignore
//! use ferry_sdk::{Event, HandleError, Handled, Projection, Sql, Store};
//!
//! struct Counter;
//!
//! /// Prepared once per plugin instance, then only bound and run.
//! static COUNT: Sql = Sql::new(
//!     "INSERT INTO seen VALUES (?1, 1) ON CONFLICT (type) DO UPDATE SET n = n + 1",
//! );
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
//!     fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError> {
//!         store.run(&COUNT, &[event.event_type.into()])?;
//!         Ok(Handled::Applied)
//!     }
//! }
//!
//! ferry_sdk::export_projection!(Counter);
//! ```
//!
//! [`export_projection!`] builds the plugin against the current contract,
//! `ferry:plugin@0.2.0`: the host hands it whole batches and the SDK runs
//! [`Projection::handle`] for each event, reporting each outcome as it
//! goes, so a handler stays one event long. [`export_projection_v0_1!`]
//! builds the same projection against `ferry:plugin@0.1.0` (one host call
//! per event), which ferry still runs.
//!
//! The logic is generic over [`Store`], so the same code runs natively
//! against SQLite in unit tests (feature `native`, [`native::SqliteStore`]).

#[doc(hidden)]
pub mod bindings {
    /// `ferry:plugin@0.2.0`.
    pub mod v0_2 {
        wit_bindgen::generate!({
            path: "../wit",
            world: "projection",
            pub_export_macro: true,
            export_macro_name: "__export_projection_world",
            default_bindings_module: "ferry_sdk::bindings::v0_2",
        });
    }

    /// `ferry:plugin@0.1.0`.
    pub mod v0_1 {
        // The 0.1 world under a name of its own (both versions call their
        // world `projection`, and the export macros are named after it);
        // a component's imports and exports do not carry the world's name.
        wit_bindgen::generate!({
            inline: "package ferry-sdk:legacy; world projection-v0-1 { include ferry:plugin/projection@0.1.0; }",
            path: ["../wit/0.1.0"],
            world: "ferry-sdk:legacy/projection-v0-1",
            generate_all,
            pub_export_macro: true,
            export_macro_name: "__export_projection_world_v0_1",
            default_bindings_module: "ferry_sdk::bindings::v0_1",
        });
    }
}

#[doc(hidden)]
pub mod batch;
mod event;
pub mod log;
#[cfg(feature = "native")]
pub mod native;
mod store;
#[doc(hidden)]
pub mod v0_1;
mod value;

pub use bindings::v0_2::exports::ferry::plugin::handler::PluginMetadata;
pub use bindings::v0_2::ferry::plugin::batch::{HandleError, Handled};
pub use bindings::v0_2::ferry::plugin::store::Rows;
pub use bindings::v0_2::ferry::plugin::types::{Header, StoreError, Value};
pub use event::{Event, EventExt};
pub use store::{HostStore, Sql, Store, StoreExt, describe};

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
    fn handle(store: &impl Store, event: &Event<'_>) -> Result<Handled, HandleError>;
}

/// Exports a [`Projection`] as the plugin's `handler`
/// (`ferry:plugin@0.2.0`). Only when compiling for WebAssembly: a native
/// build of the same crate (unit tests, the native benchmark) exports
/// nothing.
#[macro_export]
macro_rules! export_projection {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __FerryExport;
            impl $crate::bindings::v0_2::exports::ferry::plugin::handler::Guest for __FerryExport {
                fn metadata() -> $crate::bindings::v0_2::exports::ferry::plugin::handler::PluginMetadata {
                    $crate::bindings::v0_2::exports::ferry::plugin::handler::PluginMetadata {
                        version: <$ty as $crate::Projection>::VERSION.into(),
                        schema: <$ty as $crate::Projection>::SCHEMA,
                    }
                }
                fn migrate(from: Option<u32>) -> Result<(), String> {
                    <$ty as $crate::Projection>::migrate(&$crate::HostStore, from)
                }
                fn handle_batch(events: &$crate::bindings::v0_2::ferry::plugin::batch::Events) {
                    $crate::batch::drive::<$ty>(events)
                }
            }
            $crate::bindings::v0_2::__export_projection_world!(__FerryExport with_types_in $crate::bindings::v0_2);
        };
    };
}

/// Exports a [`Projection`] against the older contract,
/// `ferry:plugin@0.1.0` (one host call per event). Same projection code;
/// for plugins that must keep running on a ferry that predates 0.2, and
/// for testing that ferry still runs 0.1 plugins.
#[macro_export]
macro_rules! export_projection_v0_1 {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __FerryExport;
            impl $crate::bindings::v0_1::exports::ferry::plugin::handler::Guest for __FerryExport {
                fn metadata() -> $crate::bindings::v0_1::exports::ferry::plugin::handler::PluginMetadata {
                    $crate::bindings::v0_1::exports::ferry::plugin::handler::PluginMetadata {
                        version: <$ty as $crate::Projection>::VERSION.into(),
                        schema: <$ty as $crate::Projection>::SCHEMA,
                    }
                }
                fn migrate(from: Option<u32>) -> Result<(), String> {
                    <$ty as $crate::Projection>::migrate(&$crate::v0_1::HostStore, from)
                }
                fn handle(
                    event: $crate::bindings::v0_1::ferry::plugin::types::Event,
                ) -> Result<
                    $crate::bindings::v0_1::exports::ferry::plugin::handler::Handled,
                    $crate::bindings::v0_1::exports::ferry::plugin::handler::HandleError,
                > {
                    $crate::v0_1::handle::<$ty>(&event)
                }
            }
            $crate::bindings::v0_1::__export_projection_world_v0_1!(__FerryExport with_types_in $crate::bindings::v0_1);
        };
    };
}
