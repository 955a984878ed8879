//! `edasctl cluster`, `config-map` and `secret`: the clusters and namespaces applications run in,
//! and the ConfigMaps and Secrets they read (ListCluster, ListK8sNamespaces and the
//! Create/Update/Delete/ListK8sConfigMap(s) and Secret operations).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use edas_wire::cluster::{ClusterListBody, NamespacesBody};
use edas_wire::configuration::{ConfigItem, ConfigMapsBody, SecretsBody};
use edas_wire::envelope::Success;
use serde_json::{Map, Value};

use crate::client::{Operation, ops};
use crate::cmd::context::Global;
use crate::cmd::params::{ParamList, split_assignment};
use crate::output::{self, table};

/// Clusters.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the clusters (ListCluster).
    List {
        /// Only clusters of this EDAS namespace (`LogicalRegionId`).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// List the Kubernetes namespaces of a cluster (ListK8sNamespaces).
    Namespaces {
        /// `ClusterId`.
        #[arg(long, default_value = "local")]
        cluster: String,
    },
}

/// ConfigMaps or Secrets.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List them (ListK8sConfigMaps / ListK8sSecrets).
    List(ListArgs),
    /// Create one.
    Create(WriteArgs),
    /// Replace one's data.
    Update(WriteArgs),
    /// Delete one (refused while an application uses it).
    Delete(NameArgs),
}

/// Where one lives.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// `Name`.
    pub name: String,
    /// `ClusterId`.
    #[arg(long, default_value = "local")]
    pub cluster: String,
    /// `Namespace`: the Kubernetes namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

/// `create` / `update`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub at: NameArgs,
    /// One entry KEY=value (repeatable).
    #[arg(long = "data", value_name = "KEY=VALUE")]
    pub data: Vec<String>,
    /// One entry KEY whose value is the content of FILE (repeatable): KEY=FILE.
    #[arg(long = "data-file", value_name = "KEY=FILE")]
    pub data_file: Vec<String>,
    /// Secrets: the values are Base64 (`Base64Encoded`).
    #[arg(long)]
    pub base64: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// `ClusterId`.
    #[arg(long)]
    pub cluster: Option<String>,
    /// `Namespace`.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Show which applications use each (`ShowRelatedApps`).
    #[arg(long)]
    pub related_apps: bool,
}

/// ConfigMap or Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ConfigMaps.
    ConfigMap,
    /// Secrets.
    Secret,
}

impl Kind {
    fn ops(self) -> [Operation; 4] {
        match self {
            Kind::ConfigMap => [
                ops::ListK8sConfigMaps,
                ops::CreateK8sConfigMap,
                ops::UpdateK8sConfigMap,
                ops::DeleteK8sConfigMap,
            ],
            Kind::Secret => [
                ops::ListK8sSecrets,
                ops::CreateK8sSecret,
                ops::UpdateK8sSecret,
                ops::DeleteK8sSecret,
            ],
        }
    }
}

/// The `Data` JSON object of `--data` and `--data-file`, each key once.
pub fn data(args: &WriteArgs) -> anyhow::Result<String> {
    let mut m = Map::new();
    let mut put = |key: &str, value: String, flag: &str| {
        if m.insert(key.to_owned(), Value::String(value)).is_some() {
            anyhow::bail!("{flag}: the key `{key}` is given twice");
        }
        Ok(())
    };
    for d in &args.data {
        let (k, v) = split_assignment(d, "--data")?;
        put(k, v.to_owned(), "--data")?;
    }
    for d in &args.data_file {
        let (k, path) = split_assignment(d, "--data-file")?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--data-file {k}: cannot read {path}"))?;
        put(k, text, "--data-file")?;
    }
    Ok(Value::Object(m).to_string())
}

fn done(global: &Global, op: Operation, answer: &Value) -> anyhow::Result<ExitCode> {
    output::print(global.output, answer, |a| {
        let mut t = table(&["Operation", "RequestId"]);
        t.add_row(vec![
            op.action.to_owned(),
            output::body::<Success>(a).request_id,
        ]);
        t
    })?;
    Ok(ExitCode::SUCCESS)
}

