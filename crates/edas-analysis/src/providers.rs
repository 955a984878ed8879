//! The providers that fetch a measurement over HTTP: a Prometheus instant query and a webhook.
//! Each answers an [`Observation`] or a [`ProviderError`]; the judge decides what it means.
//!
//! # Prometheus
//! `GET {address}/api/v1/query?query=…`. The answer must be one number: a scalar or a vector
//! of exactly one sample. Anything else (an empty vector, several samples, a matrix, a string,
//! `NaN`, Prometheus's own error) is an error naming what came back, so a query that silently
//! matches nothing never passes a check.
//!
//! # Webhook
//! `POST` a JSON [`WebhookContext`]; the contract is Flagger's (a 2xx status passes) joined with
//! Argo's web metric (a JSON body whose `result` the condition judges): an answer
//! `{"result": <number|bool>}` gives the value (a boolean is 1 or 0), with any status; a 2xx
//! answer without a result is 1; any other answer is a failed measurement (with the status and
//! the start of the body). An unreachable receiver, a closed connection or a timeout is tried
//! again `retries` times and is then an error (inconclusive). Redirects are not followed.
//!
//! A URL's query string and credentials are never logged nor put in an error (they often carry
//! a token): see [`redact`].

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::ProviderError;
use crate::judge::{Observation, Sample};

/// Largest answer body read (a verdict is a few bytes; this bounds a hostile receiver).
const MAX_BODY: usize = 64 * 1024;
/// Pause before a webhook's next attempt, times the attempt number.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What a webhook is told about the release it judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookContext {
    pub change_order_id: String,
    pub app_id: String,
    pub app_name: String,
    /// The new revision (as the runtime labels it).
    pub revision: String,
    /// The revision it replaces, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The batch being judged (1-based), absent for a background check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    pub check: String,
    /// `gray`, `batch` or `release`.
    pub phase: String,
}

/// What a Prometheus query may name as `{{name}}`, filled in for each measurement so one policy
/// serves every release (the new revision's number is not known when the policy is written).
pub const PLACEHOLDERS: &[&str] = &[
    "appId",
    "appName",
    "revision",
    "stableRevision",
    "changeOrderId",
];

/// The `{{name}}` placeholders of `query`: (byte range, name), or what is wrong with one.
fn placeholders(query: &str) -> Result<Vec<(std::ops::Range<usize>, &str)>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = query[from..].find("{{").map(|i| i + from) {
        let Some(close) = query[open + 2..].find("}}").map(|i| i + open + 2) else {
            return Err(format!("'{{{{' at byte {open} is not closed with '}}}}'"));
        };
        let name = query[open + 2..close].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder '{{{{{name}}}}}' (there are {})",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push((open..close + 2, name));
        from = close + 2;
    }
    Ok(out)
}

/// Checks a query's placeholders (when its policy is validated).
pub fn check_placeholders(query: &str) -> Result<(), String> {
    placeholders(query).map(|_| ())
}

/// `query` with its placeholders filled in from `ctx`, each value escaped for a PromQL string
/// (`\` and `"`), so a value can never change the query's shape. A placeholder without a value
/// (`{{stableRevision}}` in a first release) is an error: the measurement is inconclusive.
pub fn expand(query: &str, ctx: &WebhookContext) -> Result<String, ProviderError> {
    let found = placeholders(query).map_err(|e| ProviderError(format!("prometheus: {e}")))?;
    let mut out = String::with_capacity(query.len());
    let mut last = 0;
    for (range, name) in found {
        let value = match name {
            "appId" => Some(ctx.app_id.as_str()),
            "appName" => Some(ctx.app_name.as_str()),
            "revision" => Some(ctx.revision.as_str()),
            "stableRevision" => ctx.stable_revision.as_deref(),
            _ => Some(ctx.change_order_id.as_str()),
        }
        .ok_or_else(|| {
            ProviderError(format!(
                "prometheus: {{{{{name}}}}} has no value in this release"
            ))
        })?;
        out.push_str(&query[last..range.start]);
        out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
        last = range.end;
    }
    out.push_str(&query[last..]);
    Ok(out)
}

/// The HTTP client of the providers and edasd's configured Prometheus server.
#[derive(Debug, Clone)]
pub struct Providers {
    client: reqwest::Client,
    prometheus: Option<String>,
    prometheus_timeout: Duration,
}

/// `scheme://host:port/path` of a URL: no credentials, no query string, no fragment.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}{}", u.scheme(), u.path()),
                None => format!("{}://{host}{}", u.scheme(), u.path()),
            }
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// A reqwest error without its URL, in words.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let e = e.without_url();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    // The innermost cause says most ("Connection refused"); the chain never holds the URL.
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(l) = last {
        text.push_str(": ");
        text.push_str(&l);
    }
    text
}

async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

