//! Autoscaling ([`edas_runtime::Runtime::set_autoscaling`]): an application's enabled scaling
//! rule is an `autoscaling/v2` HorizontalPodAutoscaler (rendered by edas-render, named like the
//! application, labelled with its id), server-side applied by [`crate::FIELD_MANAGER`] and
//! targeting one revision's Deployment; no rule deletes it. The HPA's `status.desiredReplicas`
//! is what [`edas_runtime::Runtime::autoscaled_replicas`] answers. A Deployment the HPA scaled
//! is not drift (`drift.rs` asks [`KubeRuntime::scaled_by_hpa`]). While a change order of
//! the application runs (`held`), both directions' `selectPolicy` is `Disabled`: the HPA keeps
//! the count the release planned instead of fighting its batches, and is enabled again, on
//! the released revision, when the order ends.

use edas_runtime::{AppRef, Autoscaler, Autoscaling, RuntimeError, ScaleDirection};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;

use crate::{KubeRuntime, LABEL_APP_ID, label};

impl KubeRuntime {
    /// Applies the application's HPA for `autoscaling`, or deletes it (`None`).
    pub(crate) async fn set_hpa(
        &self,
        app: &AppRef,
        autoscaling: Option<&Autoscaling>,
    ) -> Result<(), RuntimeError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.inner.client.clone(), &app.namespace);
        let name = edas_render::hpa_name(&app.name);
        let Some(autoscaling) = autoscaling else {
            return self.delete(&api, &name).await;
        };
        let rule = if autoscaling.held {
            held(&autoscaling.rule)
        } else {
            autoscaling.rule.clone()
        };
        let mut hpa =
            edas_render::render_hpa(&app.name, &app.namespace, &autoscaling.revision, &rule)
                .map_err(|e| {
                    RuntimeError::Unsupported(format!(
                        "cluster `{}`: {e}",
                        self.inner.options.cluster_id
                    ))
                })?;
        hpa.metadata
            .labels
            .get_or_insert_default()
            .insert(LABEL_APP_ID.to_owned(), app.id.clone());
        self.scale_statefulset(app, &mut hpa).await?;
        self.apply(&api, &name, &hpa).await
    }

    /// The application's HPA, if it has one that edasd applied for it.
    async fn hpa(&self, app: &AppRef) -> Result<Option<HorizontalPodAutoscaler>, RuntimeError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.inner.client.clone(), &app.namespace);
        let name = edas_render::hpa_name(&app.name);
        let what = format!("reading HorizontalPodAutoscaler {}/{name}", app.namespace);
        let found = self.call_tolerating(&what, 404, api.get(&name)).await?;
        Ok(found.filter(|h| label(h, LABEL_APP_ID) == Some(app.id.as_str())))
    }

    /// What the application's HPA wants now: its `status.desiredReplicas`, once it decided.
    pub(crate) async fn hpa_desired(&self, app: &AppRef) -> Result<Option<u32>, RuntimeError> {
        Ok(self
            .hpa(app)
            .await?
            .and_then(|h| h.status)
            .and_then(|s| u32::try_from(s.desired_replicas).ok())
            .filter(|n| *n > 0))
    }

    /// Whether the application's HPA targets Deployment `deployment`: its replica count is then
    /// the HPA's to choose, and a difference from what edasd applied is not drift.
    pub(crate) async fn scaled_by_hpa(
        &self,
        app: &AppRef,
        deployment: &str,
    ) -> Result<bool, RuntimeError> {
        Ok(self
            .hpa(app)
            .await?
            .is_some_and(|h| targets(&h, deployment)))
    }
}

/// Whether an HPA can scale by `rule`: resource metrics only (a request rate needs a custom
/// metrics adapter the cluster may not have).
pub(crate) fn check(rule: &Autoscaler) -> Result<(), RuntimeError> {
    for (i, m) in rule.metrics.iter().enumerate() {
        if !["CPU", "MEMORY"].contains(&m.kind.as_str()) {
            return Err(RuntimeError::Unsupported(format!(
                "metrics[{i}].metricType: a HorizontalPodAutoscaler scales on CPU and MEMORY only; `{}` needs a custom metrics adapter edasd does not assume",
                m.kind
            )));
        }
    }
    Ok(())
}

/// `rule` with both directions disabled: the HPA keeps its target's count.
fn held(rule: &Autoscaler) -> Autoscaler {
    let disabled = |d: Option<&ScaleDirection>| {
        Some(ScaleDirection {
            select_policy: "Disabled".into(),
            ..d.cloned().unwrap_or(ScaleDirection {
                stabilization_window_seconds: 0,
                select_policy: String::new(),
                policies: Vec::new(),
            })
        })
    };
    Autoscaler {
        scale_up: disabled(rule.scale_up.as_ref()),
        scale_down: disabled(rule.scale_down.as_ref()),
        ..rule.clone()
    }
}

/// Whether `hpa` scales Deployment `deployment`.
pub(crate) fn targets(hpa: &HorizontalPodAutoscaler, deployment: &str) -> bool {
    hpa.spec.as_ref().is_some_and(|s| {
        s.scale_target_ref.kind == "Deployment"
            && s.scale_target_ref.name == deployment
            && s.scale_target_ref
                .api_version
                .as_deref()
                .is_none_or(|v| v == "apps/v1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_hpa_targets_only_its_deployment() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "demo"},
            "spec": {"maxReplicas": 3, "scaleTargetRef":
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-r2"}}
        }))
        .unwrap();
        assert!(targets(&hpa, "demo-r2"));
        assert!(!targets(&hpa, "demo-r1"));
        let mut other = hpa.clone();
        other.spec.as_mut().unwrap().scale_target_ref.kind = "StatefulSet".into();
        assert!(!targets(&other, "demo-r2"));
    }
}
