//! The application layer of edasd: the queries and commands the EDAS API calls, between the
//! wire (edas-api) and the store and release engine. edas-api decodes a request, calls one
//! query or command here and encodes the typed result; it reaches the store and the engine
//! only through this crate.
//!
//! **Authorization** stays in edas-api: it evaluates the caller's RAM policies against the
//! resource a query names (an application's namespace and id) and calls the command only when
//! allowed. The layer receives the caller only as the [`Actor`] its audit records name, so
//! anything that has already decided can call it.
//!
//! **Transactions:** every command stores its change and its audit record in one transaction
//! (AbortAndRollback included); a ConfigMap/Secret reaches the cluster's runtime just before.
//!
//! **Errors** are one [`AppError`]; edas-api maps each variant to an EDAS code in one place.
//!
//! The records a query returns are the store's typed records, re-exported here so callers need
//! no dependency on edas-store.

mod accounts;
mod base_info;
mod changes;
mod clusters;
mod configuration;
mod control;
mod deployment;
mod error;
mod fleet;
mod identity;
mod ingress;
mod instances;
mod local;
mod namespaces;
mod notify;
mod precheck;
mod queries;
mod release_policy;
mod scaling;
mod status;
mod tags;
mod traffic;

use std::sync::Arc;

use edas_engine::Engine;
use edas_store::Store;

pub use accounts::{AccountError, Audited};
pub use base_info::{BaseInfo, BaseInfoChange};
pub use changes::Created;
pub use clusters::ClusterInfo;
pub use configuration::{Object, ObjectKind, ObjectRef};
pub use control::Abort;
pub use edas_engine::RevisionDoc;
pub use edas_release::ChangeOrder as OrderState;
pub use edas_runtime::{Instance, LogChunks, LogRequest};
pub use edas_store::ChangeOrder as StoredChangeOrder;
pub use edas_store::IngressRule;
pub use edas_store::ReleasePolicyVersion;
pub use edas_store::ResourceTag;
pub use edas_store::{AccessKey, AuditEntry, ChangeOrderStatus, Policy, Sensitive, User};
pub use edas_store::{
    Application, ApplicationFilter, AuditQuery, AuditRecord, Cluster, Page, PageRequest, Revision,
};
pub use edas_store::{Delivery, DeliveryState, EventScope, StoredEvent, Subscription};
pub use error::AppError;
pub use fleet::AppGauges;
pub use identity::Signer;
pub use ingress::{BackendStatus, IngressRequest};
pub use local::{LOCAL_CLUSTER, LocalUse, local_use, service_address};
pub use namespaces::{FixedNamespaces, Namespace, NamespaceKey, NamespaceRequest};
pub use notify::{NotifyError, SubscriptionRequest};
pub use precheck::{PRECHECK_JOBS, PrecheckJob, PrecheckKey, PrecheckRequest, PrecheckResult};
pub use queries::{OrderView, change_order_type};
pub use scaling::{
    BehaviourInput, DirectionInput, MetricRuleInput, ScalingDirection, ScalingMetric,
    ScalingPolicy, ScalingRule, ScalingRuleChange, ScalingRuleDoc,
};
pub use status::Observed;
pub use tags::{MAX_TAGS, TagResourceType, validate_resource_ids, validate_tags};
pub use traffic::Traffic;

/// The release state machine's model of a change order, which queries return inside
/// [`OrderState`] and the API renders.
pub mod release {
    pub use edas_release::{EpochMillis, Pipeline, Release, Stage, StageKind, Status, TimerKind};
}

/// Who asks for a command: named in its audit record and its change order's creator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `user (access key)`.
    pub name: String,
    /// The API request's id, which the audit record and the logs carry.
    pub request_id: String,
}

/// The application layer over one store and the engine that carries changes out. Cheap to
/// clone.
#[derive(Clone)]
pub struct App {
    store: Arc<Store>,
    engine: Engine,
    slow: Arc<status::SlowClusters>,
    prechecks: Arc<precheck::Prechecks>,
    /// The signers of recent requests, valid while the store's identity version holds.
    signers: Arc<identity::SignerCache>,
}

impl App {
    /// The layer over `store` and `engine` (which must drive the same store).
    pub fn new(store: Arc<Store>, engine: Engine) -> App {
        App {
            store,
            engine,
            slow: Arc::default(),
            prechecks: Arc::default(),
            signers: Arc::default(),
        }
    }

    /// The store, for what has not moved into the layer yet (the admin identity operations).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine (the layer's own tests create applications through it).
    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

#[cfg(test)]
mod tests;
