//! edasd's notification admin API under `/edasd/v1/subscriptions` and its push stream: the
//! request body edasctl sends (read strictly) and the response bodies. A subscription's URL
//! and secret are never in an answer. Times are epoch milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /edasd/v1/subscriptions`. `Debug` never prints its `Url` (a Slack or DingTalk URL
/// holds its access token) nor its `Secret`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NewSubscription {
    /// `webhook` (CloudEvents, signed), `slack` or `dingtalk`.
    pub sink: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// One application; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Event types; absent or empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
}

impl std::fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSubscription")
            .field("sink", &self.sink)
            .field("url", &"<redacted>")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("app_id", &self.app_id)
            .field("event_types", &self.event_types)
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Subscription {
    pub subscription_id: String,
    pub sink: String,
    /// Empty: every application.
    pub app_id: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub creator: String,
    pub create_time: i64,
}

/// `{"Subscriptions": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SubscriptionsBody {
    pub subscriptions: Vec<Subscription>,
}

/// `{"Subscription": {...}}`, the subscription created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SubscriptionBody {
    pub subscription: Subscription,
}

/// One release event (also the `data` of a push-stream message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Event {
    /// The outbox's sequence number (the stream's event id).
    pub sequence: i64,
    pub event_id: String,
    pub event_type: String,
    pub app_id: String,
    pub change_order_id: String,
    pub time: i64,
    /// The release event itself (batch, status, message, instance…).
    pub data: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Delivery {
    pub event: Event,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub last_error: String,
    pub update_time: i64,
}

/// `{"Deliveries": [...]}`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeliveriesBody {
    pub deliveries: Vec<Delivery>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_subscription_debug_prints_neither_its_url_nor_its_secret() {
        let new = NewSubscription {
            sink: "dingtalk".into(),
            url: "https://oapi.dingtalk.com/robot/send?access_token=TOKEN123".into(),
            secret: Some("SEC456".into()),
            app_id: Some("app".into()),
            event_types: vec!["Created".into()],
        };
        let shown = format!("{new:?} {new:#?}");
        assert!(
            !shown.contains("TOKEN123") && !shown.contains("SEC456"),
            "{shown}"
        );
        assert!(
            shown.contains("dingtalk") && shown.contains("Created"),
            "{shown}"
        );
    }
}
