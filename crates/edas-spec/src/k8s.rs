//! Checks of Kubernetes-shaped values, with the rules the Kubernetes API server applies, so a
//! bad value is refused when the user sends it rather than when a cluster rejects the workload.

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, LifecycleHandler, Probe, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::violation::Violation;

/// RFC 1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, at most 63.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 of alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// A qualified name (label and annotation keys): an optional DNS-subdomain prefix and `/`, then a
/// name part of at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// An absolute, normalized container path: starts with `/`, no `..` component, not `/` itself,
/// no NUL or `:` (which Kubernetes forbids in mount paths).
pub fn check_mount_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "mount path `{path}` must be absolute (start with /)"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("mount path `{path}` must not contain `..`"));
    }
    if path.trim_end_matches('/').is_empty() {
        return Err("the root directory `/` cannot be a mount path".to_owned());
    }
    if path.contains('\0') || path.contains(':') {
        return Err(format!("mount path `{path}` must not contain NUL or `:`"));
    }
    Ok(())
}

fn check_port(param: &str, at: &str, port: &IntOrString, out: &mut Vec<Violation>) {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => {}
        IntOrString::Int(n) => out.push(Violation::invalid(
            param,
            format!("{at}.port {n} must be between 1 and 65535"),
        )),
        IntOrString::String(s) => {
            let ok = !s.is_empty()
                && s.len() <= 15
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && s.bytes().any(|b| b.is_ascii_lowercase());
            if !ok {
                out.push(Violation::invalid(
                    param,
                    format!("{at}.port `{s}` must be a number 1–65535 or a port name (at most 15 lowercase letters, digits, -)"),
                ));
            }
        }
    }
}

fn non_negative(param: &str, field: &str, v: Option<i32>, out: &mut Vec<Violation>) {
    if let Some(n) = v
        && n < 0
    {
        out.push(Violation::invalid(
            param,
            format!("{field} must not be negative (got {n})"),
        ));
    }
}

fn at_least_one(param: &str, field: &str, v: Option<i32>, out: &mut Vec<Violation>) {
    if let Some(n) = v
        && n < 1
    {
        out.push(Violation::invalid(
            param,
            format!("{field} must be at least 1 (got {n})"),
        ));
    }
}

/// Probe rules: exactly one handler, valid ports and paths, sane timings.
pub fn check_probe(param: &str, probe: &Probe) -> Vec<Violation> {
    let mut out = Vec::new();
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if handlers != 1 {
        out.push(Violation::invalid(
            param,
            format!(
                "a probe needs exactly one of exec, httpGet, tcpSocket or grpc (found {handlers})"
            ),
        ));
    }
    if let Some(exec) = &probe.exec
        && exec.command.as_ref().is_none_or(|c| c.is_empty())
    {
        out.push(Violation::invalid(
            param,
            "exec.command must be a non-empty list",
        ));
    }
    if let Some(h) = &probe.http_get {
        check_port(param, "httpGet", &h.port, &mut out);
        check_http(param, h.path.as_deref(), h.scheme.as_deref(), &mut out);
    }
    if let Some(t) = &probe.tcp_socket {
        check_port(param, "tcpSocket", &t.port, &mut out);
    }
    if let Some(g) = &probe.grpc
        && !(1..=65535).contains(&g.port)
    {
        out.push(Violation::invalid(
            param,
            format!("grpc.port {} must be between 1 and 65535", g.port),
        ));
    }
    non_negative(
        param,
        "initialDelaySeconds",
        probe.initial_delay_seconds,
        &mut out,
    );
    at_least_one(param, "periodSeconds", probe.period_seconds, &mut out);
    at_least_one(param, "timeoutSeconds", probe.timeout_seconds, &mut out);
    at_least_one(param, "successThreshold", probe.success_threshold, &mut out);
    at_least_one(param, "failureThreshold", probe.failure_threshold, &mut out);
    if let Some(n) = probe.termination_grace_period_seconds
        && n < 1
    {
        out.push(Violation::invalid(
            param,
            format!("terminationGracePeriodSeconds must be at least 1 (got {n})"),
        ));
    }
    out
}

fn check_http(param: &str, path: Option<&str>, scheme: Option<&str>, out: &mut Vec<Violation>) {
    if let Some(p) = path
        && !p.is_empty()
        && !p.starts_with('/')
    {
        out.push(Violation::invalid(
            param,
            format!("httpGet.path `{p}` must start with /"),
        ));
    }
    if let Some(s) = scheme
        && !matches!(s, "HTTP" | "HTTPS")
    {
        out.push(Violation::invalid(
            param,
            format!("httpGet.scheme `{s}` must be HTTP or HTTPS"),
        ));
    }
}

/// Lifecycle hook rules: exactly one action.
pub fn check_handler(param: &str, h: &LifecycleHandler) -> Vec<Violation> {
    let mut out = Vec::new();
    let n = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        h.sleep.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        out.push(Violation::invalid(
            param,
            format!("a lifecycle hook needs exactly one of exec, httpGet or sleep (found {n})"),
        ));
    }
    if let Some(exec) = &h.exec
        && exec.command.as_ref().is_none_or(|c| c.is_empty())
    {
        out.push(Violation::invalid(
            param,
            "exec.command must be a non-empty list",
        ));
    }
    if let Some(g) = &h.http_get {
        check_port(param, "httpGet", &g.port, &mut out);
        check_http(param, g.path.as_deref(), g.scheme.as_deref(), &mut out);
    }
    if h.tcp_socket.is_some() {
        out.push(Violation::unsupported(
            param,
            "tcpSocket is not supported for lifecycle hooks (Kubernetes never runs it, and a failing hook kills the container); use exec, httpGet or sleep",
        ));
    }
    if let Some(s) = &h.sleep
        && s.seconds < 0
    {
        out.push(Violation::invalid(
            param,
            format!("sleep.seconds must not be negative (got {})", s.seconds),
        ));
    }
    out
}

