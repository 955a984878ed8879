//! `edasctl app`: create, list and get applications (InsertK8sApplication, ListApplication,
//! GetK8sApplication).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::ops;
use crate::cmd::context::{Global, WatchFlags};
use crate::cmd::params::{ArgsStyle, ParamList, SpecFlags};
use crate::output::{self, cell, table};

/// Applications.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an application (InsertK8sApplication) and its first change order.
    Create(CreateArgs),
    /// List applications (ListApplication).
    List(ListArgs),
    /// Show one application (GetK8sApplication).
    Get(GetArgs),
}

/// `app create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// `AppName`.
    pub name: String,
    /// `ClusterId`: `local` runs instances as processes on the server's machine.
    #[arg(long, default_value = "local")]
    pub cluster: String,
    /// `LogicalRegionId`: the EDAS namespace (default: the region's own).
    #[arg(long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub spec: SpecFlags,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `app list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only applications whose name contains this (`AppName`).
    #[arg(long)]
    pub name: Option<String>,
    /// Only applications of this cluster (`ClusterId`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only applications of this namespace (`LogicalRegionId`).
    #[arg(long)]
    pub namespace: Option<String>,
}

/// `app get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// `AppId`.
    pub app_id: String,
}

/// Runs `edasctl app …`.
pub fn run(global: &Global, command: &AppCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        AppCommand::Create(args) => {
            let mut list = ParamList::default();
            list.set("AppName", args.name.clone(), "NAME")?;
            list.set("ClusterId", args.cluster.clone(), "--cluster")?;
            list.set_opt("LogicalRegionId", args.namespace.clone(), "--namespace")?;
            args.spec.add_to(&mut list, ArgsStyle::CommandArgs)?;
            let answer = client.call(ops::InsertK8sApplication, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                output::fields_table(&a["ApplicationInfo"])
            })?;
            let change_order = answer["ApplicationInfo"]["ChangeOrderId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            crate::cmd::change_order::follow(global, &client, &change_order, None, &args.watch)
        }
        AppCommand::List(args) => {
            let mut list = ParamList::default();
            list.set_opt("AppName", args.name.clone(), "--name")?;
            list.set_opt("ClusterId", args.cluster.clone(), "--cluster")?;
            list.set_opt("LogicalRegionId", args.namespace.clone(), "--namespace")?;
            let answer = client.call(ops::ListApplication, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&[
                    "AppId",
                    "Name",
                    "Cluster",
                    "Namespace",
                    "Instances",
                    "State",
                ]);
                let apps = a["ApplicationList"]["Application"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice);
                for app in apps {
                    t.add_row(
                        [
                            "AppId",
                            "Name",
                            "ClusterId",
                            "NamespaceId",
                            "Instances",
                            "State",
                        ]
                        .map(|k| cell(&app[k])),
                    );
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Get(args) => {
            let answer = client.call(
                ops::GetK8sApplication,
                &[("AppId".to_owned(), args.app_id.clone())],
            )?;
            output::print(global.output, &answer, |a| {
                let app = &a["Applcation"];
                let mut t = output::fields_table(&Value::Null);
                if let Value::Object(m) = app {
                    for (k, v) in m {
                        t.add_row(vec![k.clone(), summary(v)]);
                    }
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A field for a table cell: scalars as they are, nested objects' scalar fields one per line.
fn summary(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, x)| !x.is_object() && !x.is_array())
            .map(|(k, x)| format!("{k}: {}", cell(x)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => cell(other),
    }
}
