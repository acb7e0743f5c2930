//! The `clock` interface: the event's time (or the host's, with the
//! `clock = "host"` grant; see [`super::call`]).

use super::HostState;
use crate::bindings::{v0_1, v0_2};

impl v0_2::ferry::plugin::clock::Host for HostState {
    fn now_ms(&mut self) -> i64 {
        self.call.now_ms()
    }
}

impl v0_1::ferry::plugin::clock::Host for HostState {
    fn now_ms(&mut self) -> i64 {
        self.call.now_ms()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_2020() {
        assert!(crate::event::now_ms() > 1_577_836_800_000);
    }
}
