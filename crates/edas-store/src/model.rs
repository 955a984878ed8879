//! The records the store keeps. Times are `jiff::Timestamp`s chosen by the caller (see the
//! crate docs) and kept with millisecond precision.
//!
//! The documents the store's own callers decide on are typed: an application's and a revision's
//! [`RevisionDoc`] (edas-spec) and a change order's [`ChangeOrderState`] (edas-release), each
//! encoded once on write and decoded straight into the record on read. Four documents stay
//! `serde_json::Value` on purpose, because their shape is owned above the store or by the user:
//! a cluster's `config` (edasd's cluster configuration), ConfigMap and Secret `data` (the user's
//! own keys and values, kept as given), a policy `document` (edas-api's RAM policy grammar, which
//! validates it) and the audit `detail` (free-form by design).

use jiff::Timestamp;
use serde_json::Value;

/// A change order's status, with the EDAS wire codes it is stored as (the release planner's
/// type, so the store, the engine and the API agree on one set of values).
pub use edas_release::Status as ChangeOrderStatus;

/// A change order's state: the release state machine's order (pipelines, stages, tasks).
pub use edas_release::ChangeOrder as ChangeOrderState;

/// The document of a revision: the spec and what the engine decided when it released it.
pub use edas_spec::RevisionDoc;

use crate::crypto::Sensitive;

/// A new id for a record written in the hot path (a change order, a release event): a
/// time-ordered UUID (version 7, increasing within the process), so the indexes keyed by it
/// take each new one at their end, on a page the previous writes already made dirty, instead
/// of on a random page of their own (a WAL page, synced and checkpointed, per id and index).
/// Still unguessable enough: 74 of its bits are random; access is decided by policy anyway.
pub fn new_record_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An application as stored. Deleted applications stay (with `deleted = true`) so their
/// revisions, change orders and audit trail remain readable.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub region_id: String,
    /// The EDAS (logical) namespace id, e.g. `cn-hangzhou:prod`.
    pub namespace_id: String,
    pub cluster_id: String,
    pub k8s_namespace: String,
    /// Number of the newest revision (the first is 1).
    pub current_revision: i64,
    /// Free-form lifecycle state owned by the caller (e.g. `RUNNING`, `STOPPED`).
    pub state: String,
    /// The document of `current_revision`.
    pub spec: RevisionDoc,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted: bool,
}

/// What [`crate::Store::create_application`] needs; the first revision is `spec`, and the
/// Service ports of its spec are indexed with it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApplication {
    pub id: String,
    pub name: String,
    pub region_id: String,
    pub namespace_id: String,
    /// `namespace_id` is a namespace stored through InsertOrUpdateRegion (not one of the
    /// configuration's): it must still exist when the application is created, checked in the
    /// creating transaction, so a concurrent DeleteUserDefineRegion cannot strand it.
    pub namespace_stored: bool,
    pub cluster_id: String,
    pub k8s_namespace: String,
    pub state: String,
    pub spec: RevisionDoc,
}

/// A live application that already has a Service port
/// ([`crate::Store::service_port_in_use`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortUse {
    pub app_id: String,
    pub app_name: String,
    pub port: i64,
}

/// One immutable version of an application's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub app_id: String,
    pub number: i64,
    pub spec: RevisionDoc,
    pub created_at: Timestamp,
}

/// A change order: one operation on an application, driven by the release engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOrder {
    pub id: String,
    pub app_id: String,
    /// The EDAS `CoTypeCode`, e.g. `CoDeploy`.
    pub co_type: String,
    /// Stored as its EDAS code; a code this binary does not know reads as
    /// [`crate::StoreError::Corrupt`].
    pub status: ChangeOrderStatus,
    /// Incremented by every transition and every claim; the compare-and-swap token.
    pub version: i64,
    /// The revision this change order rolls out, when it creates one.
    pub revision: Option<i64>,
    /// The engine's state (pipelines, stages, tasks).
    pub state: ChangeOrderState,
    pub description: String,
    /// Who created it (`CreateUserId`): the actor of the audit record written with it. `None`
    /// only for orders created before the column existed whose audit record was pruned.
    pub creator: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set when the change order reached a final status; it never changes again.
    pub finished_at: Option<Timestamp>,
    /// The worker currently (or last) driving it; `None` when free.
    pub lease: Option<Lease>,
}

impl ChangeOrder {
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

/// A worker's claim on a change order, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: Timestamp,
}

/// A change order to create. It starts at version 1, unfinished and unleased; its creator is
/// the actor of the audit record written with it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChangeOrder {
    pub id: String,
    pub co_type: String,
    pub status: ChangeOrderStatus,
    pub state: ChangeOrderState,
    pub description: String,
}

