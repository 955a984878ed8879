//! The local runtime's ConfigMaps and Secrets come from the store (cluster `local`).

use edas_local::{ConfigData, ConfigSource, ConfigSourceError};
use edas_runtime::BoxFuture;
use edas_store::{Store, StoreError};
use serde_json::Value;

use crate::config::LOCAL_CLUSTER;

/// Reads the ConfigMaps and Secrets stored for the `local` cluster.
pub struct StoreConfigSource {
    store: Store,
}

impl StoreConfigSource {
    pub fn new(store: Store) -> StoreConfigSource {
        StoreConfigSource { store }
    }
}

/// A stored ConfigMap/Secret data document as key → value: it must be an object of strings.
/// Shared by the local runtime's source and the Kubernetes runtimes' directory.
pub(crate) fn stored_data(
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

fn to_data(
    kind: &str,
    namespace: &str,
    name: &str,
    value: &Value,
) -> Result<ConfigData, ConfigSourceError> {
    stored_data(kind, namespace, name, value).map_err(ConfigSourceError)
}

impl ConfigSource for StoreConfigSource {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>> {
        Box::pin(async move {
            match self
                .store
                .get_config_map(LOCAL_CLUSTER, namespace, name)
                .await
            {
                Ok(cm) => to_data("ConfigMap", namespace, name, &cm.data).map(Some),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(ConfigSourceError(e.to_string())),
            }
        })
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>> {
        Box::pin(async move {
            match self.store.get_secret(LOCAL_CLUSTER, namespace, name).await {
                Ok(secret) => to_data("Secret", namespace, name, secret.data.expose()).map(Some),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(ConfigSourceError(e.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_must_be_an_object_of_strings() {
        let ok = to_data("ConfigMap", "default", "c", &serde_json::json!({"a": "1"})).unwrap();
        assert_eq!(ok.get("a").map(String::as_str), Some("1"));
        assert!(to_data("ConfigMap", "default", "c", &serde_json::json!({"a": 1})).is_err());
        assert!(to_data("Secret", "default", "s", &serde_json::json!([])).is_err());
    }
}
