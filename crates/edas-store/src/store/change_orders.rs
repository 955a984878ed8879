//! Change orders: reads, compare-and-swap transitions, and lease-based work claiming.

use super::*;

impl Store {
    pub async fn get_change_order(&self, id: &str) -> Result<ChangeOrder, StoreError> {
        let select = concat!("SELECT ", co_cols!(), " FROM change_orders WHERE id = $1");
        self.fetch_row::<CoRow>(select, &[id], "change order")
            .await?
            .try_into()
    }

    /// The application's unfinished change order, if any (there is at most one).
    pub async fn active_change_order(
        &self,
        app_id: &str,
    ) -> Result<Option<ChangeOrder>, StoreError> {
        let row: Option<CoRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ", co_cols!(), " FROM change_orders \
                 WHERE app_id = $1 AND finished_at IS NULL"
            ))
            .bind(app_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(ChangeOrder::try_from).transpose()
    }

    /// Every unfinished change order (at most one per application), oldest first: what the
    /// control operations that name only a pipeline or a task (ContinuePipeline,
    /// RetryChangeOrderTask) search.
    pub async fn open_change_orders(&self) -> Result<Vec<ChangeOrder>, StoreError> {
        let select = concat!(
            "SELECT ",
            co_cols!(),
            " FROM change_orders \
             WHERE finished_at IS NULL ORDER BY created_at, id"
        );
        rows(self.fetch_rows::<CoRow>(select, &[]).await?)
    }

    /// An application's change orders, newest first.
    pub async fn list_change_orders(
        &self,
        app_id: &str,
        page: PageRequest,
    ) -> Result<Page<ChangeOrder>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let (items, total): (Vec<CoRow>, i64) = on_reader!(self, pool => {
            let items = sqlx::query_as(concat!(
                "SELECT ", co_cols!(), " FROM change_orders WHERE app_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
            ))
            .bind(app_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total =
                sqlx::query_scalar("SELECT COUNT(*) FROM change_orders WHERE app_id = $1")
                    .bind(app_id)
                    .fetch_one(pool)
                    .await?;
            (items, total)
        });
        Ok(page_of(rows(items)?, total, page))
    }

    /// Compare-and-swap of a change order's status and state: succeeds only if the change
    /// order is still at `expected_version` and unfinished; writes the audit record (and the
    /// optional application update) in the same transaction. Returns the new version.
    ///
    /// [`StoreError::Stale`] when another writer (or a claim) moved it on;
    /// [`StoreError::Finished`] when it is already final. A finishing transition releases the
    /// lease.
    pub async fn transition(
        &self,
        id: &str,
        expected_version: i64,
        transition: Transition,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        // Boxed: a driver awaits this for its whole life; its task should hold a pointer, not
        // both backends' transaction futures.
        Box::pin(self.transition_here(id, expected_version, transition, audit, now)).await
    }

    async fn transition_here(
        &self,
        id: &str,
        expected_version: i64,
        transition: Transition,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let at = ms(now);
        let version = match self.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let id = id.to_owned();
                sqlite
                    .write_sync(move |tx| {
                        let version =
                            sync_sqlite::transition(tx, &id, expected_version, &transition, at)?;
                        sync_sqlite::insert_audit(tx, &audit, at)?;
                        Ok(version)
                    })
                    .await?
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                pg_hot::transition(&mut conn, id, expected_version, &transition, &audit, at).await?
            }
        };
        self.events_committed();
        Ok(version)
    }

    /// One command, one transaction: the compare-and-swap [`Store::transition`] of change
    /// order `id` (usually to a final status) with its audit record, then the
    /// [`Store::deploy`] of `follow_up` (a new revision and the change order that rolls it
    /// out, e.g. the rollback started by AbortAndRollbackChangeOrder) with its own audit
    /// record. Either both are stored or neither is, so a crash between them cannot leave the
    /// order terminated without its rollback. Errors as those two methods.
    pub async fn transition_and_deploy(
        &self,
        id: &str,
        expected_version: i64,
        transition: Transition,
        audit: AuditEntry,
        follow_up: FollowUpDeploy,
        now: Timestamp,
    ) -> Result<(i64, Revision, ChangeOrder), StoreError> {
        Box::pin(self.transition_and_deploy_here(
            id,
            expected_version,
            transition,
            audit,
            follow_up,
            now,
        ))
        .await
    }

    async fn transition_and_deploy_here(
        &self,
        id: &str,
        expected_version: i64,
        transition: Transition,
        audit: AuditEntry,
        follow_up: FollowUpDeploy,
        now: Timestamp,
    ) -> Result<(i64, Revision, ChangeOrder), StoreError> {
        let (now, at) = change_order_time(&follow_up.change_order, now)?;
        let FollowUpDeploy {
            app_id,
            revision,
            change_order,
            audit: follow_audit,
        } = follow_up;
        let result: Result<(i64, i64), StoreError> = match self.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let (id, app_id, revision, change_order) = (
                    id.to_owned(),
                    app_id.clone(),
                    revision.clone(),
                    change_order.clone(),
                );
                let follow_audit = follow_audit.clone();
                sqlite
                    .write_sync(move |tx| {
                        let version =
                            sync_sqlite::transition(tx, &id, expected_version, &transition, at)?;
                        sync_sqlite::insert_audit(tx, &audit, at)?;
                        let number = sync_sqlite::deploy(
                            tx,
                            &app_id,
                            &revision,
                            &change_order,
                            &follow_audit.actor,
                            at,
                            None,
                        )?;
                        sync_sqlite::insert_audit(tx, &follow_audit, at)?;
                        Ok((version, number))
                    })
                    .await
            }
            Backend::Postgres(pool) => {
                async {
                    let mut tx = pool.begin_write().await?;
                    let version =
                        pg_hot::transition(&mut tx, id, expected_version, &transition, &audit, at)
                            .await?;
                    let number = pg_hot::deploy(
                        &mut tx,
                        &app_id,
                        &revision,
                        &change_order,
                        &follow_audit,
                        at,
                        None,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok((version, number))
                }
                .await
            }
        };
        if result.is_ok() {
            self.events_committed();
        }
        let (version, number) = self.name_active(result).await?;
        let revision = Revision {
            app_id: app_id.clone(),
            number,
            spec: revision,
            created_at: now,
        };
        let order = new_change_order(
            change_order,
            &app_id,
            Some(number),
            &follow_audit.actor,
            now,
        );
        Ok((version, revision, order))
    }

    /// The unfinished change orders (at most one per application) counted by status, in one
    /// indexed query: what the metrics scrape reports.
    pub async fn count_active_change_orders(
        &self,
    ) -> Result<Vec<(ChangeOrderStatus, u64)>, StoreError> {
        let rows: Vec<(i32, i64)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM change_orders WHERE finished_at IS NULL \
                 GROUP BY status ORDER BY status",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(code, n)| Ok((status_of(code)?, u64::try_from(n).unwrap_or_default())))
            .collect()
    }

    /// Claims the oldest unfinished change order whose lease is free or expired at `now`, for
    /// `worker` until `now + lease`. The claim increments the version, so a previous owner's
    /// later transitions are refused as stale. `None` when nothing is claimable.
    ///
    /// On PostgreSQL the candidate row is locked `FOR UPDATE SKIP LOCKED`, so concurrent
    /// claimers never take the same order and never wait on each other.
    pub async fn claim_next(
        &self,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<ChangeOrder>, StoreError> {
        non_empty(worker, "worker id")?;
        let expires = plus(now, lease, "lease duration")?;
        let at = ms(now);
        let row: Option<CoRow> = match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                let row = sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id = (SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT 1) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .fetch_optional(&s.writer)
                .await?;
                s.sync.durable().await?;
                row
            }
            Backend::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id = (SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     AND finished_at IS NULL \
                     AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .fetch_optional(pool)
                .await?
            }
        };
        row.map(ChangeOrder::try_from).transpose()
    }

    /// How many unfinished change orders `worker` holds a live lease on at `now`: one counting
    /// statement that decodes nothing (what a resume is watched with).
    pub async fn count_leased(&self, worker: &str, now: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = on_reader!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM change_orders WHERE finished_at IS NULL \
                 AND lease_owner = $1 AND lease_expires_at > $2",
            )
            .bind(worker)
            .bind(ms(now))
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Claims, in one statement, up to `limit` unfinished change orders whose lease is free
    /// or expired at `now` (oldest first), for `worker` until `now + lease`; each claim
    /// increments the version (fencing a previous owner). Resuming 1,000 orders is then one
    /// write and one fsync, not one per order. An empty answer: nothing was claimable.
    ///
    /// On PostgreSQL the candidate rows are locked `FOR UPDATE SKIP LOCKED` (in an `ARRAY`
    /// subquery, evaluated once: `IN (SELECT … LIMIT)` may be re-run and exceed the limit), so
    /// concurrent claimers split the orders between them and never wait on each other.
    pub async fn claim_claimable(
        &self,
        worker: &str,
        lease: Duration,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ChangeOrder>, StoreError> {
        non_empty(worker, "worker id")?;
        let expires = plus(now, lease, "lease duration")?;
        let at = ms(now);
        let limit = i64::from(limit.max(1));
        let rows: Vec<CoRow> = match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                let rows = sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id IN (SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT $4) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .bind(limit)
                .fetch_all(&s.writer)
                .await?;
                s.sync.durable().await?;
                rows
            }
            Backend::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id = ANY(ARRAY(SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) \
                     AND finished_at IS NULL \
                     AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        oldest_first(rows)
    }

    /// A graceful shutdown's hand-over, in one statement: every unfinished change order
    /// `worker` holds keeps its owner but its lease ends at `now`. The same worker id (edasd
    /// restarted on its data directory) re-claims them at once with [`Store::reclaim_own`];
    /// any other worker may claim them at once, as after an expired lease; the claim bumps the
    /// version, fencing as always. Returns how many it handed over.
    pub async fn hand_over_leases(&self, worker: &str, now: Timestamp) -> Result<u64, StoreError> {
        non_empty(worker, "worker id")?;
        let at = ms(now);
        let done = on_writer!(self, pool => {
            sqlx::query(
                "UPDATE change_orders SET lease_expires_at = $1 \
                 WHERE lease_owner = $2 AND finished_at IS NULL AND lease_expires_at > $1",
            )
            .bind(at)
            .bind(worker)
            .execute(pool)
            .await?.rows_affected()
        });
        Ok(done)
    }

    /// Re-claims every unfinished change order whose lease `worker` still holds (expired or
    /// not): what a restarted process with the same worker id left in flight, so it resumes at
    /// once instead of waiting for its own leases to expire. Renews them to `now + lease` and
    /// increments their versions, fencing any writer of the previous incarnation.
    pub async fn reclaim_own(
        &self,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<ChangeOrder>, StoreError> {
        non_empty(worker, "worker id")?;
        let expires = plus(now, lease, "lease duration")?;
        let rows: Vec<CoRow> = on_writer!(self, pool => {
            sqlx::query_as(concat!(
                "UPDATE change_orders SET lease_expires_at = $1, version = version + 1 \
                 WHERE lease_owner = $2 AND finished_at IS NULL RETURNING ",
                co_cols!()
            ))
            .bind(expires)
            .bind(worker)
            .fetch_all(pool)
            .await?
        });
        oldest_first(rows)
    }

    /// Extends `worker`'s lease to `now + lease` and returns the new expiry. Works while the
    /// worker is still the owner, even past expiry if nobody took the order over;
    /// [`StoreError::LeaseNotHeld`] otherwise (taken over, released, or finished).
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        let expires = plus(now, lease, "lease duration")?;
        let done = on_writer!(self, pool => {
            sqlx::query(
                "UPDATE change_orders SET lease_expires_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND finished_at IS NULL",
            )
            .bind(expires)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?.rows_affected()
        });
        if done == 0 {
            return Err(StoreError::LeaseNotHeld {
                id: id.to_owned(),
                worker: worker.to_owned(),
            });
        }
        from_ms(expires, "lease expiry")
    }

    /// Renews the leases `worker` holds on the unfinished change orders `ids` (the ones it is
    /// driving) with one statement per 500 ids, and returns the ids it still holds: one write
    /// per renewal period for a whole process, not one per order. An id missing from the answer
    /// was finished or taken over by another worker; its driver must stop.
    pub async fn renew_leases(
        &self,
        worker: &str,
        ids: &[String],
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let expires = plus(now, lease, "lease duration")?;
        let mut held = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE change_orders SET lease_expires_at = $1 \
                 WHERE lease_owner = $2 AND finished_at IS NULL AND id IN ({}) RETURNING id",
                placeholders.join(", ")
            );
            let rows: Vec<(String,)> = on_writer!(self, pool => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(expires).bind(worker);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            held.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(held)
    }

    /// Gives the lease back so another worker can claim at once. Returns whether `worker` held
    /// it.
    pub async fn release_lease(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query(
                "UPDATE change_orders SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?.rows_affected()
        });
        Ok(done > 0)
    }
}

/// Decodes leased rows, oldest first (`RETURNING` gives no order), so orders are driven in the
/// order they were created.
fn oldest_first(rows: Vec<CoRow>) -> Result<Vec<ChangeOrder>, StoreError> {
    let mut out: Vec<ChangeOrder> = rows
        .into_iter()
        .map(ChangeOrder::try_from)
        .collect::<Result<_, _>>()?;
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}
