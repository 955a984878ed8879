//! `edasctl notify add|list|remove|deliveries`: release notifications through edasd's admin API
//! (`/edasd/v1/subscriptions`; administrators only). A subscription's URL and secret go to the
//! server once and are never shown again.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use edas_wire::envelope::Success;
use edas_wire::notify::{DeliveriesBody, NewSubscription, SubscriptionBody, SubscriptionsBody};

use crate::cmd::context::Global;
use crate::output::{self, table};

/// Release notifications.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Subscribe a webhook, Slack or DingTalk robot to release events.
    Add(AddArgs),
    /// List subscriptions (never their URL or secret).
    List,
    /// Remove a subscription (its deliveries go too).
    Remove {
        /// The SubscriptionId.
        id: String,
    },
    /// A subscription's latest deliveries, newest first.
    Deliveries {
        /// The SubscriptionId.
        id: String,
        /// Only `pending`, `delivered` or `dead` ones.
        #[arg(long)]
        state: Option<String>,
    },
}

/// `notify add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// `webhook` (CloudEvents JSON, signed with --secret), `slack` or `dingtalk`.
    #[arg(long)]
    pub sink: String,
    /// The receiver's URL (for DingTalk, with its access_token).
    #[arg(long)]
    pub url: String,
    /// The HMAC key of a webhook (X-Edasd-Signature), or a DingTalk robot's signing secret.
    /// Default: $EDASCTL_NOTIFY_SECRET.
    #[arg(long, env = "EDASCTL_NOTIFY_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Only this application's events (default: every application).
    #[arg(long)]
    pub app: Option<String>,
    /// Only these event types (repeatable; default: all), e.g. change_order.failed.
    #[arg(long = "event")]
    pub events: Vec<String>,
}

/// Runs `edasctl notify …`.
pub fn notify(global: &Global, command: &NotifyCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        NotifyCommand::Add(args) => {
            let body = serde_json::to_value(NewSubscription {
                sink: args.sink.clone(),
                url: args.url.clone(),
                secret: args.secret.clone(),
                app_id: args.app.clone(),
                event_types: args.events.clone(),
            })?;
            let a = client.admin("POST", "subscriptions", Some(&body))?;
            output::print(global.output, &a, |a| {
                output::fields_table(&output::body::<SubscriptionBody>(a).subscription)
            })?;
        }
        NotifyCommand::List => {
            let a = client.admin("GET", "subscriptions", None)?;
            output::print(global.output, &a, |a| {
                let mut t = table(&["SubscriptionId", "Sink", "AppId", "EventTypes", "Creator"]);
                for s in output::body::<SubscriptionsBody>(a).subscriptions {
                    t.add_row(vec![
                        s.subscription_id,
                        s.sink,
                        if s.app_id.is_empty() {
                            "*".into()
                        } else {
                            s.app_id
                        },
                        if s.event_types.is_empty() {
                            "*".into()
                        } else {
                            s.event_types.join(",")
                        },
                        s.creator,
                    ]);
                }
                t
            })?;
        }
        NotifyCommand::Remove { id } => {
            let a = client.admin("DELETE", &format!("subscriptions/{id}"), None)?;
            output::print(global.output, &a, |a| {
                let mut t = table(&["RequestId"]);
                t.add_row(vec![output::body::<Success>(a).request_id]);
                t
            })?;
        }
        NotifyCommand::Deliveries { id, state } => {
            let path = match state {
                Some(state) => format!("subscriptions/{id}/deliveries/{state}"),
                None => format!("subscriptions/{id}/deliveries"),
            };
            let a = client.admin("GET", &path, None)?;
            output::print(global.output, &a, |a| {
                let mut t = table(&[
                    "Sequence",
                    "EventType",
                    "ChangeOrderId",
                    "State",
                    "Attempts",
                    "LastError",
                ]);
                for d in output::body::<DeliveriesBody>(a).deliveries {
                    t.add_row(vec![
                        d.event.sequence.to_string(),
                        d.event.event_type,
                        d.event.change_order_id,
                        d.state,
                        d.attempts.to_string(),
                        d.last_error,
                    ]);
                }
                t
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
