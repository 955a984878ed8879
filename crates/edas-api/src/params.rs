//! Decoding the wire's parameters: the checks every operation shares (required, unknown,
//! invalid, page numbers), answered as EDAS parameter violations.

use edas_spec::{Params, Violation, ViolationKind, Violations, parse_int};

use crate::Api;
use crate::error::ApiError;

pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::from(edas_app::AppError::invalid(parameter, message))
}

/// The namespaces edasd's configuration defines (the default one and the configured ones).
pub(crate) fn fixed_namespaces(api: &Api) -> edas_app::FixedNamespaces<'_> {
    edas_app::FixedNamespaces {
        region_id: &api.config().region_id,
        configured: &api.config().namespaces,
    }
}

/// `Ok` when `namespace` (given as `parameter`) is an EDAS namespace of this server (of the
/// configuration or created through the API), else the error listing the namespaces there are.
pub(crate) async fn known_namespace(
    api: &Api,
    parameter: &str,
    namespace: &str,
) -> Result<(), ApiError> {
    Ok(api
        .app()
        .known_namespace(fixed_namespaces(api), parameter, namespace)
        .await?)
}

/// The API clock's time (tests may fix it).
pub(crate) fn now(api: &Api) -> jiff::Timestamp {
    jiff::Timestamp::try_from(api.now()).unwrap_or_else(|_| jiff::Timestamp::now())
}

pub(crate) fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    match params.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::from(Violations(vec![Violation {
            parameter: name.to_owned(),
            kind: ViolationKind::Missing,
            message: format!("{name} is required"),
        }]))),
    }
}

/// Refuses parameters the operation does not have (never ignore an input).
pub(crate) fn only(params: &Params, action: &str, allowed: &[&str]) -> Result<(), ApiError> {
    only_with(params, action, allowed, &[])
}

/// Like [`only`]; `prefixes` also admits flattened `Prefix.key` parameters.
pub(crate) fn only_with(
    params: &Params,
    action: &str,
    allowed: &[&str],
    prefixes: &[&str],
) -> Result<(), ApiError> {
    let unknown: Vec<Violation> = params
        .iter()
        .filter(|(name, _)| {
            *name != "RegionId"
                && !allowed.contains(name)
                && !prefixes.iter().any(|p| {
                    name.strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
                })
        })
        .map(|(name, _)| Violation {
            parameter: name.to_owned(),
            kind: ViolationKind::Unknown,
            message: format!("{action} has no parameter named `{name}`"),
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::from(Violations(unknown)))
    }
}

pub(crate) fn page_number(params: &Params, name: &str, max: i64) -> Result<Option<u32>, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(raw) => match parse_int(raw) {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n as u32)),
            _ => Err(invalid(
                name,
                format!("`{raw}` is not an integer between 1 and {max}"),
            )),
        },
    }
}
