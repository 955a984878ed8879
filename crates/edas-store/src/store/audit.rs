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
        // One static statement per filter shape, so the application's can use its index; the
        // application id is bound last.
        let (select, count) = match query.app_id {
            Some(_) => (
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE at >= $1 AND at < $2 \
                     AND app_id = $5 ORDER BY at DESC, id DESC LIMIT $3 OFFSET $4"
                ),
                "SELECT COUNT(*) FROM audit WHERE at >= $1 AND at < $2 AND app_id = $3",
            ),
            None => (
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE at >= $1 AND at < $2 \
                     ORDER BY at DESC, id DESC LIMIT $3 OFFSET $4"
                ),
                "SELECT COUNT(*) FROM audit WHERE at >= $1 AND at < $2",
            ),
        };
        let (items, total): (Vec<AuditRow>, i64) = on_reader!(self, pool => {
            let mut items = sqlx::query_as(select).bind(from).bind(to).bind(limit).bind(offset);
            let mut total = sqlx::query_scalar(count).bind(from).bind(to);
            if let Some(app_id) = &query.app_id {
                items = items.bind(app_id);
                total = total.bind(app_id);
            }
            (items.fetch_all(pool).await?, total.fetch_one(pool).await?)
        });
        Ok(page_of(rows(items)?, total, page))
    }
}
