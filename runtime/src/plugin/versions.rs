//! The contract versions a plugin can be built against, behind one face:
//! pre-instantiated components and live bindings of `ferry:plugin@0.1.0`
//! or `@0.2.0`, and the export calls they share (`metadata`, `migrate`).

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::bindings::{Contract, Metadata, v0_1, v0_2};
use crate::host::HostState;

/// A component checked against its contract version, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1::ProjectionPre<HostState>),
    V0_2(v0_2::ProjectionPre<HostState>),
}

/// A live instance's bindings.
pub(crate) enum Bound {
    V0_1(v0_1::Projection),
    V0_2(v0_2::Projection),
}

impl Pre {
    /// Type-checks `component` against `linker` as a `contract` plugin.
    pub(crate) fn new(
        linker: &Linker<HostState>,
        component: &Component,
        contract: Contract,
    ) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match contract {
            Contract::V0_1 => Pre::V0_1(v0_1::ProjectionPre::new(pre)?),
            Contract::V0_2 => Pre::V0_2(v0_2::ProjectionPre::new(pre)?),
        })
    }

    /// A new instance in `store`.
    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Bound> {
        Ok(match self {
            Pre::V0_1(p) => Bound::V0_1(p.instantiate(store)?),
            Pre::V0_2(p) => Bound::V0_2(p.instantiate(store)?),
        })
    }

    /// The wasmtime instance pre (for the read API's dynamic calls).
    pub(crate) fn instance_pre(&self) -> &wasmtime::component::InstancePre<HostState> {
        match self {
            Pre::V0_1(p) => p.instance_pre(),
            Pre::V0_2(p) => p.instance_pre(),
        }
    }
}

impl Bound {
    /// Calls `metadata`.
    pub(crate) fn metadata(&self, store: &mut Store<HostState>) -> wasmtime::Result<Metadata> {
        match self {
            Bound::V0_1(b) => b.ferry_plugin_handler().call_metadata(store),
            Bound::V0_2(b) => {
                let m = b.ferry_plugin_handler().call_metadata(store)?;
                Ok(Metadata {
                    version: m.version,
                    schema: m.schema,
                })
            }
        }
    }

    /// Calls `migrate(from)`.
    pub(crate) fn migrate(
        &self,
        store: &mut Store<HostState>,
        from: Option<u32>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bound::V0_1(b) => b.ferry_plugin_handler().call_migrate(store, from),
            Bound::V0_2(b) => b.ferry_plugin_handler().call_migrate(store, from),
        }
    }
}
