//! Ingress rules (CreateK8sIngressRule and the rest): validated (every violation at once, named
//! by its `IngressConf` path), their backends resolved to the application whose current revision
//! has that Service and port in the rule's cluster and namespace, checked against the cluster's
//! runtime (`check_ingress`, no side effect), stored with their audit record in one transaction,
//! and then handed to the runtime; a refused rule changes nothing.
//!
//! The store goes first, as for scaling rules: a rule the runtime cannot route (the `local`
//! runtime without an ingress listener, TLS there, a cluster known not to answer) is refused
//! before anything is stored. An apply that fails after storing because the cluster stopped
//! answering answers success and is made good in the background
//! ([`App::reassert_ingress_later`]: waits for the cluster, applies what the store then says);
//! one the cluster refuses outright (a Kubernetes Ingress of that name that edasd did not
//! create) undoes the stored change and refuses the request. A delete is stored first and the
//! object removed after, the same way. edasd applies every stored rule again when it starts
//! ([`App::restore_ingress_rules`]), so a runtime that keeps its routing in memory (the local
//! listener) routes them again after a restart, and a rule stored just before a crash reaches
//! the cluster.
//!
//! A path keeps routing to its Service when the application is deleted or drops the Service;
//! ListK8sIngressRules then reports its `Status` (`ServiceNotFound`, `InvalidServicePort`), as
//! EDAS does, and the Ingress answers 503 for it.

use std::collections::BTreeMap;

use edas_runtime::{IngressSpec, RuntimeError};
use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{
    Application, ApplicationFilter, AuditEntry, IngressRule, PageRequest, StoreError,
};
use serde_json::json;

use crate::{Actor, App, AppError};

/// How long a background apply keeps trying a cluster that answers but fails.
const REASSERT_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(120);

/// What CreateK8sIngressRule or UpdateK8sIngressRule asks: the rule's place and its routing
/// (backends named by Service; the application is found here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRequest {
    pub cluster_id: String,
    pub namespace: String,
    pub name: String,
    pub spec: IngressSpec,
}

/// How a stored path's backend stands now (ListK8sIngressRules' `Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendStatus {
    Normal,
    ServiceNotFound,
    InvalidServicePort,
}

impl BackendStatus {
    /// EDAS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendStatus::Normal => "Normal",
            BackendStatus::ServiceNotFound => "ServiceNotFound",
            BackendStatus::InvalidServicePort => "InvalidServicePort",
        }
    }
}

fn invalid(parameter: String, message: String) -> Violation {
    Violation {
        parameter,
        kind: ViolationKind::Invalid,
        message,
    }
}

fn not_found(at: &IngressRequest) -> AppError {
    AppError::EntityNotFound(format!(
        "namespace `{}` of cluster `{}` has no ingress rule `{}`",
        at.namespace, at.cluster_id, at.name
    ))
}

/// The ports of Service `service` in `app`'s current revision, if it has that Service.
fn service_ports(app: &Application, service: &str) -> Option<Vec<i64>> {
    app.spec
        .spec
        .services
        .iter()
        .find(|s| s.name == service)
        .map(|s| {
            s.port_mappings
                .iter()
                .map(|m| m.service_port.port)
                .collect()
        })
}

