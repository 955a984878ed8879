//! `edasctl user`, `access-key`, `policy` and `audit`: edasd's admin API (`/edasd/v1/…`;
//! administrators only, except one application's audit trail for its readers), signed like every
//! EDAS request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use edas_wire::admin::{
    AccessKeyUpdate, AccessKeysBody, AuditBody, CreatedKeyBody, NewAccessKey, NewUser,
    PoliciesBody, PolicyBody, PolicyPut, UserBody, UsersBody,
};
use edas_wire::envelope::Success;
use serde::Serialize;
use serde_json::Value;

use crate::cmd::context::Global;
use crate::output::{self, table};

/// Users.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users.
    List,
    /// Create a user.
    Create {
        /// The user name (1–64 of letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Delete a user and its access keys.
    Delete {
        /// The user name.
        name: String,
    },
}

/// Access keys.
#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// List a user's access keys (never their secrets).
    List {
        /// The user name.
        user: String,
    },
    /// Create an access key for a user; the secret is printed once.
    Create(CreateKeyArgs),
    /// Enable an access key.
    Enable {
        /// The AccessKeyId.
        id: String,
    },
    /// Disable an access key.
    Disable {
        /// The AccessKeyId.
        id: String,
    },
    /// Delete an access key.
    Delete {
        /// The AccessKeyId.
        id: String,
    },
}

/// `access-key create`.
#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// The user name.
    pub user: String,
    /// The AccessKeyId to use (with --secret); default: generated.
    #[arg(long, requires = "secret")]
    pub id: Option<String>,
    /// The AccessKeySecret to use (with --id); default: generated.
    #[arg(long, requires = "id")]
    pub secret: Option<String>,
}

/// Policies.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List policies, or a user's with --user.
    List {
        /// The user whose policies to list.
        #[arg(long)]
        user: Option<String>,
    },
    /// Create or replace a policy from a RAM policy document (JSON file, `-` for stdin).
    Put {
        /// The policy name.
        name: String,
        /// The policy document.
        #[arg(long, value_name = "FILE")]
        document: PathBuf,
    },
    /// Delete a policy.
    Delete {
        /// The policy name.
        name: String,
    },
    /// Attach a policy to a user.
    Attach {
        /// The user name.
        user: String,
        /// The policy name.
        policy: String,
    },
    /// Detach a policy from a user.
    Detach {
        /// The user name.
        user: String,
        /// The policy name.
        policy: String,
    },
}

/// A table with one row per item.
fn list_table<T>(
    header: &[&str],
    items: Vec<T>,
    row: impl Fn(T) -> Vec<String>,
) -> comfy_table::Table {
    let mut t = table(header);
    for item in items {
        t.add_row(row(item));
    }
    t
}

