//! `ferry compile`: turns a plugin component into a precompiled artifact
//! for a target triple, which a runtime-only ferry loads without compiling.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// `ferry compile COMPONENT [--target TRIPLE] [--out DIR]`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The plugin component (.wasm).
    pub component: PathBuf,
    /// The target triple to compile for (default: this host's, for any CPU
    /// of its architecture), e.g. `aarch64-unknown-linux-gnu`.
    #[arg(long)]
    pub target: Option<String>,
    /// The folder to write the artifact to (default: the component's).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[cfg(feature = "jit")]
pub fn run(args: &CompileArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use ferry::plugin::aot;
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    if aot::is_artifact(&bytes) {
        anyhow::bail!(
            "{} is already a precompiled artifact: compile the component (.wasm) it was made from",
            args.component.display()
        );
    }
    let target = args.target.as_deref().unwrap_or(aot::HOST_TARGET);
    let digest = ferry::plugin::digest(&bytes);
    let started = std::time::Instant::now();
    let header = aot::Header::new(&digest, target);
    let artifact = aot::compile(&bytes, &header)?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => args
            .component
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(header.file_name());
    std::fs::write(&path, &artifact).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{} ({digest}) compiled for {target} with wasmtime {} in {} ms: {} ({} bytes)",
        args.component.display(),
        aot::WASMTIME_VERSION,
        started.elapsed().as_millis(),
        path.display(),
        artifact.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "jit"))]
pub fn run(_args: &CompileArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this ferry has no compiler (a runtime-only build): run `ferry compile` with a ferry built with the `jit` feature (the default build), then deploy the artifact here"
    )
}
