//! `edasctl configure`: writes a profile (endpoint, access key, region) into the aliyun CLI's
//! configuration file, keeping everything else in it.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::cmd::context::Global;
use crate::profile::{self, Credentials};

/// `configure`. Values not given are kept from the profile (or from the environment variables
/// `EDAS_ENDPOINT`, `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET`).
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The access key id.
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// The access key secret.
    #[arg(long)]
    pub access_key_secret: Option<String>,
}

/// Runs `edasctl configure`.
pub fn run(global: &Global, args: &ConfigureArgs) -> anyhow::Result<ExitCode> {
    let dir = profile::config_dir(global.config_dir.as_deref())?;
    let mut file = profile::read_file(&dir)?;
    let name = global
        .profile
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let mut overrides = global.overrides();
    // The profile being written is the one to start from, even if it does not exist yet.
    overrides.profile = None;
    file.insert("current".into(), name.clone().into());
    if let Some(id) = &args.access_key_id {
        overrides.access_key_id = Some(id.clone());
    }
    if let Some(secret) = &args.access_key_secret {
        overrides.access_key_secret = Some(secret.clone());
    }
    let creds: Credentials = profile::resolve(&file, &overrides)
        .context("configure needs an endpoint and an access key (flags, environment, or the existing profile)")?;
    profile::upsert(&mut file, &name, &creds);
    let path = profile::write_file(&dir, &file)?;
    println!("profile `{name}` written to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
