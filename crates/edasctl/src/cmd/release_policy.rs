//! `edasctl app policy`: an application's release policy (issue 21), through edasd's admin API
//! (`/edasd/v1/applications/{app}/policy`), authorized per application.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use edas_wire::admin::{ReleasePolicy, ReleasePolicyBody, ReleasePolicyHistoryBody};

use crate::client::Client;
use crate::cmd::context::Global;
use crate::cmd::instances::resolve_app;
use crate::output::{self, table};

/// `edasctl app policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the policy from a YAML or JSON file (a new version; every mistake is named by its
    /// field path and nothing is stored).
    Set {
        /// The application: its id or its name.
        app: String,
        /// The policy file (`-` reads standard input).
        #[arg(long, short = 'f')]
        file: String,
    },
    /// Show the current policy and its version.
    Get {
        /// The application: its id or its name.
        app: String,
    },
    /// Delete the policy: later releases are not judged (the history keeps it).
    Delete {
        /// The application: its id or its name.
        app: String,
    },
    /// List every version of the policy, newest first.
    History {
        /// The application: its id or its name.
        app: String,
    },
}

fn row(p: &ReleasePolicy) -> Vec<String> {
    let when = jiff::Timestamp::from_millisecond(p.create_time)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let checks = p
        .document
        .get("checks")
        .and_then(|c| c.as_array())
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("name").and_then(|n| n.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "(deleted)".to_owned());
    vec![p.version.to_string(), when, p.creator.clone(), checks]
}

const HEADER: [&str; 4] = ["Version", "Set", "By", "Checks"];

/// Runs `edasctl app policy …`.
pub fn run(global: &Global, client: &Client, command: &PolicyCommand) -> anyhow::Result<ExitCode> {
    let (app, answer) = match command {
        PolicyCommand::Set { app, file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
            };
            let app = resolve_app(client, app)?;
            let path = format!("applications/{app}/policy");
            (
                app,
                client.admin_text("PUT", &path, &text, "application/yaml")?,
            )
        }
        PolicyCommand::Get { app } => {
            let app = resolve_app(client, app)?;
            let answer = client.admin("GET", &format!("applications/{app}/policy"), None)?;
            if matches!(global.output, output::Format::Table) {
                // The document itself, as YAML a `policy set` takes back.
                let p = output::body::<ReleasePolicyBody>(&answer).release_policy;
                println!(
                    "# release policy of {app}: version {}, set by {}",
                    p.version, p.creator
                );
                print!("{}", serde_saphyr::to_string(&p.document)?);
                return Ok(ExitCode::SUCCESS);
            }
            (app, answer)
        }
        PolicyCommand::Delete { app } => {
            let app = resolve_app(client, app)?;
            let answer = client.admin("DELETE", &format!("applications/{app}/policy"), None)?;
            (app, answer)
        }
        PolicyCommand::History { app } => {
            let app = resolve_app(client, app)?;
            let answer =
                client.admin("GET", &format!("applications/{app}/policy/history"), None)?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&HEADER);
                for p in output::body::<ReleasePolicyHistoryBody>(a).versions {
                    t.add_row(row(&p));
                }
                t
            })?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let _ = app;
    output::print(global.output, &answer, |a| {
        let mut t = table(&HEADER);
        t.add_row(row(&output::body::<ReleasePolicyBody>(a).release_policy));
        t
    })?;
    Ok(ExitCode::SUCCESS)
}
