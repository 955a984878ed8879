//! ConfigMaps and Secrets: the commands that create, update and delete them (in the cluster's
//! runtime first, then in the store with the audit record in one transaction) and the queries
//! that list them and the applications that use one.

use std::collections::BTreeMap;

use edas_runtime::RuntimeError;
use edas_spec::AppSpec;
use edas_store::{
    Application, ApplicationFilter, AuditEntry, ConfigMap, ConfigObject, SecretRecord, Sensitive,
    StoreError,
};
use serde_json::{Value, json};

use crate::{Actor, App, AppError};

/// ConfigMap or Secret.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ObjectKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret (its data encrypted at rest; only its keys reach the audit trail).
    Secret,
}

impl ObjectKind {
    /// `ConfigMap` or `Secret`, as messages name it.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        }
    }

    /// `configmap` or `secret`: the segment of its resource name and audit resource.
    pub fn segment(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }
}

/// One ConfigMap or Secret by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// ConfigMap or Secret.
    pub kind: ObjectKind,
    /// Its cluster.
    pub cluster_id: String,
    /// Its Kubernetes namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    fn not_found(&self) -> AppError {
        AppError::EntityNotFound(format!(
            "the {} `{}` does not exist in namespace `{}` of cluster `{}`",
            self.kind.noun(),
            self.name,
            self.namespace,
            self.cluster_id
        ))
    }
}

/// A stored ConfigMap or Secret as listing shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Its cluster, namespace and name.
    pub at: ObjectRef,
    /// The name of its cluster.
    pub cluster_name: String,
    /// Its data: an object of strings.
    pub data: Value,
    /// When it was created.
    pub created_at: jiff::Timestamp,
}

