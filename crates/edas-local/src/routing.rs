//! Services of local applications: one [`ServiceProxy`] per service port on `127.0.0.1:<port>`,
//! balancing over the instances of every revision of the application.
//!
//! - **Backends** are recomputed from the instance table on every instance state change (the
//!   same moment a [`edas_runtime::RuntimeEvent`] is broadcast), never by polling: a backend is
//!   an instance at `127.0.0.1:<its PORT>` (every target port means the instance's one port, see
//!   the crate docs), serviceable while ready and not stopping. A stopping instance stays in the
//!   set marked `draining` until it is gone, so its in-flight requests finish.
//! - **Gray split**: the instances of [`edas_runtime::GraySplit::gray_revision`] form [`Group::Gray`], all
//!   others [`Group::Stable`]; the split's rules go to [`ServiceProxy::set_traffic`].
//! - **Lossless start** ([`edas_runtime::Routing::lossless`]) and empty-push protection go to every
//!   proxy of the application.
//! - **Types**: `edas-proxy` is a generic proxy with its own rule and warm-up types; the EDAS
//!   model is converted to them here ([`traffic_of`], [`warmup_of`]) and nowhere else.
//! - **Persistence**: the routing of each application is written to
//!   `<data_dir>/routing/<app_id>.json` *before* it is applied, and a new runtime binds the same
//!   ports again as soon as it is created, so the service ports come back with edasd without
//!   waiting for the release engine (which re-applies the stored routing anyway).
//! - Every port is proxied as [`Protocol::Auto`]: EDAS `ServicePorts` only say `TCP`, and HTTP is
//!   what gray rules and draining between requests need. UDP is refused
//!   ([`check`]), as is a port another application or process already uses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use edas_proxy::{Backend, Group, Protocol, ProxyConfig, ServiceProxy, WarmUp};
use edas_runtime::{Routing, RuntimeError};
use edas_spec::model::Lossless;
use edas_spec::release::{self as spec};

use crate::{Inner, state};

/// How long a removed service port lets its requests in progress finish.
const REMOVED_PORT_GRACE: Duration = Duration::from_secs(5);

/// The proxies of one application.
#[derive(Default)]
struct AppRoutes {
    /// The revision whose instances are gray, while a split is in force.
    gray_revision: Option<String>,
    /// Service port → its proxy.
    proxies: BTreeMap<u16, ServiceProxy>,
    /// What the proxies tell of their requests, as metrics by revision.
    metrics: Option<Arc<crate::proxy_metrics::ProxyMetrics>>,
}

/// Every application's proxies.
#[derive(Default)]
pub(crate) struct Routes {
    /// Serializes `apply` (which awaits while binding) so two calls never race on a port.
    ops: tokio::sync::Mutex<()>,
    apps: Mutex<BTreeMap<String, AppRoutes>>,
    /// Applications whose routing file may exist: without one, and without proxies, an
    /// application with no Services has nothing to apply (no file to remove, no hop to the
    /// blocking pool): the common release of an application without Services.
    saved: Mutex<BTreeSet<String>>,
}

impl Routes {
    fn apps(&self) -> MutexGuard<'_, BTreeMap<String, AppRoutes>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn saved(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.saved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The application holding `port`, if any.
    pub(crate) fn owner(&self, port: u16) -> Option<String> {
        self.apps()
            .iter()
            .find(|(_, r)| r.proxies.contains_key(&port))
            .map(|(app, _)| app.clone())
    }

    /// Requests the application's proxies have answered from `revision`'s instances so far.
    pub(crate) fn answered(&self, app_id: &str, revision: &str) -> u64 {
        self.apps()
            .get(app_id)
            .and_then(|r| r.metrics.as_ref())
            .map_or(0, |m| m.requests_of(revision))
    }

    /// Every revision's request counters of the application's proxies (none before it has a
    /// Service).
    pub(crate) fn traffic(&self, app_id: &str) -> edas_runtime::TrafficCounters {
        self.apps()
            .get(app_id)
            .and_then(|r| r.metrics.as_ref())
            .map(|m| m.traffic())
            .unwrap_or_default()
    }

    /// The futures that resolve once no request is in flight to `address` on any proxy of
    /// `app_id` (each proxy stops sending it new requests at once).
    pub(crate) fn drain(
        &self,
        app_id: &str,
        address: SocketAddr,
    ) -> Vec<impl Future<Output = ()> + Send + use<>> {
        self.apps()
            .get(app_id)
            .map(|r| r.proxies.values().map(|p| p.drain(address)).collect())
            .unwrap_or_default()
    }

    /// Closes every service port at once (the runtime is going away).
    pub(crate) fn close_all(&self) {
        self.apps().clear();
    }

