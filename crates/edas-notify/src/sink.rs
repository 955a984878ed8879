//! The sinks: how one stored event becomes one HTTP request, and which answers mean
//! "delivered". Pure: the time is an input.
//!
//! - `webhook`: a CloudEvents 1.0 event in structured mode (`application/cloudevents+json`),
//!   type `com.edasd.<kind>`, source `/edasd/applications/<AppId>`, subject the change order,
//!   the release event as `data`; headers `Idempotency-Key` (the event id, also `id`) and
//!   `X-Edasd-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>`.
//! - `slack`: a Slack-compatible incoming webhook (`{"text": …}`; Mattermost, Rocket.Chat
//!   and Discord's `/slack` endpoint take it too).
//! - `dingtalk`: a DingTalk robot (`{"msgtype":"text",…}`); with a secret, the URL gets
//!   `timestamp` and `sign` = URL-encoded base64 HMAC-SHA256 of `"<timestamp>\n<secret>"`, and
//!   an answer whose `errcode` is not 0 is a failure.

use base64::Engine;
use edas_release::EventKind;
use edas_store::{StoredEvent, SubscriptionTarget};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    Webhook,
    Slack,
    DingTalk,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::Webhook, SinkKind::Slack, SinkKind::DingTalk];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::DingTalk => "dingtalk",
        }
    }

    pub fn parse(s: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A subscription that cannot be stored: the parameter and why (an EDAS-style 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct InvalidSubscription {
    pub parameter: &'static str,
    pub reason: String,
}

fn invalid(parameter: &'static str, reason: impl Into<String>) -> InvalidSubscription {
    InvalidSubscription {
        parameter,
        reason: reason.into(),
    }
}

/// Checks a subscription's sink, URL, secret and event kinds (parameters `Sink`, `Url`,
/// `Secret`, `EventTypes`); returns the sink. A generic webhook must have a secret (every
/// request it gets is signed); a Slack webhook must not (it would be ignored).
pub fn validate(
    sink: &str,
    url: &str,
    secret: Option<&str>,
    kinds: &[String],
) -> Result<SinkKind, InvalidSubscription> {
    let kind = SinkKind::parse(sink).ok_or_else(|| {
        invalid(
            "Sink",
            format!("{sink:?} is not a sink; use webhook, slack or dingtalk"),
        )
    })?;
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid("Url", format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            "Url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    if url.len() > 2048 {
        return Err(invalid("Url", "longer than 2048 characters"));
    }
    match (kind, secret) {
        (SinkKind::Webhook, None) => {
            return Err(invalid(
                "Secret",
                "a webhook needs a secret: its requests are signed with it (X-Edasd-Signature)",
            ));
        }
        (SinkKind::Slack, Some(_)) => {
            return Err(invalid(
                "Secret",
                "a Slack webhook takes no secret (its URL is the secret)",
            ));
        }
        (_, Some(s)) if s.is_empty() || s.len() > 512 => {
            return Err(invalid("Secret", "must be 1 to 512 characters"));
        }
        _ => {}
    }
    if let Some(bad) = kinds.iter().find(|k| EventKind::parse(k).is_none()) {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(invalid(
            "EventTypes",
            format!("{bad:?} is not an event type; known: {}", known.join(", ")),
        ));
    }
    Ok(kind)
}

/// One HTTP POST to make.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("url", &"<redacted>")
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish_non_exhaustive()
    }
}

/// The CloudEvents `type` of an event kind.
pub fn cloudevents_type(kind: &str) -> String {
    format!("com.edasd.{kind}")
}

