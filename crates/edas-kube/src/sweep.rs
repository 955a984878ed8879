//! The last step of deleting an application ([`edas_runtime::Runtime::delete_application`]):
//! every object labelled with its id, in every namespace, is deleted, whatever revision or state
//! it is in (a Deployment or StatefulSet that never became ready, a crash-looping pod, a ConfigMap or Secret
//! copy, a Service, an HTTPRoute, its HorizontalPodAutoscaler). Only objects carrying [`LABEL_APP_ID`] with that id are ever
//! touched.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PropagationPolicy};
use kube::core::GroupVersionKind;

use edas_runtime::RuntimeError;

use crate::{KubeRuntime, LABEL_APP_ID};

/// The kinds an application's objects can have, owners first (so a Deployment does not
/// re-create what was just deleted); `true` marks Gateway API's HTTPRoute, which a cluster may
/// not serve. ReplicaSets are not deleted here: the garbage collector removes them with their
/// Deployment (edasd needs no right on them). The HorizontalPodAutoscaler goes first, so it
/// scales nothing while the rest goes.
fn kinds() -> [(ApiResource, bool); 8] {
    let http_route = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    [
        (ApiResource::erase::<HorizontalPodAutoscaler>(&()), false),
        (ApiResource::erase::<Deployment>(&()), false),
        (ApiResource::erase::<StatefulSet>(&()), false),
        (ApiResource::erase::<Pod>(&()), false),
        (
            ApiResource::from_gvk_with_plural(&http_route, "httproutes"),
            true,
        ),
        (ApiResource::erase::<Service>(&()), false),
        (ApiResource::erase::<ConfigMap>(&()), false),
        (ApiResource::erase::<Secret>(&()), false),
    ]
}

impl KubeRuntime {
    /// Deletes every object labelled `edas.oam.appid=<app_id>` in every namespace. `force`
    /// deletes pods with a grace period of 0 (no waiting, no preStop hook), as EDAS's
    /// `Force=true` does. A kind the cluster does not serve (no Gateway API) is skipped.
    pub(crate) async fn sweep_application(
        &self,
        app_id: &str,
        force: bool,
    ) -> Result<(), RuntimeError> {
        let cluster_id = &self.inner.options.cluster_id;
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let mut dp = DeleteParams::background();
        if force {
            dp.grace_period_seconds = Some(0);
            dp.propagation_policy = Some(PropagationPolicy::Background);
        }
        let mut deleted = 0usize;
        for (resource, gateway_api) in kinds() {
            if gateway_api && self.serves_gateway_api() == Some(false) {
                continue;
            }
            let kind = &resource.kind;
            let all: Api<DynamicObject> = Api::all_with(self.inner.client.clone(), &resource);
            let what = format!("listing the {kind}s of application {app_id}");
            let objects = match self.call(&what, all.list_metadata(&lp)).await {
                Ok(list) => list.items,
                // Gateway API not installed (discovery had not said so yet).
                Err(_) if gateway_api && self.serves_gateway_api() != Some(true) => continue,
                Err(e) => return Err(e),
            };
            for object in objects {
                let (Some(namespace), Some(name)) =
                    (object.metadata.namespace, object.metadata.name)
                else {
                    continue;
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.inner.client.clone(), &namespace, &resource);
                let what = format!("deleting {kind} {namespace}/{name}");
                // Gone already is fine.
                if self
                    .call_tolerating(&what, 404, api.delete(&name, &dp))
                    .await?
                    .is_some()
                {
                    deleted += 1;
                }
            }
        }
        tracing::info!(cluster = %cluster_id, %app_id, deleted, force, "swept the application's objects");
        Ok(())
    }
}