    /// Stops listening on every service port at once (a successor can bind them) and lets the
    /// requests in flight finish within `grace`.
    pub(crate) async fn shutdown_all(&self, grace: Duration) {
        let proxies: Vec<ServiceProxy> = std::mem::take(&mut *self.apps())
            .into_values()
            .flat_map(|r| r.proxies.into_values())
            .collect();
        join_all(proxies.into_iter().map(|p| p.shutdown(grace))).await;
    }

    /// The service ports of an application, for tests and diagnostics.
    pub(crate) fn ports(&self, app_id: &str) -> Vec<u16> {
        self.apps()
            .get(app_id)
            .map(|r| r.proxies.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// Runs the futures concurrently to completion.
async fn join_all<F: Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

/// `TrafficControlStrategy` as the proxy evaluates it (the same rules, in the proxy's types).
pub(crate) fn traffic_of(control: &spec::TrafficControl) -> edas_proxy::TrafficControl {
    use edas_proxy::{ConditionOperator, ConditionSource, TrafficCondition, TrafficRule};
    let condition = |c: &spec::TrafficCondition| TrafficCondition {
        source: match c.source {
            spec::ConditionSource::Header => ConditionSource::Header,
            spec::ConditionSource::Cookie => ConditionSource::Cookie,
            spec::ConditionSource::Param => ConditionSource::Param,
        },
        name: c.name.clone(),
        operator: match c.operator {
            spec::ConditionOperator::Equal => ConditionOperator::Equal,
            spec::ConditionOperator::Regex => ConditionOperator::Regex,
        },
        value: c.value.clone(),
    };
    edas_proxy::TrafficControl {
        rules: control
            .rules
            .iter()
            .map(|rule| match rule {
                spec::TrafficRule::Percent { percent } => {
                    TrafficRule::Percent { percent: *percent }
                }
                spec::TrafficRule::Content { conditions } => TrafficRule::Content {
                    conditions: conditions.iter().map(condition).collect(),
                },
            })
            .collect(),
    }
}

/// The application's lossless-start settings as the proxy's warm-up, or `None` when
/// `EnableLosslessRule` is off.
pub(crate) fn warmup_of(lossless: &Lossless) -> Option<WarmUp> {
    lossless.enabled.then(|| WarmUp {
        delay: Duration::from_secs(lossless.delay_seconds.into()),
        warmup: Duration::from_secs(lossless.warmup_seconds.into()),
        exponent: lossless.func_type,
    })
}

/// The address of the instance listening on `port`.
pub(crate) fn instance_address(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The service ports `routing` asks for, each with the name of its Service.
fn wanted_ports(routing: &Routing) -> Result<BTreeMap<u16, &str>, RuntimeError> {
    let mut out = BTreeMap::new();
    for service in &routing.services {
        for mapping in &service.port_mappings {
            let sp = &mapping.service_port;
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            if !protocol.eq_ignore_ascii_case("TCP") {
                return Err(RuntimeError::Unsupported(format!(
                    "ServicePorts: service `{}` port {}: protocol {protocol} is not supported on the local runtime; its service proxy forwards TCP (and HTTP over it) only",
                    service.name, sp.port
                )));
            }
            let port = u16::try_from(sp.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    RuntimeError::Unsupported(format!(
                        "ServicePorts: service `{}` port {} must be between 1 and 65535",
                        service.name, sp.port
                    ))
                })?;
            if let Some(other) = out.insert(port, service.name.as_str()) {
                return Err(RuntimeError::Unsupported(format!(
                    "ServicePorts: port {port} is used by both service `{other}` and service `{}`; on the local runtime every service port is one listening port on 127.0.0.1",
                    service.name
                )));
            }
        }
    }
    Ok(out)
}

/// What [`edas_runtime::Runtime::check_routing`] refuses: UDP, one port twice, gray rules that
/// cannot be compiled, and service ports that cannot be listened on (privileged ports, ports other
/// processes use). A port one of our proxies holds already is accepted (it may be this
/// application's own; a clash with another application is refused when it is applied).
pub(crate) fn check(routes: &Routes, routing: &Routing) -> Result<(), RuntimeError> {
    let ports = wanted_ports(routing)?;
    if let Some(gray) = &routing.gray {
        edas_proxy::check_traffic(&traffic_of(&gray.traffic))
            .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
    }
    for (port, service) in ports {
        if routes.owner(port).is_some() {
            continue;
        }
        if let Err(e) = std::net::TcpListener::bind(instance_address(port)) {
            return Err(RuntimeError::Unsupported(format!(
                "ServicePorts: service `{service}` port {port} cannot be listened on at 127.0.0.1 on the local runtime ({e}); choose another port (ports below 1024 need root)"
            )));
        }
    }
    Ok(())
}

/// Writes `routing` to `file` (in `dir`), or removes the file when there are no Services.
fn save_routing(dir: &Path, file: &Path, routing: &Routing) -> Result<(), RuntimeError> {
    if routing.services.is_empty() {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Unavailable(
                format!("cannot remove `{}`: {e}", file.display()),
            )),
            _ => Ok(()),
        }
    } else {
        std::fs::create_dir_all(dir)
            .and_then(|()| state::write_json(file, routing))
            .map_err(|e| {
                RuntimeError::Unavailable(format!("cannot write `{}`: {e}", file.display()))
            })
    }
}

impl Inner {
    fn routing_file(&self, app_id: &str) -> PathBuf {
        self.config
            .data_dir
            .join("routing")
            .join(format!("{app_id}.json"))
    }

