//! Where `edasctl` finds the endpoint and the access key: flags, then environment variables,
//! then a profile of the aliyun CLI's configuration file (`~/.aliyun/config.json`), which
//! `edasctl configure` writes.
//!
//! The file format is the aliyun CLI's: `{"current": "<name>", "profiles": [{"name", "mode":
//! "AK", "access_key_id", "access_key_secret", "region_id", …}]}`. edasctl adds one field of its
//! own to a profile, `edas_endpoint` (the edasd base URL, e.g. `http://127.0.0.1:8080`); every
//! other field and profile in the file is kept as it is when edasctl writes it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

/// The file name inside the configuration directory.
pub const FILE_NAME: &str = "config.json";

/// What a signed request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Base URL of the edasd server.
    pub endpoint: String,
    /// Access key id.
    pub access_key_id: String,
    /// Access key secret.
    pub access_key_secret: String,
    /// Region sent as `RegionId`; empty sends none (the server's own).
    pub region_id: String,
}

/// The values given on the command line or in the environment (clap reads both).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--endpoint` / `EDAS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `--profile` / `ALIBABA_CLOUD_PROFILE`.
    pub profile: Option<String>,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `ALIBABA_CLOUD_ACCESS_KEY_SECRET`.
    pub access_key_secret: Option<String>,
    /// `--region` / `ALIBABA_CLOUD_REGION_ID`.
    pub region_id: Option<String>,
}

/// The configuration directory: the given one, else `$HOME/.aliyun`.
pub fn config_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".aliyun")),
        _ => bail!("HOME is not set: give --config-dir (or EDASCTL_CONFIG_DIR)"),
    }
}

/// Reads the configuration file; a missing file is an empty configuration.
pub fn read_file(dir: &Path) -> anyhow::Result<Map<String, Value>> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => bail!("{} is not a JSON object", path.display()),
        Err(e) => bail!("{} is not valid JSON: {e}", path.display()),
    }
}

