//! The configuration file (TOML): what this installation is (region, account, EDAS
//! namespaces), the clusters it deploys to, how the built-in cluster `local` runs instances, and
//! how long history is kept. Unknown keys are refused so that a misspelt setting is never
//! silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// How the built-in cluster `local` runs instances.
    #[serde(default)]
    pub local: LocalSection,
    /// The release engine (`[engine]`).
    #[serde(default)]
    pub engine: EngineSection,
    /// Limits of the API listener (`[server]`).
    #[serde(default)]
    pub server: crate::connections::ServerSection,
    /// Release notifications (`[notify]`).
    #[serde(default)]
    pub notify: crate::notify::NotifySection,
    /// Release analysis (`[analysis]`, issue 21).
    #[serde(default)]
    pub analysis: AnalysisSection,
}

/// `[analysis]`: what release policies' checks use. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    /// The Prometheus server (`http://host:port`) a `prometheus` check without its own
    /// `address` queries; without it such a policy is refused when it is set.
    pub prometheus: Option<String>,
}

impl AnalysisSection {
    /// The address, validated: an http(s) URL without a query or fragment.
    pub fn prometheus(&self) -> anyhow::Result<Option<String>> {
        let Some(address) = &self.prometheus else {
            return Ok(None);
        };
        let valid = (address.starts_with("http://") || address.starts_with("https://"))
            && !address.contains(['?', '#', ' '])
            && address
                .split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty());
        if !valid {
            bail!(
                "[analysis] prometheus = `{address}`: must be an http:// or https:// address such as http://127.0.0.1:9090"
            );
        }
        Ok(Some(address.trim_end_matches('/').to_owned()))
    }
}

/// `[engine]`: the release engine. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// How long a change order stays claimed by an edasd process without renewal, seconds
    /// (default 15): when the process dies, another one sharing the database takes the order
    /// over after this long.
    pub lease_seconds: Option<f64>,
}

impl EngineSection {
    /// The lease, if set (validated: 1 to 3600 seconds).
    pub fn lease(&self) -> anyhow::Result<Option<Duration>> {
        match self.lease_seconds {
            None => Ok(None),
            Some(v) if v.is_finite() && (1.0..=3600.0).contains(&v) => {
                Ok(Some(Duration::from_secs_f64(v)))
            }
            Some(v) => bail!("[engine] lease_seconds = {v}: must be between 1 and 3600 seconds"),
        }
    }
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
            local: LocalSection::default(),
            engine: EngineSection::default(),
            server: crate::connections::ServerSection::default(),
            notify: crate::notify::NotifySection::default(),
            analysis: AnalysisSection::default(),
        }
    }
}

/// The user ids applications get one each of when edasd runs as root and `[local] run_as_user`
/// is not set: far above any account's and the usual container sub-uid ranges.
pub const DEFAULT_APP_UID_RANGE: [u32; 2] = [3_000_000, 3_999_999];

/// The `JDK` values EDAS accepts (InsertK8sApplication / DeployK8sApplication).
pub const JDK_VALUES: [&str; 3] = ["Open JDK 7", "Open JDK 8", "Custom OpenJDK"];

