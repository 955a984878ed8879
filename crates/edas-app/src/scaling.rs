//! Applications' autoscaling rules (CreateApplicationScalingRule and the rest): validated
//! (every violation at once, named by its parameter) and stored per application with their
//! audit record; a refused change stores nothing.
//!
//! Enabling asks the cluster's runtime first whether it can scale by the rule (a metric it
//! cannot measure is refused naming `ScalingRuleMetric.metrics[i].metricType`: `local`
//! measures CPU and QPS, Kubernetes' HPA CPU and MEMORY) and refuses at once when the cluster
//! does not answer; then the rule is stored, and then handed to the runtime (on Kubernetes a
//! HorizontalPodAutoscaler, on `local` the built-in autoscaler) for the revision that serves,
//! held while a change order runs. The stored rule is the truth: an apply that fails after
//! storing is logged and made good by the engine at start-up, when the cluster answers again
//! and when the next change order ends. Disabling or deleting stores first and then removes
//! the autoscaler. The release engine plans releases against the autoscaler's count, holds it
//! during a release and resumes it on the released revision. At most one rule of an
//! application is enabled.

use edas_runtime::AppRef;
use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{Application, AuditEntry, StoreError};
use serde_json::json;

pub use edas_store::{ScalingDirection, ScalingMetric, ScalingPolicy, ScalingRule, ScalingRuleDoc};

use crate::{Actor, App, AppError};

/// The most replicas a rule may ask for (EDAS: 1,000).
pub const MAX_REPLICAS: i64 = 1000;
/// The metrics a rule may scale on: average utilization of the instances' requests.
pub const METRIC_TYPES: [&str; 3] = ["CPU", "MEMORY", "QPS"];
/// The highest `QPS` target (requests per second per instance).
pub const MAX_QPS_TARGET: i64 = 1_000_000;

/// The bounds and metrics of a rule (`ScalingRuleMetric`), as decoded from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricRuleInput {
    pub min_replicas: i64,
    pub max_replicas: i64,
    /// (metric type, target average utilization in percent).
    pub metrics: Vec<(String, i64)>,
}

/// One direction of `ScalingBehaviour`, as decoded from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectionInput {
    pub stabilization_window_seconds: i64,
    pub select_policy: String,
    /// (type, value, period seconds).
    pub policies: Vec<(String, i64, i64)>,
}

/// `ScalingBehaviour`, as decoded from the request: `None` leaves a direction to the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BehaviourInput {
    pub scale_up: Option<DirectionInput>,
    pub scale_down: Option<DirectionInput>,
}

/// What CreateApplicationScalingRule or UpdateApplicationScalingRule asks; `None` is "not
/// given" (an update keeps the stored value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingRuleChange {
    /// (`ScalingRuleName`).
    pub name: String,
    /// (`ScalingRuleEnable`).
    pub enabled: Option<bool>,
    /// (`ScalingRuleMetric`).
    pub metric: Option<MetricRuleInput>,
    /// (`ScalingBehaviour`).
    pub behaviour: Option<BehaviourInput>,
}

struct Checker(Vec<Violation>);

impl Checker {
    fn bad(&mut self, parameter: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            parameter: parameter.into(),
            kind: ViolationKind::Invalid,
            message: message.into(),
        });
    }

    fn range(&mut self, parameter: String, value: i64, min: i64, max: i64) -> u32 {
        if !(min..=max).contains(&value) {
            self.bad(
                parameter,
                format!("must be from {min} to {max}, not {value}"),
            );
        }
        u32::try_from(value.clamp(0, i64::from(u32::MAX))).unwrap_or(0)
    }

    fn done(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(Violations(self.0)))
        }
    }
}

/// Whether `name` is a rule name EDAS admits: a lowercase letter, then lowercase letters,
/// digits and hyphens, 1 to 32 characters.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_name(c: &mut Checker, name: &str) {
    if !valid_name(name) {
        c.bad(
            "ScalingRuleName",
            format!(
                "`{name}` is not a rule name: 1 to 32 characters, a lowercase letter first, then lowercase letters, digits and hyphens"
            ),
        );
    }
}