/// Environment variable rules.
pub fn check_envs(param: &str, envs: &[EnvVar]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, e) in envs.iter().enumerate() {
        let at = format!("[{i}]");
        if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
            out.push(Violation::invalid(
                param,
                format!("{at}.name must be non-empty and contain neither `=` nor NUL"),
            ));
        } else if envs[..i].iter().any(|o| o.name == e.name) {
            out.push(Violation::invalid(
                param,
                format!("{at}.name `{}` is given more than once", e.name),
            ));
        }
        match (&e.value, &e.value_from) {
            (Some(_), Some(_)) => out.push(Violation::invalid(
                param,
                format!("{at}: value and valueFrom are mutually exclusive"),
            )),
            (_, Some(from)) => {
                let sources = [
                    from.config_map_key_ref.is_some(),
                    from.secret_key_ref.is_some(),
                    from.field_ref.is_some(),
                    from.resource_field_ref.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if sources != 1 {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}.valueFrom needs exactly one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef"),
                    ));
                }
                if let Some(r) = &from.config_map_key_ref
                    && (r.name.is_empty() || r.key.is_empty())
                {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}.valueFrom.configMapKeyRef needs a name and a key"),
                    ));
                }
                if let Some(r) = &from.secret_key_ref
                    && (r.name.is_empty() || r.key.is_empty())
                {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}.valueFrom.secretKeyRef needs a name and a key"),
                    ));
                }
                if let Some(r) = &from.field_ref
                    && r.field_path.is_empty()
                {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}.valueFrom.fieldRef needs a fieldPath"),
                    ));
                }
            }
            (_, None) => {}
        }
    }
    out
}

/// EnvFrom rules: each entry references exactly one named ConfigMap or Secret.
pub fn check_env_froms(param: &str, froms: &[EnvFromSource]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, f) in froms.iter().enumerate() {
        let at = format!("[{i}]");
        match (&f.config_map_ref, &f.secret_ref) {
            (None, None) => out.push(Violation::invalid(
                param,
                format!("{at} has neither configMapRef nor secretRef, so it would inject nothing"),
            )),
            (Some(_), Some(_)) => out.push(Violation::invalid(
                param,
                format!("{at} has both configMapRef and secretRef; use one per entry"),
            )),
            (Some(r), None) if !is_dns_subdomain(&r.name) => out.push(Violation::invalid(
                param,
                format!(
                    "{at}.configMapRef.name `{}` is not a valid resource name",
                    r.name
                ),
            )),
            (None, Some(r)) if !is_dns_subdomain(&r.name) => out.push(Violation::invalid(
                param,
                format!(
                    "{at}.secretRef.name `{}` is not a valid resource name",
                    r.name
                ),
            )),
            _ => {}
        }
    }
    out
}

/// Toleration rules, as the API server enforces them.
pub fn check_tolerations(param: &str, tolerations: &[Toleration]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let at = format!("[{i}]");
        let op = t.operator.as_deref().unwrap_or("Equal");
        match op {
            "Exists" => {
                if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}: operator Exists takes no value"),
                    ));
                }
            }
            "Equal" => {
                if t.key.as_deref().unwrap_or("").is_empty() {
                    out.push(Violation::invalid(
                        param,
                        format!("{at}: operator Equal needs a key"),
                    ));
                }
            }
            other => out.push(Violation::invalid(
                param,
                format!("{at}.operator `{other}` must be Exists or Equal"),
            )),
        }
        if let Some(k) = t.key.as_deref()
            && !k.is_empty()
            && !is_qualified_name(k)
        {
            out.push(Violation::invalid(
                param,
                format!("{at}.key `{k}` is not a valid label key"),
            ));
        }
        let effect = t.effect.as_deref().unwrap_or("");
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            out.push(Violation::invalid(
                param,
                format!("{at}.effect `{effect}` must be NoSchedule, PreferNoSchedule or NoExecute"),
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            out.push(Violation::invalid(
                param,
                format!("{at}.tolerationSeconds applies only to effect NoExecute"),
            ));
        }
    }
    out
}

/// Extra container rules (sidecars, init containers): a DNS-label name and an image.
pub fn check_container(param: &str, at: &str, c: &Container) -> Vec<Violation> {
    let mut out = Vec::new();
    if !is_dns_label(&c.name) {
        out.push(Violation::invalid(
            param,
            format!(
                "{at}.name `{}` must be a DNS label (lowercase letters, digits, -)",
                c.name
            ),
        ));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        out.push(Violation::invalid(param, format!("{at}.image is required")));
    }
    if let Some(p) = &c.liveness_probe {
        out.extend(check_probe(param, p));
    }
    if let Some(p) = &c.readiness_probe {
        out.extend(check_probe(param, p));
    }
    if let Some(envs) = &c.env {
        out.extend(check_envs(param, envs));
    }
    for m in c.volume_mounts.iter().flatten() {
        if let Err(e) = check_mount_path(&m.mount_path) {
            out.push(Violation::invalid(param, format!("{at}: {e}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("my-app-1"));
        assert!(!is_dns_label("My-app"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("nginx.config"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("label-name-1"));
        assert!(!is_qualified_name("/x"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }

    #[test]
    fn mount_paths() {
        assert!(check_mount_path("/app/files").is_ok());
        assert!(check_mount_path("app").is_err());
        assert!(check_mount_path("/a/../etc").is_err());
        assert!(check_mount_path("/").is_err());
    }
}