/// `[local]`: the local runtime (see the `edas-local` crate docs). Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// Run every instance as this user (name or uid); edasd must be able to switch users. When
    /// edasd runs as root and this is not set, each application gets its own user id from
    /// `app_uid_range`; instances run as root only with `run_as_user = "root"`.
    pub run_as_user: Option<String>,
    /// The user ids (first and last, inclusive) applications get one each of when edasd runs
    /// as root without `run_as_user` (default `[3000000, 3999999]`, ids no account uses).
    pub app_uid_range: Option<[u32; 2]>,
    /// Where instance directories and the package cache live (default: `<data-dir>.instances`,
    /// beside the data directory, which instances must not see). Every directory on the way
    /// must be reachable (`o+x`) by the instances' user.
    pub instances_dir: Option<PathBuf>,
    /// Roots under which `LocalVolume` host paths and `file://` packages must lie (absolute;
    /// default none: both are refused).
    pub allowed_host_paths: Option<Vec<PathBuf>>,
    /// The most processes and threads one instance may have (its cgroup's `pids.max`; default
    /// 4096).
    pub pids_limit: Option<u64>,
    /// A limit or `SecurityContext` field this host cannot enforce: `"refuse"` the change
    /// (default) or `"record"` it and run without it (the log says so at every start).
    pub unenforceable: Option<String>,
    /// The java binary for a package without `JDK` (default: `java` found on `PATH`).
    pub default_java: Option<PathBuf>,
    /// `[local.jdk]`: `JDK` value → java binary. Absent: all three EDAS values run the `java`
    /// found on `PATH` (none when there is none, so `JDK` is then refused). Present: exactly
    /// these values are accepted.
    pub jdk: Option<BTreeMap<String, PathBuf>>,
    /// First restart delay of a crashed or unhealthy instance, seconds (default 10).
    pub restart_backoff_seconds: Option<f64>,
    /// Longest restart delay, seconds (default 300).
    pub max_restart_backoff_seconds: Option<f64>,
    /// Consecutive quick failures after which an instance is reported failed (default 5).
    pub crash_loop_limit: Option<u32>,
    /// A run shorter than this many seconds is a quick failure (default 60).
    pub quick_failure_seconds: Option<f64>,
    /// A log file larger than this is rotated (default 10 MiB).
    pub log_max_bytes: Option<u64>,
    /// Rotated copies kept per log file (default 3).
    pub log_files_kept: Option<u32>,
    /// Log directories of stopped instances kept per application (default 20).
    pub stopped_logs_kept: Option<usize>,
    /// The shared ingress listener (`host:port`, e.g. `127.0.0.1:8080`) that routes ingress
    /// rules (CreateK8sIngressRule) by host and path to the applications' service ports.
    /// Unset (the default): ingress rules on `local` are refused.
    pub ingress_listen: Option<std::net::SocketAddr>,
    /// How often the autoscaler of an application with an enabled scaling rule samples its
    /// metrics and decides, seconds (default 15, the HPA controller's sync period).
    pub autoscale_interval_seconds: Option<f64>,
}

/// The first executable file named `name` in the `PATH` directories `path`.
pub fn find_in_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn seconds(key: &str, value: Option<f64>) -> anyhow::Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => {
            Ok(Some(Duration::from_secs_f64(v)))
        }
        Some(v) => bail!("[local] {key} = {v}: must be a number of seconds above 0, at most 86400"),
    }
}

