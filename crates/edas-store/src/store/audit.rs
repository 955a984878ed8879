//! The audit trail.

use super::*;

impl Store {
    /// Appends an audit record on its own (for actions that change nothing else here).
    pub async fn append_audit(&self, entry: &AuditEntry, now: Timestamp) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            insert_audit!(pool, entry, ms(now))?;
        });
        Ok(())
    }

    /// Audit records, newest first, of one application (or all) in `[from, to)`.
    pub async fn list_audit(
        &self,
        query: &AuditQuery,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let from = query.from.map_or(i64::MIN, ms);
        let to = query.to.map_or(i64::MAX, ms);
        let (items, total): (Vec<AuditRow>, i64) = on_reader!(self, pool => {
            match &query.app_id {
                Some(app_id) => {
                    let items = sqlx::query_as(concat!(
                        "SELECT ", audit_cols!(), " FROM audit WHERE app_id = $1 \
                         AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
                    ))
                    .bind(app_id)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                    let total = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM audit WHERE app_id = $1 AND at >= $2 AND at < $3",
                    )
                    .bind(app_id)
                    .bind(from)
                    .bind(to)
                    .fetch_one(pool)
                    .await?;
                    (items, total)
                }
                None => {
                    let items = sqlx::query_as(concat!(
                        "SELECT ", audit_cols!(), " FROM audit WHERE at >= $1 AND at < $2 \
                         ORDER BY at DESC, id DESC LIMIT $3 OFFSET $4"
                    ))
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                    let total =
                        sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE at >= $1 AND at < $2")
                            .bind(from)
                            .bind(to)
                            .fetch_one(pool)
                            .await?;
                    (items, total)
                }
            }
        });
        Ok(page_of(rows(items)?, total, page))
    }
}
