//! An ingress rule (CreateK8sIngressRule, UpdateK8sIngressRule): host and path routing from
//! outside to applications' Services, kept per cluster and namespace. This is the model and its
//! pure checks (hosts, paths, ports); that each backend names an existing application's Service
//! port is checked by the application layer, which knows the applications.
//!
//! Stored as serde (snake_case; additive changes only) and handed to runtimes as it is: the
//! Kubernetes runtime renders it as a `networking.k8s.io/v1` Ingress, the local runtime routes
//! it on its shared ingress listener.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::k8s;
use crate::violation::{Violation, ViolationKind};

/// The most rules (hosts) and paths per rule one ingress may carry: far above what EDAS's
/// console creates, low enough that a request cannot make the routing table huge.
pub const MAX_RULES: usize = 100;
/// See [`MAX_RULES`].
pub const MAX_PATHS: usize = 100;

/// How a path matches a request's path (Kubernetes `pathType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathType {
    /// Element-wise prefix: `/a` matches `/a` and `/a/b`, not `/ab` (the default).
    #[default]
    Prefix,
    /// The whole path.
    Exact,
    /// Up to the ingress controller (on `local`: as `Prefix`).
    ImplementationSpecific,
}

impl PathType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Prefix => "Prefix",
            PathType::Exact => "Exact",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }

    /// Parses the Kubernetes spelling (any case).
    pub fn parse(s: &str) -> Option<PathType> {
        [
            PathType::Prefix,
            PathType::Exact,
            PathType::ImplementationSpecific,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// Where a path's requests go: a Service of an application and one of its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressBackend {
    /// The Service's name.
    pub service_name: String,
    /// The Service's port (its `port`, not the instances' target port).
    pub service_port: u16,
    /// The application the Service belongs to (resolved when the rule is stored).
    #[serde(default)]
    pub app_id: String,
    /// That application's name.
    #[serde(default)]
    pub app_name: String,
}

/// One path of a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressPath {
    /// An absolute path, `/` for everything.
    pub path: String,
    #[serde(default)]
    pub path_type: PathType,
    pub backend: IngressBackend,
}

/// One host and its paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressHost {
    /// A DNS name, `*.` wildcard first allowed; empty matches every host.
    #[serde(default)]
    pub host: String,
    /// The Secret with the host's TLS certificate (Kubernetes only).
    #[serde(default)]
    pub secret_name: Option<String>,
    pub paths: Vec<IngressPath>,
}

/// An ingress rule's routing (`IngressConf`) with its metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressSpec {
    pub rules: Vec<IngressHost>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl IngressSpec {
    /// Every backend, with the parameter path that names it.
    pub fn backends(&self) -> impl Iterator<Item = (String, &IngressBackend)> {
        self.rules.iter().enumerate().flat_map(|(i, r)| {
            r.paths.iter().enumerate().map(move |(j, p)| {
                (
                    format!("IngressConf.rules[{i}].paths[{j}].backend"),
                    &p.backend,
                )
            })
        })
    }

    /// Every (host, path) this ingress routes, with the parameter path naming it.
    pub fn routes(&self) -> impl Iterator<Item = (String, &str, &str)> {
        self.rules.iter().enumerate().flat_map(|(i, r)| {
            r.paths.iter().enumerate().map(move |(j, p)| {
                (
                    format!("IngressConf.rules[{i}].paths[{j}].path"),
                    r.host.as_str(),
                    p.path.as_str(),
                )
            })
        })
    }
}

/// Whether `host` is a host an ingress rule may name: a lowercase DNS name (labels of at most
/// 63, at most 253 in all) with an optional `*.` first; no port, no IP literal check needed
/// (Kubernetes refuses IPs, and so does this: a label may not be all digits at the end).
pub fn valid_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    !name.is_empty()
        && name.len() <= 253
        && labels.iter().all(|l| k8s::is_dns_label(l))
        && !labels
            .last()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
}

/// Whether `path` is a path an ingress rule may name: absolute, printable ASCII without
/// spaces, no `..` segment, at most 1024 characters.
pub fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 1024
        && path.chars().all(|c| c.is_ascii_graphic())
        && !path.split('/').any(|s| s == "..")
        && !path.contains(['?', '#'])
}

fn bad(parameter: String, message: String) -> Violation {
    Violation {
        parameter,
        kind: ViolationKind::Invalid,
        message,
    }
}

