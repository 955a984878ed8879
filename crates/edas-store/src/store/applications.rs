//! Applications and revisions, and the writes that create change orders with them.

use super::*;

impl Store {
    /// Creates an application, its revision 1 (`app.spec`), its first change order (which rolls
    /// out revision 1) and the audit record, in one transaction.
    ///
    /// [`StoreError::Conflict`] when the id is taken or a live application of the same region
    /// has the same name.
    pub async fn create_application(
        &self,
        app: NewApplication,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(Application, ChangeOrder), StoreError> {
        Box::pin(self.create_application_under(app, change_order, audit, now, None)).await
    }

    /// [`Store::create_application`] with the first change order created already leased
    /// under `lease` (as [`Store::deploy_leased`]).
    pub async fn create_application_leased(
        &self,
        app: NewApplication,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
        lease: Lease,
    ) -> Result<(Application, ChangeOrder), StoreError> {
        Box::pin(self.create_application_under(app, change_order, audit, now, Some(lease))).await
    }

    async fn create_application_under(
        &self,
        app: NewApplication,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
        lease: Option<Lease>,
    ) -> Result<(Application, ChangeOrder), StoreError> {
        let lease = lease.map(|l| Lease {
            expires_at: truncate(l.expires_at),
            ..l
        });
        non_empty(&app.id, "application id")?;
        non_empty(&app.name, "application name")?;
        let (now, at) = change_order_time(&change_order, now)?;
        let (app, change_order, audit) = match self.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let lease = lease.clone();
                sqlite
                    .write_sync(move |tx| {
                        sync_sqlite::create_application(
                            tx,
                            &app,
                            &change_order,
                            &audit.actor,
                            at,
                            lease.as_ref(),
                        )?;
                        sync_sqlite::insert_audit(tx, &audit, at)?;
                        Ok((app, change_order, audit))
                    })
                    .await?
            }
            Backend::Postgres(pool) => {
                let spec = encode_doc(&app.spec, "application spec")?;
                // Holds the namespace until the application is in it, so a deletion waits and
                // then sees the application (SQLite: one writer, nothing can interleave).
                let namespace_sql =
                    "SELECT id FROM edas_namespaces WHERE region_tag = $1 FOR SHARE";
                let mut tx = pool.begin_write().await?;
                if app.namespace_stored {
                    let found: Option<i64> = sqlx::query_scalar(namespace_sql)
                        .bind(&app.namespace_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::not_found("namespace", &app.namespace_id));
                    }
                }
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM applications WHERE region_id = $1 AND name = $2 \
                 AND deleted = FALSE",
                )
                .bind(&app.region_id)
                .bind(&app.name)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(other) = taken {
                    return Err(name_taken(&app.region_id, &app.name, &other));
                }
                sqlx::query(
                    "INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, \
                 k8s_namespace, current_revision, state, spec, created_at, updated_at, deleted) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $9, FALSE)",
                )
                .bind(&app.id)
                .bind(&app.name)
                .bind(&app.region_id)
                .bind(&app.namespace_id)
                .bind(&app.cluster_id)
                .bind(&app.k8s_namespace)
                .bind(&app.state)
                .bind(&spec)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_conflict(e, "application", &app.id, "id or name already taken"))?;
                sqlx::query(
                "INSERT INTO revisions (app_id, number, spec, created_at) VALUES ($1, 1, $2, $3)",
            )
            .bind(&app.id)
            .bind(&spec)
            .bind(at)
            .execute(&mut *tx)
            .await?;
                insert_change_order!(
                    &mut tx,
                    &app.id,
                    &change_order,
                    Some(1),
                    &audit.actor,
                    at,
                    false,
                    lease.as_ref()
                );
                replace_service_ports!(&mut tx, &app.id, &app.spec.spec.service_ports());
                insert_audit!(&mut *tx, &audit, at)?;
                tx.commit().await?;
                (app, change_order, audit)
            }
        };
        self.events_committed();
        let mut co = new_change_order(change_order, &app.id, Some(1), &audit.actor, now);
        co.lease = lease;
        let app = Application {
            id: app.id,
            name: app.name,
            region_id: app.region_id,
            namespace_id: app.namespace_id,
            cluster_id: app.cluster_id,
            k8s_namespace: app.k8s_namespace,
            current_revision: 1,
            state: app.state,
            spec: app.spec,
            created_at: now,
            updated_at: now,
            deleted: false,
        };
        Ok((app, co))
    }

    /// Deploys: stores `spec` as the application's next revision, makes it current, and creates
    /// the change order that rolls it out plus the audit record, in one transaction.
    ///
    /// [`StoreError::Conflict`] when the application already has an active (unfinished) change
    /// order, also under concurrent callers (a unique partial index backs the check);
    /// [`StoreError::NotFound`] when the application does not exist or was deleted.
    pub async fn deploy(
        &self,
        app_id: &str,
        revision: RevisionDoc,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(Revision, ChangeOrder), StoreError> {
        Box::pin(self.deploy_under(app_id, revision, change_order, audit, now, None)).await
    }

    /// [`Store::deploy`] with the new change order created already leased under `lease` (its
    /// driver's worker and expiry): the process that stores it drives it, with no claim (no
    /// second write) in between.
    pub async fn deploy_leased(
        &self,
        app_id: &str,
        revision: RevisionDoc,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
        lease: Lease,
    ) -> Result<(Revision, ChangeOrder), StoreError> {
        Box::pin(self.deploy_under(app_id, revision, change_order, audit, now, Some(lease))).await
    }

    async fn deploy_under(
        &self,
        app_id: &str,
        revision: RevisionDoc,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
        lease: Option<Lease>,
    ) -> Result<(Revision, ChangeOrder), StoreError> {
        let (now, at) = change_order_time(&change_order, now)?;
        let lease = lease.map(|l| Lease {
            expires_at: truncate(l.expires_at),
            ..l
        });
        type Stored = (i64, RevisionDoc, NewChangeOrder, AuditEntry);
        let result: Result<Stored, StoreError> = match self.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let (id, lease) = (app_id.to_owned(), lease.clone());
                sqlite
                    .write_sync(move |tx| {
                        let number = sync_sqlite::deploy(
                            tx,
                            &id,
                            &revision,
                            &change_order,
                            &audit.actor,
                            at,
                            lease.as_ref(),
                        )?;
                        sync_sqlite::insert_audit(tx, &audit, at)?;
                        Ok((number, revision, change_order, audit))
                    })
                    .await
            }
            Backend::Postgres(pool) => {
                async {
                    let mut conn = pool.acquire().await?;
                    let number = pg_hot::deploy(
                        &mut conn,
                        app_id,
                        &revision,
                        &change_order,
                        &audit,
                        at,
                        lease.as_ref(),
                    )
                    .await?;
                    Ok((number, revision, change_order, audit))
                }
                .await
            }
        };
        let (number, revision, change_order, audit) = self.name_active(result).await?;
        self.events_committed();
        let revision = Revision {
            app_id: app_id.to_owned(),
            number,
            spec: revision,
            created_at: now,
        };
        let mut order = new_change_order(change_order, app_id, Some(number), &audit.actor, now);
        order.lease = lease;
        Ok((revision, order))
    }

    /// The first live application of cluster `cluster_id`, other than `except_app`, whose
    /// current revision has one of `ports` as a Service port (an indexed lookup).
    pub async fn service_port_in_use(
        &self,
        cluster_id: &str,
        ports: &[i64],
        except_app: Option<&str>,
    ) -> Result<Option<ServicePortUse>, StoreError> {
        for port in ports {
            let row: Option<(String, String)> = on_reader!(self, pool => {
                sqlx::query_as(
                    "SELECT a.id, a.name FROM service_ports p \
                     JOIN applications a ON a.id = p.app_id \
                     WHERE p.port = $1 AND a.cluster_id = $2 AND a.deleted = FALSE \
                     AND a.id <> $3 ORDER BY a.name, a.id LIMIT 1",
                )
                .bind(*port)
                .bind(cluster_id)
                .bind(except_app.unwrap_or_default())
                .fetch_optional(pool)
                .await?
            });
            if let Some((app_id, app_name)) = row {
                return Ok(Some(ServicePortUse {
                    app_id,
                    app_name,
                    port: *port,
                }));
            }
        }
        Ok(None)
    }

    /// A page of the live applications (of `cluster_id`, or of every cluster) whose current
    /// revision has Services and that have no unfinished change order, by id after `after`,
    /// at most `limit`: the ones whose routing the engine restores at start-up (a driven
    /// order routes its own). Found through the indexed Service ports, so the specs of the
    /// applications without Services are never read nor decoded.
    pub async fn idle_applications_with_services(
        &self,
        cluster_id: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Application>, StoreError> {
        let found: Vec<AppRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ", app_cols!(), " FROM applications a \
                 WHERE a.deleted = FALSE AND a.id > $1 AND ($2 = '' OR a.cluster_id = $2) \
                 AND EXISTS (SELECT 1 FROM service_ports p WHERE p.app_id = a.id) \
                 AND NOT EXISTS (SELECT 1 FROM change_orders c \
                   WHERE c.app_id = a.id AND c.finished_at IS NULL) \
                 ORDER BY a.id LIMIT $3"
            ))
            .bind(after)
            .bind(cluster_id.unwrap_or_default())
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?
        });
        rows(found)
    }

    /// Creates a change order that makes no new revision (stop, start, restart, delete…) and its
    /// audit record, in one transaction. Same conflict rule as [`Store::deploy`].
    pub async fn start_change_order(
        &self,
        app_id: &str,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<ChangeOrder, StoreError> {
        let (now, at) = change_order_time(&change_order, now)?;
        let result: Result<(), StoreError> = async {
            on_writer!(self, pool => {
                let mut tx = pool.begin_write().await?;
                update_live_app!(
                    &mut tx,
                    "UPDATE applications SET updated_at = $1 WHERE id = $2 AND deleted = FALSE",
                    at,
                    app_id
                );
                refuse_active!(&mut tx, app_id);
                insert_change_order!(&mut tx, app_id, &change_order, None, &audit.actor, at, false);
                insert_audit!(&mut *tx, &audit, at)?;
                tx.commit().await?;
                Ok(())
            })
        }
        .await;
        self.name_active(result).await?;
        self.events_committed();
        Ok(new_change_order(
            change_order,
            app_id,
            None,
            &audit.actor,
            now,
        ))
    }

    /// Sets an application's lifecycle state, with its audit record.
    pub async fn set_application_state(
        &self,
        app_id: &str,
        state: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = write_audited!(self, Some((&audit, now)), tx => {
            sqlx::query("UPDATE applications SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(state)
                .bind(ms(now))
                .bind(app_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::not_found("application", app_id));
        }
        Ok(())
    }

    /// An application by id, deleted or not.
    pub async fn get_application(&self, id: &str) -> Result<Application, StoreError> {
        if let Backend::Sqlite(s) = self.backend.as_ref() {
            return s.points.application(id);
        }
        let select = concat!("SELECT ", app_cols!(), " FROM applications WHERE id = $1");
        self.fetch_row::<AppRow>(select, &[id], "application")
            .await?
            .try_into()
    }

    /// The applications with these ids (deleted ones too; unknown ids are left out), in one
    /// statement: what a resume reads for the orders it claimed, instead of one read each.
    pub async fn get_applications(&self, ids: &[String]) -> Result<Vec<Application>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<AppRow> = match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                let ids = serde_json::to_string(ids).map_err(|e| StoreError::InvalidInput {
                    field: "application ids",
                    reason: e.to_string(),
                })?;
                sqlx::query_as(concat!(
                    "SELECT ",
                    app_cols!(),
                    " FROM applications WHERE id IN (SELECT value FROM json_each($1))"
                ))
                .bind(ids)
                .fetch_all(&s.reader)
                .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    app_cols!(),
                    " FROM applications WHERE id = ANY($1)"
                ))
                .bind(ids)
                .fetch_all(pool)
                .await?
            }
        };
        rows.into_iter().map(Application::try_from).collect()
    }

    /// Live applications, optionally of one EDAS namespace and/or cluster, ordered by name.
    pub async fn list_applications(
        &self,
        filter: &ApplicationFilter,
        page: PageRequest,
    ) -> Result<Page<Application>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        // One static statement per filter shape, so each can use its index.
        let (select, count, binds): (&'static str, &'static str, Vec<&str>) =
            match (filter.namespace_id.as_deref(), filter.cluster_id.as_deref()) {
                (Some(ns), Some(cluster)) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $3 AND cluster_id = $4 ORDER BY name, id \
                        LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $1 AND cluster_id = $2",
                    vec![ns, cluster],
                ),
                (Some(ns), None) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $3 ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $1",
                    vec![ns],
                ),
                (None, Some(cluster)) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND cluster_id = $3 ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE AND cluster_id = $1",
                    vec![cluster],
                ),
                (None, None) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE",
                    vec![],
                ),
            };
        // SQLite keeps the live counts per namespace and cluster (triggers): a sum over a few
        // rows, not a count over every live application.
        let count = match self.backend.as_ref() {
            Backend::Sqlite(_) => {
                match (filter.namespace_id.is_some(), filter.cluster_id.is_some()) {
                    (true, true) => {
                        "SELECT COALESCE(SUM(live), 0) FROM application_counts \
                         WHERE namespace_id = $1 AND cluster_id = $2"
                    }
                    (true, false) => {
                        "SELECT COALESCE(SUM(live), 0) FROM application_counts \
                         WHERE namespace_id = $1"
                    }
                    (false, true) => {
                        "SELECT COALESCE(SUM(live), 0) FROM application_counts \
                         WHERE cluster_id = $1"
                    }
                    (false, false) => "SELECT COALESCE(SUM(live), 0) FROM application_counts",
                }
            }
            Backend::Postgres(_) => count,
        };
        let (items, total): (Vec<AppRow>, i64) = on_reader!(self, pool => {
            let mut query = sqlx::query_as(select).bind(limit).bind(offset);
            let mut counting = sqlx::query_scalar(count);
            for value in &binds {
                query = query.bind(*value);
                counting = counting.bind(*value);
            }
            (query.fetch_all(pool).await?, counting.fetch_one(pool).await?)
        });
        Ok(page_of(rows(items)?, total, page))
    }

    /// One revision of an application.
    pub async fn get_revision(&self, app_id: &str, number: i64) -> Result<Revision, StoreError> {
        let row: Option<RevisionRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT app_id, number, spec, created_at FROM revisions \
                 WHERE app_id = $1 AND number = $2",
            )
            .bind(app_id)
            .bind(number)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| StoreError::not_found("revision", format!("{app_id}#{number}")))?
            .try_into()
    }

    /// An application's revisions, newest first.
    pub async fn list_revisions(
        &self,
        app_id: &str,
        page: PageRequest,
    ) -> Result<Page<Revision>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let (items, total): (Vec<RevisionRow>, i64) = on_reader!(self, pool => {
            let items = sqlx::query_as(
                "SELECT app_id, number, spec, created_at FROM revisions WHERE app_id = $1 \
                 ORDER BY number DESC LIMIT $2 OFFSET $3",
            )
            .bind(app_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM revisions WHERE app_id = $1")
                .bind(app_id)
                .fetch_one(pool)
                .await?;
            (items, total)
        });
        Ok(page_of(rows(items)?, total, page))
    }
}
