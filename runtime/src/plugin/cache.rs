//! Loading a plugin's bytes: a precompiled artifact (`ferry compile`) is
//! loaded as it is; a component is compiled (with the `jit` feature) and
//! cached on disk by content digest, so that a second start (or a second
//! plugin with the same bytes) skips compilation.

#[cfg(feature = "jit")]
use std::hash::{Hash, Hasher};
#[cfg(feature = "jit")]
use std::path::Path;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// `sha256:<hex>` of a component's bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where compiled artifacts live, keyed by digest and engine settings.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "jit"),
    expect(dead_code, reason = "a ferry without a compiler has nothing to cache")
)]
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
    /// A precompiled artifact made by `ferry compile`.
    Precompiled,
}

impl Provenance {
    /// In words, for `ferry check`.
    pub fn describe(self) -> &'static str {
        match self {
            Provenance::Cached => "compiled earlier (loaded from the component cache)",
            Provenance::Compiled => "compiled at load",
            Provenance::Precompiled => "loaded precompiled (ferry compile)",
        }
    }
}

/// What was loaded: the component, the digest of the component's bytes
/// (for an artifact, of the component it was made from), and how.
pub type Loaded = (Component, String, Provenance);

impl ComponentCache {
    /// A cache in `dir` (`None`: always compile).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            engine_tag: engine_tag(engine),
        }
    }

    #[cfg(feature = "jit")]
    fn artifact(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}.cwasm", self.engine_tag)))
    }

    /// Loads `bytes`: an artifact as it is, a component from the cache if
    /// possible, else by compiling it.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> anyhow::Result<Loaded> {
        if super::aot::is_artifact(bytes) {
            let (component, digest) = super::aot::load(engine, bytes)?;
            return Ok((component, digest, Provenance::Precompiled));
        }
        self.compiled(engine, bytes)
    }

    /// A component, from the cache or compiled now (and cached).
    #[cfg(feature = "jit")]
    fn compiled(&self, engine: &Engine, bytes: &[u8]) -> anyhow::Result<Loaded> {
        let digest = digest(bytes);
        if let Some(path) = self.artifact(&digest).filter(|p| p.exists()) {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, digest, Provenance::Cached)),
                Err(e) => tracing::warn!(
                    path = %path.display(), error = %e,
                    "A cached precompiled component could not be loaded; compiling it again."
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.artifact(&digest)
            && let Err(e) = store(&component, &path)
        {
            tracing::warn!(
                path = %path.display(), error = %e,
                "Writing the precompiled component to the cache failed; the next start compiles again."
            );
        }
        Ok((component, digest, Provenance::Compiled))
    }

    /// A ferry without a compiler loads artifacts only.
    #[cfg(not(feature = "jit"))]
    fn compiled(&self, _engine: &Engine, _bytes: &[u8]) -> anyhow::Result<Loaded> {
        anyhow::bail!(
            "this is a component, and this ferry has no compiler (a runtime-only build): compile it with `ferry compile` and deploy the artifact"
        )
    }
}

/// The engine's compatibility hash, naming cached artifacts.
#[cfg(feature = "jit")]
fn engine_tag(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(not(feature = "jit"))]
fn engine_tag(_engine: &Engine) -> String {
    String::new()
}

#[cfg(feature = "jit")]
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

#[cfg(feature = "jit")]
fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = tempfile_in(dir, path)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(feature = "jit")]
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

    #[cfg(feature = "jit")]
    #[test]
    fn a_component_is_compiled_once_then_loaded_from_cache() {
        let engine = super::super::engine::build_engine().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(&engine, Some(dir.path().to_owned()));
        let bytes = wasm_component();
        let (_, d, p) = cache.load(&engine, &bytes).unwrap();
        assert_eq!(
            (d.as_str(), p),
            (digest(&bytes).as_str(), Provenance::Compiled)
        );
        assert_eq!(cache.load(&engine, &bytes).unwrap().2, Provenance::Cached);
    }

    #[cfg(feature = "jit")]
    #[test]
    fn an_artifact_loads_precompiled_with_its_components_digest() {
        use super::super::aot;
        let engine = super::super::engine::build_engine().unwrap();
        let cache = ComponentCache::new(&engine, None);
        let bytes = wasm_component();
        let d = digest(&bytes);
        let here = aot::compile(&bytes, &aot::Header::new(&d, aot::HOST_TARGET)).unwrap();
        let (_, loaded, p) = cache.load(&engine, &here).unwrap();
        assert_eq!((loaded.as_str(), p), (d.as_str(), Provenance::Precompiled));
        let other = if aot::HOST_TARGET.starts_with("aarch64") {
            "x86_64-unknown-linux-gnu"
        } else {
            "aarch64-unknown-linux-gnu"
        };
        let there = aot::compile(&bytes, &aot::Header::new(&d, other)).unwrap();
        let e = format!("{:#}", cache.load(&engine, &there).unwrap_err());
        assert!(e.contains(other) && e.contains("ferry compile"), "{e}");
    }

    /// The smallest component: its preamble and nothing else.
    #[cfg(feature = "jit")]
    fn wasm_component() -> Vec<u8> {
        b"\0asm\x0d\0\x01\0".to_vec()
    }
}
