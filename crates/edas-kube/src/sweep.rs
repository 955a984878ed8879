//! The last step of deleting an application ([`edas_runtime::Runtime::delete_application`]):
//! every object labelled with its id, in every namespace, is deleted, whatever revision or state
//! it is in (a Deployment that never became ready, a crash-looping pod, a ConfigMap or Secret
//! copy, a Service, an HTTPRoute). Only objects carrying [`LABEL_APP_ID`] with that id are ever
//! touched.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PropagationPolicy};
use kube::core::GroupVersionKind;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use edas_runtime::RuntimeError;

use crate::{KubeRuntime, LABEL_APP_ID, api_error};

/// What deletes one kind of object: its name for messages and the API over all namespaces.
enum Kind {
    Typed(&'static str, fn(Client) -> Lister),
    HttpRoute,
}

type Lister = Box<dyn ListDelete>;

/// Lists (all namespaces, by label) and deletes objects of one type.
trait ListDelete: Send + Sync {
    fn list<'a>(
        &'a self,
        lp: &'a ListParams,
    ) -> edas_runtime::BoxFuture<'a, Result<Vec<(String, String)>, kube::Error>>;
    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        dp: &'a DeleteParams,
    ) -> edas_runtime::BoxFuture<'a, Result<(), kube::Error>>;
}

struct Typed<K: Resource<DynamicType = ()>> {
    client: Client,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> ListDelete for Typed<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn list<'a>(
        &'a self,
        lp: &'a ListParams,
    ) -> edas_runtime::BoxFuture<'a, Result<Vec<(String, String)>, kube::Error>> {
        Box::pin(async move {
            let api: Api<K> = Api::all(self.client.clone());
            Ok(api
                .list_metadata(lp)
                .await?
                .items
                .into_iter()
                .filter_map(|o| Some((o.metadata.namespace?, o.metadata.name?)))
                .collect())
        })
    }

    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        dp: &'a DeleteParams,
    ) -> edas_runtime::BoxFuture<'a, Result<(), kube::Error>> {
        Box::pin(async move {
            let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
            api.delete(name, dp).await.map(drop)
        })
    }
}

fn typed<K>(client: Client) -> Lister
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    Box::new(Typed::<K> {
        client,
        _kind: std::marker::PhantomData,
    })
}

struct Dynamic {
    client: Client,
    resource: ApiResource,
}

impl ListDelete for Dynamic {
    fn list<'a>(
        &'a self,
        lp: &'a ListParams,
    ) -> edas_runtime::BoxFuture<'a, Result<Vec<(String, String)>, kube::Error>> {
        Box::pin(async move {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.resource);
            Ok(api
                .list_metadata(lp)
                .await?
                .items
                .into_iter()
                .filter_map(|o| Some((o.metadata.namespace?, o.metadata.name?)))
                .collect())
        })
    }

    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        dp: &'a DeleteParams,
    ) -> edas_runtime::BoxFuture<'a, Result<(), kube::Error>> {
        Box::pin(async move {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &self.resource);
            api.delete(name, dp).await.map(drop)
        })
    }
}

/// The kinds an application's objects can have, owners first (so a Deployment does not
/// re-create what was just deleted). ReplicaSets are not deleted here: the garbage collector
/// removes them with their Deployment (edasd needs no right on them).
const KINDS: &[Kind] = &[
    Kind::Typed("Deployment", typed::<Deployment>),
    Kind::Typed("Pod", typed::<Pod>),
    Kind::HttpRoute,
    Kind::Typed("Service", typed::<Service>),
    Kind::Typed("ConfigMap", typed::<ConfigMap>),
    Kind::Typed("Secret", typed::<Secret>),
];

impl KubeRuntime {
    /// Deletes every object labelled `edas.oam.appid=<app_id>` in every namespace. `force`
    /// deletes pods with a grace period of 0 (no waiting, no preStop hook), as EDAS's
    /// `Force=true` does. A kind the cluster does not serve (no Gateway API) is skipped.
    pub(crate) async fn sweep_application(
        &self,
        app_id: &str,
        force: bool,
    ) -> Result<(), RuntimeError> {
        let cluster = self.cluster_label();
        let cluster_id = &self.inner.options.cluster_id;
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let mut dp = DeleteParams::background();
        if force {
            dp.grace_period_seconds = Some(0);
            dp.propagation_policy = Some(PropagationPolicy::Background);
        }
        let mut deleted = 0usize;
        for kind in KINDS {
            let (name, api) = match kind {
                Kind::Typed(name, make) => (*name, make(self.inner.client.clone())),
                Kind::HttpRoute => {
                    if self.serves_gateway_api() == Some(false) {
                        continue;
                    }
                    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
                    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
                    (
                        "HTTPRoute",
                        Box::new(Dynamic {
                            client: self.inner.client.clone(),
                            resource,
                        }) as Lister,
                    )
                }
            };
            let what = format!("listing the {name}s of application {app_id}");
            let objects = match self.call(&what, api.list(&lp)).await {
                Ok(objects) => objects,
                // Gateway API not installed (discovery had not said so yet).
                Err(_)
                    if matches!(kind, Kind::HttpRoute)
                        && self.serves_gateway_api() != Some(true) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (namespace, object) in objects {
                let what = format!("deleting {name} {namespace}/{object}");
                match tokio::time::timeout(
                    self.inner.options.call_timeout,
                    api.delete(&namespace, &object, &dp),
                )
                .await
                {
                    Ok(Ok(())) => deleted += 1,
                    Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
                    Ok(Err(e)) => return Err(api_error(cluster_id, &what, e)),
                    Err(_) => {
                        return Err(RuntimeError::Unavailable(format!(
                            "cluster {cluster}: {what}: no answer"
                        )));
                    }
                }
            }
        }
        tracing::info!(cluster = %cluster, %app_id, deleted, force, "swept the application's objects");
        Ok(())
    }
}
