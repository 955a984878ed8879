//! Where ConfigMap and Secret contents come from (the store, in edasd; memory, in tests).

use std::collections::BTreeMap;
use std::sync::RwLock;

use edas_runtime::BoxFuture;

/// The keys and values of one ConfigMap or Secret (Secret values already decoded).
pub type ConfigData = BTreeMap<String, String>;

/// A ConfigMap or Secret lookup failed for a reason other than "not found".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigSourceError(pub String);

/// Resolves ConfigMaps and Secrets by namespace and name, for `Envs` `valueFrom`, `EnvFroms` and
/// `ConfigMountDescs`. `Ok(None)` means "does not exist".
pub trait ConfigSource: Send + Sync + 'static {
    /// The data of ConfigMap `name` in `namespace`.
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>>;

    /// The (decoded) data of Secret `name` in `namespace`.
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>>;
}

/// An in-memory [`ConfigSource`], for tests and for embedding without a store.
#[derive(Debug, Default)]
pub struct MemoryConfigSource {
    config_maps: RwLock<BTreeMap<(String, String), ConfigData>>,
    secrets: RwLock<BTreeMap<(String, String), ConfigData>>,
}

impl MemoryConfigSource {
    /// An empty source.
    pub fn new() -> MemoryConfigSource {
        MemoryConfigSource::default()
    }

    /// Creates or replaces a ConfigMap.
    pub fn put_config_map(&self, namespace: &str, name: &str, data: ConfigData) {
        let mut maps = self.config_maps.write().unwrap_or_else(|e| e.into_inner());
        maps.insert((namespace.to_owned(), name.to_owned()), data);
    }

    /// Creates or replaces a Secret.
    pub fn put_secret(&self, namespace: &str, name: &str, data: ConfigData) {
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        secrets.insert((namespace.to_owned(), name.to_owned()), data);
    }
}

fn lookup(
    map: &RwLock<BTreeMap<(String, String), ConfigData>>,
    namespace: &str,
    name: &str,
) -> Option<ConfigData> {
    let map = map.read().unwrap_or_else(|e| e.into_inner());
    map.get(&(namespace.to_owned(), name.to_owned())).cloned()
}

impl ConfigSource for MemoryConfigSource {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>> {
        Box::pin(async move { Ok(lookup(&self.config_maps, namespace, name)) })
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigData>, ConfigSourceError>> {
        Box::pin(async move { Ok(lookup(&self.secrets, namespace, name)) })
    }
}
