//! The storage shape of records (one struct per table), converted to the model types.

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct AppRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) region_id: String,
    pub(super) namespace_id: String,
    pub(super) cluster_id: String,
    pub(super) k8s_namespace: String,
    pub(super) current_revision: i64,
    pub(super) state: String,
    pub(super) spec: RawDoc,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) deleted: bool,
}

impl TryFrom<AppRow> for Application {
    type Error = StoreError;
    fn try_from(r: AppRow) -> Result<Self, StoreError> {
        Ok(Application {
            id: r.id,
            name: r.name,
            region_id: r.region_id,
            namespace_id: r.namespace_id,
            cluster_id: r.cluster_id,
            k8s_namespace: r.k8s_namespace,
            current_revision: r.current_revision,
            state: r.state,
            spec: decode_doc(&r.spec, "applications.spec")?,
            created_at: from_ms(r.created_at, "applications.created_at")?,
            updated_at: from_ms(r.updated_at, "applications.updated_at")?,
            deleted: r.deleted,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RevisionRow {
    pub(super) app_id: String,
    pub(super) number: i64,
    pub(super) spec: RawDoc,
    pub(super) created_at: i64,
}

impl TryFrom<RevisionRow> for Revision {
    type Error = StoreError;
    fn try_from(r: RevisionRow) -> Result<Self, StoreError> {
        Ok(Revision {
            app_id: r.app_id,
            number: r.number,
            spec: decode_doc(&r.spec, "revisions.spec")?,
            created_at: from_ms(r.created_at, "revisions.created_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CoRow {
    pub(super) id: String,
    pub(super) app_id: String,
    pub(super) co_type: String,
    pub(super) status: i32,
    pub(super) version: i64,
    pub(super) revision: Option<i64>,
    pub(super) state: RawDoc,
    pub(super) description: String,
    pub(super) creator: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) finished_at: Option<i64>,
    pub(super) lease_owner: Option<String>,
    pub(super) lease_expires_at: Option<i64>,
}

impl TryFrom<CoRow> for ChangeOrder {
    type Error = StoreError;
    fn try_from(r: CoRow) -> Result<Self, StoreError> {
        let lease = match (r.lease_owner, r.lease_expires_at) {
            (Some(owner), Some(expires)) => Some(Lease {
                owner,
                expires_at: from_ms(expires, "change_orders.lease_expires_at")?,
            }),
            _ => None,
        };
        Ok(ChangeOrder {
            id: r.id,
            app_id: r.app_id,
            co_type: r.co_type,
            status: status_of(r.status)?,
            version: r.version,
            revision: r.revision,
            state: decode_doc(&r.state, "change_orders.state")?,
            description: r.description,
            creator: r.creator,
            created_at: from_ms(r.created_at, "change_orders.created_at")?,
            updated_at: from_ms(r.updated_at, "change_orders.updated_at")?,
            finished_at: r
                .finished_at
                .map(|t| from_ms(t, "change_orders.finished_at"))
                .transpose()?,
            lease,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub(super) id: i64,
    pub(super) at: i64,
    pub(super) actor: String,
    pub(super) action: String,
    pub(super) resource: String,
    pub(super) app_id: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) detail: Json<Value>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            id: r.id,
            at: from_ms(r.at, "audit.at")?,
            entry: AuditEntry {
                actor: r.actor,
                action: r.action,
                resource: r.resource,
                app_id: r.app_id,
                request_id: r.request_id,
                detail: r.detail.0,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClusterRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) region_id: String,
    pub(super) cluster_type: String,
    pub(super) config: Json<Value>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl TryFrom<ClusterRow> for Cluster {
    type Error = StoreError;
    fn try_from(r: ClusterRow) -> Result<Self, StoreError> {
        Ok(Cluster {
            id: r.id,
            name: r.name,
            region_id: r.region_id,
            cluster_type: r.cluster_type,
            config: r.config.0,
            created_at: from_ms(r.created_at, "clusters.created_at")?,
            updated_at: from_ms(r.updated_at, "clusters.updated_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ConfigMapRow {
    pub(super) cluster_id: String,
    pub(super) k8s_namespace: String,
    pub(super) name: String,
    pub(super) data: Json<Value>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl TryFrom<ConfigMapRow> for ConfigMap {
    type Error = StoreError;
    fn try_from(r: ConfigMapRow) -> Result<Self, StoreError> {
        Ok(ConfigMap {
            cluster_id: r.cluster_id,
            k8s_namespace: r.k8s_namespace,
            name: r.name,
            data: r.data.0,
            created_at: from_ms(r.created_at, "config_maps.created_at")?,
            updated_at: from_ms(r.updated_at, "config_maps.updated_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SecretRow {
    pub(super) cluster_id: String,
    pub(super) k8s_namespace: String,
    pub(super) name: String,
    pub(super) data_encrypted: Vec<u8>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct AccessKeyRow {
    pub(super) id: String,
    pub(super) secret_encrypted: Vec<u8>,
    pub(super) user_name: String,
    pub(super) enabled: bool,
    pub(super) created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) name: String,
    pub(super) admin: bool,
    pub(super) created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            name: r.name,
            admin: r.admin,
            created_at: from_ms(r.created_at, "users.created_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PolicyRow {
    pub(super) name: String,
    pub(super) document: Json<Value>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl TryFrom<PolicyRow> for Policy {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> Result<Self, StoreError> {
        Ok(Policy {
            name: r.name,
            document: r.document.0,
            created_at: from_ms(r.created_at, "policies.created_at")?,
            updated_at: from_ms(r.updated_at, "policies.updated_at")?,
        })
    }
}
