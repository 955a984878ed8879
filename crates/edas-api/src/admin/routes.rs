//! The admin API's route handlers, one per method and path (the table in [`super`]). Each gets
//! an [`Admin`] (caller, RequestId, body) that [`super::handle`] has already authenticated and
//! checked, and the path's names as sent (percent-escapes are not decoded).

use axum::extract::Path;
use edas_app::{AccessKey, AccountError, Policy, Sensitive, User};
use edas_wire::admin::{self as wire, AccessKeyUpdate, NewAccessKey, NewUser, PolicyPut};
use serde_json::{Value, json};

use super::{
    Admin, Reply, account_error, body_json, check_name, done, generate_access_key, key, no_body,
    not_self, now, ok, policy, removed, user, valid_name,
};
use crate::caller::internal;
use crate::error::{ApiError, codes};
use crate::policy::PolicyDocument;

/// `GET /edasd/v1/audit`: open to every signed user; the handler authorizes per application.
pub(super) async fn audit(admin: Admin) -> Reply {
    no_body(&admin.body)?;
    let params =
        edas_spec::Params::from_pairs(admin.query.iter().cloned()).map_err(ApiError::from)?;
    ok(crate::audit::list(&admin.api, &admin.caller, &params).await?)
}

pub(super) async fn list_users(admin: Admin) -> Reply {
    no_body(&admin.body)?;
    let users = admin
        .app()
        .list_users()
        .await
        .map_err(|e| internal("listing users", e))?;
    ok(wire::UsersBody {
        users: users.iter().map(user).collect(),
    })
}

pub(super) async fn create_user(admin: Admin) -> Reply {
    let new: NewUser = body_json(&admin.body)?;
    check_name("user", &new.name)?;
    let app = admin.app();
    match app.get_user(&new.name).await {
        Ok(_) => {
            return Err(ApiError::new(
                codes::ENTITY_ALREADY_EXISTS,
                format!("the user `{}` already exists", new.name),
            )
            .into());
        }
        Err(AccountError::NotFound { .. }) => {}
        Err(e) => return Err(internal("reading the user", e).into()),
    }
    let created = User {
        name: new.name.clone(),
        admin: new.admin,
        created_at: now(),
    };
    app.put_user(
        &created,
        admin.audited(
            "CreateUser",
            format!("user/{}", new.name),
            json!({"Admin": new.admin}),
        ),
    )
    .await
    .map_err(|e| account_error("user", &new.name, e))?;
    ok(wire::UserBody {
        user: user(&created),
    })
}

pub(super) async fn delete_user(admin: Admin, Path(name): Path<String>) -> Reply {
    no_body(&admin.body)?;
    not_self(
        &admin.caller,
        "delete the user",
        name == admin.caller.user.name,
    )?;
    let deleted = admin
        .app()
        .delete_user(
            &name,
            admin.audited("DeleteUser", format!("user/{name}"), Value::Null),
        )
        .await
        .map_err(|e| account_error("user", &name, e))?;
    removed(deleted, "user", &name)
}

pub(super) async fn list_keys(admin: Admin, Path(name): Path<String>) -> Reply {
    no_body(&admin.body)?;
    let app = admin.app();
    app.get_user(&name)
        .await
        .map_err(|e| account_error("user", &name, e))?;
    let keys = app
        .list_access_keys(&name)
        .await
        .map_err(|e| account_error("user", &name, e))?;
    ok(wire::AccessKeysBody {
        access_keys: keys.iter().map(key).collect(),
    })
}

pub(super) async fn create_key(admin: Admin, Path(name): Path<String>) -> Reply {
    let new: NewAccessKey = if admin.body.is_empty() {
        NewAccessKey::default()
    } else {
        body_json(&admin.body)?
    };
    let (id, secret) = match (new.access_key_id, new.access_key_secret) {
        (None, None) => generate_access_key(),
        (Some(id), Some(secret)) => {
            if !valid_name(&id) || secret.len() < 16 || secret.chars().any(char::is_whitespace) {
                return Err(ApiError::new(
                    codes::INVALID_PARAMETER,
                    "AccessKeyId must be 1-64 letters, digits, `.`, `_`, `-` or `@`; AccessKeySecret at least 16 characters without whitespace",
                )
                .into());
            }
            (id, secret)
        }
        _ => {
            return Err(ApiError::new(
                codes::INVALID_PARAMETER,
                "give both AccessKeyId and AccessKeySecret, or neither to have them generated",
            )
            .into());
        }
    };
    let created = AccessKey {
        id: id.clone(),
        secret: Sensitive::new(secret.clone()),
        user: name.clone(),
        enabled: true,
        created_at: now(),
    };
    admin
        .app()
        .create_access_key(
            &created,
            admin.audited(
                "CreateAccessKey",
                format!("access_key/{id}"),
                json!({"User": name}),
            ),
        )
        .await
        .map_err(|e| account_error("access key", &id, e))?;
    ok(wire::CreatedKeyBody {
        access_key: wire::CreatedKey {
            access_key_id: id,
            access_key_secret: secret,
            user: name,
            enabled: true,
        },
    })
}

