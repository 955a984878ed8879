//! What the engine hands a runtime: the application as an [`AppRef`], and a revision as a
//! [`Target`] carrying its spec and the contents of the ConfigMap and Secret copies it
//! references, so no runtime has a way back into the store.

use std::sync::Arc;

use edas_runtime::{AppRef, ConfigData, ConfigSnapshot, Target};
use edas_store::{Store, StoreError};
use serde_json::Value;

/// The application as runtime calls name it.
pub fn app_ref(app: &edas_store::Application) -> AppRef {
    AppRef {
        id: app.id.clone(),
        name: app.name.clone(),
        namespace: app.k8s_namespace.clone(),
    }
}

/// Revision `revision` of `app` as its release steps apply it: the stored revision's spec with
/// its references pointing at the revision's copies, and the copies' contents (read from the
/// store in the spec's cluster and namespace; a copy that is not there is left out, and the
/// runtime reports the missing object as Kubernetes would). Errors name the cause.
pub async fn stored_target(store: &Store, app: &AppRef, revision: &str) -> Result<Target, String> {
    let number: i64 = revision
        .parse()
        .map_err(|_| format!("revision id {revision} is not a number"))?;
    let rev = store
        .get_revision(&app.id, number)
        .await
        .map_err(|e| e.to_string())?;
    doc_target(store, app, revision, &rev.spec).await
}

/// Like [`stored_target`] with revision `revision`'s document already at hand (a driver has
/// the application's current one), so the revision is not read again.
pub(crate) async fn doc_target(
    store: &Store,
    app: &AppRef,
    revision: &str,
    doc: &edas_spec::RevisionDoc,
) -> Result<Target, String> {
    let spec = doc.running_spec();
    let config = snapshot(store, &spec).await?;
    Ok(Target {
        app: app.clone(),
        revision: revision.to_owned(),
        spec: Arc::new(spec),
        config: Arc::new(config),
    })
}

/// The contents of the ConfigMaps and Secrets `spec` references (its copies).
async fn snapshot(store: &Store, spec: &edas_spec::AppSpec) -> Result<ConfigSnapshot, String> {
    let (cluster, ns) = (&spec.cluster_id, &spec.k8s_namespace);
    let mut out = ConfigSnapshot::default();
    for r in spec.config_refs() {
        if !r.kind.is_copied() {
            continue;
        }
        let name = r.name;
        if r.kind.is_secret() {
            match store.get_secret(cluster, ns, &name).await {
                Ok(s) => {
                    let data = config_data("Secret", ns, &name, s.data.expose())?;
                    out.secrets.insert(name, data);
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(format!("reading Secret {ns}/{name}: {e}")),
            }
        } else {
            match store.get_config_map(cluster, ns, &name).await {
                Ok(cm) => {
                    let data = config_data("ConfigMap", ns, &name, &cm.data)?;
                    out.config_maps.insert(name, data);
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(format!("reading ConfigMap {ns}/{name}: {e}")),
            }
        }
    }
    Ok(out)
}

/// A stored ConfigMap/Secret data document as key → value: it must be an object of strings.
fn config_data(
    kind: &str,
    namespace: &str,
    name: &str,
    value: &Value,
) -> Result<ConfigData, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("the stored data of {kind} {namespace}/{name} is not an object"))?;
    object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!(
                "the stored value of key `{k}` of {kind} {namespace}/{name} is not a string"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_must_be_an_object_of_strings() {
        let ok = config_data("ConfigMap", "default", "c", &serde_json::json!({"a": "1"})).unwrap();
        assert_eq!(ok.get("a").map(String::as_str), Some("1"));
        assert!(config_data("ConfigMap", "default", "c", &serde_json::json!({"a": 1})).is_err());
        assert!(config_data("Secret", "default", "s", &serde_json::json!([])).is_err());
    }
}