/// The new status and state of a change order, written by [`crate::Store::transition`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: ChangeOrderStatus,
    pub state: ChangeOrderState,
    /// `true` when `status` is final: the change order is finished (its lease is released and
    /// the application may get a new change order).
    pub finished: bool,
    /// When set, the application's lifecycle state is updated in the same transaction.
    pub app_state: Option<String>,
    /// When `true`, the application is marked deleted in the same transaction (the end of a
    /// delete change order).
    pub delete_app: bool,
    /// The state stored at the expected version, when the caller holds it (a driver does):
    /// the release events are derived from it without reading it back inside the write
    /// transaction. `None`: it is read there. The version check makes a stale one impossible
    /// to store (the write is refused), so it must only be the state read at that version.
    pub before: Option<Box<ChangeOrderState>>,
}

/// The deploy that [`crate::Store::transition_and_deploy`] stores in the same transaction as
/// a transition: `revision` becomes the application's next revision (its Service ports
/// indexed), rolled out by `change_order`;
/// `audit` explains it (its actor is the order's creator).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpDeploy {
    pub app_id: String,
    pub revision: RevisionDoc,
    pub change_order: NewChangeOrder,
    pub audit: AuditEntry,
}

/// The "who, what, from which request" of an audit record; the store adds the time and id.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The access key id or user that caused the action (`system` for the engine itself).
    pub actor: String,
    /// What happened, e.g. `InsertK8sApplication` or `ChangeOrder.Transition`.
    pub action: String,
    /// The resource acted on, e.g. `change_order/<id>`.
    pub resource: String,
    /// The application concerned, for listing by application.
    pub app_id: Option<String>,
    /// The API `RequestId`, when the action came from a request.
    pub request_id: Option<String>,
    /// Anything else worth keeping (never secrets); free-form, so opaque here.
    pub detail: Value,
}

/// Which kind of configuration object a write names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigObject {
    ConfigMap,
    Secret,
}

/// An audit record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Timestamp,
    pub entry: AuditEntry,
}

/// Which audit records to list: by application (or all) within `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub app_id: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Which applications to list. Deleted applications are never listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationFilter {
    pub namespace_id: Option<String>,
    pub cluster_id: Option<String>,
}

/// A Kubernetes cluster (or the local runtime) that applications are deployed to.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    pub region_id: String,
    /// e.g. `local`, `kubernetes`.
    pub cluster_type: String,
    /// Connection settings; must not contain credentials in clear. Opaque here: edasd owns
    /// their shape.
    pub config: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A ConfigMap kept for the local runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMap {
    pub cluster_id: String,
    pub k8s_namespace: String,
    pub name: String,
    pub data: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A Secret kept for the local runtime. `data` is encrypted at rest and redacted in `Debug`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub cluster_id: String,
    pub k8s_namespace: String,
    pub name: String,
    pub data: Sensitive<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An API access key. `secret` is encrypted at rest and redacted in `Debug`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKey {
    pub id: String,
    pub secret: Sensitive<String>,
    pub user: String,
    pub enabled: bool,
    pub created_at: Timestamp,
}

/// A user of the API; admins bypass policy evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub admin: bool,
    pub created_at: Timestamp,
}

/// A RAM-style policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// Opaque here: edas-api's policy grammar validates and evaluates it.
    pub document: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which page of a listing to read: `number` counts from 1, `size` is 1..=[`PageRequest::MAX_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub number: u32,
    pub size: u32,
}

impl PageRequest {
    pub const MAX_SIZE: u32 = 1000;

    pub fn new(number: u32, size: u32) -> Self {
        Self { number, size }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            number: 1,
            size: 20,
        }
    }
}

/// One page of a listing and the total number of matching records.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub number: u32,
    pub size: u32,
}

/// How long finished change orders (or audit records) are kept: a record is pruned when it is
/// older than `max_age` **or** not among the newest `max_count`. `None` disables that rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<std::time::Duration>,
    pub max_count: Option<u64>,
}

/// How many records [`crate::Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub change_orders: u64,
    pub audit_records: u64,
}

/// A deleted application's clean-up still owed in its cluster (see [`crate::Store::add_sweep`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSweep {
    pub app_id: String,
    pub cluster_id: String,
    /// `Force=true`: remove without graceful termination.
    pub forced: bool,
    pub created_at: Timestamp,
}

/// An unfinished change order that an immediate deletion ends ([`crate::Store::delete_application_now`]):
/// its final status and state, written only if it is still at `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Superseded {
    pub id: String,
    pub expected_version: i64,
    pub status: ChangeOrderStatus,
    pub state: ChangeOrderState,
}

/// What access keys, users and policies are at ([`crate::Store::identity_version`]): a cache
/// of them read at one version is valid while the store answers the same version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityVersion {
    /// SQLite (one process): this store's count of identity commits.
    Local(u64),
    /// PostgreSQL (processes share the database): the token of the last change, in any process.
    Shared(Vec<u8>),
}
