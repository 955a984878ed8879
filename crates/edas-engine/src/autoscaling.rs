//! An application's enabled scaling rule, as the runtime takes it: the engine reads it from
//! the store and hands it over (the runtime never asks the store). A release plans its batches
//! against the count the autoscaler wants (`submit`), and a finished release points the
//! autoscaler at the revision it released (`driver::finish`), so neither the batch math nor the
//! end of a release fights the autoscaler.

use edas_runtime::{Autoscaler, ScaleDirection, ScaleMetric, ScalePolicy};
use edas_store::{ScalingRule, Store, StoreError};

fn direction(d: &edas_store::ScalingDirection) -> ScaleDirection {
    ScaleDirection {
        stabilization_window_seconds: d.stabilization_window_seconds,
        select_policy: d.select_policy.clone(),
        policies: d
            .policies
            .iter()
            .map(|p| ScalePolicy {
                kind: p.kind.clone(),
                value: p.value,
                period_seconds: p.period_seconds,
            })
            .collect(),
    }
}

/// A stored rule in the runtime's terms.
pub fn autoscaler(rule: &ScalingRule) -> Autoscaler {
    Autoscaler {
        min_replicas: rule.min_replicas,
        max_replicas: rule.max_replicas,
        metrics: rule
            .doc
            .metrics
            .iter()
            .map(|m| ScaleMetric {
                kind: m.kind.clone(),
                target_utilization: m.target_utilization,
            })
            .collect(),
        scale_up: rule.doc.scale_up.as_ref().map(direction),
        scale_down: rule.doc.scale_down.as_ref().map(direction),
    }
}

/// The application's enabled rule (the application layer lets at most one be enabled; the
/// first by name if the store has several).
pub async fn enabled_rule(store: &Store, app_id: &str) -> Result<Option<Autoscaler>, StoreError> {
    Ok(store
        .scaling_rules(app_id)
        .await?
        .iter()
        .find(|r| r.enabled)
        .map(autoscaler))
}

/// The instance count a release plans against: what the autoscaler wants now, within the
/// rule's bounds, when the application has an enabled rule and its autoscaler decided;
/// otherwise `stored`.
pub fn planned(rule: Option<&Autoscaler>, wanted: Option<u32>, stored: u32) -> u32 {
    match (rule, wanted) {
        (Some(rule), Some(wanted)) => {
            wanted.clamp(rule.min_replicas, rule.max_replicas.max(rule.min_replicas))
        }
        (Some(rule), None) => {
            stored.clamp(rule.min_replicas, rule.max_replicas.max(rule.min_replicas))
        }
        (None, _) => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_autoscaler_within_the_rule() {
        let rule = Autoscaler {
            min_replicas: 2,
            max_replicas: 6,
            metrics: vec![],
            scale_up: None,
            scale_down: None,
        };
        assert_eq!(planned(Some(&rule), Some(5), 3), 5);
        assert_eq!(planned(Some(&rule), Some(9), 3), 6);
        assert_eq!(planned(Some(&rule), None, 1), 2);
        assert_eq!(planned(Some(&rule), None, 4), 4);
        assert_eq!(planned(None, Some(5), 3), 3);
    }
}
