//! Autoscaling rules of applications (CreateApplicationScalingRule, UpdateApplicationScalingRule,
//! DeleteApplicationScalingRule, DescribeApplicationScalingRules, Enable/Disable…): one per
//! application and name, kept beside the revisions because a rule is not a release.

use serde::{Deserialize, Serialize};

use super::*;

/// One metric of a rule: scale so that the instances' average `kind` (`CPU`, `MEMORY`) is
/// `target_utilization` percent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingMetric {
    pub kind: String,
    pub target_utilization: u32,
}

/// One policy of a scaling direction: at most `value` pods (`Pods`) or percent (`Percent`)
/// per `period_seconds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub kind: String,
    pub value: u32,
    pub period_seconds: u32,
}

/// How one direction (up or down) scales: the stabilization (cool-down) window, which policy
/// wins (`Max`, `Min`, `Disabled`) and the policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingDirection {
    pub stabilization_window_seconds: u32,
    pub select_policy: String,
    #[serde(default)]
    pub policies: Vec<ScalingPolicy>,
}

/// A rule's document as stored (the `rule` column): its metrics and behaviour. Additive
/// changes only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingRuleDoc {
    #[serde(default)]
    pub metrics: Vec<ScalingMetric>,
    #[serde(default)]
    pub scale_up: Option<ScalingDirection>,
    #[serde(default)]
    pub scale_down: Option<ScalingDirection>,
}

/// One stored scaling rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRule {
    pub app_id: String,
    pub name: String,
    pub enabled: bool,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub doc: ScalingRuleDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it was last disabled; `None` if never.
    pub last_disabled_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct ScalingRuleRow {
    app_id: String,
    name: String,
    enabled: bool,
    min_replicas: i64,
    max_replicas: i64,
    rule: String,
    created_at: i64,
    updated_at: i64,
    last_disabled_at: Option<i64>,
}

impl TryFrom<ScalingRuleRow> for ScalingRule {
    type Error = StoreError;
    fn try_from(r: ScalingRuleRow) -> Result<Self, StoreError> {
        let count = |v: i64| {
            u32::try_from(v).map_err(|_| StoreError::Corrupt {
                what: "scaling rule",
                reason: format!("replica count {v} out of range"),
            })
        };
        Ok(ScalingRule {
            doc: serde_json::from_str(&r.rule).map_err(|e| StoreError::Corrupt {
                what: "scaling rule",
                reason: e.to_string(),
            })?,
            min_replicas: count(r.min_replicas)?,
            max_replicas: count(r.max_replicas)?,
            app_id: r.app_id,
            name: r.name,
            enabled: r.enabled,
            created_at: from_ms(r.created_at, "scaling rule created_at")?,
            updated_at: from_ms(r.updated_at, "scaling rule updated_at")?,
            last_disabled_at: r
                .last_disabled_at
                .map(|t| from_ms(t, "scaling rule last_disabled_at"))
                .transpose()?,
        })
    }
}

macro_rules! scaling_rule_cols {
    () => {
        "app_id, name, enabled, min_replicas, max_replicas, rule, created_at, updated_at, \
         last_disabled_at"
    };
}

