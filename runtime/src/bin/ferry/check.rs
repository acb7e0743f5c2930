//! `ferry check`: validate the config and load every plugin, listing every
//! problem at once.

use std::process::ExitCode;

use super::ConfigArgs;
use ferry::config::{Config, ConfigError};
use ferry::plugin::PluginHost;
use ferry::run::load_plugins;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let (config, mut problems) = match Config::load(&args.config) {
        Ok(c) => (c, Vec::new()),
        Err(ConfigError::Invalid { problems, .. }) => {
            // Still load the plugins: every problem is reported at once.
            let text = std::fs::read_to_string(&args.config)?;
            let base = args.config.parent().unwrap_or(std::path::Path::new("."));
            let (config, _) = Config::parse_tolerant(&text, base).map_err(anyhow::Error::msg)?;
            (config, problems)
        }
        Err(e) => return Err(e.into()),
    };
    let db_path = args.db_path(&config);
    let host = PluginHost::new(config.component_cache_dir(&db_path))?;
    let (loaded, errors) = load_plugins(&config, &host);
    problems.extend(errors);
    if !problems.is_empty() {
        println!(
            "{} has {} problem(s):",
            args.config.display(),
            problems.len()
        );
        for p in &problems {
            println!("  - {p}");
        }
        return Ok(ExitCode::from(1));
    }
    println!("{}: OK", args.config.display());
    println!("  store: {}", db_path.display());
    for (c, l) in &loaded {
        println!(
            "  plugin {} {} ({}, {}): handles {}; tables {}; deadline {} ms, memory {} MiB; clock: {}; {}",
            c.name,
            l.metadata.version,
            l.digest,
            l.contract,
            c.events.join(", "),
            if c.tables.is_empty() {
                "none".into()
            } else {
                c.tables.join(", ")
            },
            c.timeout_ms,
            c.memory_mb,
            match c.clock {
                ferry::config::ClockGrant::Event => "the event's time",
                ferry::config::ClockGrant::Host =>
                    "the HOST's real time (granted: the projection is not reproducible)",
            },
            l.provenance.describe(),
        );
        for q in &l.queries {
            println!(
                "    query {}({}){}",
                q.name,
                q.params
                    .iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                q.result
                    .as_ref()
                    .map(|r| format!(" -> {r}"))
                    .unwrap_or_default()
            );
        }
    }
    for s in &config.sources {
        println!("  source {} ({})", s.name(), s.kind());
    }
    if config.api.enabled != Some(false) {
        println!("  api {}: {}", config.api.listen, api_access(&config.api));
    }
    Ok(ExitCode::SUCCESS)
}

/// Who may change ferry's state through the HTTP API.
fn api_access(api: &ferry::config::ApiConfig) -> String {
    if let Some(why) = api.protected_mode_reason() {
        return why;
    }
    if api.admin_token.is_some() {
        return "requests that change something need the admin token".into();
    }
    let loopback = api
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if loopback {
        "requests that change something are served to local clients only (loopback)".into()
    } else {
        "WARNING: protected mode is off (api.protected_mode = false) and no admin token is set: \
         anyone who reaches the port can replace plugins and purge dead letters"
            .into()
    }
}
