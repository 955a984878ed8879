//! The configuration file (TOML): what this installation is (region, account, EDAS
//! namespaces), the clusters it deploys to, and how long history is kept. Unknown keys are
//! refused so that a misspelt setting is never silently ignored.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The built-in cluster: this machine.
pub const LOCAL_CLUSTER: &str = "local";

/// The whole file. Every key is optional.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The region id the API answers as (`RegionId`); also the default EDAS namespace.
    #[serde(default = "default_region")]
    pub region_id: String,
    /// The account id in resource ARNs (`acs:edas:{region}:{account}:…`).
    #[serde(default = "default_account")]
    pub account_id: String,
    /// EDAS namespaces besides the default one, as `{region}:{name}`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kubernetes clusters applications can be deployed to (besides `local`).
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// How long finished change orders and audit records are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
}

fn default_region() -> String {
    "cn-hangzhou".to_owned()
}

fn default_account() -> String {
    "edasd".to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region_id: default_region(),
            account_id: default_account(),
            namespaces: Vec::new(),
            clusters: Vec::new(),
            retention: RetentionConfig::default(),
        }
    }
}

/// One `[[clusters]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The `ClusterId` clients name.
    pub id: String,
    /// A display name (default: the id).
    pub name: Option<String>,
    /// Only `kubernetes`.
    #[serde(rename = "type", default = "default_cluster_type")]
    pub cluster_type: String,
    /// The kubeconfig file to reach it (default: the usual kubeconfig resolution).
    pub kubeconfig: Option<String>,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
}

fn default_cluster_type() -> String {
    "kubernetes".to_owned()
}

/// `[retention]`: a finished change order (or audit record) is pruned when it is older than
/// `*_max_age_days` or beyond the newest `*_max_count`. Absent = kept forever.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub change_order_max_age_days: Option<u64>,
    pub change_order_max_count: Option<u64>,
    pub audit_max_age_days: Option<u64>,
    pub audit_max_count: Option<u64>,
}

impl RetentionConfig {
    /// The store's retention rules for change orders and for audit records.
    pub fn rules(&self) -> (edas_store::Retention, edas_store::Retention) {
        let days = |d: Option<u64>| d.map(|d| Duration::from_secs(d.saturating_mul(86_400)));
        (
            edas_store::Retention {
                max_age: days(self.change_order_max_age_days),
                max_count: self.change_order_max_count,
            },
            edas_store::Retention {
                max_age: days(self.audit_max_age_days),
                max_count: self.audit_max_count,
            },
        )
    }

    /// Whether any rule is set.
    pub fn is_set(&self) -> bool {
        *self != RetentionConfig::default()
    }
}

fn simple_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).context("the configuration is not valid")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !simple_id(&self.region_id) {
            bail!(
                "region_id `{}` must be 1-64 letters, digits, `-` or `_`",
                self.region_id
            );
        }
        if !simple_id(&self.account_id) {
            bail!(
                "account_id `{}` must be 1-64 letters, digits, `-` or `_`",
                self.account_id
            );
        }
        for ns in &self.namespaces {
            let Some(name) = ns.strip_prefix(&format!("{}:", self.region_id)) else {
                bail!(
                    "namespace `{ns}` must be `{}:<name>` (EDAS namespace ids start with the region id)",
                    self.region_id
                );
            };
            if !simple_id(name) {
                bail!("namespace `{ns}`: the name must be 1-64 letters, digits, `-` or `_`");
            }
        }
        let mut ids = vec![LOCAL_CLUSTER];
        for cluster in &self.clusters {
            if !simple_id(&cluster.id) {
                bail!(
                    "cluster id `{}` must be 1-64 letters, digits, `-` or `_`",
                    cluster.id
                );
            }
            if ids.contains(&cluster.id.as_str()) {
                bail!(
                    "cluster id `{}` is defined twice (or is the built-in `local`)",
                    cluster.id
                );
            }
            ids.push(&cluster.id);
            if cluster.cluster_type != "kubernetes" {
                bail!(
                    "cluster `{}`: type `{}` is not supported; use `kubernetes`",
                    cluster.id,
                    cluster.cluster_type
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.region_id, "cn-hangzhou");
        assert!(!config.retention.is_set());
    }

    #[test]
    fn full_file() {
        let config = Config::parse(
            r#"
            region_id = "eu-central-1"
            account_id = "1234567890"
            namespaces = ["eu-central-1:prod"]
            [[clusters]]
            id = "prod"
            kubeconfig = "/etc/edasd/prod.kubeconfig"
            context = "prod-admin"
            [retention]
            change_order_max_age_days = 30
            audit_max_count = 1000
            "#,
        )
        .unwrap();
        assert_eq!(config.clusters[0].cluster_type, "kubernetes");
        let (orders, audit) = config.retention.rules();
        assert_eq!(orders.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(audit.max_count, Some(1000));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        for (text, why) in [
            ("regoin_id = \"x\"", "unknown field"),
            ("region_id = \"a b\"", "region_id"),
            (
                "namespaces = [\"other:prod\"]",
                "must be `cn-hangzhou:<name>`",
            ),
            ("[[clusters]]\nid = \"local\"", "built-in"),
            (
                "[[clusters]]\nid = \"a\"\n[[clusters]]\nid = \"a\"",
                "twice",
            ),
            ("[[clusters]]\nid = \"a\"\ntype = \"ecs\"", "not supported"),
            ("[retention]\nkeep = 1", "unknown field"),
        ] {
            let error = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
