//! The EDAS application model.
//!
//! Start with [`apply`]: it takes an [`Operation`], the application's current [`AppSpec`] (none
//! for InsertK8sApplication) and the request's [`Params`] exactly as they arrived (strings), and
//! returns a [`Change`] — the complete next revision plus the [`ReleaseSettings`] of this release
//! — or every [`Violation`] at once. Each optional parameter is a tri-state: absent keeps the
//! current value, its documented empty form (`""`, `{}`, `[]`) clears it, a value replaces it.
//!
//! Kubernetes-shaped values (probes, env, hooks, affinity, tolerations, containers, security
//! context) decode into k8s-openapi types, strictly: a field the type does not have is an error,
//! so a misspelt setting is never silently dropped. Units follow one rule everywhere: CPU in
//! cores, or millicores for the `Mcpu*`/`*mCpu` parameters (which win when both are given);
//! memory in MB (rendered `Mi`); ephemeral storage in GB (rendered `Gi`); 0 is "no bound".
//!
//! The [`catalog`] documents every parameter; `docs/PARAMETERS.md` is generated from it.
//!
//! A revision as stored is a [`RevisionDoc`] (the spec, the template revision its instances
//! are, the ConfigMap and Secret copies they read): it lives here, in the pure model, so the
//! store can keep it typed without depending on the engine.
//!
//! This crate is pure: no I/O, no clock, no async; it never panics on any input.

mod apply;
pub mod autoscale;
pub mod catalog;
pub mod docs;
pub mod ingress;
pub mod k8s;
pub mod model;
mod params;
pub mod release;
mod revision;
mod validate;
mod violation;

pub use apply::{
    Change, MAX_REPLICAS, NODE_PORTS, RESERVED_LABELS, apply, service_violations, with_tag,
};
pub use catalog::Operation;
pub use model::AppSpec;
pub use params::{Params, Patch, parse_bool, parse_int};
pub use release::ReleaseSettings;
pub use revision::{ConfigCopies, RevisionDoc, copy_key};
pub use violation::{Violation, ViolationKind, Violations};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
