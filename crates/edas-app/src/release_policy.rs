//! Release policies (issue 21, an edasd extension): an application's checks that judge its
//! releases. Validated by edas-analysis (every violation named by its field path, e.g.
//! `checks[1].successCondition`) before anything is stored; versioned and audited by the
//! store; the engine attaches the current version to each change order it creates.

use edas_analysis::ReleasePolicy;
use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{AuditEntry, ReleasePolicyVersion};
use serde_json::json;

use crate::{Actor, App, AppError};

fn store_error(what: &str, app_id: &str, e: edas_store::StoreError) -> AppError {
    match e {
        edas_store::StoreError::NotFound {
            entity: "application",
            ..
        } => AppError::no_application(app_id),
        edas_store::StoreError::NotFound { .. } => {
            AppError::EntityNotFound(format!("the application `{app_id}` has no release policy"))
        }
        edas_store::StoreError::Conflict { reason, .. } => AppError::Conflict(format!(
            "the release policy of `{app_id}` {reason}; try again"
        )),
        other => AppError::internal(what, other),
    }
}

impl App {
    /// The current release policy of application `app_id`, `None` when it has none.
    pub async fn release_policy(
        &self,
        app_id: &str,
    ) -> Result<Option<ReleasePolicyVersion>, AppError> {
        self.store
            .release_policy(app_id)
            .await
            .map_err(|e| store_error("reading the release policy", app_id, e))
    }

    /// Every version of application `app_id`'s release policy, newest first.
    pub async fn release_policy_history(
        &self,
        app_id: &str,
    ) -> Result<Vec<ReleasePolicyVersion>, AppError> {
        self.store
            .release_policy_history(app_id)
            .await
            .map_err(|e| store_error("reading the release policy history", app_id, e))
    }

    /// Validates `text` (YAML or JSON) and stores it as the next version of application
    /// `app_id`'s release policy, audited. Every violation is answered at once, each named
    /// by its field path; nothing is stored unless the whole policy is valid.
    pub async fn set_release_policy(
        &self,
        app_id: &str,
        text: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<ReleasePolicyVersion, AppError> {
        let policy = ReleasePolicy::from_text(text).map_err(|e| {
            AppError::Invalid(Violations(
                e.0.into_iter()
                    .map(|v| Violation {
                        parameter: v.path,
                        kind: ViolationKind::Invalid,
                        message: v.message,
                    })
                    .collect(),
            ))
        })?;
        // Only `local` counts requests per revision (its own proxy); elsewhere such a check
        // could never measure, so it is refused now rather than failing a release later.
        let app = self
            .store
            .get_application(app_id)
            .await
            .map_err(|e| store_error("reading the application", app_id, e))?;
        if app.deleted {
            return Err(AppError::no_application(app_id));
        }
        if app.cluster_id != crate::local::LOCAL_CLUSTER {
            let unmeasurable: Vec<Violation> = policy
                .checks
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c.provider, edas_analysis::policy::Provider::Traffic { .. }))
                .map(|(i, _)| Violation {
                    parameter: format!("checks[{i}].provider.traffic"),
                    kind: ViolationKind::Invalid,
                    message: format!(
                        "the built-in traffic provider measures the local proxy only; on cluster `{}` use a prometheus check",
                        app.cluster_id
                    ),
                })
                .collect();
            if !unmeasurable.is_empty() {
                return Err(AppError::Invalid(Violations(unmeasurable)));
            }
        }
        if self.engine.analysis_settings().prometheus.is_none() {
            let missing: Vec<Violation> = policy
                .checks
                .iter()
                .enumerate()
                .filter(|(_, c)| c.needs_default_prometheus())
                .map(|(i, _)| Violation {
                    parameter: format!("checks[{i}].provider.prometheus.address"),
                    kind: ViolationKind::Invalid,
                    message: "edasd has no Prometheus server configured ([analysis] prometheus); give the check its own address".to_owned(),
                })
                .collect();
            if !missing.is_empty() {
                return Err(AppError::Invalid(Violations(missing)));
            }
        }
        let doc = serde_json::to_value(&policy)
            .map_err(|e| AppError::internal("encoding the release policy", e))?;
        let checks: Vec<&str> = policy.checks.iter().map(|c| c.name.as_str()).collect();
        let entry = audit(
            app_id,
            "ReleasePolicy.Set",
            actor,
            json!({ "checks": checks }),
        );
        self.store
            .put_release_policy(app_id, Some(&doc), &actor.name, &entry, now)
            .await
            .map_err(|e| store_error("storing the release policy", app_id, e))
    }

    /// Deletes application `app_id`'s release policy (a new version that has none), audited;
    /// later change orders are not judged. `EntityNotFound` when it has none.
    pub async fn delete_release_policy(
        &self,
        app_id: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<ReleasePolicyVersion, AppError> {
        let entry = audit(app_id, "ReleasePolicy.Delete", actor, json!({}));
        self.store
            .put_release_policy(app_id, None, &actor.name, &entry, now)
            .await
            .map_err(|e| store_error("deleting the release policy", app_id, e))
    }
}

fn audit(app_id: &str, action: &str, actor: &Actor, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        actor: actor.name.clone(),
        action: action.to_owned(),
        resource: format!("application/{app_id}"),
        app_id: Some(app_id.to_owned()),
        request_id: Some(actor.request_id.clone()),
        detail,
    }
}
