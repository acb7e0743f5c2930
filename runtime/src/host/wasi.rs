//! WASI 0.2 as a plugin sees it: wasmtime's implementation with nothing
//! granted (no preopens, no environment, no network), except for the
//! interfaces that would make a projection depend on the host or outlast
//! its deadline. Those are replaced here, on top of wasmtime's, by
//! shadowing them in the linker:
//!
//! - `wasi:clocks/wall-clock` reads the event's time (see [`super::call`]);
//! - `wasi:clocks/monotonic-clock` measures real time, but a subscription
//!   (what `sleep` and `poll` wait on) never lasts past the call's
//!   deadline, so no WASI sleep can hold a partition longer than the
//!   deadline plus [`super::call::SLEEP_SLACK`];
//! - `wasi:random/*` are the call's deterministic generator, and a request
//!   is capped at the plugin's memory cap.

use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{
    self, Duration as WasiDuration, Instant as WasiInstant,
};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::{self, Datetime};
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};

use super::HostState;
use super::call::CallContext;

/// The shadowed interfaces' view of a plugin's state.
pub struct Sandboxed;

impl HasData for Sandboxed {
    type Data<'a> = View<'a>;
}

/// The call in progress and wasmtime's clocks.
pub struct View<'a> {
    call: &'a mut CallContext,
    clocks: WasiClocksCtxView<'a>,
}

fn view(s: &mut HostState) -> View<'_> {
    View {
        call: &mut s.call,
        clocks: WasiClocksCtxView {
            ctx: s.wasi.clocks(),
            table: &mut s.table,
        },
    }
}

/// Shadows wasmtime's clocks and random in `linker` (which already has
/// the rest of WASI).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    wall_clock::add_to_linker::<HostState, Sandboxed>(linker, view)?;
    monotonic_clock::add_to_linker::<HostState, Sandboxed>(linker, view)?;
    random::add_to_linker::<HostState, Sandboxed>(linker, view)?;
    insecure::add_to_linker::<HostState, Sandboxed>(linker, view)?;
    insecure_seed::add_to_linker::<HostState, Sandboxed>(linker, view)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl wall_clock::Host for View<'_> {
    fn now(&mut self) -> wasmtime::Result<Datetime> {
        let ms = self.call.now_ms();
        Ok(Datetime {
            seconds: u64::try_from(ms.div_euclid(1000)).unwrap_or(0),
            nanoseconds: u32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<Datetime> {
        Ok(Datetime {
            seconds: 0,
            nanoseconds: 1_000_000,
        })
    }
}

impl monotonic_clock::Host for View<'_> {
    fn now(&mut self) -> wasmtime::Result<WasiInstant> {
        monotonic_clock::Host::now(&mut self.clocks)
    }

    fn resolution(&mut self) -> wasmtime::Result<WasiInstant> {
        monotonic_clock::Host::resolution(&mut self.clocks)
    }

    fn subscribe_instant(&mut self, when: WasiInstant) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.clocks)?;
        self.subscribe_duration(when.saturating_sub(now))
    }

    fn subscribe_duration(
        &mut self,
        duration: WasiDuration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let bounded = self.call.bounded(Duration::from_nanos(duration));
        let nanos = u64::try_from(bounded.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::Host::subscribe_duration(&mut self.clocks, nanos)
    }
}

impl View<'_> {
    fn bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > self.call.max_random {
            wasmtime::bail!(
                "the plugin asked for {len} random bytes at once, more than its memory cap of {} bytes",
                self.call.max_random
            );
        }
        let mut out = vec![0u8; usize::try_from(len)?];
        self.call.rng().fill(&mut out);
        Ok(out)
    }
}

impl random::Host for View<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.bytes(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.call.rng().next_u64())
    }
}

impl insecure::Host for View<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.bytes(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.call.rng().next_u64())
    }
}

impl insecure_seed::Host for View<'_> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok(self.call.insecure_seed())
    }
}