fn check_metric(c: &mut Checker, m: &MetricRuleInput) -> (u32, u32, Vec<ScalingMetric>) {
    const P: &str = "ScalingRuleMetric";
    let max = c.range(format!("{P}.maxReplicas"), m.max_replicas, 1, MAX_REPLICAS);
    let min = c.range(format!("{P}.minReplicas"), m.min_replicas, 1, MAX_REPLICAS);
    if (1..=MAX_REPLICAS).contains(&m.max_replicas) && m.min_replicas > m.max_replicas {
        c.bad(
            format!("{P}.minReplicas"),
            format!(
                "must not exceed maxReplicas ({}), not {}",
                m.max_replicas, m.min_replicas
            ),
        );
    }
    if m.metrics.is_empty() {
        c.bad(
            format!("{P}.metrics"),
            format!("needs at least one metric ({})", METRIC_TYPES.join(", ")),
        );
    }
    let mut metrics: Vec<ScalingMetric> = Vec::new();
    for (i, (kind, target)) in m.metrics.iter().enumerate() {
        let kind = kind.to_ascii_uppercase();
        if !METRIC_TYPES.contains(&kind.as_str()) {
            c.bad(
                format!("{P}.metrics[{i}].metricType"),
                format!(
                    "`{kind}` is not a metric edasd scales on; use one of {}",
                    METRIC_TYPES.join(", ")
                ),
            );
        } else if metrics.iter().any(|m| m.kind == kind) {
            c.bad(
                format!("{P}.metrics[{i}].metricType"),
                format!("`{kind}` is given twice"),
            );
        }
        // CPU and MEMORY are percentages of the request; QPS is requests per second per
        // instance (edasd's local runtime measures it at its service proxies).
        let most = if kind == "QPS" { MAX_QPS_TARGET } else { 100 };
        let target = c.range(
            format!("{P}.metrics[{i}].metricTargetAverageUtilization"),
            *target,
            1,
            most,
        );
        metrics.push(ScalingMetric {
            kind,
            target_utilization: target,
        });
    }
    (min, max, metrics)
}

fn check_direction(c: &mut Checker, name: &str, d: &DirectionInput) -> ScalingDirection {
    let p = format!("ScalingBehaviour.{name}");
    let window = c.range(
        format!("{p}.stabilizationWindowSeconds"),
        d.stabilization_window_seconds,
        0,
        3600,
    );
    let select_policy = match d.select_policy.as_str() {
        "Max" | "Min" => d.select_policy.clone(),
        "Disabled" | "Disable" => "Disabled".to_owned(),
        other => {
            c.bad(
                format!("{p}.selectPolicy"),
                format!("`{other}` is not one of Max, Min, Disabled"),
            );
            String::new()
        }
    };
    let policies = d
        .policies
        .iter()
        .enumerate()
        .map(|(i, (kind, value, period))| {
            if kind != "Pods" && kind != "Percent" {
                c.bad(
                    format!("{p}.policies[{i}].type"),
                    format!("`{kind}` is not one of Pods, Percent"),
                );
            }
            ScalingPolicy {
                kind: kind.clone(),
                value: c.range(
                    format!("{p}.policies[{i}].value"),
                    *value,
                    1,
                    i64::from(i32::MAX),
                ),
                period_seconds: c.range(
                    format!("{p}.policies[{i}].periodSeconds"),
                    *period,
                    1,
                    1800,
                ),
            }
        })
        .collect();
    ScalingDirection {
        stabilization_window_seconds: window,
        select_policy,
        policies,
    }
}

/// Why a rule of `app` cannot be enabled on its cluster: the runtime's reason, named by the
/// metric it cannot measure (`metrics[i].metricType: …`) or else by `parameter`.
fn enabling_refused(app: &Application, parameter: &str, why: &str) -> AppError {
    let (parameter, why) = match why.split_once(": ") {
        Some((at, rest)) if at.starts_with("metrics[") => {
            (format!("ScalingRuleMetric.{at}"), rest.to_owned())
        }
        _ => (parameter.to_owned(), why.to_owned()),
    };
    AppError::Invalid(Violations(vec![Violation {
        parameter,
        kind: ViolationKind::NotSupported,
        message: format!(
            "a scaling rule of application `{}` cannot be enabled: cluster `{}` refuses it: {why}; store it disabled (ScalingRuleEnable=false) or scale with ScaleK8sApplication",
            app.id, app.cluster_id
        ),
    }]))
}

