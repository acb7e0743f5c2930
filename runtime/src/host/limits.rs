//! Per-instance memory cap, remembering whether it was hit so that a trap
//! caused by it is reported as "memory cap exceeded".

use wasmtime::ResourceLimiter;

/// Caps linear memory (and table) growth of one instance.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    exceeded: Option<usize>,
}

/// Most table elements one instance may have.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    /// A limiter allowing `max_bytes` of linear memory.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            exceeded: None,
        }
    }

    /// The size a refused growth asked for, if the cap was hit since the
    /// last [`reset`](Self::reset).
    pub fn exceeded(&self) -> Option<usize> {
        self.exceeded
    }

    /// Forgets a previous refusal.
    pub fn reset(&mut self) {
        self.exceeded = None;
    }

    /// The cap in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            wasmtime::bail!(
                "memory cap exceeded: the plugin asked for {desired} bytes, its cap is {} bytes",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_cap_is_refused_and_remembered() {
        let mut l = MemoryLimiter::new(1024);
        assert!(l.memory_growing(0, 1024, None).unwrap());
        assert!(l.exceeded().is_none());
        assert!(l.memory_growing(1024, 2048, None).is_err());
        assert_eq!(l.exceeded(), Some(2048));
        l.reset();
        assert!(l.exceeded().is_none());
    }
}
