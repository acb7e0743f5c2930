//! `ferry run`: the main job.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::ConfigArgs;
use ferry::Runtime;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
    let mut builder = Runtime::builder()
        .config_file(&args.config)?
        .serve_api(config.api.enabled.unwrap_or(true))
        .announce(true)
        .stop_flag(stop)
        .reload_flag(reload);
    if let Some(db) = &args.db {
        builder = builder.store_path(db);
    }
    builder.build()?.run_blocking()?;
    Ok(ExitCode::SUCCESS)
}