fn rule_not_found(app: &Application, name: &str) -> AppError {
    AppError::EntityNotFound(format!(
        "the scaling rule `{name}` of application `{}` does not exist",
        app.id
    ))
}

impl App {
    /// Whether the application's cluster can scale by `rule` now: a runtime without an
    /// autoscaler, or one that cannot measure a metric, refuses (named); a cluster that does
    /// not answer refuses the request. Nothing is stored before this passes.
    fn check_autoscaling(
        &self,
        app: &Application,
        rule: &ScalingRule,
        parameter: &str,
    ) -> Result<(), AppError> {
        let Some(runtime) = self.engine.runtimes().get(&app.cluster_id) else {
            return Err(enabling_refused(app, parameter, "no runtime serves it"));
        };
        runtime
            .check_autoscaling(&edas_engine::autoscaling::autoscaler(rule))
            .map_err(|e| enabling_refused(app, parameter, &e.to_string()))?;
        runtime.availability().map_err(|e| {
            AppError::Runtime(format!(
                "cluster `{}` cannot take the autoscaler of application `{}` now: {e}",
                app.cluster_id, app.id
            ))
        })
    }

    /// Makes the application's autoscaler what the store now says (the enabled rule, for the
    /// revision that serves, held while a change order runs; none without an enabled rule).
    /// Called after the rule is stored: a failure is logged and the engine sets it again in
    /// the background (waiting for a cluster that does not answer), at start-up and when the
    /// next change order ends.
    async fn apply_autoscaling(&self, app: &Application) {
        let Some(runtime) = self.engine.runtimes().get(&app.cluster_id) else {
            return;
        };
        let wanted = match edas_engine::autoscaling::serving(&self.store, app).await {
            Ok(wanted) => wanted,
            Err(error) => {
                tracing::warn!(message = "Reading the stored scaling rule failed; the autoscaler is set at the next reconciliation.", app_id = %app.id, %error);
                return;
            }
        };
        let at = AppRef {
            id: app.id.clone(),
            name: app.name.clone(),
            namespace: app.k8s_namespace.clone(),
        };
        if let Err(error) = runtime.set_autoscaling(&at, wanted.as_ref()).await {
            tracing::warn!(message = "The cluster did not take the stored autoscaler; it is set again in the background (when the cluster answers again), at start-up and when the next change order ends.", app_id = %app.id, cluster = %app.cluster_id, %error);
            edas_engine::autoscaling::reassert_later(&self.engine, &app.id);
        }
    }

    /// The scaling rules of application `app_id`, by name.
    pub async fn scaling_rules(&self, app_id: &str) -> Result<Vec<ScalingRule>, AppError> {
        self.store
            .scaling_rules(app_id)
            .await
            .map_err(|e| AppError::internal("reading the scaling rules", e))
    }

