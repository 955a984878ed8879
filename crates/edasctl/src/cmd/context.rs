//! What every command that talks to a server shares: where the configuration is, the flags and
//! variables that override it, and the output format.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::client::Client;
use crate::output::Format;
use crate::profile::{self, Overrides};

/// Global options (also read from the environment).
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The edasd base URL, e.g. http://127.0.0.1:8080 (default: the profile's `edas_endpoint`).
    #[arg(long, global = true, env = "EDAS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The profile of the configuration file (default: its `current`, else `default`).
    #[arg(long, global = true, env = "ALIBABA_CLOUD_PROFILE")]
    pub profile: Option<String>,
    /// The RegionId sent with each request (default: the profile's `region_id`).
    #[arg(long, global = true, env = "ALIBABA_CLOUD_REGION_ID")]
    pub region: Option<String>,
    /// The directory of `config.json` (the aliyun CLI's format).
    #[arg(long, global = true, env = "EDASCTL_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// How reads print their answer: table, json, yaml, or jsonpath=EXPR (the values at a
    /// path of the JSON answer, one a line: `-o jsonpath={.ApplicationInfo.AppId}`, `[*]` for
    /// every item of a list).
    #[arg(
        long,
        short = 'o',
        global = true,
        value_parser = crate::output::parse_format,
        default_value = "table",
        value_name = "FORMAT"
    )]
    pub output: Format,
}

impl Global {
    /// The overrides from flags and the environment.
    pub fn overrides(&self) -> Overrides {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Overrides {
            endpoint: self.endpoint.clone(),
            profile: self.profile.clone(),
            access_key_id: var("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            access_key_secret: var("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            region_id: self.region.clone(),
        }
    }

    /// A signed client for the resolved endpoint and access key.
    pub fn client(&self) -> anyhow::Result<Client> {
        let dir = profile::config_dir(self.config_dir.as_deref())?;
        let file = profile::read_file(&dir)?;
        Client::new(profile::resolve(&file, &self.overrides())?)
    }
}

/// How a watch polls.
#[derive(Debug, Args, Clone)]
pub struct WatchFlags {
    /// Follow the change order until it ends (exit 0 on success, 1 failed, 3 terminated).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two GetChangeOrderInfo polls while watching.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub interval: u64,
    /// Stop watching after this many seconds (exit 4 while the change order still runs;
    /// `--timeout` is the change's own EDAS `Timeout` where a command has one).
    #[arg(long, value_name = "SECONDS", requires = "watch")]
    pub watch_timeout: Option<u64>,
}

impl WatchFlags {
    /// The poll interval.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval)
    }
}