fn done(global: &Global, answer: &Value) -> anyhow::Result<ExitCode> {
    output::print(global.output, answer, |a| {
        let mut t = table(&["RequestId"]);
        t.add_row(vec![output::body::<Success>(a).request_id]);
        t
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A request body of the admin API, as JSON.
fn request(body: impl Serialize) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(body)?)
}

/// Runs `edasctl user …`.
pub fn user(global: &Global, command: &UserCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        UserCommand::List => {
            let a = client.admin("GET", "users", None)?;
            output::print(global.output, &a, |a| {
                let users = output::body::<UsersBody>(a).users;
                list_table(&["Name", "Admin", "CreateTime"], users, |u| {
                    vec![
                        u.name,
                        u.admin.to_string(),
                        crate::cmd::instances::human_time(u.create_time),
                    ]
                })
            })?;
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Create { name, admin } => {
            let body = request(NewUser {
                name: name.clone(),
                admin: *admin,
            })?;
            let a = client.admin("POST", "users", Some(&body))?;
            output::print(global.output, &a, |a| {
                output::fields_table(&output::body::<UserBody>(a).user)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Delete { name } => done(
            global,
            &client.admin("DELETE", &format!("users/{name}"), None)?,
        ),
    }
}

/// Runs `edasctl access-key …`.
pub fn access_key(global: &Global, command: &AccessKeyCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        AccessKeyCommand::List { user } => {
            let a = client.admin("GET", &format!("users/{user}/keys"), None)?;
            output::print(global.output, &a, |a| {
                let keys = output::body::<AccessKeysBody>(a).access_keys;
                list_table(
                    &["AccessKeyId", "User", "Enabled", "CreateTime"],
                    keys,
                    |k| {
                        vec![
                            k.access_key_id,
                            k.user,
                            k.enabled.to_string(),
                            crate::cmd::instances::human_time(k.create_time),
                        ]
                    },
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AccessKeyCommand::Create(args) => {
            let body = match (&args.id, &args.secret) {
                (Some(id), Some(secret)) => Some(request(NewAccessKey {
                    access_key_id: Some(id.clone()),
                    access_key_secret: Some(secret.clone()),
                })?),
                _ => None,
            };
            let a = client.admin("POST", &format!("users/{}/keys", args.user), body.as_ref())?;
            output::print(global.output, &a, |a| {
                output::fields_table(&output::body::<CreatedKeyBody>(a).access_key)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AccessKeyCommand::Enable { id } | AccessKeyCommand::Disable { id } => {
            let enabled = matches!(command, AccessKeyCommand::Enable { .. });
            done(
                global,
                &client.admin(
                    "PUT",
                    &format!("keys/{id}"),
                    Some(&request(AccessKeyUpdate { enabled })?),
                )?,
            )
        }
        AccessKeyCommand::Delete { id } => done(
            global,
            &client.admin("DELETE", &format!("keys/{id}"), None)?,
        ),
    }
}

/// Runs `edasctl policy …`.
pub fn policy(global: &Global, command: &PolicyCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        PolicyCommand::List { user } => {
            let path = match user {
                Some(u) => format!("users/{u}/policies"),
                None => "policies".to_owned(),
            };
            let a = client.admin("GET", &path, None)?;
            output::print(global.output, &a, |a| {
                let policies = output::body::<PoliciesBody>(a).policies;
                list_table(&["Name", "UpdateTime"], policies, |p| {
                    vec![p.name, p.update_time.to_string()]
                })
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Put { name, document } => {
            let text = if document.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(document)
                    .with_context(|| format!("cannot read {}", document.display()))?
            };
            let document: Value = serde_json::from_str(&text)
                .with_context(|| format!("--document {} is not JSON", document.display()))?;
            let a = client.admin(
                "PUT",
                &format!("policies/{name}"),
                Some(&request(PolicyPut { document })?),
            )?;
            output::print(global.output, &a, |a| {
                output::fields_table(&output::body::<PolicyBody>(a).policy)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Delete { name } => done(
            global,
            &client.admin("DELETE", &format!("policies/{name}"), None)?,
        ),
        PolicyCommand::Attach { user, policy } => done(
            global,
            &client.admin("PUT", &format!("users/{user}/policies/{policy}"), None)?,
        ),
        PolicyCommand::Detach { user, policy } => done(
            global,
            &client.admin("DELETE", &format!("users/{user}/policies/{policy}"), None)?,
        ),
    }
}

/// `audit`: who did what, when, from which request; newest first.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this application's records (`AppId`); without it, administrators only.
    #[arg(long = "app", value_name = "APP_ID")]
    pub app_id: Option<String>,
    /// From this time on: RFC 3339 (2026-11-28T01:00:00Z) or Unix milliseconds.
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time (same forms as --from).
    #[arg(long)]
    pub to: Option<String>,
    /// The page (from 1).
    #[arg(long)]
    pub page: Option<u32>,
    /// Records per page (default 100).
    #[arg(long)]
    pub page_size: Option<u32>,
}

/// Runs `edasctl audit`.
pub fn audit(global: &Global, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let mut query = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            query.push((name.to_owned(), v));
        }
    };
    add(
        "AppId",
        args.app_id
            .as_deref()
            .map(|a| crate::cmd::instances::resolve_app(&client, a))
            .transpose()?,
    );
    add("From", args.from.clone());
    add("To", args.to.clone());
    add("PageNumber", args.page.map(|n| n.to_string()));
    add("PageSize", args.page_size.map(|n| n.to_string()));
    let a = client.admin_with_query("GET", "audit", &query, None)?;
    output::print(global.output, &a, |a| {
        let records = output::body::<AuditBody>(a).records;
        list_table(
            &["Time", "Actor", "Action", "Resource", "RequestId"],
            records,
            |r| {
                vec![
                    r.time,
                    r.actor,
                    r.action,
                    r.resource,
                    r.request_id.unwrap_or_default(),
                ]
            },
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
