//! Precompiled components cached on disk by content digest, so that a
//! second start (or a second plugin with the same bytes) skips compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// `sha256:<hex>` of a component's bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where compiled artifacts live, keyed by digest and engine settings.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_tag: String,
}

/// Whether a component came from the cache or was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Deserialized from a precompiled artifact.
    Cached,
    /// Compiled now (and written to the cache if there is one).
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir` (`None`: always compile).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir,
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    fn artifact(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}.cwasm", self.engine_tag)))
    }

    /// Loads the component with these bytes, from the cache if possible.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> anyhow::Result<(Component, Provenance)> {
        if let Some(path) = self.artifact(digest).filter(|p| p.exists()) {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, Provenance::Cached)),
                Err(e) => tracing::warn!(
                    path = %path.display(), error = %e,
                    "A cached precompiled component could not be loaded; compiling it again."
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.artifact(digest)
            && let Err(e) = store(&component, &path)
        {
            {
                tracing::warn!(
                    path = %path.display(), error = %e,
                    "Writing the precompiled component to the cache failed; the next start compiles again."
                );
            }
        }
        Ok((component, Provenance::Compiled))
    }
}

#[expect(
    unsafe_code,
    reason = "wasmtime can only deserialize a precompiled component unsafely"
)]
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: the file is one ferry itself wrote with `Component::serialize`
    // into its own cache directory, named by the digest of the source bytes
    // and the engine's compatibility hash; wasmtime additionally checks the
    // engine version and settings recorded in the artifact.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}

fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = tempfile_in(dir, path)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<PathBuf> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!(".{name}.{}.{n}.tmp", std::process::id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_component_is_compiled_once_then_loaded_from_cache() {
        let engine = super::super::engine::build_engine().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(&engine, Some(dir.path().to_owned()));
        let bytes = wat_component();
        let d = digest(&bytes);
        assert_eq!(
            cache.load(&engine, &bytes, &d).unwrap().1,
            Provenance::Compiled
        );
        assert_eq!(
            cache.load(&engine, &bytes, &d).unwrap().1,
            Provenance::Cached
        );
    }

    fn wat_component() -> Vec<u8> {
        b"(component)".to_vec()
    }
}