impl Providers {
    /// `prometheus`: edasd's configured server (a check may name its own); `timeout` bounds
    /// each Prometheus query.
    pub fn new(prometheus: Option<String>, timeout: Duration) -> Result<Providers, ProviderError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ProviderError(format!("building the HTTP client: {}", describe(e))))?;
        Ok(Providers {
            client,
            prometheus,
            prometheus_timeout: timeout,
        })
    }

    /// Whether a Prometheus server is configured (checks without an address need one).
    pub fn has_prometheus(&self) -> bool {
        self.prometheus.is_some()
    }

    /// An instant query's single number.
    pub async fn prometheus(
        &self,
        address: Option<&str>,
        query: &str,
    ) -> Result<f64, ProviderError> {
        let err = |m: String| ProviderError(format!("prometheus: {m}"));
        let base = address.or(self.prometheus.as_deref()).ok_or_else(|| {
            err("no server configured ([analysis] prometheus) and the check names none".into())
        })?;
        let mut url = reqwest::Url::parse(base)
            .map_err(|e| err(format!("{} is not a URL ({e})", redact(base))))?;
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| err(format!("{} cannot have a path", redact(base))))?;
            path.pop_if_empty().extend(["api", "v1", "query"]);
        }
        url.query_pairs_mut().append_pair("query", query);
        let resp = self
            .client
            .get(url)
            .timeout(self.prometheus_timeout)
            .send()
            .await
            .map_err(|e| err(format!("{} {}", redact(base), describe(e))))?;
        let status = resp.status();
        let body = read_body(resp).await.map_err(err)?;
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            err(format!(
                "HTTP {} and not Prometheus's JSON: {}",
                status.as_u16(),
                snippet(&body)
            ))
        })?;
        if json["status"] != "success" {
            let kind = json["errorType"].as_str().unwrap_or("error");
            let msg = json["error"].as_str().unwrap_or("no message");
            return Err(err(format!("the query failed ({kind}): {msg}")));
        }
        let data = &json["data"];
        let value = match data["resultType"].as_str() {
            Some("scalar") => data["result"][1].clone(),
            Some("vector") => {
                let samples = data["result"].as_array().map_or(&[][..], Vec::as_slice);
                match samples {
                    [one] => one["value"][1].clone(),
                    [] => {
                        return Err(err(
                            "the query answered an empty vector (no series matched)".into(),
                        ));
                    }
                    many => {
                        let labels: Vec<String> = many
                            .iter()
                            .take(3)
                            .map(|s| s["metric"].to_string())
                            .collect();
                        return Err(err(format!(
                            "the query answered {} samples ({}{}); a check needs one number (aggregate it, e.g. sum(…))",
                            many.len(),
                            labels.join(", "),
                            if many.len() > 3 { ", …" } else { "" }
                        )));
                    }
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "the query answered a {other}; a check needs a scalar or a one-sample vector"
                )));
            }
            None => return Err(err("the answer has no resultType".into())),
        };
        let text = value
            .as_str()
            .ok_or_else(|| err(format!("the sample's value is not a string: {value}")))?;
        let n: f64 = text
            .parse()
            .map_err(|_| err(format!("the sample's value {text:?} is not a number")))?;
        if !n.is_finite() {
            return Err(err(format!("the query answered {text}")));
        }
        Ok(n)
    }

    /// One webhook measurement: at most `retries` + 1 attempts of `timeout` each.
    pub async fn webhook(
        &self,
        url: &str,
        timeout: Duration,
        retries: u32,
        context: &WebhookContext,
    ) -> Observation {
        let shown = redact(url);
        let mut last = String::new();
        for attempt in 0..=retries {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
            let sent = self
                .client
                .post(url)
                .timeout(timeout)
                .json(context)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = describe(e);
                    tracing::debug!(url = %shown, check = %context.check, attempt, error = %last, "webhook attempt failed");
                    continue;
                }
            };
            let status = resp.status();
            let body = match tokio::time::timeout(timeout, read_body(resp)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    last = e;
                    continue;
                }
                Err(_) => {
                    last = "timed out reading the answer".into();
                    continue;
                }
            };
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            let result = json.as_ref().and_then(|j| j.get("result"));
            return match result {
                Some(r) => match number(r) {
                    Some(n) => Observation::Value(Sample::value(n)),
                    None => Observation::Error(format!(
                        "webhook {shown}: HTTP {}, its result is not a number or boolean: {r}",
                        status.as_u16()
                    )),
                },
                None if status.is_success() => Observation::Value(Sample::value(1.0)),
                None => Observation::Failed(format!(
                    "webhook {shown}: HTTP {} {}",
                    status.as_u16(),
                    snippet(&body)
                )),
            };
        }
        Observation::Error(format!(
            "webhook {shown}: {last} ({} attempts)",
            retries + 1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_checked_and_filled_in_escaped() {
        let ctx = WebhookContext {
            change_order_id: "co-1".into(),
            app_id: "app-1".into(),
            app_name: "we\"b".into(),
            revision: "2".into(),
            stable_revision: Some("1".into()),
            batch: None,
            check: "c".into(),
            phase: "gray".into(),
        };
        let q = r#"sum(rate(x{app_id="{{appId}}",revision="{{ revision }}"}[1m])) / sum(rate(x{revision="{{stableRevision}}",n="{{appName}}"}[1m]))"#;
        assert_eq!(check_placeholders(q), Ok(()));
        assert_eq!(
            expand(q, &ctx).unwrap(),
            r#"sum(rate(x{app_id="app-1",revision="2"}[1m])) / sum(rate(x{revision="1",n="we\"b"}[1m]))"#
        );
        assert_eq!(expand("up", &ctx).unwrap(), "up");
        assert!(
            check_placeholders("x{{version}}")
                .unwrap_err()
                .starts_with("unknown placeholder '{{version}}' (there are {{appId}}, ")
        );
        assert_eq!(
            check_placeholders("x{{revision"),
            Err("'{{' at byte 1 is not closed with '}}'".into())
        );
        let first = WebhookContext {
            stable_revision: None,
            ..ctx
        };
        assert_eq!(
            expand("{{stableRevision}}", &first).unwrap_err().0,
            "prometheus: {{stableRevision}} has no value in this release"
        );
    }

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        assert_eq!(
            redact("https://user:pw@hooks.example:8443/judge?token=s3cret#x"),
            "https://hooks.example:8443/judge"
        );
        assert_eq!(redact("http://h/p"), "http://h/p");
        assert_eq!(redact("nope"), "(not a URL)");
    }
}
