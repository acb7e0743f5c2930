//! `ferry plugins list|history|rollback`: ask a running ferry (through its
//! HTTP API) about its plugins, or roll one back to its previous version.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::ConfigArgs;
use super::http::request;

/// Arguments of `ferry plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

/// How to reach the running ferry.
#[derive(Debug, Args)]
struct Target {
    #[command(flatten)]
    common: ConfigArgs,
    /// The API address (`host:port`); default: `api.listen` of the config.
    #[arg(long)]
    api: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Every plugin of the running ferry: version, digest, activated at,
    /// events, counters.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Activations, swaps, rollbacks and refusals of one plugin.
    History {
        #[command(flatten)]
        target: Target,
        /// The plugin.
        name: String,
    },
    /// Go back to the version the running one replaced.
    Rollback {
        #[command(flatten)]
        target: Target,
        /// The plugin.
        name: String,
    },
}

impl Target {
    fn resolve(&self) -> anyhow::Result<(String, Option<String>)> {
        let config = self.common.load()?;
        let addr = match &self.api {
            Some(a) => a
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            None => {
                anyhow::ensure!(
                    !config.api.listen.ends_with(":0"),
                    "api.listen picks a random port; pass the address ferry printed with --api"
                );
                config.api.listen.clone()
            }
        };
        Ok((addr, config.api.admin_token.clone()))
    }
}

const TIMEOUT: Duration = Duration::from_secs(130);

pub fn run(args: &PluginsArgs) -> anyhow::Result<ExitCode> {
    let (target, method, path) = match &args.command {
        PluginsCommand::List { target } => (target, "GET", "/plugins".to_owned()),
        PluginsCommand::History { target, name } => {
            (target, "GET", format!("/plugins/{name}/history"))
        }
        PluginsCommand::Rollback { target, name } => {
            (target, "POST", format!("/plugins/{name}/rollback"))
        }
    };
    let (addr, token) = target.resolve()?;
    let r = request(&addr, method, &path, token.as_deref(), b"", TIMEOUT)?;
    let pretty = serde_json::from_str::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(r.body);
    println!("{pretty}");
    Ok(if (200..300).contains(&r.status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
