//! Records the target triple ferry is built for (`FERRY_TARGET`), which
//! precompiled plugin artifacts are checked against.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=FERRY_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
