//! Ahead-of-time plugins: `ferry compile` turns a component into an
//! artifact for a target triple, which a ferry without a compiler (the
//! runtime-only build) loads instead of compiling.
//!
//! An artifact is a short header and wasmtime's own precompiled component:
//!
//! ```text
//! \0ferry-aot\n
//! {"digest":"sha256:…","target":"aarch64-unknown-linux-gnu","wasmtime":"48.0.8"}\n
//! <the bytes of Engine::precompile_component>
//! ```
//!
//! The header carries the digest of the component it was made from, so a
//! plugin keeps one identity on every host (history, checkpoints and the
//! deterministic random seed all use it), and names the target and wasmtime
//! version for the refusals. wasmtime checks the rest when it loads the
//! artifact (its version, the engine settings, the CPU features) and names
//! what differs.
//!
//! An artifact is native code: loading it is only as safe as its origin.
//! ferry loads artifacts from the paths its config names, and over the API
//! only from a client holding the admin token.

use serde::{Deserialize, Serialize};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of an artifact (a component starts with `\0asm`).
pub const MAGIC: &[u8] = b"\0ferry-aot\n";

/// The wasmtime version ferry is built with (a unit test keeps it equal to
/// the one in `Cargo.lock`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The target triple this ferry was built for.
pub const HOST_TARGET: &str = env!("FERRY_TARGET");

/// What an artifact says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// `sha256:<hex>` of the component it was compiled from.
    pub digest: String,
    /// The target triple it was compiled for.
    pub target: String,
    /// The wasmtime version that compiled it.
    pub wasmtime: String,
}

impl Header {
    /// The header of an artifact of the component with `digest` for
    /// `target`, made by this ferry's wasmtime.
    pub fn new(digest: &str, target: &str) -> Self {
        Self {
            digest: digest.to_owned(),
            target: target.to_owned(),
            wasmtime: WASMTIME_VERSION.to_owned(),
        }
    }

    /// The artifact's file name: the component's digest, the wasmtime
    /// version and the target
    /// (`<hex>.wasmtime-48.0.8.x86_64-unknown-linux-gnu.cwasm`).
    pub fn file_name(&self) -> String {
        format!(
            "{}.wasmtime-{}.{}.cwasm",
            self.digest.trim_start_matches("sha256:"),
            self.wasmtime,
            self.target
        )
    }
}

/// Why an artifact cannot be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum AotError {
    /// The bytes start like an artifact but the header does not parse.
    #[error("not a ferry precompiled artifact: {0}")]
    Malformed(String),
    /// Made for another architecture or operating system.
    #[error(
        "this precompiled artifact is for {artifact}, and this ferry runs on {host}: compile the component for {host} with `ferry compile --target {host}`"
    )]
    Target {
        /// The artifact's target.
        artifact: String,
        /// This ferry's target.
        host: String,
    },
    /// Made by another wasmtime version.
    #[error(
        "this precompiled artifact was made by wasmtime {artifact}, and this ferry runs wasmtime {host}: compile the component again with this ferry's `ferry compile`"
    )]
    Wasmtime {
        /// The artifact's wasmtime version.
        artifact: String,
        /// This ferry's wasmtime version.
        host: String,
    },
    /// wasmtime refused it (other engine settings, CPU features, …).
    #[error("wasmtime cannot load this precompiled artifact here: {0}")]
    Incompatible(String),
    /// Compiling failed.
    #[error("compiling the component for {target} failed: {reason}")]
    Compile {
        /// The target triple.
        target: String,
        /// wasmtime's reason.
        reason: String,
    },
}

/// Whether `bytes` are an artifact (rather than a component).
pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Splits an artifact into its header and wasmtime's bytes.
pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), AotError> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| AotError::Malformed("it does not start with the artifact magic".into()))?;
    let end = rest
        .iter()
        .position(|b| *b == b'\n')
        .filter(|n| *n <= 4096)
        .ok_or_else(|| AotError::Malformed("its header line is missing or too long".into()))?;
    let header: Header = serde_json::from_slice(&rest[..end])
        .map_err(|e| AotError::Malformed(format!("its header does not parse: {e}")))?;
    Ok((header, &rest[end + 1..]))
}

/// The architecture and operating system of a triple (`x86_64`,
/// `linux`), which decide whether code runs; vendor and ABI do not.
fn arch_os(triple: &str) -> (&str, &str) {
    let parts: Vec<&str> = triple.split('-').collect();
    let arch = parts.first().copied().unwrap_or("");
    let os = match parts.len() {
        0 | 1 => "",
        2 => parts[1],
        _ => parts[2],
    };
    (arch, os)
}

/// Checks an artifact's header against this ferry: target and wasmtime.
pub fn check(header: &Header) -> Result<(), AotError> {
    if arch_os(&header.target) != arch_os(HOST_TARGET) {
        return Err(AotError::Target {
            artifact: header.target.clone(),
            host: HOST_TARGET.to_owned(),
        });
    }
    if header.wasmtime != WASMTIME_VERSION {
        return Err(AotError::Wasmtime {
            artifact: header.wasmtime.clone(),
            host: WASMTIME_VERSION.to_owned(),
        });
    }
    Ok(())
}

