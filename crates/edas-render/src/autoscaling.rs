//! An application's enabled scaling rule as an `autoscaling/v2` HorizontalPodAutoscaler.
//!
//! One HPA per application, named like the application (lowercased), targets the Deployment
//! of one revision: the stable one while a release runs, the new one once it completes. The
//! rule's bounds, CPU/MEMORY average-utilization targets and behaviour (stabilization windows,
//! select policy, `Pods`/`Percent` policies) map one to one onto the HPA's fields; nothing of
//! the rule is dropped, and a rule Kubernetes could not take is refused by [`render_hpa`].

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use edas_spec::autoscale::{Autoscaler, ScaleDirection, ScaleMetric, ScalePolicy};

use crate::{RenderError, app_labels_of, deployment_name, is_dns_label};

/// The HPA name of an application: its name, lowercased (one HPA per application).
pub fn hpa_name(app_name: &str) -> String {
    app_name.to_ascii_lowercase()
}

fn count(n: u32) -> Result<i32, RenderError> {
    i32::try_from(n).map_err(|_| RenderError::Replicas(n))
}

fn bad(message: String) -> RenderError {
    RenderError::Autoscaler(message)
}

fn direction(d: &ScaleDirection) -> Result<HPAScalingRules, RenderError> {
    if !["Max", "Min", "Disabled"].contains(&d.select_policy.as_str()) {
        return Err(bad(format!(
            "selectPolicy `{}` is not Max, Min or Disabled",
            d.select_policy
        )));
    }
    let policies = d
        .policies
        .iter()
        .map(|p| {
            if !["Pods", "Percent"].contains(&p.kind.as_str()) {
                return Err(bad(format!(
                    "policy type `{}` is not Pods or Percent",
                    p.kind
                )));
            }
            Ok(HPAScalingPolicy {
                type_: p.kind.clone(),
                value: count(p.value)?,
                period_seconds: count(p.period_seconds)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HPAScalingRules {
        stabilization_window_seconds: Some(count(d.stabilization_window_seconds)?),
        select_policy: Some(d.select_policy.clone()),
        policies: (!policies.is_empty()).then_some(policies),
        tolerance: None,
    })
}

/// The HPA of application `app_name` in `namespace` for rule `rule`, targeting the Deployment
/// of `revision`.
pub fn render_hpa(
    app_name: &str,
    namespace: &str,
    revision: &str,
    rule: &Autoscaler,
) -> Result<HorizontalPodAutoscaler, RenderError> {
    let lower = app_name.to_ascii_lowercase();
    if !is_dns_label(&lower) || !edas_spec::k8s::is_label_value(app_name) {
        return Err(RenderError::AppName(app_name.to_owned()));
    }
    let target = deployment_name(app_name, revision);
    if !is_dns_label(revision) || !is_dns_label(&target) {
        return Err(RenderError::Revision {
            app: lower,
            revision: revision.to_owned(),
        });
    }
    if rule.min_replicas < 1 || rule.min_replicas > rule.max_replicas {
        return Err(bad(format!(
            "minReplicas {} must be from 1 to maxReplicas ({})",
            rule.min_replicas, rule.max_replicas
        )));
    }
    if rule.metrics.is_empty() {
        return Err(bad(
            "a rule needs at least one metric (CPU or MEMORY)".into()
        ));
    }
    let metrics = rule
        .metrics
        .iter()
        .map(|m| {
            let resource = match m.kind.as_str() {
                "CPU" => "cpu",
                "MEMORY" => "memory",
                other => return Err(bad(format!("metric `{other}` is not CPU or MEMORY"))),
            };
            Ok(MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: resource.into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(count(m.target_utilization)?),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let behavior = if rule.scale_up.is_some() || rule.scale_down.is_some() {
        Some(HorizontalPodAutoscalerBehavior {
            scale_up: rule.scale_up.as_ref().map(direction).transpose()?,
            scale_down: rule.scale_down.as_ref().map(direction).transpose()?,
        })
    } else {
        None
    };
    Ok(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(hpa_name(app_name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(app_labels_of(app_name)),
            ..ObjectMeta::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: target,
            },
            min_replicas: Some(count(rule.min_replicas)?),
            max_replicas: count(rule.max_replicas)?,
            metrics: Some(metrics),
            behavior,
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Autoscaler {
        Autoscaler {
            min_replicas: 2,
            max_replicas: 6,
            metrics: vec![
                ScaleMetric {
                    kind: "CPU".into(),
                    target_utilization: 70,
                },
                ScaleMetric {
                    kind: "MEMORY".into(),
                    target_utilization: 80,
                },
            ],
            scale_up: Some(ScaleDirection {
                stabilization_window_seconds: 0,
                select_policy: "Max".into(),
                policies: vec![ScalePolicy {
                    kind: "Pods".into(),
                    value: 4,
                    period_seconds: 15,
                }],
            }),
            scale_down: Some(ScaleDirection {
                stabilization_window_seconds: 300,
                select_policy: "Min".into(),
                policies: vec![ScalePolicy {
                    kind: "Percent".into(),
                    value: 50,
                    period_seconds: 60,
                }],
            }),
        }
    }

    #[test]
    fn maps_every_field_of_the_rule() {
        let hpa = render_hpa("Demo", "team", "3", &rule()).unwrap();
        assert_eq!(hpa.metadata.name.as_deref(), Some("demo"));
        assert_eq!(hpa.metadata.namespace.as_deref(), Some("team"));
        let labels = hpa.metadata.labels.unwrap();
        assert_eq!(labels["edas.oam.acname"], "Demo");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "edasd");
        let spec = hpa.spec.unwrap();
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(
            spec.scale_target_ref.api_version.as_deref(),
            Some("apps/v1")
        );
        assert_eq!(spec.scale_target_ref.name, "demo-r3");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 6));
        let metrics = spec.metrics.unwrap();
        let targets: Vec<_> = metrics
            .iter()
            .map(|m| {
                let r = m.resource.as_ref().unwrap();
                assert_eq!(m.type_, "Resource");
                assert_eq!(r.target.type_, "Utilization");
                (r.name.as_str(), r.target.average_utilization)
            })
            .collect();
        assert_eq!(targets, [("cpu", Some(70)), ("memory", Some(80))]);
        let behavior = spec.behavior.unwrap();
        let up = behavior.scale_up.unwrap();
        assert_eq!(up.stabilization_window_seconds, Some(0));
        assert_eq!(up.select_policy.as_deref(), Some("Max"));
        assert_eq!(
            up.policies.unwrap(),
            [HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15
            }]
        );
        let down = behavior.scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(300));
        assert_eq!(down.select_policy.as_deref(), Some("Min"));
        assert_eq!(down.policies.unwrap()[0].type_, "Percent");
    }

    #[test]
    fn no_behaviour_leaves_kubernetes_defaults() {
        let mut r = rule();
        r.scale_up = None;
        r.scale_down = None;
        let hpa = render_hpa("demo", "default", "1", &r).unwrap();
        assert_eq!(hpa.spec.unwrap().behavior, None);
        r.scale_down = Some(ScaleDirection {
            stabilization_window_seconds: 60,
            select_policy: "Disabled".into(),
            policies: vec![],
        });
        let b = render_hpa("demo", "default", "1", &r)
            .unwrap()
            .spec
            .unwrap()
            .behavior
            .unwrap();
        assert_eq!(b.scale_up, None);
        let down = b.scale_down.unwrap();
        assert_eq!(down.policies, None);
        assert_eq!(down.select_policy.as_deref(), Some("Disabled"));
    }

    #[test]
    fn refuses_what_kubernetes_could_not_take() {
        let mut r = rule();
        r.min_replicas = 7;
        assert!(matches!(
            render_hpa("demo", "default", "1", &r),
            Err(RenderError::Autoscaler(_))
        ));
        let mut r = rule();
        r.metrics[0].kind = "QPS".into();
        let e = render_hpa("demo", "default", "1", &r).unwrap_err();
        assert!(e.to_string().contains("QPS"), "{e}");
        let mut r = rule();
        r.metrics.clear();
        assert!(render_hpa("demo", "default", "1", &r).is_err());
        let mut r = rule();
        r.scale_up.as_mut().unwrap().policies[0].kind = "Nodes".into();
        assert!(render_hpa("demo", "default", "1", &r).is_err());
        let mut r = rule();
        r.max_replicas = u32::MAX;
        assert_eq!(
            render_hpa("demo", "default", "1", &r),
            Err(RenderError::Replicas(u32::MAX))
        );
        assert!(matches!(
            render_hpa("bad_name", "default", "1", &rule()),
            Err(RenderError::AppName(_))
        ));
        assert!(matches!(
            render_hpa("demo", "default", "R1", &rule()),
            Err(RenderError::Revision { .. })
        ));
    }
}