impl Store {
    /// The scaling rules of application `app_id`, by name.
    ///
    /// On SQLite (one process owns the database) the store knows which applications ever had
    /// a rule, so the many without one are answered without a read (a release asks up to
    /// three times).
    pub async fn scaling_rules(&self, app_id: &str) -> Result<Vec<ScalingRule>, StoreError> {
        if let Backend::Sqlite(sqlite) = self.backend.as_ref()
            && !sqlite.ruled_apps.may_have_rules(app_id)
        {
            return Ok(Vec::new());
        }
        let rows: Vec<ScalingRuleRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                scaling_rule_cols!(),
                " FROM application_scaling_rules WHERE app_id = $1 ORDER BY name"
            ))
            .bind(app_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(ScalingRule::try_from).collect()
    }

    /// The applications (not deleted) that have a scaling rule, enabled or not, by id: whose
    /// autoscaler edasd sets again (or removes) from the store at start-up.
    pub async fn applications_with_scaling_rules(
        &self,
        cluster_id: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT r.app_id FROM application_scaling_rules r \
                 JOIN applications a ON a.id = r.app_id \
                 WHERE a.deleted = FALSE \
                 AND ($1 IS NULL OR a.cluster_id = $1) ORDER BY r.app_id",
            )
            .bind(cluster_id)
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Stores `rule` with its audit record in one transaction: a new rule when `create`
    /// ([`StoreError::Conflict`] when the application has one of that name), else replacing
    /// the stored one's settings ([`StoreError::NotFound`] when there is none); its creation
    /// time is kept, and disabling it records the time. [`StoreError::NotFound`] too when the
    /// application does not exist or was deleted. The rule as stored.
    pub async fn put_scaling_rule(
        &self,
        rule: &ScalingRule,
        create: bool,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<ScalingRule, StoreError> {
        non_empty(&rule.name, "scaling rule name")?;
        let now = truncate(now);
        let doc = serde_json::to_string(&rule.doc).map_err(|e| StoreError::InvalidInput {
            field: "ScalingRule",
            reason: e.to_string(),
        })?;
        // Known before it can be stored: a read in between then reads the table.
        if let Backend::Sqlite(sqlite) = self.backend.as_ref() {
            sqlite.ruled_apps.add(&rule.app_id);
        }
        let row: ScalingRuleRow = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let live: Option<String> = sqlx::query_scalar(
                "SELECT id FROM applications WHERE id = $1 AND deleted = FALSE",
            )
            .bind(&rule.app_id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Err(StoreError::not_found("application", &rule.app_id));
            }
            let row: Option<ScalingRuleRow> = if create {
                sqlx::query_as(concat!(
                    "INSERT INTO application_scaling_rules (app_id, name, enabled, \
                     min_replicas, max_replicas, rule, created_at, updated_at, \
                     last_disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, NULL) \
                     ON CONFLICT (app_id, name) DO NOTHING RETURNING ",
                    scaling_rule_cols!()
                ))
                .bind(&rule.app_id)
                .bind(&rule.name)
                .bind(rule.enabled)
                .bind(i64::from(rule.min_replicas))
                .bind(i64::from(rule.max_replicas))
                .bind(&doc)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?
            } else {
                sqlx::query_as(concat!(
                    "UPDATE application_scaling_rules SET min_replicas = $3, \
                     max_replicas = $4, rule = $5, updated_at = $6, \
                     last_disabled_at = CASE WHEN enabled AND NOT $7 THEN $6 \
                     ELSE last_disabled_at END, enabled = $7 \
                     WHERE app_id = $1 AND name = $2 RETURNING ",
                    scaling_rule_cols!()
                ))
                .bind(&rule.app_id)
                .bind(&rule.name)
                .bind(i64::from(rule.min_replicas))
                .bind(i64::from(rule.max_replicas))
                .bind(&doc)
                .bind(ms(now))
                .bind(rule.enabled)
                .fetch_optional(&mut *tx)
                .await?
            };
            let row = stored_rule(row, "scaling rule", &rule.name, create)?;
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            row
        });
        ScalingRule::try_from(row)
    }

    /// Deletes rule `name` of application `app_id` with its audit record in one transaction;
    /// [`StoreError::NotFound`] when there is no such rule.
    pub async fn delete_scaling_rule(
        &self,
        app_id: &str,
        name: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let deleted = write_audited!(self, Some((audit, now)), tx => {
            let deleted = sqlx::query(
                "DELETE FROM application_scaling_rules WHERE app_id = $1 AND name = $2",
            )
            .bind(app_id)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted_rule(deleted, "scaling rule", name)?
        });
        debug_assert_eq!(deleted, 1);
        Ok(())
    }
}

/// The applications that have (or once had) a scaling rule, on SQLite: loaded when the store
/// opens, added to before a rule is stored, never removed (a deleted rule costs a read).
#[derive(Default)]
pub(crate) struct RuledApps(std::sync::RwLock<std::collections::HashSet<String>>);

impl RuledApps {
    pub(crate) async fn load(writer: &sqlx::SqlitePool) -> Result<Self, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT app_id FROM application_scaling_rules")
                .fetch_all(writer)
                .await?;
        Ok(RuledApps(std::sync::RwLock::new(ids.into_iter().collect())))
    }

    fn may_have_rules(&self, app_id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(app_id)
    }

    fn add(&self, app_id: &str) {
        let mut ids = self.0.write().unwrap_or_else(|e| e.into_inner());
        if !ids.contains(app_id) {
            ids.insert(app_id.to_owned());
        }
    }
}
