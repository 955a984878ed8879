//! Release policies of applications (issue 21, an edasd extension beside the EDAS API). A
//! policy is versioned: every set or delete is a new row, so the history stays and a change
//! order names the version it ran with (in its state, with its analysis). The document belongs
//! to edas-analysis (validated there, by edas-app, before it is stored), so it is opaque JSON
//! here.

use super::*;

/// One version of an application's release policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleasePolicyVersion {
    pub app_id: String,
    /// 1, 2, … in the order they were set.
    pub version: i64,
    /// The policy document; `None` when this version deleted the policy.
    pub policy: Option<Value>,
    pub created_at: Timestamp,
    /// Who set it (access key id or user).
    pub created_by: String,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    app_id: String,
    version: i64,
    policy: Option<String>,
    created_at: i64,
    created_by: String,
}

impl TryFrom<PolicyRow> for ReleasePolicyVersion {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> Result<Self, StoreError> {
        let policy = r
            .policy
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                what: "release policy",
                reason: e.to_string(),
            })?;
        Ok(ReleasePolicyVersion {
            app_id: r.app_id,
            version: r.version,
            policy,
            created_at: from_ms(r.created_at, "release policy created_at")?,
            created_by: r.created_by,
        })
    }
}

macro_rules! policy_cols {
    () => {
        "app_id, version, policy, created_at, created_by"
    };
}

impl Store {
    /// Records version N+1 of application `app_id`'s release policy (`None` deletes it) with
    /// its audit record in one transaction. [`StoreError::NotFound`] when the application does
    /// not exist or was deleted, or when deleting a policy the application does not have.
    pub async fn put_release_policy(
        &self,
        app_id: &str,
        policy: Option<&Value>,
        created_by: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<ReleasePolicyVersion, StoreError> {
        let now = truncate(now);
        let doc = policy.map(|p| p.to_string());
        let row: PolicyRow = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Locks the application row on PostgreSQL, so two sets of one application are
            // numbered one after the other.
            let live: Option<String> = sqlx::query_scalar(
                "UPDATE applications SET updated_at = updated_at WHERE id = $1 \
                 AND deleted = FALSE RETURNING id",
            )
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Err(StoreError::not_found("application", app_id));
            }
            let current: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT version, policy FROM release_policies WHERE app_id = $1 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            if doc.is_none() && current.as_ref().is_none_or(|(_, p)| p.is_none()) {
                return Err(StoreError::not_found("release policy", app_id));
            }
            let version = current.map_or(0, |(v, _)| v) + 1;
            let row: PolicyRow = sqlx::query_as(concat!(
                "INSERT INTO release_policies (",
                policy_cols!(),
                ") VALUES ($1, $2, $3, $4, $5) RETURNING ",
                policy_cols!()
            ))
            .bind(app_id)
            .bind(version)
            .bind(&doc)
            .bind(ms(now))
            .bind(created_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_conflict(e, "release policy", app_id, "was set concurrently"))?;
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            row
        });
        ReleasePolicyVersion::try_from(row)
    }

    /// The latest version of application `app_id`'s release policy, `None` when it never had
    /// one or the latest version deleted it.
    pub async fn release_policy(
        &self,
        app_id: &str,
    ) -> Result<Option<ReleasePolicyVersion>, StoreError> {
        let row: Option<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                policy_cols!(),
                " FROM release_policies WHERE app_id = $1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(app_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row
            .map(ReleasePolicyVersion::try_from)
            .transpose()?
            .filter(|p| p.policy.is_some()))
    }

    /// Version `version` of application `app_id`'s release policy (what a change order ran
    /// with); [`StoreError::NotFound`] when there is no such version.
    pub async fn release_policy_version(
        &self,
        app_id: &str,
        version: i64,
    ) -> Result<ReleasePolicyVersion, StoreError> {
        let row: Option<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                policy_cols!(),
                " FROM release_policies WHERE app_id = $1 AND version = $2"
            ))
            .bind(app_id)
            .bind(version)
            .fetch_optional(pool)
            .await?
        });
        let missing = || StoreError::not_found("release policy", format!("{app_id} v{version}"));
        row.map(ReleasePolicyVersion::try_from)
            .transpose()?
            .ok_or_else(missing)
    }

    /// Every version of application `app_id`'s release policy, newest first.
    pub async fn release_policy_history(
        &self,
        app_id: &str,
    ) -> Result<Vec<ReleasePolicyVersion>, StoreError> {
        let rows: Vec<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                policy_cols!(),
                " FROM release_policies WHERE app_id = $1 ORDER BY version DESC"
            ))
            .bind(app_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(ReleasePolicyVersion::try_from)
            .collect()
    }
}