pub(super) async fn set_key(admin: Admin, Path(id): Path<String>) -> Reply {
    let update: AccessKeyUpdate = body_json(&admin.body)?;
    not_self(
        &admin.caller,
        "disable the access key",
        !update.enabled && id == admin.caller.access_key_id,
    )?;
    let action = if update.enabled {
        "EnableAccessKey"
    } else {
        "DisableAccessKey"
    };
    admin
        .app()
        .set_access_key_enabled(
            &id,
            update.enabled,
            admin.audited(action, format!("access_key/{id}"), Value::Null),
        )
        .await
        .map_err(|e| account_error("access key", &id, e))?;
    done()
}

pub(super) async fn delete_key(admin: Admin, Path(id): Path<String>) -> Reply {
    no_body(&admin.body)?;
    not_self(
        &admin.caller,
        "delete the access key",
        id == admin.caller.access_key_id,
    )?;
    let deleted = admin
        .app()
        .delete_access_key(
            &id,
            admin.audited("DeleteAccessKey", format!("access_key/{id}"), Value::Null),
        )
        .await
        .map_err(|e| account_error("access key", &id, e))?;
    removed(deleted, "access key", &id)
}

pub(super) async fn list_policies(admin: Admin) -> Reply {
    no_body(&admin.body)?;
    let policies = admin
        .app()
        .list_policies()
        .await
        .map_err(|e| internal("listing policies", e))?;
    ok(wire::PoliciesBody {
        policies: policies.iter().map(policy).collect(),
    })
}

pub(super) async fn put_policy(admin: Admin, Path(name): Path<String>) -> Reply {
    check_name("policy", &name)?;
    let put: PolicyPut = body_json(&admin.body)?;
    PolicyDocument::from_value(&put.document)
        .map_err(|e| ApiError::new(codes::INVALID_PARAMETER, format!("Document: {e}")))?;
    let stored = Policy {
        name: name.clone(),
        document: put.document,
        created_at: now(),
        updated_at: now(),
    };
    admin
        .app()
        .put_policy(
            &stored,
            admin.audited(
                "PutPolicy",
                format!("policy/{name}"),
                json!({"Document": stored.document}),
            ),
        )
        .await
        .map_err(|e| account_error("policy", &name, e))?;
    ok(wire::PolicyBody {
        policy: policy(&stored),
    })
}

pub(super) async fn delete_policy(admin: Admin, Path(name): Path<String>) -> Reply {
    no_body(&admin.body)?;
    let deleted = admin
        .app()
        .delete_policy(
            &name,
            admin.audited("DeletePolicy", format!("policy/{name}"), Value::Null),
        )
        .await
        .map_err(|e| account_error("policy", &name, e))?;
    removed(deleted, "policy", &name)
}

pub(super) async fn user_policies(admin: Admin, Path(name): Path<String>) -> Reply {
    no_body(&admin.body)?;
    let app = admin.app();
    app.get_user(&name)
        .await
        .map_err(|e| account_error("user", &name, e))?;
    let policies = app.user_policies(&name).await.map_err(ApiError::from)?;
    ok(wire::PoliciesBody {
        policies: policies.iter().map(policy).collect(),
    })
}

pub(super) async fn attach_policy(
    admin: Admin,
    Path((name, policy)): Path<(String, String)>,
) -> Reply {
    no_body(&admin.body)?;
    admin
        .app()
        .attach_policy(
            &name,
            &policy,
            admin.audited(
                "AttachPolicy",
                format!("user/{name}"),
                json!({"Policy": policy}),
            ),
        )
        .await
        .map_err(|e| account_error("user or policy", &format!("{name}/{policy}"), e))?;
    done()
}

pub(super) async fn detach_policy(
    admin: Admin,
    Path((name, policy)): Path<(String, String)>,
) -> Reply {
    no_body(&admin.body)?;
    let detached = admin
        .app()
        .detach_policy(
            &name,
            &policy,
            admin.audited(
                "DetachPolicy",
                format!("user/{name}"),
                json!({"Policy": policy}),
            ),
        )
        .await
        .map_err(|e| account_error("attachment", &format!("{name}/{policy}"), e))?;
    removed(detached, "attachment", &format!("{name}/{policy}"))
}
