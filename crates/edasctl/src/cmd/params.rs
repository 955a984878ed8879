//! Parameters shared by the commands that create or change an application: the common ones as
//! flags, `--param Name=value` for any of the others and `--params FILE` for a JSON object of
//! them. The server validates every value; here a parameter given twice is refused, so no value
//! silently wins over another.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

/// Flags that set InsertK8sApplication / DeployK8sApplication parameters.
#[derive(Debug, Args, Default)]
pub struct SpecFlags {
    /// The image to run (`ImageUrl` of InsertK8sApplication, `Image` of DeployK8sApplication).
    #[arg(long)]
    pub image: Option<String>,
    /// `Replicas`: the number of instances.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// `Command`: the program (on the local runtime, run directly without a shell).
    #[arg(long)]
    pub command: Option<String>,
    /// The command's arguments as a JSON array of strings, e.g. '["600"]' (sent as `Args`, or
    /// as `CommandArgs` by `app create`).
    #[arg(long, value_name = "JSON", conflicts_with = "arg")]
    pub args: Option<String>,
    /// One argument of the command (repeat for several), instead of --args.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub arg: Vec<String>,
    /// An environment variable NAME=value (repeat for several); builds `Envs`.
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Any parameter, as it travels in the query string: Name=value (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub param: Vec<String>,
    /// A JSON object of parameter name → string value (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
}

/// Parameters being built, refusing a name given twice.
#[derive(Debug, Default)]
pub struct ParamList {
    pairs: Vec<(String, String)>,
    sources: Vec<String>,
}

impl ParamList {
    /// Adds `name=value`, set by `source` (a flag name, for the error message).
    pub fn set(&mut self, name: &str, value: String, source: &str) -> anyhow::Result<()> {
        if let Some(i) = self.pairs.iter().position(|(n, _)| n == name) {
            bail!(
                "the parameter {name} is given twice (by {} and by {source}); give it once",
                self.sources[i]
            );
        }
        self.pairs.push((name.to_owned(), value));
        self.sources.push(source.to_owned());
        Ok(())
    }

    /// Adds it when present.
    pub fn set_opt(
        &mut self,
        name: &str,
        value: Option<String>,
        source: &str,
    ) -> anyhow::Result<()> {
        match value {
            Some(v) => self.set(name, v, source),
            None => Ok(()),
        }
    }

    /// The pairs, in the order given.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

/// Splits `NAME=value` (the value may contain `=`; the name may not be empty).
pub fn split_assignment<'a>(text: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value)),
        _ => bail!("{flag} `{text}` must be NAME=value"),
    }
}

/// Which parameter carries the command's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsStyle {
    /// `Args`: a JSON array of strings (DeployK8sApplication).
    Args,
    /// `CommandArgs`: `[{"argument": …}]` (InsertK8sApplication has no `Args`).
    CommandArgs,
}

impl SpecFlags {
    /// Adds the flags' parameters to `list`.
    pub fn add_to(&self, list: &mut ParamList, style: ArgsStyle) -> anyhow::Result<()> {
        // InsertK8sApplication names the image `ImageUrl`, DeployK8sApplication `Image`.
        let image = match style {
            ArgsStyle::Args => "Image",
            ArgsStyle::CommandArgs => "ImageUrl",
        };
        list.set_opt(image, self.image.clone(), "--image")?;
        list.set_opt(
            "Replicas",
            self.replicas.map(|r| r.to_string()),
            "--replicas",
        )?;
        list.set_opt("Command", self.command.clone(), "--command")?;
        let (args, source) = match &self.args {
            Some(text) => {
                let parsed: Vec<String> = serde_json::from_str(text).map_err(|e| {
                    anyhow::anyhow!("--args `{text}` must be a JSON array of strings: {e}")
                })?;
                (Some(parsed), "--args")
            }
            None if !self.arg.is_empty() => (Some(self.arg.clone()), "--arg"),
            None => (None, ""),
        };
        if let Some(args) = args {
            let value = match style {
                // InsertK8sApplication has only CommandArgs: [{"argument": "…"}].
                ArgsStyle::CommandArgs => {
                    json!(
                        args.iter()
                            .map(|a| json!({"argument": a}))
                            .collect::<Vec<_>>()
                    )
                }
                ArgsStyle::Args => json!(args),
            };
            let name = match style {
                ArgsStyle::CommandArgs => "CommandArgs",
                ArgsStyle::Args => "Args",
            };
            list.set(name, value.to_string(), source)?;
        }
        if !self.env.is_empty() {
            let mut envs = Vec::new();
            for e in &self.env {
                let (name, value) = split_assignment(e, "--env")?;
                envs.push(json!({"name": name, "value": value}));
            }
            list.set("Envs", Value::Array(envs).to_string(), "--env")?;
        }
        for p in &self.param {
            let (name, value) = split_assignment(p, "--param")?;
            list.set(name, value.to_owned(), "--param")?;
        }
        if let Some(path) = &self.params {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the parameters from standard input")?
            } else {
                std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the parameters file {}", path.display())
                })?
            };
            let pairs = crate::cmd::render::parse_pairs(&text)
                .map_err(|e| anyhow::anyhow!("--params {}: {}", path.display(), e.message))?;
            for (name, value) in pairs {
                list.set(&name, value, "--params")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_parameters_and_duplicates_are_refused() {
        let flags = SpecFlags {
            image: Some("nginx:1".into()),
            replicas: Some(3),
            arg: vec!["-c".into(), "sleep 1".into()],
            env: vec!["A=b=c".into()],
            param: vec!["Timeout=60".into()],
            ..Default::default()
        };
        let mut list = ParamList::default();
        flags.add_to(&mut list, ArgsStyle::Args).unwrap();
        let pairs = list.into_pairs();
        assert!(pairs.contains(&("Args".into(), r#"["-c","sleep 1"]"#.into())));
        assert!(pairs.contains(&("Envs".into(), r#"[{"name":"A","value":"b=c"}]"#.into())));
        assert!(pairs.contains(&("Replicas".into(), "3".into())));
        assert!(
            pairs.contains(&("Image".into(), "nginx:1".into())),
            "DeployK8sApplication's image parameter"
        );
        let flags = SpecFlags {
            args: Some(r#"["600"]"#.into()),
            ..Default::default()
        };
        let mut list = ParamList::default();
        flags.add_to(&mut list, ArgsStyle::CommandArgs).unwrap();
        assert_eq!(
            list.into_pairs(),
            vec![("CommandArgs".into(), r#"[{"argument":"600"}]"#.into())]
        );
        let flags = SpecFlags {
            args: Some("600".into()),
            ..Default::default()
        };
        let e = flags
            .add_to(&mut ParamList::default(), ArgsStyle::Args)
            .unwrap_err();
        assert!(e.to_string().contains("--args"), "{e}");

        let flags = SpecFlags {
            replicas: Some(3),
            param: vec!["Replicas=4".into()],
            ..Default::default()
        };
        let e = flags
            .add_to(&mut ParamList::default(), ArgsStyle::Args)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Replicas") && e.contains("--replicas"), "{e}");
        let flags = SpecFlags {
            env: vec!["novalue".into()],
            ..Default::default()
        };
        assert!(
            flags
                .add_to(&mut ParamList::default(), ArgsStyle::Args)
                .is_err()
        );
    }
}