impl LocalSection {
    fn validate(&self) -> anyhow::Result<()> {
        if self.run_as_user.as_deref().is_some_and(str::is_empty) {
            bail!("[local] run_as_user must not be empty (leave it out to run as edasd's user)");
        }
        if let Some(java) = &self.default_java
            && !java.is_absolute()
        {
            bail!(
                "[local] default_java `{}` must be an absolute path",
                java.display()
            );
        }
        for (name, java) in self.jdk.iter().flatten() {
            if !JDK_VALUES.contains(&name.as_str()) {
                bail!(
                    "[local.jdk] `{name}` is not a JDK value EDAS accepts (one of: {})",
                    JDK_VALUES.join(", ")
                );
            }
            if !java.is_absolute() {
                bail!(
                    "[local.jdk] `{name}` = `{}` must be an absolute path",
                    java.display()
                );
            }
        }
        let backoff = seconds("restart_backoff_seconds", self.restart_backoff_seconds)?;
        let max = seconds(
            "max_restart_backoff_seconds",
            self.max_restart_backoff_seconds,
        )?;
        if let (Some(b), Some(m)) = (backoff, max)
            && m < b
        {
            bail!("[local] max_restart_backoff_seconds must not be below restart_backoff_seconds");
        }
        seconds("quick_failure_seconds", self.quick_failure_seconds)?;
        seconds(
            "autoscale_interval_seconds",
            self.autoscale_interval_seconds,
        )?;
        if self.crash_loop_limit == Some(0) {
            bail!("[local] crash_loop_limit must be at least 1");
        }
        if self.log_max_bytes == Some(0) {
            bail!("[local] log_max_bytes must be at least 1");
        }
        if let Some([first, last]) = self.app_uid_range
            && (first < 1000 || last < first || last >= 4_294_967_294)
        {
            bail!(
                "[local] app_uid_range = [{first}, {last}]: must be ascending user ids from 1000 to 4294967293"
            );
        }
        if self.pids_limit == Some(0) {
            bail!("[local] pids_limit must be at least 1");
        }
        if let Some(dir) = &self.instances_dir
            && !dir.is_absolute()
        {
            bail!(
                "[local] instances_dir `{}` must be an absolute path",
                dir.display()
            );
        }
        for root in self.allowed_host_paths.iter().flatten() {
            if !root.is_absolute()
                || root
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!(
                    "[local] allowed_host_paths: `{}` must be an absolute path without `..`",
                    root.display()
                );
            }
        }
        self.unenforceable_mode()?;
        Ok(())
    }

    fn unenforceable_mode(&self) -> anyhow::Result<edas_local::Unenforceable> {
        match self.unenforceable.as_deref() {
            None | Some("refuse") => Ok(edas_local::Unenforceable::Refuse),
            Some("record") => Ok(edas_local::Unenforceable::Record),
            Some(other) => {
                bail!("[local] unenforceable = `{other}`: must be \"refuse\" or \"record\"")
            }
        }
    }

    /// The runtime's settings, with instances under `data_dir` and `java` looked up in `path`
    /// (the `PATH` value). Configured java binaries must exist, so a typo stops edasd at start.
    pub fn runtime_config(
        &self,
        data_dir: PathBuf,
        path: Option<&std::ffi::OsStr>,
    ) -> anyhow::Result<edas_local::LocalConfig> {
        let mut config = edas_local::LocalConfig::new(data_dir.clone());
        let found = find_in_path("java", path);
        let executable = |key: &str, file: &Path| -> anyhow::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(file) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
                Ok(_) => bail!("{key} `{}` is not an executable file", file.display()),
                Err(e) => bail!("{key} `{}`: {e}", file.display()),
            }
        };
        if let Some(java) = &self.default_java {
            executable("[local] default_java", java)?;
            config.default_java = java.clone();
        } else if let Some(java) = &found {
            config.default_java = java.clone();
        }
        config.java_binaries = match &self.jdk {
            Some(map) => {
                for (name, java) in map {
                    executable(&format!("[local.jdk] `{name}`"), java)?;
                }
                map.clone()
            }
            None => found
                .iter()
                .flat_map(|java| JDK_VALUES.map(|v| (v.to_owned(), java.clone())))
                .collect(),
        };
        // As root, instances never run as root unless the configuration says so: without a
        // configured user each application runs as its own.
        config.run_as_user = self.run_as_user.clone();
        if self.run_as_user.is_none() && nix::unistd::geteuid().is_root() {
            let [first, last] = self.app_uid_range.unwrap_or(DEFAULT_APP_UID_RANGE);
            config.app_uids = Some((first, last));
        }
        config.instances_dir = match &self.instances_dir {
            Some(dir) => dir.clone(),
            None => {
                // `<data-dir>/local` → `<data-dir>.instances`.
                let edasd_data = data_dir.parent().unwrap_or(&data_dir);
                let mut name = edasd_data.as_os_str().to_owned();
                name.push(".instances");
                PathBuf::from(name)
            }
        };
        if let Some(edasd_data) = data_dir.parent()
            && (config.instances_dir.starts_with(edasd_data)
                || edasd_data.starts_with(&config.instances_dir))
        {
            bail!(
                "[local] instances_dir `{}` must lie outside the data directory `{}` (instances must not see it)",
                config.instances_dir.display(),
                edasd_data.display()
            );
        }
        config.allowed_host_paths = Some(self.allowed_host_paths.clone().unwrap_or_default());
        config.pids_max = Some(self.pids_limit.unwrap_or(4096));
        config.unenforceable = self.unenforceable_mode()?;
        if let Some(d) = seconds("restart_backoff_seconds", self.restart_backoff_seconds)? {
            config.restart_backoff = d;
        }
        if let Some(d) = seconds(
            "max_restart_backoff_seconds",
            self.max_restart_backoff_seconds,
        )? {
            config.max_restart_backoff = d;
        }
        if let Some(d) = seconds("quick_failure_seconds", self.quick_failure_seconds)? {
            config.quick_failure = d;
        }
        if let Some(d) = seconds(
            "autoscale_interval_seconds",
            self.autoscale_interval_seconds,
        )? {
            config.autoscale_interval = d;
        }
        config.max_restart_backoff = config.max_restart_backoff.max(config.restart_backoff);
        if let Some(n) = self.crash_loop_limit {
            config.crash_loop_limit = n;
        }
        if let Some(n) = self.log_max_bytes {
            config.log_max_bytes = n;
        }
        if let Some(n) = self.log_files_kept {
            config.log_files_kept = n;
        }
        if let Some(n) = self.stopped_logs_kept {
            config.stopped_logs_kept = n;
        }
        config.ingress_listen = self.ingress_listen;
        Ok(config)
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
    /// Use the service account of the pod edasd runs in instead of a kubeconfig.
    #[serde(default)]
    pub in_cluster: bool,
    /// The Gateway API Gateway (`<namespace>/<name>`) that gray-release HTTPRoutes
    /// (TrafficControlStrategy) attach to; without one, such releases are refused.
    pub gateway: Option<String>,
    /// The `ingressClassName` of the Ingresses of ingress rules (CreateK8sIngressRule);
    /// default none: the cluster's default IngressClass.
    pub ingress_class: Option<String>,
    /// How ingress rules are routed: `"ingress"` (default: a `networking.k8s.io/v1` Ingress
    /// each) or `"gateway"` (Gateway API HTTPRoutes attached to `gateway`, which it needs).
    pub ingress: Option<String>,
    /// How long a pod may stay unschedulable before its batch fails (default 30).
    pub unschedulable_grace_seconds: Option<u64>,
    /// Restarts after which a container in `CrashLoopBackOff` fails its batch (default 3).
    pub crash_loop_restarts: Option<u32>,
    /// Server-side timeout of each watch (default 5): a watch left silent by a draining API
    /// server is replaced after this plus 5 s.
    pub watch_timeout_seconds: Option<u64>,
}