    async fn scaling_rule(&self, app: &Application, name: &str) -> Result<ScalingRule, AppError> {
        self.scaling_rules(&app.id)
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| rule_not_found(app, name))
    }

    /// Creates (`create`) or changes rule `change.name` of `app` with the audit record of
    /// `action`; the rule as stored.
    pub async fn put_scaling_rule(
        &self,
        app: &Application,
        change: ScalingRuleChange,
        create: bool,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<ScalingRule, AppError> {
        let mut c = Checker(Vec::new());
        check_name(&mut c, &change.name);
        if create && change.metric.is_none() {
            c.0.push(Violation {
                parameter: "ScalingRuleMetric".into(),
                kind: ViolationKind::Missing,
                message: "a new rule needs its replica bounds and metrics".into(),
            });
        }
        let metric = change.metric.as_ref().map(|m| check_metric(&mut c, m));
        let behaviour = change.behaviour.as_ref().map(|b| {
            (
                b.scale_up
                    .as_ref()
                    .map(|d| check_direction(&mut c, "scaleUp", d)),
                b.scale_down
                    .as_ref()
                    .map(|d| check_direction(&mut c, "scaleDown", d)),
            )
        });
        c.done()?;
        let others = self.scaling_rules(&app.id).await?;
        let was_enabled = !create && others.iter().any(|r| r.name == change.name && r.enabled);
        let mut rule = if create {
            ScalingRule {
                app_id: app.id.clone(),
                name: change.name.clone(),
                enabled: false,
                min_replicas: 0,
                max_replicas: 0,
                doc: ScalingRuleDoc::default(),
                created_at: now,
                updated_at: now,
                last_disabled_at: None,
            }
        } else {
            self.scaling_rule(app, &change.name).await?
        };
        if let Some(enabled) = change.enabled {
            rule.enabled = enabled;
        }
        if let Some((min, max, metrics)) = metric {
            (rule.min_replicas, rule.max_replicas, rule.doc.metrics) = (min, max, metrics);
        }
        if let Some((up, down)) = behaviour {
            (rule.doc.scale_up, rule.doc.scale_down) = (up, down);
        }
        let parameter = if action == "EnableApplicationScalingRule" {
            "ScalingRuleName"
        } else {
            "ScalingRuleEnable"
        };
        if rule.enabled
            && let Some(other) = others.iter().find(|r| r.enabled && r.name != rule.name)
        {
            return Err(AppError::Invalid(Violations(vec![Violation {
                parameter: parameter.to_owned(),
                kind: ViolationKind::Invalid,
                message: format!(
                    "application `{}` has the scaling rule `{}` enabled already: one rule scales an application, disable it first",
                    app.id, other.name
                ),
            }])));
        }
        // A rule the runtime cannot honour is refused, and nothing is stored.
        if rule.enabled {
            self.check_autoscaling(app, &rule, parameter)?;
        }
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: action.to_owned(),
            resource: format!("application/{}/scaling-rule/{}", app.id, rule.name),
            app_id: Some(app.id.clone()),
            request_id: Some(actor.request_id.clone()),
            detail: json!({
                "rule": rule.name,
                "enabled": rule.enabled,
                "min_replicas": rule.min_replicas,
                "max_replicas": rule.max_replicas,
            }),
        };
        let stored = self
            .store
            .put_scaling_rule(&rule, create, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => AppError::AlreadyExists(format!(
                    "application `{}` has a scaling rule named `{}` already",
                    app.id, rule.name
                )),
                StoreError::NotFound {
                    entity: "scaling rule",
                    ..
                } => rule_not_found(app, &rule.name),
                StoreError::NotFound { .. } => AppError::no_application(&app.id),
                e => AppError::internal("storing the scaling rule", e),
            })?;
        // Persisted, then acted on.
        if rule.enabled || was_enabled {
            self.apply_autoscaling(app).await;
        }
        Ok(stored)
    }

    /// Enables or disables rule `name` of `app` (see the module); the rule as stored.
    pub async fn set_scaling_rule_enabled(
        &self,
        app: &Application,
        name: &str,
        enabled: bool,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<ScalingRule, AppError> {
        let rule = self.scaling_rule(app, name).await?;
        let change = ScalingRuleChange {
            name: rule.name,
            enabled: Some(enabled),
            ..Default::default()
        };
        self.put_scaling_rule(app, change, false, action, actor, now)
            .await
    }

    /// Deletes rule `name` of `app` with its audit record.
    pub async fn delete_scaling_rule(
        &self,
        app: &Application,
        name: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        let was_enabled = self.scaling_rule(app, name).await?.enabled;
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: "DeleteApplicationScalingRule".to_owned(),
            resource: format!("application/{}/scaling-rule/{name}", app.id),
            app_id: Some(app.id.clone()),
            request_id: Some(actor.request_id.clone()),
            detail: json!({ "rule": name }),
        };
        self.store
            .delete_scaling_rule(&app.id, name, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => rule_not_found(app, name),
                e => AppError::internal("deleting the scaling rule", e),
            })?;
        if was_enabled {
            self.apply_autoscaling(app).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(result: Result<(), AppError>) -> Vec<String> {
        match result {
            Err(AppError::Invalid(Violations(v))) => v.into_iter().map(|v| v.parameter).collect(),
            other => panic!("not violations: {other:?}"),
        }
    }

    #[test]
    fn every_violation_is_named_at_once() {
        let mut c = Checker(Vec::new());
        check_name(&mut c, "Cpu_rule");
        check_metric(
            &mut c,
            &MetricRuleInput {
                min_replicas: 5,
                max_replicas: 2,
                metrics: vec![("cpu".into(), 60), ("CPU".into(), 0), ("RT".into(), 10)],
            },
        );
        check_direction(
            &mut c,
            "scaleUp",
            &DirectionInput {
                stabilization_window_seconds: 4000,
                select_policy: "Most".into(),
                policies: vec![("Pods".into(), 0, 15), ("Nodes".into(), 1, 0)],
            },
        );
        assert_eq!(
            names(c.done()),
            [
                "ScalingRuleName",
                "ScalingRuleMetric.minReplicas",
                "ScalingRuleMetric.metrics[1].metricType",
                "ScalingRuleMetric.metrics[1].metricTargetAverageUtilization",
                "ScalingRuleMetric.metrics[2].metricType",
                "ScalingBehaviour.scaleUp.stabilizationWindowSeconds",
                "ScalingBehaviour.scaleUp.selectPolicy",
                "ScalingBehaviour.scaleUp.policies[0].value",
                "ScalingBehaviour.scaleUp.policies[1].type",
                "ScalingBehaviour.scaleUp.policies[1].periodSeconds",
            ]
        );
    }

    #[test]
    fn qps_targets_are_requests_per_second() {
        let mut c = Checker(Vec::new());
        let (_, _, metrics) = check_metric(
            &mut c,
            &MetricRuleInput {
                min_replicas: 1,
                max_replicas: 4,
                metrics: vec![("qps".into(), 500), ("CPU".into(), 60)],
            },
        );
        c.done().unwrap();
        assert_eq!(
            (metrics[0].kind.as_str(), metrics[0].target_utilization),
            ("QPS", 500)
        );
        let mut c = Checker(Vec::new());
        check_metric(
            &mut c,
            &MetricRuleInput {
                min_replicas: 1,
                max_replicas: 4,
                metrics: vec![("QPS".into(), MAX_QPS_TARGET + 1), ("CPU".into(), 101)],
            },
        );
        assert_eq!(
            names(c.done()),
            [
                "ScalingRuleMetric.metrics[0].metricTargetAverageUtilization",
                "ScalingRuleMetric.metrics[1].metricTargetAverageUtilization"
            ]
        );
    }

    #[test]
    fn a_good_rule_is_normalized() {
        let mut c = Checker(Vec::new());
        check_name(&mut c, "cpu-1");
        let (min, max, metrics) = check_metric(
            &mut c,
            &MetricRuleInput {
                min_replicas: 1,
                max_replicas: 1,
                metrics: vec![("memory".into(), 80)],
            },
        );
        let down = check_direction(
            &mut c,
            "scaleDown",
            &DirectionInput {
                stabilization_window_seconds: 0,
                select_policy: "Disable".into(),
                policies: vec![],
            },
        );
        c.done().unwrap();
        assert_eq!((min, max), (1, 1));
        assert_eq!(metrics[0].kind, "MEMORY");
        assert_eq!(down.select_policy, "Disabled");
        let mut c = Checker(Vec::new());
        check_metric(
            &mut c,
            &MetricRuleInput {
                min_replicas: 0,
                max_replicas: 0,
                metrics: vec![],
            },
        );
        assert_eq!(
            names(c.done()),
            [
                "ScalingRuleMetric.maxReplicas",
                "ScalingRuleMetric.minReplicas",
                "ScalingRuleMetric.metrics"
            ]
        );
        assert!(!valid_name(&"a".repeat(33)) && valid_name(&"a".repeat(32)));
    }
}
