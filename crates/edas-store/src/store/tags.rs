//! Tags of applications and clusters (TagResources, UntagResources, ListTagResources).

use super::*;

/// One tag of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceTag {
    /// `application` or `cluster`.
    pub resource_type: String,
    pub resource_id: String,
    pub key: String,
    pub value: String,
}

impl Store {
    /// Sets `tags` (key, value) on every resource of `resource_ids` (a key a resource has
    /// already gets the new value), with the audit record, in one transaction; refused with
    /// [`StoreError::InvalidInput`] (and nothing written) when a resource would then carry
    /// more than `limit` tags.
    pub async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &[(String, String)],
        limit: usize,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // PostgreSQL: two transactions tagging one resource at once would each count only their
        // own new tags; a transaction lock per resource (taken in id order, so two callers never
        // wait on each other crosswise) makes the count exact. SQLite has one writer.
        let lock = match self.backend.as_ref() {
            Backend::Sqlite(_) => None,
            Backend::Postgres(_) => {
                Some("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
            }
        };
        let mut ids: Vec<&String> = resource_ids.iter().collect();
        ids.sort();
        ids.dedup();
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for id in ids {
                if let Some(lock) = lock {
                    sqlx::query(lock)
                        .bind(resource_type)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                for (key, value) in tags {
                    sqlx::query(
                        "INSERT INTO resource_tags (resource_type, resource_id, tag_key, \
                         tag_value, created_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (resource_type, resource_id, tag_key) \
                         DO UPDATE SET tag_value = excluded.tag_value",
                    )
                    .bind(resource_type)
                    .bind(id)
                    .bind(key)
                    .bind(value)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                }
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM resource_tags WHERE resource_type = $1 \
                     AND resource_id = $2",
                )
                .bind(resource_type)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if usize::try_from(count).unwrap_or(usize::MAX) > limit {
                    return Err(StoreError::InvalidInput {
                        field: "Tags",
                        reason: format!(
                            "the {resource_type} `{id}` would carry {count} tags; at most {limit} are allowed"
                        ),
                    });
                }
            }
            insert_audit!(&mut *tx, audit, ms(now))?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes the tags with the keys `keys` (every tag when `None`) from the resources of
    /// `resource_ids`, with the audit record when something was removed; how many were.
    pub async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        keys: Option<&[String]>,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let removed = write_audited!(self, Some((audit, now)), tx => {
            let mut removed = 0;
            for id in resource_ids {
                match keys {
                    None => {
                        removed += sqlx::query(
                            "DELETE FROM resource_tags WHERE resource_type = $1 \
                             AND resource_id = $2",
                        )
                        .bind(resource_type)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    Some(keys) => {
                        for key in keys {
                            removed += sqlx::query(
                                "DELETE FROM resource_tags WHERE resource_type = $1 \
                                 AND resource_id = $2 AND tag_key = $3",
                            )
                            .bind(resource_type)
                            .bind(id)
                            .bind(key)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        }
                    }
                }
            }
            removed
        });
        Ok(removed)
    }

    /// The tags of resources of `resource_type` (of those in `resource_ids` when given), by
    /// resource and key.
    pub async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: Option<&[String]>,
    ) -> Result<Vec<ResourceTag>, StoreError> {
        let rows: Vec<(String, String, String)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT resource_id, tag_key, tag_value FROM resource_tags \
                 WHERE resource_type = $1 ORDER BY resource_id, tag_key",
            )
            .bind(resource_type)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter(|(id, ..)| resource_ids.is_none_or(|ids| ids.contains(id)))
            .map(|(resource_id, key, value)| ResourceTag {
                resource_type: resource_type.to_owned(),
                resource_id,
                key,
                value,
            })
            .collect())
    }
}
