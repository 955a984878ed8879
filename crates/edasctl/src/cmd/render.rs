//! `edasctl render`: show offline the Kubernetes objects a new application would run as.

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use edas_render::RenderError;
use edas_spec::{Operation, Params};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::edas_error::{EdasError, INVALID_INPUT};

/// Print the Kubernetes objects of an application as multi-document YAML.
///
/// The parameters are exactly those of InsertK8sApplication (docs/PARAMETERS.md), validated the
/// same way: `AppName` and `ClusterId` are required, and the application needs `ImageUrl` or
/// `PackageUrl` (a command alone runs only on the local runtime, which has no Kubernetes
/// objects). Release-only parameters of DeployK8sApplication (UpdateStrategy, BatchTimeout, …)
/// are refused as unknown: rendering shows one revision, not a release.
///
/// Output: the revision's Deployment, then the Services of `ServiceConfigs`, separated by `---`.
///
/// Exit codes: 0 printed; 2 invalid input, with one JSON object on stderr in the EDAS error
/// shape: {"Code": "<EDAS code>", "Message": "<every violation, joined by '; '>",
/// "Violations": [{"Parameter", "Code", "Message"}, …]}; 1 the file could not be read.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RenderArgs {
    /// A JSON object of parameter name → string value, exactly as the values travel in the
    /// query string (e.g. {"AppName":"demo","ClusterId":"local","ImageUrl":"nginx:1.27",
    /// "Replicas":"2"}); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    params: PathBuf,

    /// The revision id the objects are rendered for (part of the Deployment name and labels).
    #[arg(long, default_value = "1")]
    revision: String,

    /// The Deployment's replica count; default: the application's `Replicas`.
    #[arg(long)]
    replicas: Option<u32>,
}

/// Runs `edasctl render`.
pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.params)?;
    let params = match parse_params(&text) {
        Ok(p) => p,
        Err(e) => {
            e.print();
            return Ok(ExitCode::from(INVALID_INPUT));
        }
    };
    let change = match edas_spec::apply(Operation::InsertK8sApplication, None, &params) {
        Ok(c) => c,
        Err(v) => {
            EdasError::from_violations(&v).print();
            return Ok(ExitCode::from(INVALID_INPUT));
        }
    };
    let replicas = args
        .replicas
        .unwrap_or_else(|| change.spec.effective_replicas());
    let yaml =
        edas_render::render(&change.spec, &args.revision, replicas).and_then(|r| r.to_yaml());
    match yaml {
        Ok(yaml) => {
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("cannot write to standard output")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let parameter = match &e {
                RenderError::Revision { .. } => "--revision",
                RenderError::Replicas(_) => "--replicas",
                other => other.parameter().unwrap_or_default(),
            };
            EdasError::single("InvalidParameter", parameter, e.to_string()).print();
            Ok(ExitCode::from(INVALID_INPUT))
        }
    }
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the parameters from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the parameters file {}", path.display()))
    }
}

/// Decodes the JSON object into parameters, keeping every pair so a name given twice is refused
/// (as the API refuses it) instead of one value silently winning.
fn parse_params(text: &str) -> Result<Params, EdasError> {
    let strings = parse_pairs(text)?;
    Params::from_pairs(strings).map_err(|v| EdasError::from_violations(&v))
}

/// Decodes a JSON object of parameter name → string value into its pairs, in document order
/// (duplicates kept, for the caller to refuse).
pub(crate) fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, EdasError> {
    let pairs: Pairs = serde_json::from_str(text).map_err(|e| {
        EdasError::single(
            "InvalidParameter",
            "",
            format!("--params must be a JSON object of parameter name → string value: {e}"),
        )
    })?;
    let mut strings = Vec::with_capacity(pairs.0.len());
    for (name, value) in pairs.0 {
        match value {
            Value::String(s) => strings.push((name, s)),
            other => {
                return Err(EdasError::single(
                    "InvalidParameter",
                    &name,
                    format!(
                        "the value must be a JSON string, as it travels in the query string (got {other})"
                    ),
                ));
            }
        }
    }
    Ok(strings)
}

/// A JSON object as its pairs in document order, duplicates included.
struct Pairs(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_must_be_an_object_of_strings_without_duplicates() {
        assert!(parse_params(r#"{"AppName":"a","Replicas":"2"}"#).is_ok());
        let e = parse_params(r#"{"Replicas":2}"#).unwrap_err();
        assert_eq!(e.violations[0].parameter, "Replicas");
        let e = parse_params(r#"["AppName"]"#).unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        let e = parse_params(r#"{"AppName":"a","AppName":"b"}"#).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
    }
}
