//! The hot write transactions on PostgreSQL (deploy, transition), each **one statement**: one
//! round trip and an implicit transaction, instead of `BEGIN`, a statement per row and
//! `COMMIT`, each a round trip (a deploy and its replicas-0 release were ~20 of them).
//!
//! sqlx cannot pipeline statements, so the writes that do not depend on each other's answers
//! are data-modifying CTEs of one statement: they share its snapshot, are atomic together
//! (the statement is its own transaction, committed and flushed before its answer: the
//! guarantees of the multi-statement transaction they replace), and every one of them is
//! conditioned on the row the first one touched (`FROM app` / `FROM co`), so a missing
//! application or a refused compare-and-swap writes nothing. Constraint violations (the
//! one-active index, a taken id) abort the whole statement and are told apart by the
//! constraint's name. Foreign keys between the CTEs' rows hold: PostgreSQL checks them at the
//! statement's end.
//!
//! They mirror `sync_sqlite`'s writes row for row; the tests of `tests/` run against both
//! backends. `Store::transition_and_deploy` runs both statements in one transaction.

use sqlx::PgConnection;
use sqlx::types::Json;

use super::events::{AsOrder as _, NOTIFY_CHANNEL};
use super::{encode_doc, refused_transition};
use crate::error::{StoreError, is_unique_violation};
use crate::model::*;

/// A transition's or a creation's release events, bound as three arrays (ids, kinds, the
/// documents as one JSON array), in order: `EVENTS_INSERT` unnests them.
struct EventBinds {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    docs: Json<Vec<edas_release::ReleaseEvent>>,
}

impl EventBinds {
    fn new(
        change_order_id: &str,
        before: Option<&edas_release::ChangeOrder>,
        after: Option<&edas_release::ChangeOrder>,
    ) -> EventBinds {
        let mut events = match after {
            Some(after) => edas_release::events(before, after),
            None => Vec::new(),
        };
        for event in &mut events {
            change_order_id.clone_into(&mut event.change_order_id);
        }
        EventBinds {
            ids: events.iter().map(|_| crate::new_record_id()).collect(),
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            docs: Json(events),
        }
    }

    fn any(&self) -> bool {
        !self.ids.is_empty()
    }
}

/// The CTEs `ev` (the events, from the arrays `$ids`, `$kinds`, `$docs` of [`EventBinds`], of
/// the application `{app}` and change order `{co}`, only when `{when}` has a row) and `dl`
/// (each event's pending deliveries, one per matching subscription, as `insert_events_postgres`).
macro_rules! events_ctes {
    ($ids:literal, $kinds:literal, $docs:literal, $at:literal, $app:literal, $co:literal, $from:literal) => {
        concat!(
            "ev AS (INSERT INTO events (id, app_id, change_order_id, kind, at, data) \
             SELECT t.id, ", $app, ", ", $co, ", t.kind, ", $at, ", (", $docs, "::jsonb -> (t.n - 1)::int) \
             FROM ", $from, " unnest(", $ids, "::text[], ", $kinds, "::text[]) WITH ORDINALITY AS t(id, kind, n) \
             ORDER BY t.n RETURNING seq, kind, app_id), \
             dl AS (INSERT INTO deliveries (subscription_id, event_seq, state, attempts, updated_at) \
             SELECT s.id, ev.seq, 'pending', 0, ", $at, " FROM ev JOIN subscriptions s \
             ON (s.app_id IS NULL OR s.app_id = ev.app_id) \
             AND (s.kinds = '' OR s.kinds LIKE '%,' || ev.kind || ',%'))"
        )
    };
}

/// The events of one change order and their deliveries, in a transaction of another write.
/// Binds: event ids, kinds, documents, at, app id, change order id.
const INSERT_EVENTS: &str = concat!(
    "WITH ",
    events_ctes!("$1", "$2", "$3", "$4", "$5", "$6", ""),
    " SELECT count(*) FROM ev"
);

