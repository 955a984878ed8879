//! `/edasd/v1/applications/{app}/policy`: an application's release policy (issue 21), an
//! edasd extension so the EDAS API stays as EDAS has it. Authorized per application like the
//! EDAS operations: reading needs `edas:ReadApplication` on it, setting and deleting
//! `edas:ManageApplication` (administrators may do both).
//!
//! | Method and path | Body | Does |
//! |---|---|---|
//! | `GET …/policy` | | the current version and its document |
//! | `PUT …/policy` | the policy, YAML or JSON | validates it (every violation named by its field path) and stores version N+1 |
//! | `DELETE …/policy` | | stores a version without a policy: later releases are not judged |
//! | `GET …/policy/history` | | every version, newest first |

use axum::extract::Path;
use edas_app::{Actor, ReleasePolicyVersion};
use edas_wire::admin as wire;

use super::{Admin, Reply, no_body, ok};
use crate::apps::arn;
use crate::error::{ApiError, codes};
use crate::operations::ram;

fn version(v: &ReleasePolicyVersion) -> wire::ReleasePolicy {
    wire::ReleasePolicy {
        app_id: v.app_id.clone(),
        version: v.version,
        document: v.policy.clone().unwrap_or(serde_json::Value::Null),
        create_time: v.created_at.as_millisecond(),
        creator: v.created_by.clone(),
    }
}

/// The live application `app_id`, once the caller may do `action` on it.
async fn authorized(admin: &Admin, app_id: &str, action: &str) -> Result<(), ApiError> {
    let app = admin.app().application(app_id).await?;
    admin.caller.authorize(action, &arn(&admin.api, &app))
}

fn actor(admin: &Admin) -> Actor {
    crate::apps::actor(&admin.caller, &admin.request_id)
}

pub(super) async fn get(admin: Admin, Path(app_id): Path<String>) -> Reply {
    no_body(&admin.body)?;
    authorized(&admin, &app_id, ram::READ_APPLICATION).await?;
    let Some(current) = admin
        .app()
        .release_policy(&app_id)
        .await
        .map_err(ApiError::from)?
    else {
        return Err(ApiError::new(
            codes::ENTITY_NOT_FOUND,
            format!("the application `{app_id}` has no release policy"),
        )
        .into());
    };
    ok(wire::ReleasePolicyBody {
        release_policy: version(&current),
    })
}

pub(super) async fn history(admin: Admin, Path(app_id): Path<String>) -> Reply {
    no_body(&admin.body)?;
    authorized(&admin, &app_id, ram::READ_APPLICATION).await?;
    let versions = admin
        .app()
        .release_policy_history(&app_id)
        .await
        .map_err(ApiError::from)?;
    ok(wire::ReleasePolicyHistoryBody {
        versions: versions.iter().map(version).collect(),
    })
}

pub(super) async fn put(admin: Admin, Path(app_id): Path<String>) -> Reply {
    authorized(&admin, &app_id, ram::MANAGE_APPLICATION).await?;
    let text = std::str::from_utf8(&admin.body).map_err(|_| {
        ApiError::new(
            codes::INVALID_PARAMETER,
            "the release policy must be UTF-8 text (YAML or JSON)",
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            codes::MISSING_PARAMETER,
            "the request body must hold the release policy (YAML or JSON)",
        )
        .into());
    }
    let stored = admin
        .app()
        .set_release_policy(&app_id, text, &actor(&admin), jiff::Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    ok(wire::ReleasePolicyBody {
        release_policy: version(&stored),
    })
}

pub(super) async fn delete(admin: Admin, Path(app_id): Path<String>) -> Reply {
    no_body(&admin.body)?;
    authorized(&admin, &app_id, ram::MANAGE_APPLICATION).await?;
    let stored = admin
        .app()
        .delete_release_policy(&app_id, &actor(&admin), jiff::Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    ok(wire::ReleasePolicyBody {
        release_policy: version(&stored),
    })
}
