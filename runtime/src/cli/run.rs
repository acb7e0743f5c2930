//! `ferry run`: the main job.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::ConfigArgs;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    let db_path = args.db_path(&config);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    crate::run::run(&config, &db_path, stop)?;
    Ok(ExitCode::SUCCESS)
}
