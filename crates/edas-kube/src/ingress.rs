//! Ingress rules ([`edas_runtime::Runtime::set_ingress`]): each rule is a `networking.k8s.io/v1`
//! Ingress (rendered by edas-render with the cluster's `ingress_class`), server-side applied by
//! [`crate::FIELD_MANAGER`] after its namespace exists. Only an Ingress labelled with the rule's
//! name ([`edas_render::LABEL_INGRESS`]) is ever replaced or deleted: a user's own Ingress of
//! the same name is refused, not taken over.

use edas_runtime::{IngressSpec, RuntimeError};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;

use crate::{KubeRuntime, label};

impl KubeRuntime {
    /// Applies Ingress `name` in `namespace` for `ingress`, or deletes it (`None`).
    pub(crate) async fn put_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
    ) -> Result<(), RuntimeError> {
        let api: Api<Ingress> = Api::namespaced(self.inner.client.clone(), namespace);
        let what = format!("reading Ingress {namespace}/{name}");
        let existing = self.call_tolerating(&what, 404, api.get(name)).await?;
        let ours = |i: &Ingress| label(i, edas_render::LABEL_INGRESS) == Some(name);
        if let Some(found) = &existing
            && !ours(found)
        {
            return Err(RuntimeError::Unsupported(format!(
                "cluster `{}`: namespace `{namespace}` has an Ingress `{name}` that edasd did not create; choose another Name",
                self.inner.options.cluster_id
            )));
        }
        let Some(ingress) = ingress else {
            return match existing {
                Some(_) => self.delete(&api, name).await,
                None => Ok(()),
            };
        };
        self.ensure_namespace(namespace).await?;
        let object = edas_render::render_ingress(
            name,
            namespace,
            ingress,
            self.inner.options.ingress_class.as_deref(),
        );
        self.apply(&api, name, &object).await
    }
}
