//! Releases that judge: an application's release policy ([`policy`]: checks with a provider,
//! a success condition in a small safe language ([`expr`]), an interval, a count, a failure
//! and an inconclusive limit, when they run and what a failure does), the analysis of one
//! change order ([`judge`]: which checks are due, what each measurement decides, durable as
//! JSON beside the order so a restart resumes it), the local proxy's counters turned into
//! rates and percentiles ([`traffic`]), and the providers that fetch a value over HTTP
//! ([`providers`]: Prometheus instant queries and webhooks).
//!
//! # Invariants
//! [`policy`], [`expr`], [`judge`] and [`traffic`] are pure (no I/O; time is an input in epoch
//! milliseconds), so every decision can be replayed from the stored state. A condition never
//! runs code: it is parsed and type-checked when the policy is validated, and evaluating it can
//! only yield true, false or an error, which counts as inconclusive, never as a pass. Provider
//! errors are counted and shown, never ignored: past a check's inconclusive limit they are
//! failures. A webhook URL's query string (often a token) is never logged nor put in an
//! error.

pub mod expr;
pub mod judge;
pub mod policy;
pub mod providers;
pub mod traffic;

pub use judge::{
    Action, Analysis, CheckStatus, Due, Gate, Observation, Sample, Stage, Verdict, batch_stages,
};
pub use policy::{InvalidPolicy, ReleasePolicy};
pub use providers::{Providers, WebhookContext};
pub use traffic::TrafficSnapshot;

/// A provider could not give a value (unreachable, timed out, an answer of the wrong shape):
/// inconclusive for the judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);