/// Every violation of `spec`'s own shape, at once, each named by its `IngressConf` path:
/// hosts, paths, Service names and ports, TLS Secret names, a (host, path) routed twice,
/// annotation and label keys.
pub fn violations(spec: &IngressSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if spec.rules.is_empty() {
        out.push(bad(
            "IngressConf.rules".into(),
            "an ingress needs at least one rule".into(),
        ));
    }
    if spec.rules.len() > MAX_RULES {
        out.push(bad(
            "IngressConf.rules".into(),
            format!("at most {MAX_RULES} rules, not {}", spec.rules.len()),
        ));
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = format!("IngressConf.rules[{i}]");
        if !rule.host.is_empty() && !valid_host(&rule.host) {
            out.push(bad(
                format!("{at}.host"),
                format!(
                    "`{}` is not a host: a lowercase DNS name (a `*.` wildcard first allowed), without a port",
                    crate::params::shorten(&rule.host)
                ),
            ));
        }
        if let Some(secret) = &rule.secret_name
            && !k8s::is_dns_subdomain(secret)
        {
            out.push(bad(
                format!("{at}.secretName"),
                format!(
                    "`{}` is not a Secret name (a DNS subdomain)",
                    crate::params::shorten(secret)
                ),
            ));
        }
        if rule.paths.is_empty() {
            out.push(bad(
                format!("{at}.paths"),
                "a rule needs at least one path".into(),
            ));
        }
        if rule.paths.len() > MAX_PATHS {
            out.push(bad(
                format!("{at}.paths"),
                format!("at most {MAX_PATHS} paths, not {}", rule.paths.len()),
            ));
        }
        for (j, p) in rule.paths.iter().enumerate() {
            let at = format!("{at}.paths[{j}]");
            if !valid_path(&p.path) {
                out.push(bad(
                    format!("{at}.path"),
                    format!(
                        "`{}` is not a path: absolute (`/` first), printable, no spaces, `?`, `#` or `..` segments",
                        crate::params::shorten(&p.path)
                    ),
                ));
            }
            if spec.rules[..=i].iter().enumerate().any(|(k, other)| {
                other.host == rule.host
                    && other
                        .paths
                        .iter()
                        .take(if k == i { j } else { usize::MAX })
                        .any(|o| o.path == p.path && o.path_type == p.path_type)
            }) {
                out.push(bad(
                    format!("{at}.path"),
                    format!(
                        "host `{}` routes `{}` twice",
                        rule.host,
                        crate::params::shorten(&p.path)
                    ),
                ));
            }
            if !k8s::is_dns_label(&p.backend.service_name) {
                out.push(bad(
                    format!("{at}.backend.serviceName"),
                    format!(
                        "`{}` is not a Service name (a DNS label)",
                        crate::params::shorten(&p.backend.service_name)
                    ),
                ));
            }
            if p.backend.service_port == 0 {
                out.push(bad(
                    format!("{at}.backend.servicePort"),
                    "must be between 1 and 65535".into(),
                ));
            }
        }
    }
    for (what, map) in [("Annotations", &spec.annotations), ("Labels", &spec.labels)] {
        for (key, value) in map {
            if !k8s::is_qualified_name(key) {
                out.push(bad(
                    what.into(),
                    format!(
                        "`{}` is not a key Kubernetes accepts",
                        crate::params::shorten(key)
                    ),
                ));
            } else if what == "Labels" && !k8s::is_label_value(value) {
                out.push(bad(
                    what.into(),
                    format!(
                        "the value of `{key}` is not a label value (at most 63 letters, digits, `-`, `_`, `.`)"
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, paths: &[(&str, &str, u16)]) -> IngressSpec {
        IngressSpec {
            rules: vec![IngressHost {
                host: host.into(),
                secret_name: None,
                paths: paths
                    .iter()
                    .map(|(path, service, port)| IngressPath {
                        path: (*path).into(),
                        path_type: PathType::Prefix,
                        backend: IngressBackend {
                            service_name: (*service).into(),
                            service_port: *port,
                            ..IngressBackend::default()
                        },
                    })
                    .collect(),
            }],
            ..IngressSpec::default()
        }
    }

    fn named(spec: &IngressSpec) -> Vec<String> {
        violations(spec).into_iter().map(|v| v.parameter).collect()
    }

    #[test]
    fn a_good_ingress_has_no_violations() {
        assert!(
            named(&spec(
                "a.example.com",
                &[("/", "web", 80), ("/api", "api", 8080)]
            ))
            .is_empty()
        );
        assert!(named(&spec("*.example.com", &[("/", "web", 80)])).is_empty());
        assert!(named(&spec("", &[("/", "web", 80)])).is_empty(), "any host");
    }

    #[test]
    fn every_violation_is_named_by_its_path() {
        assert_eq!(
            named(&spec(
                "Bad_Host:80",
                &[("api", "web", 80), ("/x", "Web", 0), ("/x", "web", 1)]
            )),
            [
                "IngressConf.rules[0].host",
                "IngressConf.rules[0].paths[0].path",
                "IngressConf.rules[0].paths[1].backend.serviceName",
                "IngressConf.rules[0].paths[1].backend.servicePort",
                "IngressConf.rules[0].paths[2].path",
            ]
        );
        assert_eq!(named(&IngressSpec::default()), ["IngressConf.rules"]);
        assert_eq!(named(&spec("h.com", &[])), ["IngressConf.rules[0].paths"]);
        for bad in ["/a b", "/../etc", "/a?b", "", "/\u{e9}"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        for bad in ["10.0.0.1", "a..b", "-a.com", "A.com", "*", "a.*.com"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn path_types_parse_in_any_case() {
        assert_eq!(PathType::parse("prefix"), Some(PathType::Prefix));
        assert_eq!(PathType::parse("Exact"), Some(PathType::Exact));
        assert_eq!(PathType::parse("Regex"), None);
    }
}
