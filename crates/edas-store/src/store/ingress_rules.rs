//! Ingress rules (CreateK8sIngressRule, UpdateK8sIngressRule, DeleteK8sIngressRule,
//! ListK8sIngressRules): one per cluster, Kubernetes namespace and name. A rule is not an
//! application's: it routes to the Services of several, so it is kept beside them.

use edas_spec::ingress::IngressSpec;

use super::*;

/// One stored ingress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRule {
    pub cluster_id: String,
    pub namespace: String,
    pub name: String,
    /// Hosts, paths and their backends (application and Service resolved), annotations, labels.
    pub spec: IngressSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct IngressRuleRow {
    cluster_id: String,
    namespace: String,
    name: String,
    rule: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<IngressRuleRow> for IngressRule {
    type Error = StoreError;
    fn try_from(r: IngressRuleRow) -> Result<Self, StoreError> {
        Ok(IngressRule {
            spec: serde_json::from_str(&r.rule).map_err(|e| StoreError::Corrupt {
                what: "ingress rule",
                reason: e.to_string(),
            })?,
            cluster_id: r.cluster_id,
            namespace: r.namespace,
            name: r.name,
            created_at: from_ms(r.created_at, "ingress rule created_at")?,
            updated_at: from_ms(r.updated_at, "ingress rule updated_at")?,
        })
    }
}

macro_rules! ingress_rule_cols {
    () => {
        "cluster_id, namespace, name, rule, created_at, updated_at"
    };
}

impl Store {
    /// The ingress rules of cluster `cluster_id` (every cluster's when `None`), of namespace
    /// `namespace` only when given; by cluster, namespace and name.
    pub async fn ingress_rules(
        &self,
        cluster_id: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<IngressRule>, StoreError> {
        let rows: Vec<IngressRuleRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                ingress_rule_cols!(),
                " FROM ingress_rules WHERE ($1 IS NULL OR cluster_id = $1) \
                 AND ($2 IS NULL OR namespace = $2) ORDER BY cluster_id, namespace, name"
            ))
            .bind(cluster_id)
            .bind(namespace)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(IngressRule::try_from).collect()
    }

    /// Stores `rule` with its audit record in one transaction: a new rule when `create`
    /// ([`StoreError::Conflict`] when the namespace has one of that name), else replacing the
    /// stored one's routing ([`StoreError::NotFound`] when there is none; its creation time is
    /// kept). The rule as stored.
    pub async fn put_ingress_rule(
        &self,
        rule: &IngressRule,
        create: bool,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<IngressRule, StoreError> {
        non_empty(&rule.cluster_id, "ingress rule cluster")?;
        non_empty(&rule.namespace, "ingress rule namespace")?;
        non_empty(&rule.name, "ingress rule name")?;
        let now = truncate(now);
        let doc = serde_json::to_string(&rule.spec).map_err(|e| StoreError::InvalidInput {
            field: "IngressConf",
            reason: e.to_string(),
        })?;
        let row: IngressRuleRow = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<IngressRuleRow> = if create {
                sqlx::query_as(concat!(
                    "INSERT INTO ingress_rules (cluster_id, namespace, name, rule, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (cluster_id, namespace, name) DO NOTHING RETURNING ",
                    ingress_rule_cols!()
                ))
                .bind(&rule.cluster_id)
                .bind(&rule.namespace)
                .bind(&rule.name)
                .bind(&doc)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?
            } else {
                sqlx::query_as(concat!(
                    "UPDATE ingress_rules SET rule = $4, updated_at = $5 \
                     WHERE cluster_id = $1 AND namespace = $2 AND name = $3 RETURNING ",
                    ingress_rule_cols!()
                ))
                .bind(&rule.cluster_id)
                .bind(&rule.namespace)
                .bind(&rule.name)
                .bind(&doc)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?
            };
            let row = stored_rule(row, "ingress rule", &rule.name, create)?;
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            row
        });
        IngressRule::try_from(row)
    }

    /// Deletes rule `name` of `namespace` in `cluster_id` with its audit record in one
    /// transaction; [`StoreError::NotFound`] when there is no such rule.
    pub async fn delete_ingress_rule(
        &self,
        cluster_id: &str,
        namespace: &str,
        name: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let deleted = write_audited!(self, Some((audit, now)), tx => {
            let deleted = sqlx::query(
                "DELETE FROM ingress_rules WHERE cluster_id = $1 AND namespace = $2 AND name = $3",
            )
            .bind(cluster_id)
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted_rule(deleted, "ingress rule", name)?
        });
        debug_assert_eq!(deleted, 1);
        Ok(())
    }
}
