//! Each release runs with the exact ConfigMap and Secret contents it was released with.
//!
//! When a change creates a template revision, every ConfigMap and Secret its spec references
//! (`Envs` `valueFrom`, `EnvFroms`, `ConfigMountDescs`) is copied, as it is at that moment, into an
//! immutable copy named `<name>.<app id>.r<revision>` (the API refuses user names with dots, so no
//! copy can clash with a user's object), and the runtime is given the spec with its references
//! pointing at the copies. Gray and old instances therefore keep their own revision's
//! configuration, other applications are never touched, and a rollback to a revision brings back
//! the contents that revision ran with. A reference to an object that does not exist is left as
//! it is (the runtime reports it). A change of the referenced contents alone makes a new template
//! revision, so a deploy after a ConfigMap update replaces the instances.

use edas_spec::model::ConfigKind;
use edas_spec::{AppSpec, ConfigCopies, copy_key};
use edas_store::{ConfigMap, SecretRecord, Store, StoreError};
use sha2::{Digest, Sha256};

/// The referenced objects as they are now, with a digest of their contents (which decides
/// whether the instances must be replaced).
pub(crate) struct Snapshot {
    pub(crate) digest: String,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<SecretRecord>,
}

/// Reads what `spec` references in the application's cluster and namespace.
pub(crate) async fn snapshot(store: &Store, spec: &AppSpec) -> Result<Snapshot, StoreError> {
    let mut hash = Sha256::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for r in spec
        .config_refs()
        .into_iter()
        .filter(|r| r.kind.is_copied())
    {
        let (kind, name) = (r.kind, r.name);
        hash.update(copy_key(kind, &name).as_bytes());
        hash.update([0]);
        match kind {
            ConfigKind::ConfigMap => match store
                .get_config_map(&spec.cluster_id, &spec.k8s_namespace, &name)
                .await
            {
                Ok(cm) => {
                    hash.update(cm.data.to_string().as_bytes());
                    config_maps.push(cm);
                }
                Err(StoreError::NotFound { .. }) => hash.update(b"missing"),
                Err(e) => return Err(e),
            },
            ConfigKind::Secret | ConfigKind::PullSecret => match store
                .get_secret(&spec.cluster_id, &spec.k8s_namespace, &name)
                .await
            {
                Ok(s) => {
                    hash.update(s.data.expose().to_string().as_bytes());
                    secrets.push(s);
                }
                Err(StoreError::NotFound { .. }) => hash.update(b"missing"),
                Err(e) => return Err(e),
            },
        }
        hash.update([0]);
    }
    let digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Snapshot {
        digest,
        config_maps,
        secrets,
    })
}

fn copy_name(name: &str, app_id: &str, revision: &str) -> String {
    format!("{name}.{app_id}.r{revision}")
}

/// Stores the immutable copies of a snapshot for `revision`; returns what the revision uses.
pub(crate) async fn store_copies(
    store: &Store,
    snapshot: Snapshot,
    app_id: &str,
    revision: &str,
    now: jiff::Timestamp,
) -> Result<ConfigCopies, StoreError> {
    let mut copies = ConfigCopies::new();
    // Names the copy of `name` and records it for the revision.
    let mut copy = |kind, name: &str| {
        let copy = copy_name(name, app_id, revision);
        copies.insert(copy_key(kind, name), copy.clone());
        copy
    };
    for mut cm in snapshot.config_maps {
        cm.name = copy(ConfigKind::ConfigMap, &cm.name);
        (cm.created_at, cm.updated_at) = (now, now);
        store.put_config_map(&cm).await?;
    }
    for mut s in snapshot.secrets {
        s.name = copy(ConfigKind::Secret, &s.name);
        (s.created_at, s.updated_at) = (now, now);
        store.put_secret(&s).await?;
    }
    Ok(copies)
}