impl ClusterConfig {
    /// How edasd reaches the cluster.
    pub fn access(&self) -> edas_kube::ClusterAccess {
        if self.in_cluster {
            edas_kube::ClusterAccess::InCluster
        } else {
            edas_kube::ClusterAccess::Kubeconfig {
                path: self.kubeconfig.as_ref().map(PathBuf::from),
                context: self.context.clone(),
            }
        }
    }

    /// The runtime options of this cluster (gateway, failure grace periods, watch timeout).
    pub fn options(&self) -> edas_kube::Options {
        let mut options = edas_kube::Options::new(&self.id);
        options.gateway = self.gateway();
        options.ingress_class = self.ingress_class.clone();
        options.ingress_via_gateway = self.ingress.as_deref() == Some("gateway");
        if let Some(seconds) = self.unschedulable_grace_seconds {
            options.failure.unschedulable_grace = std::time::Duration::from_secs(seconds);
        }
        if let Some(restarts) = self.crash_loop_restarts {
            options.failure.crash_loop_restarts = i32::try_from(restarts).unwrap_or(i32::MAX);
        }
        if let Some(seconds) = self.watch_timeout_seconds {
            options.watch_timeout = std::time::Duration::from_secs(seconds);
        }
        options
    }

    /// The configured Gateway, split into namespace and name.
    pub fn gateway(&self) -> Option<edas_kube::GatewayRef> {
        let (namespace, name) = self.gateway.as_deref()?.split_once('/')?;
        Some(edas_kube::GatewayRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
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
            if cluster.in_cluster && (cluster.kubeconfig.is_some() || cluster.context.is_some()) {
                bail!(
                    "cluster `{}`: in_cluster = true uses the pod's service account; leave out kubeconfig and context",
                    cluster.id
                );
            }
            if cluster.crash_loop_restarts == Some(0) {
                bail!(
                    "cluster `{}`: crash_loop_restarts must be at least 1",
                    cluster.id
                );
            }
            if matches!(cluster.watch_timeout_seconds, Some(0 | 3601..)) {
                bail!(
                    "cluster `{}`: watch_timeout_seconds must be 1 to 3600",
                    cluster.id
                );
            }
            if let Some(gateway) = &cluster.gateway {
                let valid = gateway.split_once('/').is_some_and(|(ns, name)| {
                    !ns.is_empty()
                        && ns
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !name.is_empty()
                        && !name.contains('/')
                });
                if !valid {
                    bail!(
                        "cluster `{}`: gateway `{gateway}` must be `<namespace>/<name>` of a Gateway API Gateway",
                        cluster.id
                    );
                }
            }
            match cluster.ingress.as_deref() {
                None | Some("ingress") => {}
                Some("gateway") if cluster.gateway.is_none() => bail!(
                    "cluster `{}`: ingress = \"gateway\" routes ingress rules through the cluster's Gateway: set `gateway = \"<namespace>/<name>\"` too",
                    cluster.id
                ),
                Some("gateway") if cluster.ingress_class.is_some() => bail!(
                    "cluster `{}`: ingress_class applies to Ingresses, and ingress = \"gateway\" makes HTTPRoutes: leave one out",
                    cluster.id
                ),
                Some("gateway") => {}
                Some(other) => bail!(
                    "cluster `{}`: ingress = \"{other}\" must be \"ingress\" or \"gateway\"",
                    cluster.id
                ),
            }
        }
        self.engine.lease()?;
        self.analysis.prometheus()?;
        self.local.validate()
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
            ("[local]\nrun_as = \"x\"", "unknown field"),
            ("[local]\nrun_as_user = \"\"", "run_as_user"),
            ("[local]\ndefault_java = \"java\"", "absolute path"),
            (
                "[local.jdk]\n\"JDK 11\" = \"/usr/bin/java\"",
                "not a JDK value",
            ),
            (
                "[local.jdk]\n\"Open JDK 8\" = \"bin/java\"",
                "absolute path",
            ),
            (
                "[local]\nrestart_backoff_seconds = 0",
                "restart_backoff_seconds",
            ),
            (
                "[local]\nrestart_backoff_seconds = 5\nmax_restart_backoff_seconds = 1",
                "must not be below",
            ),
            ("[local]\ncrash_loop_limit = 0", "crash_loop_limit"),
            (
                "[[clusters]]\nid = \"a\"\nin_cluster = true\nkubeconfig = \"/k\"",
                "leave out kubeconfig",
            ),
            (
                "[[clusters]]\nid = \"a\"\ngateway = \"gw\"",
                "<namespace>/<name>",
            ),
            (
                "[[clusters]]\nid = \"a\"\ningress = \"gateway\"",
                "set `gateway",
            ),
            (
                "[[clusters]]\nid = \"a\"\ngateway = \"i/g\"\ningress = \"route\"",
                "must be \"ingress\" or \"gateway\"",
            ),
            ("[local]\ningress_listen = \"localhost\"", "ingress_listen"),
            ("[engine]\nlease_seconds = 0.5", "lease_seconds"),
        ] {
            let error = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    fn fake_java(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let java = dir.join("java");
        std::fs::write(&java, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
        java
    }

    #[test]
    fn every_jdk_value_runs_the_java_on_path_by_default() {
        let bin = tempfile::tempdir().unwrap();
        let java = fake_java(bin.path());
        let path =
            std::env::join_paths(["/nonexistent-dir", bin.path().to_str().unwrap()]).unwrap();
        let local = Config::parse("").unwrap().local;
        let config = local
            .runtime_config(PathBuf::from("/data/local"), Some(&path))
            .unwrap();
        assert_eq!(config.default_java, java);
        assert_eq!(config.java_binaries.len(), 3);
        assert!(config.java_binaries.values().all(|j| *j == java));
        assert_eq!(
            config.restart_backoff,
            Duration::from_secs(10),
            "defaults kept"
        );

        let none = local
            .runtime_config(
                PathBuf::from("/data/local"),
                Some(std::ffi::OsStr::new("/nonexistent-dir")),
            )
            .unwrap();
        assert!(
            none.java_binaries.is_empty(),
            "no java: JDK values are refused"
        );
        assert_eq!(none.default_java, PathBuf::from("java"));
    }

    #[test]
    fn the_local_section_sets_the_runtime() {
        let bin = tempfile::tempdir().unwrap();
        let java = fake_java(bin.path());
        let text = format!(
            "[local]\nrun_as_user = \"nobody\"\nrestart_backoff_seconds = 0.5\nmax_restart_backoff_seconds = 4\ncrash_loop_limit = 2\nquick_failure_seconds = 3\nlog_max_bytes = 1024\nlog_files_kept = 1\nstopped_logs_kept = 4\n[local.jdk]\n\"Open JDK 8\" = \"{}\"\n",
            java.display()
        );
        let config = Config::parse(&text)
            .unwrap()
            .local
            .runtime_config(PathBuf::from("/data/local"), None)
            .unwrap();
        assert_eq!(config.run_as_user.as_deref(), Some("nobody"));
        assert_eq!(config.restart_backoff, Duration::from_millis(500));
        assert_eq!(config.max_restart_backoff, Duration::from_secs(4));
        assert_eq!(config.crash_loop_limit, 2);
        assert_eq!(config.quick_failure, Duration::from_secs(3));
        assert_eq!(
            (
                config.log_max_bytes,
                config.log_files_kept,
                config.stopped_logs_kept
            ),
            (1024, 1, 4)
        );
        assert_eq!(
            config.java_binaries.into_iter().collect::<Vec<_>>(),
            vec![("Open JDK 8".to_owned(), java)],
            "exactly the configured values"
        );
    }

    #[test]
    fn the_sandbox_settings_are_checked_and_applied() {
        for (text, says) in [
            ("[local]\napp_uid_range = [5000, 10]", "app_uid_range"),
            ("[local]\napp_uid_range = [0, 10]", "app_uid_range"),
            (
                "[local]\nallowed_host_paths = [\"relative\"]",
                "allowed_host_paths",
            ),
            (
                "[local]\nallowed_host_paths = [\"/a/../b\"]",
                "allowed_host_paths",
            ),
            ("[local]\nunenforceable = \"maybe\"", "unenforceable"),
            ("[local]\npids_limit = 0", "pids_limit"),
            ("[local]\ninstances_dir = \"rel\"", "instances_dir"),
        ] {
            let error = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(error.contains(says), "{text}: {error}");
        }
        let local = Config::parse("[local]\ninstances_dir = \"/data/apps\"")
            .unwrap()
            .local;
        let error = format!(
            "{:#}",
            local
                .runtime_config(PathBuf::from("/data/local"), None)
                .unwrap_err()
        );
        assert!(error.contains("outside the data directory"), "{error}");
        let config = Config::parse(
            "[local]\nallowed_host_paths = [\"/srv\"]\npids_limit = 7\nunenforceable = \"record\"",
        )
        .unwrap()
        .local
        .runtime_config(PathBuf::from("/data/local"), None)
        .unwrap();
        assert_eq!(config.instances_dir, PathBuf::from("/data.instances"));
        assert_eq!(config.allowed_host_paths, Some(vec![PathBuf::from("/srv")]));
        assert_eq!(config.pids_max, Some(7));
        assert_eq!(config.unenforceable, edas_local::Unenforceable::Record);
        // As root without run_as_user, each application gets its own user id.
        assert_eq!(
            config.app_uids.is_some(),
            nix::unistd::geteuid().is_root() && config.run_as_user.is_none()
        );
    }

    #[test]
    fn a_configured_java_that_does_not_exist_is_refused() {
        let local = Config::parse("[local.jdk]\n\"Open JDK 8\" = \"/nonexistent/java\"")
            .unwrap()
            .local;
        let error = format!(
            "{:#}",
            local.runtime_config(PathBuf::from("/d"), None).unwrap_err()
        );
        assert!(
            error.contains("[local.jdk] `Open JDK 8` `/nonexistent/java`"),
            "{error}"
        );
        let local = Config::parse("[local]\ndefault_java = \"/etc\"")
            .unwrap()
            .local;
        let error = format!(
            "{:#}",
            local.runtime_config(PathBuf::from("/d"), None).unwrap_err()
        );
        assert!(error.contains("not an executable file"), "{error}");
    }

    /// The first TOML example of README.md that contains `marker`.
    fn readme_toml(marker: &str) -> String {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .find(|block| block.contains(marker))
            .unwrap_or_else(|| panic!("README.md shows a TOML example with {marker}"))
            .to_owned()
    }

    #[test]
    fn the_readme_example_of_a_kubernetes_cluster_is_valid() {
        let example = readme_toml("[[clusters]]");
        let config = Config::parse(&example).unwrap();
        let cluster = &config.clusters[0];
        assert_eq!(
            cluster.access(),
            edas_kube::ClusterAccess::Kubeconfig {
                path: Some(PathBuf::from("/etc/edasd/prod.kubeconfig")),
                context: Some("prod-admin".into()),
            }
        );
        assert_eq!(cluster.gateway().unwrap().name, "public");
        let options = cluster.options();
        assert_eq!(
            (
                options.failure.unschedulable_grace,
                options.failure.crash_loop_restarts,
                options.watch_timeout
            ),
            (Duration::from_secs(30), 3, Duration::from_secs(5))
        );
        assert_eq!(
            config.engine.lease().unwrap(),
            Some(Duration::from_secs(15))
        );
        for (bad, what) in [
            ("crash_loop_restarts = 0", "crash_loop_restarts"),
            ("watch_timeout_seconds = 0", "watch_timeout_seconds"),
            ("watch_timeout_seconds = 7200", "watch_timeout_seconds"),
        ] {
            let text = format!("[[clusters]]\nid = \"k\"\n{bad}\n");
            let error = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(error.contains(what) && error.contains("`k`"), "{error}");
        }
    }

    #[test]
    fn the_readme_example_of_the_local_section_is_valid() {
        let example = readme_toml("[local]");
        let local = Config::parse(&example).unwrap().local;
        assert_eq!(local.run_as_user.as_deref(), Some("edas-apps"));
        assert!(local.jdk.unwrap().contains_key("Open JDK 8"));
    }
}