/// Records `events` (of one change order, already numbered by it) of application `app_id`
/// with their pending deliveries, through `conn` (a transaction's), in one round trip.
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    app_id: &str,
    events: &[edas_release::ReleaseEvent],
    at: i64,
) -> Result<(), StoreError> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let ids: Vec<String> = events.iter().map(|_| crate::new_record_id()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let _: i64 = sqlx::query_scalar(INSERT_EVENTS)
        .bind(&ids)
        .bind(&kinds)
        .bind(Json(events))
        .bind(at)
        .bind(app_id)
        .bind(&first.change_order_id)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// Binds: app id, spec, at, change order id, type, status, state, description, creator, lease
/// owner, lease expiry, Service ports, event ids, event kinds, event documents, audit actor,
/// action, resource, app id, request id, detail, notify channel (or NULL: no events).
const DEPLOY: &str = concat!(
    "WITH app AS (UPDATE applications SET current_revision = current_revision + 1, spec = $2, \
     updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING current_revision), \
     rev AS (INSERT INTO revisions (app_id, number, spec, created_at) \
     SELECT $1, current_revision, $2, $3 FROM app), \
     co AS (INSERT INTO change_orders (id, app_id, co_type, status, version, revision, state, \
     description, created_at, updated_at, creator, finished_at, lease_owner, lease_expires_at) \
     SELECT $4, $1, $5, $6, 1, current_revision, $7, $8, $3, $3, $9, NULL, $10, $11 FROM app), \
     gone AS (DELETE FROM service_ports WHERE app_id = $1 AND NOT (port = ANY($12::bigint[])) \
     AND EXISTS (SELECT 1 FROM app)), \
     ports AS (INSERT INTO service_ports (app_id, port) SELECT $1, p FROM app, \
     unnest($12::bigint[]) AS p ON CONFLICT DO NOTHING), ",
    events_ctes!("$13", "$14", "$15", "$3", "$1", "$4", "app,"),
    ", au AS (INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) \
     SELECT $3, $16, $17, $18, $19, $20, $21 FROM app) \
     SELECT current_revision, CASE WHEN $22::text IS NOT NULL THEN pg_notify($22, '')::text END \
     FROM app"
);

/// `Store::deploy` on PostgreSQL in one statement (through `conn`: a pooled connection, or a
/// transaction's when it is part of a larger write): the application's next revision, the
/// change order that rolls it out (created under `lease`), its creation events, the Service
/// ports and the audit record. Returns the revision number.
pub(crate) async fn deploy(
    conn: &mut PgConnection,
    app_id: &str,
    revision: &RevisionDoc,
    change_order: &NewChangeOrder,
    audit: &AuditEntry,
    at: i64,
    lease: Option<&Lease>,
) -> Result<i64, StoreError> {
    let spec = encode_doc(revision, "revision spec")?;
    let state = encode_doc(&change_order.state, "change order state")?;
    let events = EventBinds::new(&change_order.id, None, Some(&change_order.state));
    let query = sqlx::query_as(DEPLOY)
        .bind(app_id)
        .bind(&spec)
        .bind(at)
        .bind(&change_order.id)
        .bind(&change_order.co_type)
        .bind(change_order.status.code())
        .bind(&state)
        .bind(&change_order.description)
        .bind(&audit.actor)
        .bind(lease.map(|l| l.owner.as_str()))
        .bind(lease.map(|l| super::ms(l.expires_at)))
        .bind(revision.spec.service_ports())
        .bind(&events.ids)
        .bind(&events.kinds)
        .bind(&events.docs);
    let row: Option<(i64, Option<String>)> = bind_audit(query, audit, &events)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| deploy_refused(e, app_id, &change_order.id))?;
    row.map(|(number, _)| number)
        .ok_or_else(|| StoreError::not_found("application", app_id))
}

/// Binds an audit record's columns and the notify channel (when there are events), the
/// last binds of [`DEPLOY`] and of the transitions.
fn bind_audit<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    audit: &'q AuditEntry,
    events: &EventBinds,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(&audit.resource)
        .bind(&audit.app_id)
        .bind(&audit.request_id)
        .bind(Json(&audit.detail))
        .bind(events.any().then_some(NOTIFY_CHANNEL))
}

