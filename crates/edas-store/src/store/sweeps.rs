//! Clean-up owed in clusters by deleted applications, and the deletion that does not wait for
//! the cluster (Force=true, or the cluster is unreachable).

use super::*;

impl Store {
    /// Records that the objects of application `app_id` in cluster `cluster_id` must be swept
    /// once the application is deleted (written with the Delete change order, so a crash between
    /// its end and the sweep leaves the sweep owed). Idempotent; `forced` is kept if either asked.
    pub async fn add_sweep(
        &self,
        app_id: &str,
        cluster_id: &str,
        forced: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        non_empty(app_id, "application id")?;
        on_writer!(self, pool => {
            sqlx::query(INSERT_SWEEP)
                .bind(app_id)
                .bind(cluster_id)
                .bind(forced)
                .bind(ms(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The sweeps owed in `cluster_id` by applications that are deleted (a sweep recorded for a
    /// deletion that has not happened, or was superseded, waits), oldest first.
    pub async fn pending_sweeps(&self, cluster_id: &str) -> Result<Vec<PendingSweep>, StoreError> {
        let rows: Vec<(String, String, bool, i64)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT s.app_id, s.cluster_id, s.forced, s.created_at FROM pending_sweeps s \
                 JOIN applications a ON a.id = s.app_id \
                 WHERE s.cluster_id = $1 AND a.deleted ORDER BY s.created_at, s.app_id",
            )
            .bind(cluster_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(app_id, cluster_id, forced, at)| {
                Ok(PendingSweep {
                    app_id,
                    cluster_id,
                    forced,
                    created_at: from_ms(at, "sweep created_at")?,
                })
            })
            .collect()
    }

    /// Every sweep recorded for `app_id`, deleted or not (`None` when there is none).
    pub async fn sweep_of(&self, app_id: &str) -> Result<Option<PendingSweep>, StoreError> {
        let row: Option<(String, String, bool, i64)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT app_id, cluster_id, forced, created_at FROM pending_sweeps WHERE app_id = $1",
            )
            .bind(app_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(app_id, cluster_id, forced, at)| {
            Ok(PendingSweep {
                app_id,
                cluster_id,
                forced,
                created_at: from_ms(at, "sweep created_at")?,
            })
        })
        .transpose()
    }

    /// The cluster confirmed the sweep: forget it. Returns whether it was owed.
    pub async fn remove_sweep(&self, app_id: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM pending_sweeps WHERE app_id = $1")
                .bind(app_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Deletes application `app_id` at once, in one transaction: ends the change orders in
    /// `superseded` (compare-and-swap on their versions), stores `change_order` as the finished
    /// Delete order, marks the application deleted and records its sweep in `cluster_id`.
    ///
    /// [`StoreError::Stale`] when a superseded order moved on meanwhile;
    /// [`StoreError::ActiveChangeOrder`] when another unfinished order remains (retry with it);
    /// [`StoreError::NotFound`] when the application does not exist or is already deleted.
    #[allow(clippy::too_many_arguments)]
    pub async fn delete_application_now(
        &self,
        app_id: &str,
        cluster_id: &str,
        forced: bool,
        superseded: &[Superseded],
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<ChangeOrder, StoreError> {
        let (now, at) = change_order_time(&change_order, now)?;
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            update_live_app!(
                &mut tx,
                "UPDATE applications SET deleted = TRUE, updated_at = $1 \
                 WHERE id = $2 AND deleted = FALSE",
                at,
                app_id
            );
            for order in superseded {
                let before = events::RecordEvents::state_before(
                    &mut *tx,
                    &order.id,
                    order.expected_version,
                )
                .await?;
                let done = sqlx::query(
                    "UPDATE change_orders SET status = $1, state = $2, version = version + 1, \
                     updated_at = $3, finished_at = $3, lease_owner = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $4 AND app_id = $5 AND version = $6 AND finished_at IS NULL",
                )
                .bind(order.status.code())
                .bind(encode_doc(&order.state, "change order state")?)
                .bind(at)
                .bind(&order.id)
                .bind(app_id)
                .bind(order.expected_version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Stale {
                        id: order.id.clone(),
                        expected: order.expected_version,
                        actual: -1,
                    });
                }
                let after = events::AsOrder::as_order(&order.state);
                events::RecordEvents::record_events(
                    &mut *tx,
                    app_id,
                    &order.id,
                    before.as_ref(),
                    after.as_deref(),
                    at,
                )
                .await?;
            }
            refuse_active!(&mut tx, app_id);
            insert_change_order!(&mut tx, app_id, &change_order, None, &audit.actor, at, true);
            sqlx::query(INSERT_SWEEP)
                .bind(app_id)
                .bind(cluster_id)
                .bind(forced)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        self.events_committed();
        let mut co = new_change_order(change_order, app_id, None, &audit.actor, now);
        co.finished_at = Some(now);
        Ok(co)
    }
}

const INSERT_SWEEP: &str = "INSERT INTO pending_sweeps (app_id, cluster_id, forced, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (app_id) DO UPDATE SET \
     cluster_id = excluded.cluster_id, forced = (pending_sweeps.forced OR excluded.forced)";
