//! Assembly: from a [`Config`] to a ready [`Pipeline`] (plugins compiled,
//! validated and migrated; store open).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{Config, PluginConfig};
use crate::pipeline::{Pipeline, PluginCode, Stats};
use crate::plugin::{LoadedPlugin, PluginHost};
use crate::store::Db;

/// Compiles and validates every configured plugin. Returns each plugin or
/// every error, never stopping at the first.
pub fn load_plugins(
    config: &Config,
    host: &PluginHost,
) -> (Vec<(PluginConfig, Arc<LoadedPlugin>)>, Vec<String>) {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for p in &config.plugins {
        let path = config.resolve(&p.path);
        match host.load_file(&p.name, &path, &p.tables, p.limits()) {
            Ok(l) => loaded.push((p.clone(), Arc::new(l))),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (loaded, errors)
}

/// Opens the store at `db_path`, loads the plugins and activates them.
pub fn build_pipeline(
    config: &Config,
    db_path: &Path,
    stats: Arc<Stats>,
) -> anyhow::Result<Pipeline> {
    let host = PluginHost::new(config.component_cache_dir(db_path))
        .context("starting the WebAssembly engine")?;
    let (plugins, errors) = load_plugins(config, &host);
    if !errors.is_empty() {
        anyhow::bail!(
            "{} plugin(s) could not be loaded:\n  - {}",
            errors.len(),
            errors.join("\n  - ")
        );
    }
    let db = Db::open(db_path, &crate::store::StoreOptions::from(&config.store))?;
    let plugins = plugins
        .into_iter()
        .map(|(c, p)| (c, PluginCode::Wasm(p)))
        .collect();
    Pipeline::new(db, plugins, &config.pipeline, stats)
}
