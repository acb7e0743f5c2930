//! Precompiled artifacts of `dist/plugins` for the tests of this crate:
//! from `FERRY_AOT_DIR` (`scripts/test` makes them with the default
//! build's `ferry compile`), or made here by a build with the compiler.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test's helper fails the test by panicking"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `ferry` binary built with this test's features.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A command's stdout and stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The artifact of `plugin` (a file of `dist/plugins`) for `target`.
pub fn artifact(plugin: &str, target: &str) -> PathBuf {
    let dir = std::env::var_os("FERRY_AOT_DIR").map_or_else(
        || std::env::temp_dir().join(format!("ferry-aot-{}", std::process::id())),
        PathBuf::from,
    );
    let wasm = repo().join("dist/plugins").join(format!("{plugin}.wasm"));
    let bytes = std::fs::read(&wasm)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/build-plugins", wasm.display()));
    let digest = ferry::plugin::digest(&bytes);
    let path = dir.join(ferry::plugin::aot::Header::new(&digest, target).file_name());
    if !path.exists() {
        if !cfg!(feature = "jit") {
            panic!(
                "{} is missing: a build without a compiler needs FERRY_AOT_DIR with artifacts made by `ferry compile` (scripts/test makes them)",
                path.display()
            );
        }
        let out = Command::new(FERRY)
            .args(["compile", &wasm.display().to_string(), "--target", target])
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    path
}

/// The plugin to load in this build: the component itself where ferry
/// has a compiler, else its artifact for this host.
pub fn loadable(plugin: &str) -> PathBuf {
    if cfg!(feature = "jit") {
        let p = repo().join("dist/plugins").join(format!("{plugin}.wasm"));
        assert!(
            p.exists(),
            "{} is missing: run scripts/build-plugins",
            p.display()
        );
        p
    } else {
        artifact(plugin, ferry::plugin::aot::HOST_TARGET)
    }
}