    /// The routings saved by a previous runtime, by application.
    pub(crate) fn saved_routings(&self) -> Vec<(String, Routing)> {
        let dir = self.config.data_dir.join("routing");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let Some(app_id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|a| state::is_safe_segment(a))
            else {
                continue;
            };
            // Readable or not, the file is there: a routing without Services removes it.
            self.routes.saved().insert(app_id.to_owned());
            match state::read_json::<Routing>(&path) {
                Some(routing) => out.push((app_id.to_owned(), routing)),
                None => {
                    tracing::warn!(file = %path.display(), "unreadable routing file left alone")
                }
            }
        }
        out
    }

    /// Makes `app_id`'s proxies exactly what `routing` says (see the module docs). Idempotent.
    pub(crate) async fn apply_routing(
        self: &Arc<Self>,
        app_id: &str,
        routing: &Routing,
    ) -> Result<(), RuntimeError> {
        let wanted = wanted_ports(routing)?;
        if let Some(gray) = &routing.gray {
            edas_proxy::check_traffic(&traffic_of(&gray.traffic))
                .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
        }
        let _serial = self.routes.ops.lock().await;
        if routing.services.is_empty()
            && !self.routes.apps().contains_key(app_id)
            && !self.routes.saved().contains(app_id)
        {
            // No Services before or after, and no file: nothing to persist or apply.
            return Ok(());
        }
        for port in wanted.keys() {
            if let Some(other) = self.routes.owner(*port).filter(|o| o != app_id) {
                return Err(RuntimeError::Unsupported(format!(
                    "ServicePorts: port {port} is already a service port of application {other} on the local runtime"
                )));
            }
        }
        // Persist before acting, so a restarted runtime comes back with what was last asked.
        let file = self.routing_file(app_id);
        let dir = self.config.data_dir.join("routing");
        let saved = routing.clone();
        if !routing.services.is_empty() {
            // Before the write: a write that fails half-way may leave a file behind.
            self.routes.saved().insert(app_id.to_owned());
        }
        tokio::task::spawn_blocking(move || save_routing(&dir, &file, &saved))
            .await
            .map_err(|e| RuntimeError::Unavailable(format!("cannot save the routing: {e}")))??;
        if routing.services.is_empty() {
            self.routes.saved().remove(app_id);
        }

        // Ports no longer wanted stop listening at once; requests in progress may finish.
        let removed: Vec<ServiceProxy> = {
            let mut apps = self.routes.apps();
            let entry = apps.entry(app_id.to_owned()).or_default();
            let gone: Vec<u16> = entry
                .proxies
                .keys()
                .filter(|p| !wanted.contains_key(p))
                .copied()
                .collect();
            gone.iter()
                .filter_map(|p| entry.proxies.remove(p))
                .collect()
        };
        for proxy in removed {
            tracing::info!(app = %app_id, port = proxy.local_addr().port(), "service port removed");
            tokio::spawn(proxy.shutdown(REMOVED_PORT_GRACE));
        }

        let warmup = warmup_of(&routing.lossless);
        let missing: Vec<u16> = {
            let apps = self.routes.apps();
            let have = apps.get(app_id).map(|r| &r.proxies);
            wanted
                .keys()
                .filter(|p| have.is_none_or(|h| !h.contains_key(p)))
                .copied()
                .collect()
        };
        let mut bound = Vec::new();
        let mut bind_error = None;
        for port in missing {
            let config = ProxyConfig {
                protocol: Protocol::Auto,
                warmup,
                empty_push_reject: routing.empty_push_reject,
            };
            match ServiceProxy::bind(instance_address(port), config).await {
                Ok(proxy) => {
                    tracing::info!(app = %app_id, port, "service port listening");
                    bound.push((port, proxy));
                }
                Err(e) => {
                    bind_error = Some(RuntimeError::Unavailable(format!(
                        "ServicePorts: service `{}`: {e}",
                        wanted.get(&port).copied().unwrap_or_default()
                    )));
                    break;
                }
            }
        }

        let result = {
            let mut apps = self.routes.apps();
            let entry = apps.entry(app_id.to_owned()).or_default();
            let metrics = entry
                .metrics
                .get_or_insert_with(|| Arc::new(crate::proxy_metrics::ProxyMetrics::new(app_id)));
            for (_, proxy) in &bound {
                proxy.set_observer(metrics.clone());
            }
            entry.proxies.extend(bound);
            entry.gray_revision = routing.gray.as_ref().map(|g| g.gray_revision.clone());
            let traffic = routing.gray.as_ref().map(|g| traffic_of(&g.traffic));
            let mut result = Ok(());
            for proxy in entry.proxies.values() {
                proxy.set_warmup(warmup);
                proxy.set_empty_push_reject(routing.empty_push_reject);
                if let Err(e) = proxy.set_traffic(traffic.as_ref()) {
                    result = Err(RuntimeError::Unsupported(e.to_string()));
                }
            }
            if entry.proxies.is_empty() {
                apps.remove(app_id);
            }
            result
        };
        self.refresh_backends(app_id);
        // A port that changed hands changes where ingress paths lead.
        self.ingresses.reroute(|port| self.routes.owner(port));
        match bind_error {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Hands every proxy of `app_id` its current instances. Called on every instance state
    /// change; cheap when the application has no Services.
    pub(crate) fn refresh_backends(&self, app_id: &str) {
        let apps = self.routes.apps();
        let Some(routes) = apps.get(app_id) else {
            return;
        };
        let backends: Vec<Backend> = {
            let revisions = self.revisions();
            // Keyed by (application, revision): only this application's entries are visited.
            revisions
                .range((app_id.to_owned(), String::new())..)
                .take_while(|((app, _), _)| app == app_id)
                .flat_map(|((_, revision), entry)| {
                    let gray = routes.gray_revision.as_deref() == Some(revision.as_str());
                    entry.instances.iter().map(move |inst| {
                        let (ready, ready_since, stopping) = inst.traffic_state();
                        Backend {
                            address: instance_address(inst.port),
                            group: if gray { Group::Gray } else { Group::Stable },
                            ready,
                            ready_since,
                            draining: stopping,
                        }
                    })
                })
                .collect()
        };
        if let Some(metrics) = &routes.metrics {
            let revisions = self.revisions();
            metrics.set_revisions(
                revisions
                    .range((app_id.to_owned(), String::new())..)
                    .take_while(|((app, _), _)| app == app_id)
                    .flat_map(|((_, revision), entry)| {
                        let revision: Arc<str> = revision.as_str().into();
                        entry
                            .instances
                            .iter()
                            .map(move |inst| (instance_address(inst.port), revision.clone()))
                    })
                    .collect(),
            );
        }
        for proxy in routes.proxies.values() {
            proxy.update(backends.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edas_rules_and_lossless_settings_convert_to_the_proxys_types() {
        let condition = |source, operator, value: &str| spec::TrafficCondition {
            source,
            name: "n".into(),
            operator,
            value: value.into(),
        };
        let control = spec::TrafficControl {
            rules: vec![
                spec::TrafficRule::Content {
                    conditions: vec![
                        condition(
                            spec::ConditionSource::Header,
                            spec::ConditionOperator::Equal,
                            "1",
                        ),
                        condition(
                            spec::ConditionSource::Cookie,
                            spec::ConditionOperator::Regex,
                            "a.*",
                        ),
                        condition(
                            spec::ConditionSource::Param,
                            spec::ConditionOperator::Equal,
                            "p",
                        ),
                    ],
                },
                spec::TrafficRule::Percent { percent: 30 },
            ],
        };
        let proxy = |source, operator, value: &str| edas_proxy::TrafficCondition {
            source,
            name: "n".into(),
            operator,
            value: value.into(),
        };
        use edas_proxy::{ConditionOperator as O, ConditionSource as S};
        assert_eq!(
            traffic_of(&control),
            edas_proxy::TrafficControl {
                rules: vec![
                    edas_proxy::TrafficRule::Content {
                        conditions: vec![
                            proxy(S::Header, O::Equal, "1"),
                            proxy(S::Cookie, O::Regex, "a.*"),
                            proxy(S::Param, O::Equal, "p"),
                        ],
                    },
                    edas_proxy::TrafficRule::Percent { percent: 30 },
                ],
            }
        );

        let mut lossless = Lossless {
            delay_seconds: 5,
            warmup_seconds: 60,
            func_type: 3,
            ..Default::default()
        };
        assert_eq!(warmup_of(&lossless), None, "EnableLosslessRule off");
        lossless.enabled = true;
        assert_eq!(
            warmup_of(&lossless),
            Some(WarmUp {
                delay: Duration::from_secs(5),
                warmup: Duration::from_secs(60),
                exponent: 3,
            })
        );
    }
}