/// Whether `name` is an ingress rule name EDAS admits: a lowercase letter, then lowercase
/// letters, digits and hyphens, not ending with a hyphen, at most 63.
fn valid_name(name: &str) -> bool {
    edas_spec::k8s::is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

impl App {
    /// The live applications of `namespace` in cluster `cluster_id`.
    async fn namespace_applications(
        &self,
        cluster_id: &str,
        namespace: &str,
    ) -> Result<Vec<Application>, AppError> {
        let filter = ApplicationFilter {
            namespace_id: None,
            cluster_id: Some(cluster_id.to_owned()),
        };
        let mut out = Vec::new();
        for number in 1.. {
            let page = self
                .store
                .list_applications(&filter, PageRequest::new(number, PageRequest::MAX_SIZE))
                .await
                .map_err(|e| AppError::internal("listing the applications", e))?;
            let last = page.items.len() < PageRequest::MAX_SIZE as usize;
            out.extend(
                page.items
                    .into_iter()
                    .filter(|a| a.k8s_namespace == namespace),
            );
            if last {
                break;
            }
        }
        Ok(out)
    }

    /// Checks `request` (every violation at once) and finds each backend's application: the
    /// one in the rule's cluster and namespace whose current revision has the Service and port.
    /// The rule with its backends resolved, and those applications (for the caller's rights).
    pub async fn resolve_ingress_rule(
        &self,
        request: &IngressRequest,
    ) -> Result<(IngressSpec, Vec<Application>), AppError> {
        let mut violations = Vec::new();
        if !valid_name(&request.name) {
            violations.push(invalid(
                "Name".into(),
                format!(
                    "`{}` is not an ingress name: at most 63 lowercase letters, digits and hyphens, a letter first, not ending with a hyphen",
                    request.name
                ),
            ));
        }
        if !edas_spec::k8s::is_dns_label(&request.namespace) {
            violations.push(invalid(
                "Namespace".into(),
                format!("`{}` is not a Kubernetes namespace name", request.namespace),
            ));
        }
        violations.extend(edas_spec::ingress::violations(&request.spec));
        if !violations.is_empty() {
            return Err(AppError::Invalid(Violations(violations)));
        }
        let apps = self
            .namespace_applications(&request.cluster_id, &request.namespace)
            .await?;
        let mut spec = request.spec.clone();
        let mut used: BTreeMap<String, Application> = BTreeMap::new();
        for (i, rule) in spec.rules.iter_mut().enumerate() {
            for (j, path) in rule.paths.iter_mut().enumerate() {
                let backend = &mut path.backend;
                let p = format!("IngressConf.rules[{i}].paths[{j}].backend");
                let owners: Vec<&Application> = apps
                    .iter()
                    .filter(|a| service_ports(a, &backend.service_name).is_some())
                    .collect();
                match owners.as_slice() {
                    [] => violations.push(invalid(
                        format!("{p}.serviceName"),
                        format!(
                            "no application in namespace `{}` of cluster `{}` has a Service `{}`",
                            request.namespace, request.cluster_id, backend.service_name
                        ),
                    )),
                    [app] => {
                        let ports = service_ports(app, &backend.service_name).unwrap_or_default();
                        if ports.contains(&i64::from(backend.service_port)) {
                            backend.app_id = app.id.clone();
                            backend.app_name = app.name.clone();
                            used.insert(app.id.clone(), (*app).clone());
                        } else {
                            violations.push(invalid(
                                format!("{p}.servicePort"),
                                format!(
                                    "Service `{}` of application `{}` has no port {} (it has: {})",
                                    backend.service_name,
                                    app.id,
                                    backend.service_port,
                                    ports
                                        .iter()
                                        .map(i64::to_string)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                    several => violations.push(invalid(
                        format!("{p}.serviceName"),
                        format!(
                            "Service `{}` is named by applications {} in namespace `{}`: rename one so a path names one application",
                            backend.service_name,
                            several
                                .iter()
                                .map(|a| format!("`{}`", a.id))
                                .collect::<Vec<_>>()
                                .join(", "),
                            request.namespace
                        ),
                    )),
                }
            }
        }
        // A (host, path) one rule of the cluster routes already cannot be routed by another.
        let others = self
            .ingress_rules(Some(&request.cluster_id), None)
            .await?
            .into_iter()
            .filter(|r| !(r.namespace == request.namespace && r.name == request.name))
            .collect::<Vec<_>>();
        for (p, host, path) in spec.routes() {
            if let Some(other) = others.iter().find(|r| {
                r.spec.routes().any(|(_, h, q)| {
                    h == host && q.trim_end_matches('/') == path.trim_end_matches('/')
                })
            }) {
                violations.push(invalid(
                    p,
                    format!(
                        "host `{host}` path `{path}` is routed by ingress rule `{}` of namespace `{}` already",
                        other.name, other.namespace
                    ),
                ));
            }
        }
        if !violations.is_empty() {
            return Err(AppError::Invalid(Violations(violations)));
        }
        Ok((spec, used.into_values().collect()))
    }

    /// The ingress rules of cluster `cluster_id` (all clusters' when `None`), of `namespace`
    /// only when given.
    pub async fn ingress_rules(
        &self,
        cluster_id: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<IngressRule>, AppError> {
        self.store
            .ingress_rules(cluster_id, namespace)
            .await
            .map_err(|e| AppError::internal("reading the ingress rules", e))
    }

    /// How each path of `rule` stands now, in the order of its rules and paths.
    pub async fn ingress_backend_status(
        &self,
        rule: &IngressRule,
    ) -> Result<Vec<BackendStatus>, AppError> {
        let apps = self
            .namespace_applications(&rule.cluster_id, &rule.namespace)
            .await?;
        Ok(rule
            .spec
            .backends()
            .map(|(_, b)| {
                match apps
                    .iter()
                    .find(|a| a.id == b.app_id)
                    .and_then(|a| service_ports(a, &b.service_name))
                {
                    None => BackendStatus::ServiceNotFound,
                    Some(ports) if ports.contains(&i64::from(b.service_port)) => {
                        BackendStatus::Normal
                    }
                    Some(_) => BackendStatus::InvalidServicePort,
                }
            })
            .collect())
    }

    /// Whether cluster `cluster_id` can route `spec` (no side effect): a runtime that cannot
    /// route it refuses the request naming the parameter, and a cluster known not to answer
    /// refuses it at once (as enabling a scaling rule does). Nothing is stored before this passes.
    fn check_ingress(&self, cluster_id: &str, spec: &IngressSpec) -> Result<(), AppError> {
        let Some(runtime) = self.engine.runtimes().get(cluster_id) else {
            return Err(AppError::invalid(
                "ClusterId",
                format!("no runtime serves cluster `{cluster_id}`"),
            ));
        };
        runtime.check_ingress(spec).map_err(|e| {
            let message = e.to_string();
            // A refusal of one part names its `IngressConf` path; of the cluster, ClusterId.
            let parameter = message
                .split_once(": ")
                .map(|(p, _)| p)
                .filter(|p| p.starts_with("IngressConf."))
                .unwrap_or("ClusterId")
                .to_owned();
            AppError::Invalid(Violations(vec![Violation {
                parameter,
                kind: ViolationKind::NotSupported,
                message: format!(
                    "cluster `{cluster_id}` cannot route this ingress rule: {message}"
                ),
            }]))
        })?;
        runtime.availability().map_err(|e| {
            AppError::Unavailable(format!(
                "cluster `{cluster_id}` cannot take an ingress rule now: {e}"
            ))
        })
    }

    /// Hands rule `name` of `namespace` to cluster `cluster_id`'s runtime as the store says it
    /// is (`spec`; `None`: removes it). Called after the store changed.
    async fn apply_ingress(
        &self,
        cluster_id: &str,
        namespace: &str,
        name: &str,
        spec: Option<&IngressSpec>,
    ) -> Result<(), RuntimeError> {
        let Some(runtime) = self.engine.runtimes().get(cluster_id) else {
            return Ok(());
        };
        runtime.availability()?;
        runtime.set_ingress(namespace, name, spec).await
    }

    /// Makes rule `name` of `namespace` in cluster `cluster_id` what the store says in the
    /// background: a cluster that does not answer is waited for
    /// ([`edas_runtime::Runtime::wait_available`]), one that answers but fails is tried again
    /// with bounded back-off (200 ms doubling to 5 s, for two minutes). Each attempt reads the
    /// store again, so the newest state wins (a rule deleted meanwhile is removed). Idempotent.
    pub fn reassert_ingress_later(&self, cluster_id: &str, namespace: &str, name: &str) {
        let Some(runtime) = self.engine.runtimes().get(cluster_id).cloned() else {
            return;
        };
        let store = self.store.clone();
        let (cluster_id, namespace, name) =
            (cluster_id.to_owned(), namespace.to_owned(), name.to_owned());
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(200);
            let mut started = tokio::time::Instant::now();
            loop {
                if runtime.availability().is_err() {
                    runtime.wait_available().await;
                    (delay, started) = (
                        std::time::Duration::from_millis(200),
                        tokio::time::Instant::now(),
                    );
                }
                let outcome = match store
                    .ingress_rules(Some(&cluster_id), Some(&namespace))
                    .await
                {
                    Ok(rules) => {
                        let wanted = rules.into_iter().find(|r| r.name == name).map(|r| r.spec);
                        runtime
                            .set_ingress(&namespace, &name, wanted.as_ref())
                            .await
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => return,
                    Err(error) if started.elapsed() < REASSERT_GIVE_UP => {
                        tracing::info!(message = "Applying the stored ingress rule failed; retrying.", cluster = %cluster_id, %namespace, rule = %name, %error);
                    }
                    Err(error) => {
                        tracing::warn!(message = "Applying the stored ingress rule failed; it is applied again at start-up.", cluster = %cluster_id, %namespace, rule = %name, %error);
                        return;
                    }
                }
                if runtime.availability().is_ok() {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        });
    }

    /// Creates (`create`) or replaces rule `request.name` with the audit record of `action`:
    /// checked and resolved, stored, then handed to the runtime. The rule as stored.
    pub async fn put_ingress_rule(
        &self,
        request: &IngressRequest,
        create: bool,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<IngressRule, AppError> {
        let (spec, apps) = self.resolve_ingress_rule(request).await?;
        let previous = self
            .ingress_rules(Some(&request.cluster_id), Some(&request.namespace))
            .await?
            .into_iter()
            .find(|r| r.name == request.name);
        let exists = previous.is_some();
        if create && exists {
            return Err(AppError::AlreadyExists(format!(
                "namespace `{}` of cluster `{}` has an ingress rule `{}` already",
                request.namespace, request.cluster_id, request.name
            )));
        }
        if !create && !exists {
            return Err(not_found(request));
        }
        self.check_ingress(&request.cluster_id, &spec)?;
        let rule = IngressRule {
            cluster_id: request.cluster_id.clone(),
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            spec,
            created_at: now,
            updated_at: now,
        };
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: action.to_owned(),
            resource: format!(
                "ingress/{}/{}/{}",
                request.cluster_id, request.namespace, request.name
            ),
            app_id: None,
            request_id: Some(actor.request_id.clone()),
            detail: json!({
                "applications": apps.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
                "routes": rule.spec.routes().map(|(_, h, p)| format!("{h}{p}")).collect::<Vec<_>>(),
            }),
        };
        let stored = self
            .store
            .put_ingress_rule(&rule, create, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => AppError::AlreadyExists(format!(
                    "namespace `{}` of cluster `{}` has an ingress rule `{}` already",
                    request.namespace, request.cluster_id, request.name
                )),
                StoreError::NotFound { .. } => not_found(request),
                e => AppError::internal("storing the ingress rule", e),
            })?;
        match self
            .apply_ingress(
                &stored.cluster_id,
                &stored.namespace,
                &stored.name,
                Some(&stored.spec),
            )
            .await
        {
            Ok(()) => Ok(stored),
            // Stored: the cluster takes it when it answers again (success, pending).
            Err(error @ RuntimeError::Unavailable(_)) => {
                tracing::warn!(message = "The cluster did not take the stored ingress rule; it is applied again in the background (when the cluster answers again) and at start-up.", cluster = %stored.cluster_id, namespace = %stored.namespace, rule = %stored.name, %error);
                self.reassert_ingress_later(&stored.cluster_id, &stored.namespace, &stored.name);
                Ok(stored)
            }
            // The cluster refuses the rule (an Ingress of that name edasd did not create):
            // the stored change is undone, audited, and the request refused.
            Err(error) => {
                let message = format!(
                    "cluster `{}` did not take ingress rule `{}/{}`: {error}",
                    stored.cluster_id, stored.namespace, stored.name
                );
                let undo = AuditEntry {
                    action: format!("{action} (undone: {error})"),
                    ..entry
                };
                let undone = match previous {
                    Some(previous) => self
                        .store
                        .put_ingress_rule(&previous, false, &undo, now)
                        .await
                        .map(|_| ()),
                    None => {
                        self.store
                            .delete_ingress_rule(
                                &stored.cluster_id,
                                &stored.namespace,
                                &stored.name,
                                &undo,
                                now,
                            )
                            .await
                    }
                };
                if let Err(e) = undone {
                    tracing::warn!(message = "Undoing a refused ingress rule failed.", cluster = %stored.cluster_id, namespace = %stored.namespace, rule = %stored.name, error = %e);
                }
                self.reassert_ingress_later(&stored.cluster_id, &stored.namespace, &stored.name);
                Err(AppError::Runtime(message))
            }
        }
    }

    /// Deletes rule `name` of `namespace` in `cluster_id`: from the store with its audit
    /// record, then from the runtime (in the background when the cluster does not answer).
    pub async fn delete_ingress_rule(
        &self,
        cluster_id: &str,
        namespace: &str,
        name: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        let at = IngressRequest {
            cluster_id: cluster_id.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            spec: IngressSpec::default(),
        };
        if !self
            .ingress_rules(Some(cluster_id), Some(namespace))
            .await?
            .iter()
            .any(|r| r.name == name)
        {
            return Err(not_found(&at));
        }
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: "DeleteK8sIngressRule".to_owned(),
            resource: format!("ingress/{cluster_id}/{namespace}/{name}"),
            app_id: None,
            request_id: Some(actor.request_id.clone()),
            detail: json!({}),
        };
        self.store
            .delete_ingress_rule(cluster_id, namespace, name, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => not_found(&at),
                e => AppError::internal("deleting the ingress rule", e),
            })?;
        if let Err(error) = self.apply_ingress(cluster_id, namespace, name, None).await {
            tracing::warn!(message = "The cluster did not remove the deleted ingress rule; it is removed in the background (when the cluster answers again).", cluster = %cluster_id, %namespace, rule = %name, %error);
            self.reassert_ingress_later(cluster_id, namespace, name);
        }
        Ok(())
    }

    /// Hands every stored ingress rule to its cluster's runtime again (edasd's start: the local
    /// listener keeps its table in memory; on Kubernetes the apply is idempotent, and a rule
    /// stored before a crash that kept it from the cluster is applied now). A rule that cannot
    /// be applied now is applied in the background, once its cluster answers. How many were
    /// applied now.
    pub async fn restore_ingress_rules(&self) -> Result<usize, AppError> {
        let rules = self.ingress_rules(None, None).await?;
        let mut applied = 0;
        for rule in &rules {
            match self
                .apply_ingress(
                    &rule.cluster_id,
                    &rule.namespace,
                    &rule.name,
                    Some(&rule.spec),
                )
                .await
            {
                Ok(()) => applied += 1,
                Err(error) => {
                    tracing::warn!(message = "A stored ingress rule cannot be applied now; it is applied in the background.", cluster = %rule.cluster_id, namespace = %rule.namespace, rule = %rule.name, %error);
                    self.reassert_ingress_later(&rule.cluster_id, &rule.namespace, &rule.name);
                }
            }
        }
        Ok(applied)
    }
}