/// A deploy statement's constraint violation, by the constraint it hit: the one-active index
/// (the active order is named by `Store::name_active`), a revision number taken by a racing
/// deploy, or a taken change-order id.
fn deploy_refused(e: sqlx::Error, app_id: &str, co_id: &str) -> StoreError {
    let constraint = match &e {
        sqlx::Error::Database(db) if is_unique_violation(&e) => db.constraint().map(str::to_owned),
        _ => None,
    };
    match constraint.as_deref() {
        Some("change_orders_one_active") => StoreError::ActiveChangeOrder {
            app_id: app_id.to_owned(),
            active: String::new(),
        },
        Some("revisions_pkey") => StoreError::conflict("application", app_id, "concurrent deploy"),
        Some(_) => StoreError::conflict("change order", co_id, "id already taken"),
        None => StoreError::Database(e),
    }
}

/// Binds: status, state, at, change order id, expected version, event ids, event kinds, event
/// documents, the application's new state (or NULL), whether it is deleted, audit actor,
/// action, resource, app id, request id, detail, notify channel (or NULL: no events).
macro_rules! transition_sql {
    ($finish:literal) => {
        concat!(
            "WITH co AS (UPDATE change_orders SET status = $1, state = $2, version = version + 1, \
             updated_at = $3", $finish, " WHERE id = $4 AND version = $5 AND finished_at IS NULL \
             RETURNING version, app_id), ",
            events_ctes!("$6", "$7", "$8", "$3", "co.app_id", "$4", "co,"),
            ", app AS (UPDATE applications SET state = COALESCE($9, state), \
             deleted = deleted OR $10, updated_at = $3 \
             WHERE ($9::text IS NOT NULL OR $10) AND id = (SELECT app_id FROM co)), \
             au AS (INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) \
             SELECT $3, $11, $12, $13, $14, $15, $16 FROM co) \
             SELECT version, CASE WHEN $17::text IS NOT NULL THEN pg_notify($17, '')::text END \
             FROM co"
        )
    };
}

const TRANSITION: &str = transition_sql!("");
const TRANSITION_FINISHED: &str =
    transition_sql!(", finished_at = $3, lease_owner = NULL, lease_expires_at = NULL");

/// `Store::transition` on PostgreSQL in one statement (through `conn`, as [`deploy`]): the
/// compare-and-swap of change order
/// `id` from version `expected`, its events, the application's state and the audit record.
/// A refused swap writes nothing and is named by a read of the order (the refusal's only
/// second round trip). Returns the new version.
pub(crate) async fn transition(
    conn: &mut PgConnection,
    id: &str,
    expected: i64,
    transition: &Transition,
    audit: &AuditEntry,
    at: i64,
) -> Result<i64, StoreError> {
    // The state at the expected version, when the caller does not hold it: read before the
    // swap, outside it, which is the same document (a version names one state, and the swap
    // below succeeds only at that version).
    let read_before = match &transition.before {
        Some(_) => None,
        None => {
            let state: Option<Json<serde_json::Value>> = sqlx::query_scalar(
                "SELECT state FROM change_orders WHERE id = $1 AND version = $2",
            )
            .bind(id)
            .bind(expected)
            .fetch_optional(&mut *conn)
            .await?;
            state.and_then(|s| s.0.as_order().map(std::borrow::Cow::into_owned))
        }
    };
    let before = transition.before.as_deref().or(read_before.as_ref());
    let events = EventBinds::new(id, before, Some(&transition.state));
    let sql = if transition.finished {
        TRANSITION_FINISHED
    } else {
        TRANSITION
    };
    let state = encode_doc(&transition.state, "change order state")?;
    let query = sqlx::query_as(sql)
        .bind(transition.status.code())
        .bind(state)
        .bind(at)
        .bind(id)
        .bind(expected)
        .bind(&events.ids)
        .bind(&events.kinds)
        .bind(&events.docs)
        .bind(transition.app_state.as_deref())
        .bind(transition.delete_app);
    let row: Option<(i64, Option<String>)> = bind_audit(query, audit, &events)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some((version, _)) => Ok(version),
        None => {
            let current: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT version, finished_at FROM change_orders WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Err(refused_transition(id, expected, current))
        }
    }
}
