//! Traffic: the application's Services, and during a gray split, per TCP Service a stable and a
//! gray Service plus a Gateway API HTTPRoute whose weights ramp along the lossless warm-up curve.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edas_runtime::{GraySplit, Routing, RuntimeError};
use edas_spec::release::{ConditionOperator, ConditionSource, TrafficRule};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::{KubeRuntime, LABEL_APP_ID, LABEL_REVISION};

/// The Gateway API group version HTTPRoutes are served under.
pub(crate) const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// How many weight updates a warm-up ramp makes at most.
const RAMP_STEPS: u32 = 20;

pub(crate) fn http_route_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: GATEWAY_API_VERSION.into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// Whether the runtime can route as `routing` says; a gray split needs Gateway API.
pub(crate) fn check(rt: &KubeRuntime, routing: &Routing) -> Result<(), RuntimeError> {
    let Some(gray) = &routing.gray else {
        return Ok(());
    };
    let cluster = &rt.inner.options.cluster_id;
    if rt.inner.options.gateway.is_none() {
        return Err(RuntimeError::Unsupported(format!(
            "TrafficControlStrategy needs a Gateway API Gateway on cluster `{cluster}` to attach the gray HTTPRoute to, and none is configured: set `gateway = \"<namespace>/<name>\"` in its [[clusters]] entry of edasd's configuration"
        )));
    }
    match rt.serves_gateway_api() {
        Some(true) => {}
        Some(false) => {
            return Err(RuntimeError::Unsupported(format!(
                "TrafficControlStrategy needs Gateway API on cluster `{cluster}`, which does not serve HTTPRoutes ({GATEWAY_API_VERSION}): install the Gateway API CRDs and a Gateway controller"
            )));
        }
        None => {
            return Err(RuntimeError::Unavailable(format!(
                "cluster `{cluster}` has not answered yet whether it serves Gateway API (needed for TrafficControlStrategy); try again"
            )));
        }
    }
    if !routing.services.iter().any(|s| tcp_port(s).is_some()) {
        return Err(RuntimeError::Unsupported(
            "TrafficControlStrategy needs a TCP Service (ServiceConfigs) for the gray HTTPRoute to send traffic to".into(),
        ));
    }
    for rule in &gray.traffic.rules {
        if let TrafficRule::Content { conditions } = rule {
            if conditions.is_empty() {
                return Err(RuntimeError::Unsupported(
                    "TrafficControlStrategy: a content rule needs at least one condition".into(),
                ));
            }
            for c in conditions {
                if matches!(c.source, ConditionSource::Cookie)
                    && matches!(c.operator, ConditionOperator::Regex)
                {
                    cookie_value_pattern(&c.value).map_err(|e| {
                        RuntimeError::Unsupported(format!(
                            "TrafficControlStrategy: cookie `{}`: {e}",
                            c.name
                        ))
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// The first TCP port of a Service (HTTPRoutes carry HTTP over TCP only).
fn tcp_port(s: &edas_spec::model::ServiceConfig) -> Option<i64> {
    s.port_mappings
        .iter()
        .map(|m| &m.service_port)
        .find(|p| {
            p.protocol
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case("TCP"))
        })
        .map(|p| p.port)
}

/// The warm-up curve of EDAS's lossless start: `max(min((t/W)^n, 1), 0.01)`.
pub fn warmup_share(elapsed: Duration, warmup: Duration, exponent: u32) -> f64 {
    if warmup.is_zero() {
        return 1.0;
    }
    let t = elapsed.as_secs_f64() / warmup.as_secs_f64();
    t.powi(i32::try_from(exponent).unwrap_or(2))
        .clamp(0.01, 1.0)
}

/// Whether a split sends the gray revision nothing: only percent rules of 0 (an aborted release).
fn stable_only(gray: &GraySplit) -> bool {
    gray.traffic
        .rules
        .iter()
        .all(|r| matches!(r, TrafficRule::Percent { percent: 0 }))
}

/// The gray percentage of requests matching no content rule (the first percent rule; none: 0).
fn gray_percent(gray: &GraySplit) -> u32 {
    gray.traffic
        .rules
        .iter()
        .find_map(|r| match r {
            TrafficRule::Percent { percent } => Some((*percent).min(100)),
            TrafficRule::Content { .. } => None,
        })
        .unwrap_or(0)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A cookie condition's regular expression as it is embedded in the `Cookie` header's pattern
/// `(^|.*;\s*)NAME=(?:VALUE)(;.*|$)`. The value's pattern matches the whole cookie value (the
/// Gateway's RE2 header match is a full match), so `^` and `$` (and `\A`, `\z`) at its start and
/// end mean the value's start and end: they are dropped, since in the header they would stand
/// for the start and end of the whole header and never match there. An anchor anywhere else
/// (`a^b`, `(^a)*`) cannot be expressed and is refused.
pub(crate) fn cookie_value_pattern(regex: &str) -> Result<String, String> {
    use regex_syntax::ast::{parse::Parser, print::Printer};
    let mut ast = Parser::new()
        .parse(regex)
        .map_err(|e| format!("`{regex}` is not a regular expression: {}", e.kind()))?;
    strip_anchors(&mut ast, true, true).map_err(|anchor| {
        format!("`{regex}`: the anchor `{anchor}` is only supported at the start or end of a cookie pattern")
    })?;
    let mut out = String::new();
    Printer::new()
        .print(&ast, &mut out)
        .map_err(|e| format!("`{regex}`: {e}"))?;
    // The result must still be a valid RE2-style expression.
    regex_syntax::Parser::new()
        .parse(&out)
        .map_err(|e| format!("`{regex}`: {e}"))?;
    Ok(format!("(?:{out})"))
}

/// Replaces the start (end) anchors of `ast` that can only be reached at its start (end) with
/// nothing; any other start or end anchor is an error naming it.
fn strip_anchors(
    ast: &mut regex_syntax::ast::Ast,
    at_start: bool,
    at_end: bool,
) -> Result<(), &'static str> {
    use regex_syntax::ast::{AssertionKind, Ast};
    let zero_width = |a: &Ast| match a {
        Ast::Empty(_) | Ast::Flags(_) => true,
        Ast::Assertion(x) => matches!(
            x.kind,
            AssertionKind::StartLine
                | AssertionKind::StartText
                | AssertionKind::EndLine
                | AssertionKind::EndText
        ),
        _ => false,
    };
    match ast {
        Ast::Assertion(a) => {
            let (start, symbol) = match a.kind {
                AssertionKind::StartLine => (true, "^"),
                AssertionKind::StartText => (true, "\\A"),
                AssertionKind::EndLine => (false, "$"),
                AssertionKind::EndText => (false, "\\z"),
                _ => return Ok(()),
            };
            if (start && !at_start) || (!start && !at_end) {
                return Err(symbol);
            }
            *ast = Ast::empty(a.span);
            Ok(())
        }
        Ast::Concat(c) => {
            let n = c.asts.len();
            // Zero-width items (flags, other anchors) before the first (after the last)
            // consuming item keep it at the start (end).
            let first_consuming = c.asts.iter().position(|a| !zero_width(a)).unwrap_or(n);
            let last_consuming = c.asts.iter().rposition(|a| !zero_width(a));
            for (i, item) in c.asts.iter_mut().enumerate() {
                let starts = at_start && i <= first_consuming;
                let ends = at_end && last_consuming.is_none_or(|last| i >= last);
                strip_anchors(item, starts, ends)?;
            }
            Ok(())
        }
        Ast::Alternation(alt) => alt
            .asts
            .iter_mut()
            .try_for_each(|a| strip_anchors(a, at_start, at_end)),
        Ast::Group(g) => strip_anchors(&mut g.ast, at_start, at_end),
        // Inside a repetition an anchor may be reached anywhere.
        Ast::Repetition(r) => strip_anchors(&mut r.ast, false, false),
        _ => Ok(()),
    }
}

/// One HTTPRoute match for a content rule: headers and query parameters, all of which must
/// match. A cookie becomes a regular expression on the `Cookie` header (Gateway API has no
/// cookie match).
fn content_match(conditions: &[edas_spec::release::TrafficCondition]) -> Value {
    let mut headers = Vec::new();
    let mut params = Vec::new();
    for c in conditions {
        let (kind, value) = match c.operator {
            ConditionOperator::Equal => ("Exact", c.value.clone()),
            ConditionOperator::Regex => ("RegularExpression", c.value.clone()),
        };
        match c.source {
            ConditionSource::Header => {
                headers.push(json!({"type": kind, "name": c.name, "value": value}));
            }
            ConditionSource::Param => {
                params.push(json!({"type": kind, "name": c.name, "value": value}));
            }
            ConditionSource::Cookie => {
                let pattern = match c.operator {
                    ConditionOperator::Equal => regex_escape(&c.value),
                    // `check` refused a pattern that cannot be embedded before this runs.
                    ConditionOperator::Regex => cookie_value_pattern(&c.value)
                        .unwrap_or_else(|_| format!("(?:{})", c.value)),
                };
                headers.push(json!({
                    "type": "RegularExpression",
                    "name": "Cookie",
                    "value": format!("(^|.*;\\s*){}={pattern}(;.*|$)", regex_escape(&c.name)),
                }));
            }
        }
    }
    let mut m = serde_json::Map::new();
    if !headers.is_empty() {
        m.insert("headers".into(), Value::Array(headers));
    }
    if !params.is_empty() {
        m.insert("queryParams".into(), Value::Array(params));
    }
    Value::Object(m)
}

/// The HTTPRoute spec of Service `service` (port `port`) splitting `gray_weight` percent of the
/// unmatched requests to the gray Service.
fn route_spec(
    gateway: &crate::GatewayRef,
    service: &str,
    port: i64,
    gray: &GraySplit,
    gray_weight: u32,
) -> Value {
    let stable = format!("{service}-stable");
    let gray_svc = format!("{service}-gray");
    let mut rules = Vec::new();
    for rule in &gray.traffic.rules {
        if let TrafficRule::Content { conditions } = rule {
            rules.push(json!({
                "matches": [content_match(conditions)],
                "backendRefs": [{"name": gray_svc, "port": port}],
            }));
        }
    }
    rules.push(json!({
        "backendRefs": [
            {"name": stable, "port": port, "weight": 100 - gray_weight.min(100)},
            {"name": gray_svc, "port": port, "weight": gray_weight.min(100)},
        ],
    }));
    json!({
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
            "namespace": gateway.namespace, "name": gateway.name}],
        "rules": rules,
    })
}

/// Makes the application's Services (and gray split) exactly `routing`.
pub(crate) async fn set(
    rt: &KubeRuntime,
    app: &crate::AppRef,
    routing: &Routing,
) -> Result<(), RuntimeError> {
    let inner = &rt.inner;
    let app_id = app.id.as_str();
    stop_ramp(rt, app_id);
    if app.namespace.is_empty() {
        // An application the store no longer knows (its sweep): nothing to route.
        if routing.services.is_empty() {
            return Ok(());
        }
        return Err(RuntimeError::Unsupported(format!(
            "application {app_id} has no namespace to route in"
        )));
    }
    let ns = app.namespace.as_str();
    let spec_labels = {
        let spec = edas_spec::AppSpec {
            name: app.name.clone(),
            ..Default::default()
        };
        crate::object_labels(&spec, app_id, None)
    };
    let mut wanted: Vec<Service> = edas_render::render_services(&app.name, ns, &routing.services);
    for s in &mut wanted {
        s.metadata
            .labels
            .get_or_insert_default()
            .insert(LABEL_APP_ID.into(), app_id.into());
    }
    let mut routes: Vec<(String, i64)> = Vec::new();
    if let Some(gray) = &routing.gray {
        // A split that sends the gray revision nothing (an aborted release) is the plain
        // Service narrowed to the stable revision: it needs no Gateway and no HTTPRoute.
        let stable_only = stable_only(gray);
        if !stable_only {
            check(rt, routing)?;
        }
        // During a split the plain Service selects the stable revision only, so in-cluster
        // callers (which do not pass through the Gateway) never reach gray instances by
        // accident: the split is exact, gray traffic is what the HTTPRoute sends.
        for s in &mut wanted {
            if let Some(spec) = s.spec.as_mut() {
                spec.selector
                    .get_or_insert_default()
                    .insert(LABEL_REVISION.into(), gray.stable_revision.clone());
            }
        }
        let base = if stable_only {
            Vec::new()
        } else {
            wanted.clone()
        };
        for (config, service) in routing.services.iter().zip(base) {
            let Some(port) = tcp_port(config) else {
                continue;
            };
            for (suffix, revision) in [
                ("stable", &gray.stable_revision),
                ("gray", &gray.gray_revision),
            ] {
                let mut s = service.clone();
                s.metadata.name = Some(format!("{}-{suffix}", config.name));
                if let Some(spec) = s.spec.as_mut() {
                    let selector = spec.selector.get_or_insert_default();
                    selector.insert(LABEL_REVISION.into(), revision.clone());
                    // The HTTPRoute's backends are reached inside the cluster only: a copy of
                    // a NodePort or LoadBalancer Service must not open node ports or buy
                    // another cloud load balancer for the length of the split.
                    spec.type_ = Some("ClusterIP".into());
                    for port in spec.ports.iter_mut().flatten() {
                        port.node_port = None;
                    }
                }
                wanted.push(s);
            }
            routes.push((config.name.clone(), port));
        }
    }
    let services: Api<Service> = Api::namespaced(inner.client.clone(), ns);
    for s in &wanted {
        let name = s.metadata.name.clone().unwrap_or_default();
        rt.apply(&services, &name, s).await?;
    }
    // Services of the application no longer wanted go (only those edasd labelled).
    let selector = format!("{LABEL_APP_ID}={app_id}");
    let existing = rt
        .call(
            "listing the application's Services",
            services.list(&ListParams::default().labels(&selector)),
        )
        .await?;
    let names: BTreeSet<String> = wanted
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    for s in existing.items {
        // A StatefulSet's headless Service belongs to the workload.
        if crate::stateful::is_headless(s.metadata.labels.as_ref()) {
            continue;
        }
        if let Some(name) = s.metadata.name
            && !names.contains(&name)
        {
            rt.delete(&services, &name).await?;
        }
    }
    // HTTPRoutes: only where the cluster serves them.
    if rt.serves_gateway_api() != Some(true) {
        return Ok(());
    }
    let ar = http_route_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(inner.client.clone(), ns, &ar);
    if let (Some(gray), Some(gateway), false) =
        (&routing.gray, &inner.options.gateway, routes.is_empty())
    {
        let percent = gray_percent(gray);
        let ramp = routing.lossless.enabled && routing.lossless.warmup_seconds > 0 && percent > 0;
        let first = if ramp {
            ramped(
                percent,
                warmup_share(Duration::ZERO, Duration::from_secs(1), 1),
            )
        } else {
            percent
        };
        gateway_exists(rt, gateway).await?;
        for (service, port) in &routes {
            let route = http_route(&ar, ns, &spec_labels, gateway, service, *port, gray, first);
            rt.apply(&api, service, &route).await?;
        }
        for (service, _) in &routes {
            accepted(rt, &api, ns, service, gateway).await?;
        }
        if ramp {
            start_ramp(
                rt,
                app_id,
                ns,
                spec_labels.clone(),
                routes.clone(),
                gray.clone(),
                routing,
            );
        }
    }
    let existing = rt
        .call(
            "listing the application's HTTPRoutes",
            api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
    let wanted_routes: BTreeSet<&str> = routes.iter().map(|(s, _)| s.as_str()).collect();
    for r in existing.items {
        if let Some(name) = r.metadata.name
            && !wanted_routes.contains(name.as_str())
        {
            rt.delete(&api, &name).await?;
        }
    }
    Ok(())
}

/// Fails, naming it, when the configured Gateway does not exist.
async fn gateway_exists(rt: &KubeRuntime, gateway: &crate::GatewayRef) -> Result<(), RuntimeError> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ));
    let api: Api<DynamicObject> =
        Api::namespaced_with(rt.inner.client.clone(), &gateway.namespace, &ar);
    let what = format!("reading Gateway {}/{}", gateway.namespace, gateway.name);
    match rt.call(&what, api.get_opt(&gateway.name)).await? {
        Some(_) => Ok(()),
        None => Err(RuntimeError::Unsupported(format!(
            "TrafficControlStrategy: the Gateway {}/{} configured for cluster `{}` does not exist there: create it, or fix `gateway` in the cluster's [[clusters]] entry",
            gateway.namespace, gateway.name, rt.inner.options.cluster_id
        ))),
    }
}

/// The route's `Accepted` condition for `gateway` (status, reason, message), once the Gateway
/// controller reported on the route's current generation.
fn acceptance(
    route: &DynamicObject,
    route_ns: &str,
    gateway: &crate::GatewayRef,
) -> Option<(bool, String, String)> {
    let generation = route.metadata.generation.unwrap_or(0);
    let parents = route.data.pointer("/status/parents")?.as_array()?;
    parents.iter().find_map(|p| {
        let parent = p.get("parentRef")?;
        let name = parent.get("name")?.as_str()?;
        let ns = parent
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(route_ns);
        if name != gateway.name || ns != gateway.namespace {
            return None;
        }
        let c = p
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Accepted"))?;
        let observed = c
            .get("observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(generation);
        if observed < generation {
            return None;
        }
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Some((text("status") == "True", text("reason"), text("message")))
    })
}

/// Waits (on the route's watch) until the Gateway accepted HTTPRoute `name`: a gray batch
/// counts as started only when its traffic split is in force. Refused or not reported within
/// the acceptance timeout: an error naming the route, the Gateway and the reason.
async fn accepted(
    rt: &KubeRuntime,
    api: &Api<DynamicObject>,
    ns: &str,
    name: &str,
    gateway: &crate::GatewayRef,
) -> Result<(), RuntimeError> {
    let timeout = rt.inner.options.route_acceptance_timeout;
    let condition =
        |o: Option<&DynamicObject>| o.is_some_and(|r| acceptance(r, ns, gateway).is_some());
    let gw = format!("{}/{}", gateway.namespace, gateway.name);
    let cluster = &rt.inner.options.cluster_id;
    let found = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api.clone(), name, condition),
    )
    .await;
    let route = match found {
        Ok(Ok(route)) => route,
        Ok(Err(e)) => {
            return Err(RuntimeError::Unavailable(format!(
                "cluster `{cluster}`: watching HTTPRoute {ns}/{name} for its acceptance: {e}"
            )));
        }
        Err(_) => {
            return Err(RuntimeError::Unavailable(format!(
                "cluster `{cluster}`: HTTPRoute {ns}/{name} was not accepted by Gateway {gw} within {}s (no Accepted condition from a Gateway controller: is one running for that Gateway?)",
                timeout.as_secs()
            )));
        }
    };
    match route.as_ref().and_then(|r| acceptance(r, ns, gateway)) {
        Some((true, _, _)) => Ok(()),
        Some((false, reason, message)) => Err(RuntimeError::Unsupported(format!(
            "cluster `{cluster}`: Gateway {gw} did not accept HTTPRoute {ns}/{name}: {reason}: {message}"
        ))),
        None => Err(RuntimeError::Unavailable(format!(
            "cluster `{cluster}`: HTTPRoute {ns}/{name} disappeared while waiting for its acceptance"
        ))),
    }
}

/// `percent` scaled by the warm-up share, at least 1 while the percentage is positive.
fn ramped(percent: u32, share: f64) -> u32 {
    ((f64::from(percent) * share).round() as u32).clamp(1, percent.max(1))
}

#[allow(clippy::too_many_arguments)]
fn http_route(
    ar: &ApiResource,
    ns: &str,
    labels: &BTreeMap<String, String>,
    gateway: &crate::GatewayRef,
    service: &str,
    port: i64,
    gray: &GraySplit,
    gray_weight: u32,
) -> DynamicObject {
    let mut route = DynamicObject::new(service, ar)
        .within(ns)
        .data(json!({"spec": route_spec(gateway, service, port, gray, gray_weight)}));
    route.metadata.labels = Some(labels.clone());
    route
}

fn stop_ramp(rt: &KubeRuntime, app_id: &str) {
    if let Some(task) = rt
        .inner
        .ramps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(app_id)
    {
        task.abort();
    }
}

/// Ramps the HTTPRoutes' gray weight along the warm-up curve, on timers (after the
/// registration delay, then at most [`RAMP_STEPS`] updates over the warm-up time).
fn start_ramp(
    rt: &KubeRuntime,
    app_id: &str,
    ns: &str,
    labels: BTreeMap<String, String>,
    routes: Vec<(String, i64)>,
    gray: GraySplit,
    routing: &Routing,
) {
    let Some(gateway) = rt.inner.options.gateway.clone() else {
        return;
    };
    let rt2 = rt.clone();
    let ns = ns.to_owned();
    let delay = Duration::from_secs(u64::from(routing.lossless.delay_seconds));
    let warmup = Duration::from_secs(u64::from(routing.lossless.warmup_seconds));
    let exponent = routing.lossless.func_type;
    let percent = gray_percent(&gray);
    let task = tokio::spawn(async move {
        let ar = http_route_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(rt2.inner.client.clone(), &ns, &ar);
        tokio::time::sleep(delay).await;
        let start = tokio::time::Instant::now();
        let step = (warmup / RAMP_STEPS).max(Duration::from_secs(1));
        let mut last = 0;
        loop {
            let elapsed = start.elapsed();
            let weight = ramped(percent, warmup_share(elapsed, warmup, exponent));
            if weight != last {
                for (service, port) in &routes {
                    let route =
                        http_route(&ar, &ns, &labels, &gateway, service, *port, &gray, weight);
                    if let Err(error) = rt2.apply(&api, service, &route).await {
                        tracing::warn!(%error, "ramping HTTPRoute weights failed");
                    }
                }
                last = weight;
            }
            if elapsed >= warmup {
                return;
            }
            tokio::time::sleep(step).await;
        }
    });
    rt.inner
        .ramps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(app_id.to_owned(), task.abort_handle());
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_spec::release::{TrafficCondition, TrafficControl};

    #[test]
    fn a_split_of_zero_percent_is_the_stable_revision_only() {
        let split = |rules| GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl { rules },
        };
        assert!(stable_only(&split(vec![TrafficRule::Percent {
            percent: 0
        }])));
        assert!(!stable_only(&split(vec![TrafficRule::Percent {
            percent: 20
        }])));
    }

    #[test]
    fn the_warmup_curve_starts_at_one_percent_and_ends_at_full_weight() {
        let w = Duration::from_secs(100);
        assert_eq!(warmup_share(Duration::ZERO, w, 2), 0.01);
        assert!((warmup_share(Duration::from_secs(50), w, 2) - 0.25).abs() < 1e-9);
        assert_eq!(warmup_share(Duration::from_secs(200), w, 2), 1.0);
        assert_eq!(ramped(20, 0.01), 1);
        assert_eq!(ramped(20, 0.5), 10);
        assert_eq!(ramped(20, 1.0), 20);
    }

    #[test]
    fn content_rules_become_matches_and_percent_the_weights() {
        let gray = GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![
                    TrafficRule::Content {
                        conditions: vec![
                            TrafficCondition {
                                source: ConditionSource::Header,
                                name: "x-gray".into(),
                                operator: ConditionOperator::Equal,
                                value: "1".into(),
                            },
                            TrafficCondition {
                                source: ConditionSource::Cookie,
                                name: "user".into(),
                                operator: ConditionOperator::Equal,
                                value: "a.b".into(),
                            },
                        ],
                    },
                    TrafficRule::Percent { percent: 30 },
                ],
            },
        };
        let gw = crate::GatewayRef {
            namespace: "infra".into(),
            name: "gw".into(),
        };
        let spec = route_spec(&gw, "web", 80, &gray, gray_percent(&gray));
        assert_eq!(spec["parentRefs"][0]["name"], "gw");
        let rules = spec["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        let headers = &rules[0]["matches"][0]["headers"];
        assert_eq!(
            headers[0],
            json!({"type": "Exact", "name": "x-gray", "value": "1"})
        );
        assert_eq!(headers[1]["name"], "Cookie");
        assert_eq!(headers[1]["value"], "(^|.*;\\s*)user=a\\.b(;.*|$)");
        assert_eq!(rules[0]["backendRefs"][0]["name"], "web-gray");
        assert_eq!(
            rules[1]["backendRefs"][0],
            json!({"name": "web-stable", "port": 80, "weight": 70})
        );
        assert_eq!(
            rules[1]["backendRefs"][1],
            json!({"name": "web-gray", "port": 80, "weight": 30})
        );
    }

    /// The header pattern of a cookie regex, as the Gateway matches it: RE2 syntax, full match.
    fn cookie_header_matches(name: &str, regex: &str, header: &str) -> bool {
        let condition = TrafficCondition {
            source: ConditionSource::Cookie,
            name: name.into(),
            operator: ConditionOperator::Regex,
            value: regex.into(),
        };
        let m = content_match(&[condition]);
        let pattern = m["headers"][0]["value"].as_str().unwrap().to_owned();
        let full = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        full.is_match(header)
    }

    #[test]
    fn anchored_cookie_regexes_match_the_cookie_value() {
        // Issue 18 (4): `^u[0-9]+$` never matched `user=u123`.
        for regex in [
            "^u[0-9]+$",
            "u[0-9]+",
            "\\Au[0-9]+\\z",
            "(?i)^U[0-9]+$",
            "^(u[0-9]+|admin)$",
        ] {
            for header in [
                "user=u123",
                "a=b; user=u123",
                "user=u123;theme=dark",
                "x=1;user=u123; y=2",
            ] {
                assert!(
                    cookie_header_matches("user", regex, header),
                    "{regex} on {header}"
                );
            }
            for header in [
                "user=x123",
                "user=u12a",
                "xuser=u123",
                "user=",
                "theme=u123",
            ] {
                assert!(
                    !cookie_header_matches("user", regex, header),
                    "{regex} on {header}"
                );
            }
        }
        assert!(cookie_header_matches(
            "user",
            "^(u[0-9]+|admin)$",
            "user=admin"
        ));
        assert!(cookie_header_matches("user", "^a|b$", "user=b"));
        assert_eq!(cookie_value_pattern("^u[0-9]+$").unwrap(), "(?:u[0-9]+)");
        // Anchors that cannot stand for the value's start or end are refused, by name.
        for bad in ["a^b", "(^a)*", "a$b"] {
            let e = cookie_value_pattern(bad).unwrap_err();
            assert!(e.contains("anchor") && e.contains(bad), "{e}");
        }
        assert!(
            cookie_value_pattern("(")
                .unwrap_err()
                .contains("not a regular expression")
        );
    }
}
