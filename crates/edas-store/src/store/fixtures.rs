//! Benchmark fixtures (feature `bench-fixtures`, enabled by edas-bench only): SQL that copies
//! rows in bulk, so a store of 1,000,000 applications can be set up in minutes instead of the
//! half hour that two transactions per application through the API would take.

use super::{Backend, Store};
use crate::error::StoreError;

/// Applications copied per transaction.
const CHUNK: u32 = 50_000;

impl Store {
    /// Copies application `template` with its revisions and its (finished) change orders as
    /// applications `<prefix><i>` for `i` in `from..to` (named the same, change orders
    /// `co-<prefix><i>`), `CHUNK` per transaction. SQLite only; for benchmarks.
    pub async fn copy_application_fixture(
        &self,
        template: &str,
        prefix: &str,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        let Backend::Sqlite(sqlite) = self.backend.as_ref() else {
            return Err(StoreError::Unsupported {
                operation: "copy_application_fixture",
                backend: "postgres",
            });
        };
        let mut start = from;
        while start < to {
            let end = to.min(start.saturating_add(CHUNK));
            let mut tx = sqlite.writer.begin().await?;
            for sql in [
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, \
                 k8s_namespace, current_revision, state, spec, created_at, updated_at, deleted) \
                 SELECT $3 || n.i, $3 || n.i, t.region_id, t.namespace_id, t.cluster_id, \
                 t.k8s_namespace, t.current_revision, t.state, \
                 json_set(t.spec, '$.spec.name', $3 || n.i), t.created_at, t.updated_at, 0 \
                 FROM n, applications t WHERE t.id = $4",
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO revisions (app_id, number, spec, created_at) \
                 SELECT $3 || n.i, r.number, json_set(r.spec, '$.spec.name', $3 || n.i), \
                 r.created_at FROM n, revisions r WHERE r.app_id = $4",
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO change_orders (id, app_id, co_type, status, version, revision, state, \
                 description, creator, created_at, updated_at, finished_at) \
                 SELECT 'co-' || $3 || n.i, $3 || n.i, c.co_type, c.status, c.version, c.revision, \
                 c.state, c.description, c.creator, c.created_at, c.updated_at, c.finished_at \
                 FROM n, change_orders c WHERE c.app_id = $4 AND c.finished_at IS NOT NULL",
            ] {
                sqlx::query(sql)
                    .bind(i64::from(start))
                    .bind(i64::from(end))
                    .bind(prefix)
                    .bind(template)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            sqlite.sync.durable().await?;
            start = end;
        }
        Ok(())
    }
}