/// The request that delivers `event` to a sink of kind `sink` at `target`, at `now`.
pub fn render(
    sink: SinkKind,
    target: &SubscriptionTarget,
    event: &StoredEvent,
    now: jiff::Timestamp,
) -> Outgoing {
    let idempotency = ("Idempotency-Key", event.id.clone());
    match sink {
        SinkKind::Webhook => {
            let mut data = serde_json::to_value(&event.data).unwrap_or_default();
            if let Value::Object(map) = &mut data {
                map.insert("app_id".into(), json!(event.app_id));
            }
            let body = json!({
                "specversion": "1.0",
                "id": event.id,
                "source": format!("/edasd/applications/{}", event.app_id),
                "type": cloudevents_type(&event.kind),
                "subject": event.change_order_id,
                "time": event.at.to_string(),
                "datacontenttype": "application/json",
                "sequence": event.seq.to_string(),
                "data": data,
            });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let mut headers = vec![
                (
                    "Content-Type",
                    "application/cloudevents+json; charset=utf-8".to_owned(),
                ),
                idempotency,
            ];
            if let Some(secret) = &target.secret {
                headers.push(("X-Edasd-Signature", signature(secret, &body)));
            }
            Outgoing {
                url: target.url.clone(),
                headers,
                body,
            }
        }
        SinkKind::Slack => Outgoing {
            url: target.url.clone(),
            headers: vec![("Content-Type", "application/json".to_owned()), idempotency],
            body: serde_json::to_vec(&json!({ "text": summary(event) })).unwrap_or_default(),
        },
        SinkKind::DingTalk => {
            let mut url = target.url.clone();
            if let Some(secret) = &target.secret {
                let ts = now.as_millisecond();
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!(
                    "{url}{sep}timestamp={ts}&sign={}",
                    dingtalk_sign(secret, ts)
                );
            }
            Outgoing {
                url,
                headers: vec![("Content-Type", "application/json".to_owned()), idempotency],
                body: serde_json::to_vec(&json!({
                    "msgtype": "text",
                    "text": { "content": summary(event) },
                }))
                .unwrap_or_default(),
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`: what a receiver recomputes to check a webhook.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// DingTalk's `sign`: URL-encoded base64 of HMAC-SHA256(secret, "<timestamp>\n<secret>").
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether an answer means delivered: a 2xx, and for DingTalk an `errcode` of 0 (it answers
/// 200 to a refused message). The error names the status, never the URL.
pub fn accepted(sink: SinkKind, status: u16, body: &[u8]) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    if sink == SinkKind::DingTalk
        && let Ok(answer) = serde_json::from_slice::<Value>(body)
        && let Some(code) = answer.get("errcode").and_then(Value::as_i64)
        && code != 0
    {
        // The receiver's words, stored as the delivery's last error: a line, not a document.
        let message: String = answer
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        return Err(format!("DingTalk errcode {code}: {message}"));
    }
    Ok(())
}

/// One line a person reads in a chat: application, change order, what happened.
pub fn summary(event: &StoredEvent) -> String {
    let head = format!(
        "edasd: application {} change order {}",
        event.app_id, event.change_order_id
    );
    let e = &event.data;
    let n = e.batch_count;
    let b = e.batch.unwrap_or(0);
    let what = match e.kind {
        EventKind::Created => format!("created ({n} batch(es))"),
        EventKind::BatchStarted => format!("batch {b}/{n} started"),
        EventKind::BatchSucceeded => format!("batch {b}/{n} done"),
        EventKind::Waiting if e.status == 8 => {
            format!("waiting for confirmation to start batch {b}/{n}")
        }
        EventKind::Waiting => format!("waiting to start batch {b}/{n}"),
        EventKind::Continued => "continued".to_owned(),
        EventKind::Retried => "retried".to_owned(),
        EventKind::Failed => format!(
            "FAILED at batch {b}/{n}: {}",
            e.message.as_deref().unwrap_or("no reason given")
        ),
        EventKind::Aborted => format!("aborted at batch {b}/{n}"),
        EventKind::RolledBack => format!(
            "rolled back by change order {}",
            e.message.as_deref().unwrap_or("?")
        ),
        EventKind::Succeeded => "succeeded".to_owned(),
        EventKind::InstanceChanged => match &e.instance {
            Some(i) => match (&i.failed, i.ready) {
                (Some(why), _) => format!("instance {} failed: {why}", i.name),
                (None, true) => format!("instance {} ready (batch {b}/{n})", i.name),
                (None, false) => format!("instance {} not ready (batch {b}/{n})", i.name),
            },
            None => "instance changed".to_owned(),
        },
        EventKind::AnalysisMeasured => format!(
            "analysis measured at batch {b}/{n}: {}",
            e.message.as_deref().unwrap_or("")
        ),
        EventKind::AnalysisPassed => format!("analysis of batch {b}/{n} passed"),
        EventKind::AnalysisFailed => format!(
            "ANALYSIS FAILED at batch {b}/{n}: {}",
            e.message.as_deref().unwrap_or("no reason given")
        ),
        EventKind::Scaling => e.message.clone().unwrap_or_else(|| "autoscaled".to_owned()),
    };
    let change = serde_json::to_value(e.change_kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{head} ({change}): {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> StoredEvent {
        let data = serde_json::from_value(data).expect("a release event");
        StoredEvent {
            seq: 7,
            id: "ev-1".into(),
            app_id: "app-1".into(),
            change_order_id: "co-1".into(),
            kind: kind.into(),
            at: jiff::Timestamp::from_second(1_780_000_000).unwrap(),
            data,
        }
    }

    fn target(secret: Option<&str>) -> SubscriptionTarget {
        SubscriptionTarget {
            url: "http://127.0.0.1:1/hook?access_token=t".into(),
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn a_webhook_is_a_signed_cloudevent() {
        let ev = event(
            "batch.started",
            json!({"kind": "BatchStarted", "change_order_id": "co-1", "change_kind": "deploy",
                   "status": 1, "batch": 2, "batch_count": 3}),
        );
        let out = render(SinkKind::Webhook, &target(Some("k")), &ev, ev.at);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], "ev-1");
        assert_eq!(body["type"], "com.edasd.batch.started");
        assert_eq!(body["source"], "/edasd/applications/app-1");
        assert_eq!(body["subject"], "co-1");
        assert_eq!(body["data"]["batch"], 2);
        assert_eq!(body["data"]["app_id"], "app-1");
        let header = |name: &str| {
            out.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("Idempotency-Key").as_deref(), Some("ev-1"));
        assert_eq!(
            header("X-Edasd-Signature").unwrap(),
            signature("k", &out.body)
        );
        // Known answer (RFC 4231 test case 2).
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(!format!("{out:?}").contains("access_token"));
    }

    #[test]
    fn dingtalk_is_signed_in_the_url_and_checks_errcode() {
        // Python: quote_plus(b64encode(hmac.new(b"SECx", b"1700000000000\nSECx", sha256).digest()))
        let sign = dingtalk_sign("SECx", 1_700_000_000_000);
        assert_eq!(
            sign,
            "rgcjbH%2ByFyES%2BS0llX%2BcAPCwVRpsr7sbiX5Lnyo%2FocU%3D"
        );
        let ev = event(
            "change_order.succeeded",
            json!({"kind": "Succeeded", "change_order_id": "co-1", "change_kind": "deploy",
                   "status": 2, "batch_count": 2}),
        );
        let out = render(
            SinkKind::DingTalk,
            &target(Some("SECx")),
            &ev,
            jiff::Timestamp::from_millisecond(1_700_000_000_000).unwrap(),
        );
        assert_eq!(
            out.url,
            format!("http://127.0.0.1:1/hook?access_token=t&timestamp=1700000000000&sign={sign}")
        );
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["msgtype"], "text");
        assert!(accepted(SinkKind::DingTalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(
            accepted(
                SinkKind::DingTalk,
                200,
                br#"{"errcode":310000,"errmsg":"sign"}"#
            )
            .is_err()
        );
        assert!(accepted(SinkKind::Slack, 500, b"").is_err());
        assert!(accepted(SinkKind::Slack, 200, b"ok").is_ok());
    }

    #[test]
    fn summaries_say_what_happened() {
        let ev = event(
            "change_order.failed",
            json!({"kind": "Failed", "change_order_id": "co-1", "change_kind": "deploy",
                   "status": 3, "batch": 1, "batch_count": 2, "message": "BatchTimeout"}),
        );
        assert_eq!(
            summary(&ev),
            "edasd: application app-1 change order co-1 (deploy): FAILED at batch 1/2: BatchTimeout"
        );
        let out = render(SinkKind::Slack, &target(None), &ev, ev.at);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("BatchTimeout"));
    }

    #[test]
    fn subscriptions_are_validated_naming_the_parameter() {
        let kinds = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let err = |r: Result<SinkKind, InvalidSubscription>| r.unwrap_err().parameter;
        assert_eq!(err(validate("email", "http://h/", None, &[])), "Sink");
        assert_eq!(err(validate("slack", "ftp://h/", None, &[])), "Url");
        assert_eq!(err(validate("slack", "not a url", None, &[])), "Url");
        assert_eq!(err(validate("webhook", "http://h/", None, &[])), "Secret");
        assert_eq!(
            err(validate("slack", "http://h/", Some("s"), &[])),
            "Secret"
        );
        assert_eq!(
            err(validate(
                "slack",
                "http://h/",
                None,
                &kinds(&["batch.exploded"])
            )),
            "EventTypes"
        );
        assert_eq!(
            validate(
                "dingtalk",
                "https://oapi.dingtalk.com/robot/send?access_token=x",
                None,
                &kinds(&["change_order.failed"])
            ),
            Ok(SinkKind::DingTalk)
        );
    }
}
