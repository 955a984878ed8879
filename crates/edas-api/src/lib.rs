//! The EDAS 2017-08-01 POP/ROA API of edasd, as an axum [`Router`](axum::Router).
//!
//! A request goes: route by method and path ([`operations::Action`]; unknown → 404
//! `InvalidApi.NotFound`) → size limits → signature (`edas-pop`: parse, look the access key up
//! through the application layer, verify with the shared nonce cache; STS refused) → the
//! caller's user → the operation (`UnsupportedOperation` for the EDAS operations edasd does not
//! implement) → its RAM action checked against the user's policies ([`policy`]; administrators
//! may do everything) → the handler, which decodes the parameters with `edas-spec`, calls a
//! query or command of the application layer (`edas-app`) and encodes its typed result.
//! Success is HTTP 200 with `{"Code": 200, "Message", "RequestId", …}`; every error is a
//! 4xx/5xx from the one [`error::ERROR_TABLE`] with
//! `{"Code": "<string>", "Message", "RequestId"}`.
//!
//! Besides the EDAS paths: `/healthz`, `/metrics` (Prometheus) and the admin API under
//! `/edasd/v1/` ([`admin`]), signed like everything else and for administrators only.
//!
//! **Invariants:** an error is never a 2xx; nothing is stored unless the signature, the policy
//! and every parameter are valid; every response carries the RequestId that the logs carry.

pub mod admin;
mod apps;
mod audit;
mod base_info;
mod caller;
mod clusters;
mod configuration;
pub mod error;
mod fleet_metrics;
mod handlers;
mod ingress;
mod instances;
mod lifecycle;
mod namespaces;
pub mod operations;
mod params;
pub mod policy;
mod precheck;
pub mod render;
mod scaling;
mod server;
mod slb;
mod stream;
mod tags;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use edas_app::App;
use edas_pop::NonceCache;
use metrics_exporter_prometheus::PrometheusHandle;

pub use server::router;

/// The largest body accepted, and edasd's own URL limit: room for the base64 YAML parameters
/// (`Sidecars`, `InitContainers`, `SecurityContext`), which travel in the query string. The
/// HTTP stack (the `http` crate's `Uri`) caps a request target at 64 KiB before that, which
/// still admits several kilobytes of YAML per parameter; longer request lines are answered
/// 414 by the HTTP layer.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// What the API needs to know about this installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// The region of this installation (`RegionId`), also the default EDAS namespace.
    pub region_id: String,
    /// The account id that appears in resource ARNs.
    pub account_id: String,
    /// EDAS namespaces besides the default one (the region id).
    pub namespaces: Vec<String>,
}

/// The wall clock the signature window is checked against (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    app: App,
    config: ApiConfig,
    nonces: Mutex<NonceCache>,
    clock: Clock,
    metrics: Option<PrometheusHandle>,
    /// Streams (`/edasd/v1/events`, `/edasd/v1/logs`) open per user (see [`stream::Permit`]).
    streams: stream::OpenStreams,
}

impl Api {
    /// The API over the application layer (its store and the engine that carries changes
    /// out).
    pub fn new(app: App, config: ApiConfig) -> Api {
        Api {
            inner: Arc::new(Inner {
                app,
                config,
                nonces: Mutex::new(NonceCache::default()),
                clock: Arc::new(SystemTime::now),
                metrics: None,
                streams: stream::OpenStreams::default(),
            }),
        }
    }

    /// Replaces the clock (tests). Must be called before the API is shared.
    pub fn with_clock(self, clock: Clock) -> Api {
        self.map_inner(|inner| inner.clock = clock)
    }

    /// Remembers at most `per_key` signature nonces per access key (see [`NonceCache`]).
    pub fn with_nonce_capacity(self, per_key: usize) -> Api {
        self.map_inner(|inner| inner.nonces = Mutex::new(NonceCache::new(per_key)))
    }

    /// Serves `/metrics` from this recorder handle (the binary installs the recorder).
    pub fn with_metrics(self, handle: PrometheusHandle) -> Api {
        self.map_inner(|inner| inner.metrics = Some(handle))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Api {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                app: shared.app.clone(),
                config: shared.config.clone(),
                nonces: Mutex::new(NonceCache::default()),
                clock: shared.clock.clone(),
                metrics: shared.metrics.clone(),
                streams: shared.streams.clone(),
            },
        };
        f(&mut inner);
        Api {
            inner: Arc::new(inner),
        }
    }

    /// The application layer the operations call.
    /// Counts a stream of `user` open until the permit drops; refused with `Throttling.User`
    /// past [`stream::MAX_STREAMS_PER_USER`].
    pub(crate) fn open_stream(&self, user: &str) -> Result<stream::Permit, error::ApiError> {
        stream::Permit::take(&self.inner.streams, user)
    }

    pub(crate) fn app(&self) -> &App {
        &self.inner.app
    }

    /// The installation settings.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }
}

#[cfg(test)]
mod tests;
