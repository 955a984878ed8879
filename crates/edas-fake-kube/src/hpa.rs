//! The HorizontalPodAutoscaler stand-in: HPAs are stored like any object, and a test plays
//! the HPA controller's decision ([`crate::FakeCluster::autoscale`], `POST
//! /_fake/hpa/{namespace}/{name}` with `{"desiredReplicas": N}`). As the real controller does
//! after reading its metrics, it clamps the count to the HPA's `minReplicas`/`maxReplicas`,
//! writes the target Deployment's or StatefulSet's `spec.replicas` (as `kube-controller-manager`, through an
//! update, so the field changes hands) and records `status.desiredReplicas`,
//! `status.currentReplicas` and `status.lastScaleTime`. A direction whose
//! `behavior.scaleUp`/`scaleDown.selectPolicy` is `Disabled` does not move the target (the
//! count stays, as the real controller's limit keeps it). No metrics are read and nothing
//! scales by itself.

use serde_json::{Value, json};

use crate::resources::by_kind;
use crate::store::{Store, now_rfc3339};

/// Scales the target of HPA `namespace/name` to `desired` (clamped to its bounds); answers the
/// count it set.
pub fn autoscale(store: &Store, namespace: &str, name: &str, desired: i32) -> Result<i32, String> {
    let hpa_kind = by_kind("HorizontalPodAutoscaler");
    let mut hpa = store
        .get(hpa_kind, namespace, name)
        .map_err(|_| format!("no HorizontalPodAutoscaler {namespace}/{name}"))?;
    let spec = hpa.get("spec").cloned().unwrap_or_default();
    let target = spec.get("scaleTargetRef").cloned().unwrap_or_default();
    let kind = target
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(kind, "Deployment" | "StatefulSet") {
        return Err(format!(
            "HorizontalPodAutoscaler {namespace}/{name} targets a `{kind}`: the stand-in scales Deployments and StatefulSets only"
        ));
    }
    let deployment_kind = by_kind(kind);
    let target_name = target
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let min = spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1);
    let max = spec
        .get("maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(min);
    let count = i64::from(desired).clamp(min, max.max(min));
    let count = i32::try_from(count).map_err(|_| format!("replica count {count} is too large"))?;
    let mut deployment = store
        .get(deployment_kind, namespace, target_name)
        .map_err(|_| format!("the target {kind} {namespace}/{target_name} does not exist"))?;
    let current = deployment
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let wanted_now = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let direction = match i64::from(count).cmp(&wanted_now) {
        std::cmp::Ordering::Greater => Some("scaleUp"),
        std::cmp::Ordering::Less => Some("scaleDown"),
        std::cmp::Ordering::Equal => None,
    };
    let disabled = direction.is_some_and(|d| {
        spec.pointer(&format!("/behavior/{d}/selectPolicy"))
            .and_then(Value::as_str)
            == Some("Disabled")
    });
    let count = if disabled {
        i32::try_from(wanted_now).map_err(|_| format!("replica count {wanted_now} is too large"))?
    } else {
        count
    };
    deployment["spec"]["replicas"] = json!(count);
    store
        .controller_write(deployment_kind, deployment, false)
        .ok_or_else(|| format!("{kind} {namespace}/{target_name} changed meanwhile: retry"))?;
    hpa["status"] = json!({
        "currentReplicas": current,
        "desiredReplicas": count,
        "lastScaleTime": now_rfc3339(),
    });
    store.controller_write(hpa_kind, hpa, true).ok_or_else(|| {
        format!("HorizontalPodAutoscaler {namespace}/{name} changed meanwhile: retry")
    })?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Propagation, WriteOptions};

    fn create(store: &Store, kind: &str, object: Value) {
        store
            .create(by_kind(kind), "default", object, &WriteOptions::default())
            .unwrap();
    }

    fn setup() -> Store {
        let store = Store::new(100);
        create(
            &store,
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web-r1", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        create(
            &store,
            "HorizontalPodAutoscaler",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"minReplicas": 2, "maxReplicas": 6,
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-r1"}}}),
        );
        store
    }

    #[test]
    fn scales_the_target_within_bounds_and_records_the_decision() {
        let store = setup();
        assert_eq!(autoscale(&store, "default", "web", 5), Ok(5));
        let d = store
            .get(by_kind("Deployment"), "default", "web-r1")
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 5);
        let hpa = store
            .get(by_kind("HorizontalPodAutoscaler"), "default", "web")
            .unwrap();
        assert_eq!(hpa["status"]["desiredReplicas"], 5);
        assert!(hpa["status"]["lastScaleTime"].is_string());
        assert_eq!(autoscale(&store, "default", "web", 60), Ok(6));
        assert_eq!(autoscale(&store, "default", "web", 0), Ok(2));
        let d = store
            .get(by_kind("Deployment"), "default", "web-r1")
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
    }

    #[test]
    fn a_disabled_direction_keeps_the_count() {
        let store = setup();
        let mut hpa = store
            .get(by_kind("HorizontalPodAutoscaler"), "default", "web")
            .unwrap();
        hpa["spec"]["behavior"] = json!({"scaleUp": {"selectPolicy": "Disabled"},
            "scaleDown": {"selectPolicy": "Disabled"}});
        store
            .controller_write(by_kind("HorizontalPodAutoscaler"), hpa, false)
            .unwrap();
        assert_eq!(autoscale(&store, "default", "web", 5), Ok(2));
        assert_eq!(autoscale(&store, "default", "web", 0), Ok(2));
        let d = store
            .get(by_kind("Deployment"), "default", "web-r1")
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
    }

    #[test]
    fn refuses_a_missing_hpa_or_target() {
        let store = setup();
        assert!(autoscale(&store, "default", "nope", 3).is_err());
        store
            .delete(
                by_kind("Deployment"),
                "default",
                "web-r1",
                Propagation::Cascade,
                &Value::Null,
                false,
            )
            .unwrap();
        let e = autoscale(&store, "default", "web", 3).unwrap_err();
        assert!(e.contains("web-r1"), "{e}");
    }
}
