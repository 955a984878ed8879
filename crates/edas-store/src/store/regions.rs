//! EDAS namespaces created through the API (InsertOrUpdateRegion, DeleteUserDefineRegion). The
//! default namespace and those of edasd's configuration file are not stored here; the
//! application layer merges them.

use super::*;

/// A stored EDAS namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdasNamespace {
    /// EDAS's numeric `Id`.
    pub id: i64,
    /// The namespace id applications name (`RegionTag`, `region:identifier`).
    pub region_tag: String,
    /// `RegionName`.
    pub name: String,
    /// `Description`.
    pub description: String,
    /// `DebugEnable`, recorded and reported back.
    pub debug_enable: bool,
    /// Who created it.
    pub creator: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What InsertOrUpdateRegion sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceFields {
    /// The namespace id (`region:identifier`); never changes once created.
    pub region_tag: String,
    pub name: String,
    pub description: String,
    pub debug_enable: bool,
}

#[derive(sqlx::FromRow)]
struct NamespaceRow {
    id: i64,
    region_tag: String,
    name: String,
    description: String,
    debug_enable: bool,
    creator: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<NamespaceRow> for EdasNamespace {
    type Error = StoreError;
    fn try_from(r: NamespaceRow) -> Result<Self, StoreError> {
        Ok(EdasNamespace {
            id: r.id,
            region_tag: r.region_tag,
            name: r.name,
            description: r.description,
            debug_enable: r.debug_enable,
            creator: r.creator,
            created_at: from_ms(r.created_at, "namespace created_at")?,
            updated_at: from_ms(r.updated_at, "namespace updated_at")?,
        })
    }
}

macro_rules! namespace_cols {
    () => {
        "id, region_tag, name, description, debug_enable, creator, created_at, updated_at"
    };
}

impl Store {
    /// Every stored EDAS namespace, by id.
    pub async fn list_namespaces(&self) -> Result<Vec<EdasNamespace>, StoreError> {
        let rows: Vec<NamespaceRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                namespace_cols!(),
                " FROM edas_namespaces ORDER BY id"
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(EdasNamespace::try_from).collect()
    }

    /// Creates a namespace with its audit record in one transaction. [`StoreError::Conflict`]
    /// when its `region_tag` is taken.
    pub async fn insert_namespace(
        &self,
        fields: &NamespaceFields,
        creator: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<EdasNamespace, StoreError> {
        non_empty(&fields.region_tag, "namespace id")?;
        let now = truncate(now);
        let id = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO edas_namespaces (region_tag, name, description, debug_enable, \
                 creator, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 RETURNING id",
            )
            .bind(&fields.region_tag)
            .bind(&fields.name)
            .bind(&fields.description)
            .bind(fields.debug_enable)
            .bind(creator)
            .bind(ms(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::conflict("namespace", &fields.region_tag, "exists already")
                } else {
                    e.into()
                }
            })?;
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            id
        });
        Ok(EdasNamespace {
            id,
            region_tag: fields.region_tag.clone(),
            name: fields.name.clone(),
            description: fields.description.clone(),
            debug_enable: fields.debug_enable,
            creator: creator.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Changes namespace `id` (its name, description and debug switch; its `region_tag` must
    /// be the stored one) with its audit record. [`StoreError::NotFound`] when there is no such
    /// namespace, [`StoreError::Conflict`] when `fields` names another namespace id.
    pub async fn update_namespace(
        &self,
        id: i64,
        fields: &NamespaceFields,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<EdasNamespace, StoreError> {
        let now = truncate(now);
        let row: NamespaceRow = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<NamespaceRow> = sqlx::query_as(concat!(
                "UPDATE edas_namespaces SET name = $1, description = $2, debug_enable = $3, \
                 updated_at = $4 WHERE id = $5 AND region_tag = $6 RETURNING ",
                namespace_cols!()
            ))
            .bind(&fields.name)
            .bind(&fields.description)
            .bind(fields.debug_enable)
            .bind(ms(now))
            .bind(id)
            .bind(&fields.region_tag)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                let stored: Option<String> =
                    sqlx::query_scalar("SELECT region_tag FROM edas_namespaces WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match stored {
                    None => StoreError::not_found("namespace", id.to_string()),
                    Some(tag) => StoreError::conflict(
                        "namespace",
                        id.to_string(),
                        format!("its id is `{tag}`, which cannot change"),
                    ),
                });
            };
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            row
        });
        row.try_into()
    }

    /// Deletes namespace `id` with its audit record, unless a live application is in it:
    /// then [`StoreError::Conflict`] naming them (`name (id)`, checked in the transaction).
    /// [`StoreError::NotFound`] when there is no such namespace.
    pub async fn delete_namespace(
        &self,
        id: i64,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<EdasNamespace, StoreError> {
        // PostgreSQL: lock the namespace before looking for its applications, so an
        // application being created in it (which holds it FOR SHARE) is either committed and
        // seen here, or waits and then finds the namespace gone.
        let lock = match self.backend.as_ref() {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " FOR UPDATE",
        };
        let select = format!(
            "SELECT {} FROM edas_namespaces WHERE id = $1{lock}",
            namespace_cols!()
        );
        let row: NamespaceRow = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<NamespaceRow> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::not_found("namespace", id.to_string()));
            };
            let users: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, id FROM applications WHERE namespace_id = $1 AND deleted = FALSE \
                 ORDER BY name, id",
            )
            .bind(&row.region_tag)
            .fetch_all(&mut *tx)
            .await?;
            if !users.is_empty() {
                let names: Vec<String> =
                    users.iter().map(|(name, id)| format!("{name} ({id})")).collect();
                return Err(StoreError::conflict(
                    "namespace",
                    &row.region_tag,
                    format!("used by the applications {}", names.join(", ")),
                ));
            }
            sqlx::query("DELETE FROM edas_namespaces WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
            row
        });
        row.try_into()
    }
}