fn profiles(file: &Map<String, Value>) -> &[Value] {
    file.get("profiles")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn field<'a>(profile: &'a Value, name: &str) -> Option<&'a str> {
    profile
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Resolves the credentials: each value from the overrides if given, else from the profile
/// (`--profile`, else the file's `current`, else `default`). A profile named explicitly must
/// exist; every missing value is named with where to set it.
pub fn resolve(file: &Map<String, Value>, o: &Overrides) -> anyhow::Result<Credentials> {
    let explicit = o.profile.as_deref();
    let name = explicit
        .or_else(|| {
            file.get("current")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default");
    let profile = profiles(file)
        .iter()
        .find(|p| field(p, "name") == Some(name));
    if profile.is_none()
        && let Some(wanted) = explicit
    {
        bail!(
            "no profile `{wanted}` in the configuration file; run `edasctl configure --profile {wanted}`"
        );
    }
    if let Some(p) = profile
        && let Some(mode) = field(p, "mode")
        && mode != "AK"
        && o.access_key_id.is_none()
    {
        bail!("profile `{name}` uses mode `{mode}`; edasctl supports only access keys (mode AK)");
    }
    let from = |over: &Option<String>, key: &str| {
        over.clone()
            .filter(|s| !s.is_empty())
            .or_else(|| profile.and_then(|p| field(p, key)).map(str::to_owned))
    };
    let endpoint = from(&o.endpoint, "edas_endpoint").with_context(|| {
        "no endpoint: give --endpoint, set EDAS_ENDPOINT, or run `edasctl configure --endpoint URL`"
    })?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        bail!("the endpoint `{endpoint}` must be an http:// or https:// URL");
    }
    let access_key_id = from(&o.access_key_id, "access_key_id").with_context(
        || "no access key id: set ALIBABA_CLOUD_ACCESS_KEY_ID or run `edasctl configure`",
    )?;
    let access_key_secret = from(&o.access_key_secret, "access_key_secret").with_context(
        || "no access key secret: set ALIBABA_CLOUD_ACCESS_KEY_SECRET or run `edasctl configure`",
    )?;
    Ok(Credentials {
        endpoint,
        access_key_id,
        access_key_secret,
        region_id: from(&o.region_id, "region_id").unwrap_or_default(),
    })
}

/// Sets the profile `name` (creating it, keeping its other fields) and makes it current.
pub fn upsert(file: &mut Map<String, Value>, name: &str, creds: &Credentials) {
    let profiles = file
        .entry("profiles")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !profiles.is_array() {
        *profiles = Value::Array(Vec::new());
    }
    let list = profiles.as_array_mut().expect("made an array above");
    let index = match list.iter().position(|p| field(p, "name") == Some(name)) {
        Some(i) => i,
        None => {
            list.push(json!({"name": name}));
            list.len() - 1
        }
    };
    if let Value::Object(p) = &mut list[index] {
        p.insert("mode".into(), "AK".into());
        p.insert("access_key_id".into(), creds.access_key_id.clone().into());
        p.insert(
            "access_key_secret".into(),
            creds.access_key_secret.clone().into(),
        );
        p.insert("region_id".into(), creds.region_id.clone().into());
        p.insert("edas_endpoint".into(), creds.endpoint.clone().into());
    } else {
        list[index] = json!({
            "name": name, "mode": "AK",
            "access_key_id": creds.access_key_id, "access_key_secret": creds.access_key_secret,
            "region_id": creds.region_id, "edas_endpoint": creds.endpoint,
        });
    }
    file.insert("current".into(), name.into());
}

/// Writes the file with owner-only permissions (it holds a secret).
pub fn write_file(dir: &Path, file: &Map<String, Value>) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let text = serde_json::to_string_pretty(file)?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reads_the_aliyun_cli_format_with_overrides_winning() {
        let f = file(json!({"current": "prod", "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "d", "access_key_secret": "ds"},
            {"name": "prod", "mode": "AK", "access_key_id": "p", "access_key_secret": "ps",
             "region_id": "cn-shanghai", "edas_endpoint": "http://edas:8080", "language": "en"}
        ]}));
        let c = resolve(&f, &Overrides::default()).unwrap();
        assert_eq!(c.access_key_id, "p");
        assert_eq!(c.region_id, "cn-shanghai");
        assert_eq!(c.endpoint, "http://edas:8080");
        let o = Overrides {
            profile: Some("default".into()),
            endpoint: Some("https://other".into()),
            ..Default::default()
        };
        let c = resolve(&f, &o).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.endpoint.as_str()),
            ("d", "https://other")
        );
        let o = Overrides {
            profile: Some("nope".into()),
            ..Default::default()
        };
        assert!(resolve(&f, &o).unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn missing_values_are_named() {
        let e = resolve(&Map::new(), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("EDAS_ENDPOINT"), "{e}");
        let o = Overrides {
            endpoint: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(
            resolve(&Map::new(), &o)
                .unwrap_err()
                .to_string()
                .contains("http")
        );
    }

    #[test]
    fn upsert_keeps_other_fields_and_profiles() {
        let mut f = file(json!({"profiles": [
            {"name": "a", "mode": "AK", "language": "zh"},
            {"name": "b", "mode": "StsToken"}
        ], "meta_path": ""}));
        let c = Credentials {
            endpoint: "http://h".into(),
            access_key_id: "id".into(),
            access_key_secret: "s".into(),
            region_id: "r".into(),
        };
        upsert(&mut f, "a", &c);
        assert_eq!(f["profiles"][0]["language"], "zh");
        assert_eq!(f["profiles"][0]["edas_endpoint"], "http://h");
        assert_eq!(f["profiles"][1]["mode"], "StsToken");
        assert_eq!(f["current"], "a");
        assert!(f.contains_key("meta_path"));
        assert_eq!(resolve(&f, &Overrides::default()).unwrap(), c);
    }
}