impl App {
    /// Creates (`create`) or replaces the data of a ConfigMap or Secret, recording `action` in
    /// the audit trail with the data's keys (never its values).
    pub async fn put_config(
        &self,
        at: &ObjectRef,
        data: BTreeMap<String, String>,
        create: bool,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        self.cluster(&at.cluster_id).await?;
        let (cluster, ns, name) = (&at.cluster_id, &at.namespace, &at.name);
        let existing = match at.kind {
            ObjectKind::ConfigMap => self
                .store
                .get_config_map(cluster, ns, name)
                .await
                .map(|c| c.created_at),
            ObjectKind::Secret => self
                .store
                .get_secret(cluster, ns, name)
                .await
                .map(|s| s.created_at),
        };
        let created_at = match (existing, create) {
            (Ok(_), true) => {
                return Err(AppError::AlreadyExists(format!(
                    "the {} `{name}` already exists in namespace `{ns}` of cluster `{cluster}`; use Update{}",
                    at.kind.noun(),
                    match at.kind {
                        ObjectKind::ConfigMap => "K8sConfigMap",
                        ObjectKind::Secret => "K8sSecret",
                    }
                )));
            }
            (Ok(created_at), false) => created_at,
            (Err(StoreError::NotFound { .. }), true) => now,
            (Err(StoreError::NotFound { .. }), false) => return Err(at.not_found()),
            (Err(e), _) => return Err(AppError::internal("reading the configuration", e)),
        };
        self.in_cluster(at, Some(data.clone())).await?;
        let value = Value::Object(
            data.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        let keys: Vec<&String> = data.keys().collect();
        let entry = audit_entry(at, action, actor, json!({ "keys": keys }));
        let stored = match at.kind {
            ObjectKind::ConfigMap => {
                let config_map = ConfigMap {
                    cluster_id: cluster.clone(),
                    k8s_namespace: ns.clone(),
                    name: name.clone(),
                    data: value,
                    created_at,
                    updated_at: now,
                };
                self.store
                    .put_config_map_audited(&config_map, &entry, now)
                    .await
            }
            ObjectKind::Secret => {
                let secret = SecretRecord {
                    cluster_id: cluster.clone(),
                    k8s_namespace: ns.clone(),
                    name: name.clone(),
                    data: Sensitive::new(value),
                    created_at,
                    updated_at: now,
                };
                self.store.put_secret_audited(&secret, &entry, now).await
            }
        };
        stored.map_err(|e| AppError::internal(format!("storing the {}", at.kind.noun()), e))
    }

    /// Deletes a ConfigMap or Secret that no live application's current spec uses.
    pub async fn delete_config(
        &self,
        at: &ObjectRef,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        self.cluster(&at.cluster_id).await?;
        let users = self.config_users(at).await?;
        if !users.is_empty() {
            let names: Vec<String> = users
                .iter()
                .map(|a| format!("{} ({})", a.name, a.id))
                .collect();
            return Err(AppError::InUse(format!(
                "the {} `{}` is used by {}: remove it from their configuration first",
                at.kind.noun(),
                at.name,
                names.join(", ")
            )));
        }
        self.in_cluster(at, None).await?;
        let (cluster, ns, name) = (&at.cluster_id, &at.namespace, &at.name);
        let entry = audit_entry(at, action, actor, json!({}));
        let object = match at.kind {
            ObjectKind::ConfigMap => ConfigObject::ConfigMap,
            ObjectKind::Secret => ConfigObject::Secret,
        };
        let deleted = self
            .store
            .delete_config_object_audited(object, (cluster, ns, name), &entry, now)
            .await
            .map_err(|e| AppError::internal("deleting the configuration", e))?;
        if deleted { Ok(()) } else { Err(at.not_found()) }
    }

    /// The stored ConfigMaps or Secrets of a cluster (or of every cluster), without the
    /// engine's per-revision copies (names with a dot, which users' names cannot have).
    pub async fn configs(
        &self,
        kind: ObjectKind,
        cluster_id: Option<&str>,
    ) -> Result<Vec<Object>, AppError> {
        let clusters = match cluster_id {
            Some(id) => vec![self.cluster(id).await?],
            None => self.clusters().await?,
        };
        let mut out = Vec::new();
        for info in clusters {
            let cluster = info.cluster;
            // (cluster, namespace, name, data, created) of either kind.
            let rows: Vec<(String, String, String, Value, jiff::Timestamp)> = match kind {
                ObjectKind::ConfigMap => self
                    .store
                    .list_cluster_config_maps(&cluster.id)
                    .await
                    .map_err(|e| AppError::internal("listing ConfigMaps", e))?
                    .into_iter()
                    .map(|c| (c.cluster_id, c.k8s_namespace, c.name, c.data, c.created_at))
                    .collect(),
                ObjectKind::Secret => self
                    .store
                    .list_cluster_secrets(&cluster.id)
                    .await
                    .map_err(|e| AppError::internal("listing Secrets", e))?
                    .into_iter()
                    .map(|s| {
                        let data = s.data.into_inner();
                        (s.cluster_id, s.k8s_namespace, s.name, data, s.created_at)
                    })
                    .collect(),
            };
            out.extend(
                rows.into_iter()
                    .filter(|(_, _, name, _, _)| !name.contains('.'))
                    .map(|(cluster_id, namespace, name, data, created_at)| Object {
                        at: ObjectRef {
                            kind,
                            cluster_id,
                            namespace,
                            name,
                        },
                        cluster_name: cluster.name.clone(),
                        data,
                        created_at,
                    }),
            );
        }
        Ok(out)
    }

    /// The live applications of the object's namespace whose current spec uses it (an
    /// environment variable's `valueFrom`, `EnvFroms`, a mount, or — for a Secret — the image
    /// pull secret).
    pub async fn config_users(&self, at: &ObjectRef) -> Result<Vec<Application>, AppError> {
        let filter = ApplicationFilter {
            cluster_id: Some(at.cluster_id.clone()),
            ..Default::default()
        };
        let mut out = Vec::new();
        for app in self.applications(&filter).await? {
            if app.k8s_namespace != at.namespace {
                continue;
            }
            if uses(&app.spec.spec, at.kind, &at.name) {
                out.push(app);
            }
        }
        Ok(out)
    }

    /// Makes the cluster's runtime hold the object under its own name with `data` (`None`:
    /// removes it) before the store does, so `kubectl get cm NAME` finds what the API shows; a
    /// cluster that refuses or does not answer refuses the request, naming why.
    async fn in_cluster(
        &self,
        at: &ObjectRef,
        data: Option<BTreeMap<String, String>>,
    ) -> Result<(), AppError> {
        let Some(runtime) = self.engine.runtimes().get(&at.cluster_id) else {
            return Ok(());
        };
        let refused = |e: RuntimeError| {
            AppError::Runtime(format!(
                "cluster `{}` did not take the {} `{}`: {e}",
                at.cluster_id,
                at.kind.noun(),
                at.name
            ))
        };
        runtime.availability().map_err(refused)?;
        runtime
            .put_config(at.kind == ObjectKind::Secret, &at.namespace, &at.name, data)
            .await
            .map_err(refused)
    }
}

/// The audit record of a command on `at`: the object's kind, cluster, namespace and name.
fn audit_entry(at: &ObjectRef, action: &str, actor: &Actor, detail: Value) -> AuditEntry {
    AuditEntry {
        actor: actor.name.clone(),
        action: action.to_owned(),
        resource: format!(
            "{}/{}/{}/{}",
            at.kind.segment(),
            at.cluster_id,
            at.namespace,
            at.name
        ),
        app_id: None,
        request_id: Some(actor.request_id.clone()),
        detail,
    }
}

/// Whether the spec uses the named ConfigMap or Secret (an environment variable's `valueFrom`,
/// `EnvFroms`, a `ConfigMountDescs` mount, or — for a Secret — the image pull secret).
fn uses(spec: &AppSpec, kind: ObjectKind, name: &str) -> bool {
    spec.config_refs()
        .iter()
        .any(|r| r.name == name && r.kind.is_secret() == (kind == ObjectKind::Secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Kind = ObjectKind;

    #[test]
    fn references_are_found_in_envs_env_froms_mounts_and_pull_secret() {
        let spec: AppSpec = serde_json::from_value(json!({
            "envs": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}},
                     {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}],
            "env_froms": [{"configMapRef": {"name": "cm2"}}, {"secretRef": {"name": "s2"}}],
            "config_mounts": [{"name": "cm3", "type": "ConfigMap", "mountPath": "/etc/x"}],
            "image_pull_secret": "s3",
        }))
        .unwrap();
        for name in ["cm1", "cm2", "cm3"] {
            assert!(uses(&spec, Kind::ConfigMap, name), "{name}");
            assert!(!uses(&spec, Kind::Secret, name), "{name}");
        }
        for name in ["s1", "s2", "s3"] {
            assert!(uses(&spec, Kind::Secret, name), "{name}");
        }
        assert!(!uses(&spec, Kind::ConfigMap, "other"));
    }
}