fn place(list: &mut ParamList, at: &NameArgs) -> anyhow::Result<()> {
    list.set("ClusterId", at.cluster.clone(), "--cluster")?;
    list.set("Namespace", at.namespace.clone(), "--namespace")?;
    list.set("Name", at.name.clone(), "NAME")
}

/// Runs `edasctl config-map …` or `edasctl secret …`.
pub fn run(global: &Global, kind: Kind, command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let [list_op, create_op, update_op, delete_op] = kind.ops();
    match command {
        ConfigCommand::List(args) => {
            let mut list = ParamList::default();
            list.set_opt("ClusterId", args.cluster.clone(), "--cluster")?;
            list.set_opt("Namespace", args.namespace.clone(), "--namespace")?;
            if args.related_apps {
                list.set("ShowRelatedApps", "true".into(), "--related-apps")?;
            }
            let answer = client.call(list_op, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                let items: Vec<ConfigItem> = match kind {
                    Kind::ConfigMap => output::body::<ConfigMapsBody>(a).result.config_maps,
                    Kind::Secret => output::body::<SecretsBody>(a)
                        .result
                        .secrets
                        .into_iter()
                        .map(|s| s.item)
                        .collect(),
                };
                let mut t = table(&["Name", "Namespace", "ClusterId", "Keys", "RelatedApps"]);
                for item in items {
                    let keys: Vec<String> = item.data.into_iter().map(|d| d.key).collect();
                    let apps: Vec<String> =
                        item.related_apps.into_iter().map(|a| a.app_name).collect();
                    t.add_row(vec![
                        item.name,
                        item.namespace,
                        item.cluster_id,
                        keys.join(", "),
                        apps.join(", "),
                    ]);
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Create(args) | ConfigCommand::Update(args) => {
            let op = if matches!(command, ConfigCommand::Create(_)) {
                create_op
            } else {
                update_op
            };
            let mut list = ParamList::default();
            place(&mut list, &args.at)?;
            list.set("Data", data(args)?, "--data/--data-file")?;
            if args.base64 {
                if kind == Kind::ConfigMap {
                    anyhow::bail!("--base64 applies to secrets only");
                }
                list.set("Base64Encoded", "true".into(), "--base64")?;
            }
            done(global, op, &client.call(op, &list.into_pairs())?)
        }
        ConfigCommand::Delete(at) => {
            let mut list = ParamList::default();
            place(&mut list, at)?;
            done(
                global,
                delete_op,
                &client.call(delete_op, &list.into_pairs())?,
            )
        }
    }
}

/// Runs `edasctl cluster …`.
pub fn cluster(global: &Global, command: &ClusterCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        ClusterCommand::List { namespace } => {
            let mut list = ParamList::default();
            list.set_opt("LogicalRegionId", namespace.clone(), "--namespace")?;
            let answer = client.call(ops::ListCluster, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&["ClusterId", "ClusterName", "ClusterType", "RegionId"]);
                for c in output::body::<ClusterListBody>(a).cluster_list.cluster {
                    let c = c.head;
                    t.add_row([
                        c.cluster_id,
                        c.cluster_name,
                        c.cluster_type.to_string(),
                        c.region_id,
                    ]);
                }
                t
            })?;
        }
        ClusterCommand::Namespaces { cluster } => {
            let answer = client.call(
                ops::ListK8sNamespaces,
                &[("ClusterId".to_owned(), cluster.clone())],
            )?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&["Namespace"]);
                for n in output::body::<NamespacesBody>(a).data {
                    t.add_row(vec![n.namespace]);
                }
                t
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_flags_become_one_object_with_each_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.conf");
        std::fs::write(&file, "a = 1\n").unwrap();
        let args = WriteArgs {
            at: NameArgs {
                name: "n".into(),
                cluster: "local".into(),
                namespace: "default".into(),
            },
            data: vec!["mode=fast".into()],
            data_file: vec![format!("app.conf={}", file.display())],
            base64: false,
        };
        let v: Value = serde_json::from_str(&data(&args).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"mode": "fast", "app.conf": "a = 1\n"})
        );
        let twice = WriteArgs {
            data: vec!["k=1".into(), "k=2".into()],
            ..args
        };
        assert!(data(&twice).unwrap_err().to_string().contains("`k`"));
    }
}