/// Loads an artifact on `engine`: the component and the digest of the
/// component it was made from.
pub fn load(engine: &Engine, bytes: &[u8]) -> Result<(Component, String), AotError> {
    let (header, code) = parse(bytes)?;
    check(&header)?;
    let component =
        deserialize(engine, code).map_err(|e| AotError::Incompatible(format!("{e:#}")))?;
    Ok((component, header.digest))
}

#[expect(
    unsafe_code,
    reason = "wasmtime can only load precompiled native code unsafely"
)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: an artifact is native code, trusted as its origin is: ferry
    // loads artifacts only from paths its operator configured and, over the
    // API, from a client holding the admin token (see the module doc).
    // wasmtime checks that it was made by this wasmtime version with
    // compatible settings for this host before running any of it.
    unsafe { Component::deserialize(engine, code) }
}

/// The artifact of `component` that `header` describes (its digest and
/// target), compiled by an engine with ferry's settings for that target.
#[cfg(feature = "jit")]
pub fn compile(component: &[u8], header: &Header) -> Result<Vec<u8>, AotError> {
    let fail = |reason: String| AotError::Compile {
        target: header.target.clone(),
        reason,
    };
    let engine = super::engine::build_engine_for(Some(&header.target))
        .map_err(|e| fail(format!("{e:#}")))?;
    let code = engine
        .precompile_component(component)
        .map_err(|e| fail(format!("{e:#}")))?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(
        serde_json::to_string(header)
            .map_err(|e| AotError::Malformed(e.to_string()))?
            .as_bytes(),
    );
    out.push(b'\n');
    out.extend_from_slice(&code);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(target: &str, wasmtime: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(
            format!(r#"{{"digest":"sha256:ab","target":"{target}","wasmtime":"{wasmtime}"}}"#)
                .as_bytes(),
        );
        b.extend_from_slice(b"\nCODE");
        b
    }

    #[test]
    fn an_artifact_is_told_from_a_component_and_its_header_parses() {
        let a = artifact(HOST_TARGET, WASMTIME_VERSION);
        assert!(is_artifact(&a));
        assert!(!is_artifact(b"\0asm\x0d\0\x01\0"));
        let (h, code) = parse(&a).unwrap();
        assert_eq!(h.digest, "sha256:ab");
        assert_eq!(code, b"CODE");
        assert!(check(&h).is_ok());
        assert_eq!(
            h.file_name(),
            format!("ab.wasmtime-{WASMTIME_VERSION}.{HOST_TARGET}.cwasm")
        );
    }

    #[test]
    fn another_target_or_wasmtime_is_refused_naming_both() {
        let other = if HOST_TARGET.starts_with("aarch64") {
            "x86_64-unknown-linux-gnu"
        } else {
            "aarch64-unknown-linux-gnu"
        };
        let (h, _) = parse(&artifact(other, WASMTIME_VERSION))
            .unwrap()
            .to_owned();
        let e = check(&h).unwrap_err().to_string();
        assert!(e.contains(other) && e.contains(HOST_TARGET), "{e}");
        let (h, _) = parse(&artifact(HOST_TARGET, "47.0.0")).unwrap();
        let e = check(&h).unwrap_err().to_string();
        assert!(e.contains("47.0.0") && e.contains(WASMTIME_VERSION), "{e}");
        // Vendor and ABI do not matter; architecture and OS do.
        let (arch, os) = arch_os(HOST_TARGET);
        let (h, _) = parse(&artifact(
            &format!("{arch}-acme-{os}-musl"),
            WASMTIME_VERSION,
        ))
        .unwrap();
        assert!(check(&h).is_ok());
    }

    #[cfg(feature = "jit")]
    #[test]
    fn an_artifact_made_with_other_engine_settings_is_refused_with_wasmtimes_reason() {
        // An engine like ferry's but without epoch interruption (so without
        // the deadline checks compiled into the code).
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(false);
        let other = Engine::new(&config).unwrap();
        let code = other.precompile_component(b"\0asm\x0d\0\x01\0").unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(
            format!(
                r#"{{"digest":"sha256:ab","target":"{HOST_TARGET}","wasmtime":"{WASMTIME_VERSION}"}}"#
            )
            .as_bytes(),
        );
        bytes.push(b'\n');
        bytes.extend_from_slice(&code);
        let ferry = super::super::engine::build_engine().unwrap();
        let e = load(&ferry, &bytes).map(|_| ()).unwrap_err();
        assert!(matches!(e, AotError::Incompatible(_)), "{e}");
        assert!(e.to_string().contains("epoch"), "{e}");
    }

    #[test]
    fn a_broken_header_is_malformed() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(b"{not json}\nCODE");
        assert!(matches!(parse(&b), Err(AotError::Malformed(_))));
        assert!(matches!(parse(MAGIC), Err(AotError::Malformed(_))));
    }

    #[test]
    fn the_wasmtime_version_is_the_one_in_cargo_lock() {
        let lock = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        )
        .unwrap();
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_owned());
        assert_eq!(locked.as_deref(), Some(WASMTIME_VERSION));
    }
}
