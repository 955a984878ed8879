//! A release policy: the checks that judge every change order of one application. Decoded
//! from YAML or JSON (the text `edasctl app policy set` sends) and validated as a whole, so
//! one answer lists every violation, each naming its field path (`checks[1].interval: …`).
//! The typed value round-trips through serde as JSON, which is how the store keeps it; its
//! version is the store's, not part of the text.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::Expr;

/// Checks a policy may hold.
pub const MAX_CHECKS: usize = 20;
/// Measurements a check may take per run.
pub const MAX_COUNT: u32 = 1000;
/// Longest interval, settle window or webhook timeout.
const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Shortest interval: a measurement more often than this measures noise.
const MIN_INTERVAL_MS: u64 = 1000;
const MAX_WEBHOOK_TIMEOUT_MS: u64 = 60_000;
const MAX_RETRIES: u32 = 5;
const MAX_LIMIT: u32 = 100;
/// Provider errors tolerated per check when neither the check nor the policy says.
pub const DEFAULT_INCONCLUSIVE_LIMIT: u32 = 2;

/// The checks of an application's releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePolicy {
    pub checks: Vec<Check>,
    /// Provider errors each check tolerates (unless it sets its own) before the next error
    /// counts as a failed measurement.
    #[serde(default = "default_inconclusive")]
    pub inconclusive_limit: u32,
}

fn default_inconclusive() -> u32 {
    DEFAULT_INCONCLUSIVE_LIMIT
}

/// One check: what it measures, what passes, how often, when, and what a failure does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub provider: Provider,
    pub success_condition: String,
    pub interval: Interval,
    /// Measurements per run; `None` only for a background check, which then measures until
    /// the release ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Failed measurements tolerated; the check fails at the next one.
    #[serde(default)]
    pub failure_limit: u32,
    /// Provider errors tolerated (else the policy's); further errors count as failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<u32>,
    pub when: When,
    /// For `afterEachBatch`: how long after the batch is ready the first measurement waits,
    /// on top of one interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Interval>,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// Where a check's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Provider {
    /// The new revision's requests as edasd's local proxy counted them.
    Traffic {
        metric: TrafficMetric,
        /// `stable`: the stable revision's value over the same interval is `baseline`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compared_to: Option<ComparedTo>,
    },
    /// The new revision's instances since the release started.
    Health { metric: HealthMetric },
    /// An instant query; the answer must be one number.
    Prometheus {
        query: String,
        /// Else edasd's configured Prometheus server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// POST the context, read `{"result": number|bool}` (or only the HTTP status).
    Webhook {
        url: String,
        timeout: Interval,
        retries: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficMetric {
    /// Share of answers that are not 5xx, 0–1.
    SuccessRate,
    /// Share of answers that are 5xx, 0–1.
    ErrorRate,
    /// Milliseconds.
    LatencyP50,
    LatencyP90,
    LatencyP99,
    /// Requests per second.
    RequestRate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ComparedTo {
    Stable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthMetric {
    /// Restarts of the new revision's instances.
    Restarts,
    /// Of which killed for memory.
    OomKills,
    /// Instances restarting in a loop now (a count).
    CrashLooping,
}

/// When a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum When {
    /// From the gray batch's readiness; the gray batch does not complete before it passes.
    Gray,
    /// From each batch's readiness (after `settle`); the next batch waits for it.
    AfterEachBatch,
    /// For the whole release; its failure stops the release whenever it comes.
    Background,
}

/// What a failed check does to the release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Stop and wait for a human (EDAS status 8), with the reason.
    #[default]
    Pause,
    /// Abort the release and roll back.
    Rollback,
}

/// A duration written `500ms`, `10s`, `2m` or `1h`; kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub u64);

impl Interval {
    pub fn ms(self) -> u64 {
        self.0
    }

    /// `10s`, `1500ms`, `2m`, `1h`; a bare number is refused (its unit would be a guess).
    pub fn parse(text: &str) -> Result<Interval, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (write e.g. 10s, 500ms, 2m)"))?;
        let factor = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("{text:?} has no unit (write e.g. {n}s)")),
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(Interval)
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        let s = String::deserialize(d)?;
        Interval::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One thing wrong with a policy: where (`checks[1].successCondition`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every violation of a policy that cannot be stored (an EDAS-style 400 naming each field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidPolicy(pub Vec<Violation>);

impl fmt::Display for InvalidPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl Provider {
    /// The variables this provider's condition may use.
    pub fn variables(&self) -> &'static [&'static str] {
        match self {
            Provider::Traffic {
                compared_to: Some(ComparedTo::Stable),
                ..
            } => &["result", "requests", "baseline", "baselineRequests"],
            Provider::Traffic { .. } => &["result", "requests"],
            _ => &["result"],
        }
    }

    /// `traffic`, `health`, `prometheus` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Traffic { .. } => "traffic",
            Provider::Health { .. } => "health",
            Provider::Prometheus { .. } => "prometheus",
            Provider::Webhook { .. } => "webhook",
        }
    }
}

impl Check {
    /// The parsed condition (validated when the policy was).
    pub fn condition(&self) -> Result<Expr, crate::expr::ParseError> {
        Expr::parse(&self.success_condition, self.provider.variables())
    }

    /// Whether it needs edasd's configured Prometheus server (a Prometheus check without its
    /// own address); the layer refuses such a policy when none is configured.
    pub fn needs_default_prometheus(&self) -> bool {
        matches!(self.provider, Provider::Prometheus { address: None, .. })
    }
}

impl ReleasePolicy {
    /// Decodes and validates a policy written in YAML or JSON (JSON is YAML).
    pub fn from_text(text: &str) -> Result<ReleasePolicy, InvalidPolicy> {
        let one = |message: String| {
            InvalidPolicy(vec![Violation {
                path: "policy".into(),
                message,
            }])
        };
        if text.len() > 256 * 1024 {
            return Err(one("longer than 256 KiB".into()));
        }
        let value: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| one(format!("not JSON: {e}")))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| one(format!("not YAML: {e}")))?
        };
        Self::from_value(&value)
    }

    /// Validates a decoded document, listing every violation.
    pub fn from_value(value: &Value) -> Result<ReleasePolicy, InvalidPolicy> {
        let mut v = Validator::default();
        let policy = v.policy(value);
        match policy {
            Some(p) if v.errors.is_empty() => Ok(p),
            _ => Err(InvalidPolicy(v.errors)),
        }
    }

    /// Re-validates a typed policy (one decoded from the store, say), by its JSON form.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let value = serde_json::to_value(self).map_err(|e| {
            InvalidPolicy(vec![Violation {
                path: "policy".into(),
                message: e.to_string(),
            }])
        })?;
        Self::from_value(&value).map(|_| ())
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The inconclusive limit that applies to `check`.
    pub fn inconclusive_limit_of(&self, check: &Check) -> u32 {
        check.inconclusive_limit.unwrap_or(self.inconclusive_limit)
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<Violation>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl Validator {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn object<'v>(
        &mut self,
        path: &str,
        v: &'v Value,
        known: &[&str],
    ) -> Option<&'v serde_json::Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.fail(path, format!("must be a map, not {}", type_name(v)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let at = if path == "policy" {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                self.fail(at, format!("unknown field (known: {})", known.join(", ")));
            }
        }
        Some(map)
    }

    fn string(&mut self, path: &str, v: Option<&Value>, required: bool) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.fail(path, "required");
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.fail(path, format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    fn uint(&mut self, path: &str, v: Option<&Value>, max: u32) -> Option<u32> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(x) if x <= u64::from(max) => Some(x as u32),
                _ => {
                    self.fail(path, format!("must be a whole number from 0 to {max}"));
                    None
                }
            },
            Some(other) => {
                self.fail(
                    path,
                    format!("must be a whole number, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn interval(
        &mut self,
        path: &str,
        v: Option<&Value>,
        min: u64,
        max: u64,
        required: bool,
    ) -> Option<Interval> {
        if let Some(Value::Number(n)) = v {
            self.fail(path, format!("{n} has no unit (write e.g. {n}s)"));
            return None;
        }
        let s = self.string(path, v, required)?;
        match Interval::parse(&s) {
            Ok(i) if i.0 < min || i.0 > max => {
                self.fail(
                    path,
                    format!(
                        "{s} is out of range ({} to {})",
                        Interval(min),
                        Interval(max)
                    ),
                );
                None
            }
            Ok(i) => Some(i),
            Err(e) => {
                self.fail(path, e);
                None
            }
        }
    }

    fn choice<T: for<'de> Deserialize<'de>>(
        &mut self,
        path: &str,
        v: Option<&Value>,
        options: &[&str],
        required: bool,
    ) -> Option<T> {
        let s = self.string(path, v, required)?;
        match serde_json::from_value(Value::String(s.clone())) {
            Ok(t) => Some(t),
            Err(_) => {
                self.fail(path, format!("{s:?} is not one of {}", options.join(", ")));
                None
            }
        }
    }

    fn url(&mut self, path: &str, v: Option<&Value>, required: bool) -> Option<String> {
        let s = self.string(path, v, required)?;
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if s.len() > 2048 {
                    self.fail(path, "longer than 2048 characters");
                    return None;
                }
                Some(s)
            }
            Ok(_) => {
                self.fail(path, "must be an http:// or https:// URL with a host");
                None
            }
            Err(e) => {
                self.fail(path, format!("not a URL ({e})"));
                None
            }
        }
    }

    fn policy(&mut self, v: &Value) -> Option<ReleasePolicy> {
        let map = self.object("policy", v, &["checks", "inconclusiveLimit"])?;
        let inconclusive_limit = self
            .uint("inconclusiveLimit", map.get("inconclusiveLimit"), MAX_LIMIT)
            .unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT);
        let mut checks = Vec::new();
        match map.get("checks") {
            None | Some(Value::Null) => self.fail("checks", "required (an empty list for none)"),
            Some(Value::Array(items)) => {
                if items.len() > MAX_CHECKS {
                    self.fail("checks", format!("at most {MAX_CHECKS} checks"));
                }
                let mut names = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("checks[{i}]");
                    if let Some(c) = self.check(&path, item) {
                        if !names.insert(c.name.clone()) {
                            self.fail(
                                format!("{path}.name"),
                                format!("{:?} is the name of an earlier check", c.name),
                            );
                        }
                        checks.push(c);
                    }
                }
            }
            Some(other) => self.fail(
                "checks",
                format!("must be a list, not {}", type_name(other)),
            ),
        }
        Some(ReleasePolicy {
            checks,
            inconclusive_limit,
        })
    }

    fn check(&mut self, path: &str, v: &Value) -> Option<Check> {
        let map = self.object(
            path,
            v,
            &[
                "name",
                "provider",
                "successCondition",
                "interval",
                "count",
                "failureLimit",
                "inconclusiveLimit",
                "when",
                "settle",
                "onFailure",
            ],
        )?;
        let at = |f: &str| format!("{path}.{f}");
        let before = self.errors.len();
        let name = self.string(&at("name"), map.get("name"), true);
        if let Some(n) = &name
            && (n.is_empty()
                || n.len() > 63
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            self.fail(
                at("name"),
                "1 to 63 letters, digits, '-' or '_' (it names the check in reasons and events)",
            );
        }
        let provider = self.provider(&at("provider"), map.get("provider"));
        let condition = self.string(&at("successCondition"), map.get("successCondition"), true);
        if let (Some(p), Some(c)) = (&provider, &condition)
            && let Err(e) = Expr::parse(c, p.variables())
        {
            self.fail(at("successCondition"), e.to_string());
        }
        let interval = self.interval(
            &at("interval"),
            map.get("interval"),
            MIN_INTERVAL_MS,
            MAX_INTERVAL_MS,
            true,
        );
        let when: Option<When> = self.choice(
            &at("when"),
            map.get("when"),
            &["gray", "afterEachBatch", "background"],
            true,
        );
        let count = self.uint(&at("count"), map.get("count"), MAX_COUNT);
        if count == Some(0) {
            self.fail(at("count"), "must be at least 1");
        }
        let count = match (count, when) {
            (None, Some(When::Gray | When::AfterEachBatch)) => Some(1),
            (c, _) => c,
        };
        let failure_limit = self
            .uint(&at("failureLimit"), map.get("failureLimit"), MAX_COUNT)
            .unwrap_or(0);
        if let Some(c) = count
            && c > 0
            && failure_limit >= c
        {
            self.fail(
                at("failureLimit"),
                format!(
                    "{failure_limit} tolerated failures of {c} measurements: the check could never fail (make it less than count)"
                ),
            );
        }
        let inconclusive_limit = self.uint(
            &at("inconclusiveLimit"),
            map.get("inconclusiveLimit"),
            MAX_LIMIT,
        );
        let settle = self.interval(&at("settle"), map.get("settle"), 0, MAX_INTERVAL_MS, false);
        if settle.is_some() && when.is_some() && when != Some(When::AfterEachBatch) {
            self.fail(at("settle"), "only for when: afterEachBatch");
        }
        let on_failure: Option<OnFailure> = self.choice(
            &at("onFailure"),
            map.get("onFailure"),
            &["pause", "rollback"],
            false,
        );
        if self.errors.len() > before {
            return None;
        }
        Some(Check {
            name: name?,
            provider: provider?,
            success_condition: condition?,
            interval: interval?,
            count,
            failure_limit,
            inconclusive_limit,
            when: when?,
            settle,
            on_failure: on_failure.unwrap_or_default(),
        })
    }

    fn provider(&mut self, path: &str, v: Option<&Value>) -> Option<Provider> {
        const KINDS: &[&str] = &["traffic", "health", "prometheus", "webhook"];
        let Some(v) = v else {
            self.fail(
                path,
                "required (one of: traffic, health, prometheus, webhook)",
            );
            return None;
        };
        let map = self.object(path, v, KINDS)?;
        if map.len() != 1 {
            self.fail(path, "exactly one of traffic, health, prometheus, webhook");
            return None;
        }
        let (kind, body) = map.iter().next()?;
        let at = |f: &str| format!("{path}.{kind}.{f}");
        let here = format!("{path}.{kind}");
        match kind.as_str() {
            "traffic" => {
                let m = self.object(&here, body, &["metric", "comparedTo"])?;
                let metric = self.choice(
                    &at("metric"),
                    m.get("metric"),
                    &[
                        "successRate",
                        "errorRate",
                        "latencyP50",
                        "latencyP90",
                        "latencyP99",
                        "requestRate",
                    ],
                    true,
                );
                let compared_to =
                    self.choice(&at("comparedTo"), m.get("comparedTo"), &["stable"], false);
                Some(Provider::Traffic {
                    metric: metric?,
                    compared_to,
                })
            }
            "health" => {
                let m = self.object(&here, body, &["metric"])?;
                let metric = self.choice(
                    &at("metric"),
                    m.get("metric"),
                    &["restarts", "oomKills", "crashLooping"],
                    true,
                );
                Some(Provider::Health { metric: metric? })
            }
            "prometheus" => {
                let m = self.object(&here, body, &["query", "address"])?;
                let query = self.string(&at("query"), m.get("query"), true);
                if let Some(q) = &query
                    && (q.trim().is_empty() || q.len() > 4096)
                {
                    self.fail(at("query"), "1 to 4096 characters");
                } else if let Some(q) = &query
                    && let Err(e) = crate::providers::check_placeholders(q)
                {
                    self.fail(at("query"), e);
                }
                let address = self.url(&at("address"), m.get("address"), false);
                let bad_address =
                    m.get("address").is_some_and(|a| !a.is_null()) && address.is_none();
                if bad_address {
                    return None;
                }
                Some(Provider::Prometheus {
                    query: query?,
                    address,
                })
            }
            "webhook" => {
                let m = self.object(&here, body, &["url", "timeout", "retries"])?;
                let given = |k: &str| m.get(k).filter(|v| !v.is_null());
                let url = self.url(&at("url"), m.get("url"), true);
                let timeout = match given("timeout") {
                    None => Some(Interval(10_000)),
                    t => self.interval(&at("timeout"), t, 100, MAX_WEBHOOK_TIMEOUT_MS, true),
                };
                let retries = match given("retries") {
                    None => Some(2),
                    r => self.uint(&at("retries"), r, MAX_RETRIES),
                };
                Some(Provider::Webhook {
                    url: url?,
                    timeout: timeout?,
                    retries: retries?,
                })
            }
            // Named by `object` as an unknown field.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
inconclusiveLimit: 3
checks:
  - name: errors
    provider:
      traffic:
        metric: errorRate
    successCondition: result < 0.05
    interval: 10s
    count: 3
    failureLimit: 1
    when: gray
    onFailure: rollback
  - name: latency
    provider:
      traffic: {metric: latencyP99, comparedTo: stable}
    successCondition: result <= baseline * 1.5 + 20
    interval: 5s
    when: afterEachBatch
    settle: 30s
  - name: prom
    provider:
      prometheus:
        query: sum(rate(http_requests_total{code=~"5..",revision="{{revision}}"}[1m]))
    successCondition: result < 1
    interval: 1m
    when: background
    inconclusiveLimit: 0
  - name: hook
    provider:
      webhook: {url: "http://127.0.0.1:9/check?token=x", timeout: 2s, retries: 1}
    successCondition: result == 1
    interval: 2s
    count: 2
    when: gray
"#;

    #[test]
    fn a_good_policy_decodes_and_round_trips_as_json() {
        let p = ReleasePolicy::from_text(GOOD).unwrap();
        assert_eq!(p.inconclusive_limit, 3);
        assert_eq!(p.checks.len(), 4);
        assert_eq!(p.checks[0].on_failure, OnFailure::Rollback);
        assert_eq!(
            p.checks[1].count,
            Some(1),
            "a gated check measures once by default"
        );
        assert_eq!(p.checks[1].on_failure, OnFailure::Pause);
        assert_eq!(p.checks[1].settle, Some(Interval(30_000)));
        assert_eq!(
            p.checks[2].count, None,
            "a background check runs for the release"
        );
        assert_eq!(p.inconclusive_limit_of(&p.checks[2]), 0);
        assert_eq!(p.inconclusive_limit_of(&p.checks[0]), 3);
        assert!(p.checks[2].needs_default_prometheus());
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json["checks"][0]["provider"]["traffic"]["metric"],
            "errorRate"
        );
        assert_eq!(json["checks"][1]["interval"], "5s");
        assert_eq!(json["checks"][2]["interval"], "1m");
        assert_eq!(json["checks"][3]["provider"]["webhook"]["timeout"], "2s");
        let back: ReleasePolicy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, p);
        back.validate().unwrap();
        // The JSON form is also accepted as text, unchanged.
        assert_eq!(ReleasePolicy::from_text(&json.to_string()).unwrap(), p);
    }

    #[test]
    fn every_violation_is_listed_with_its_path() {
        let text = r#"
checks:
  - name: errors
    provider: {traffic: {metric: errorRate}}
    successCondition: rezult < 0.05
    interval: 10
    when: gray
  - name: errors
    provider: {traffic: {metric: p99}, health: {metric: restarts}}
    successCondition: result < 1
    interval: 500ms
    when: sometimes
    count: 0
  - name: "bad name!"
    provider: {webhook: {url: "ftp://x/", retries: 9}}
    successCondition: result < 1
    interval: 10s
    count: 2
    failureLimit: 2
    when: gray
    settle: 5s
    colour: blue
  - name: ok
    provider: {prometheus: {query: "up{x=\"{{version}}\"}", address: "nope"}}
    successCondition: result == 1 && result
    interval: 2h
    when: background
    onFailure: explode
"#;
        let err = ReleasePolicy::from_text(text).unwrap_err();
        let got: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        let want = [
            "checks[0].successCondition: unknown variable 'rezult' (this check has result, requests) at column 1",
            "checks[0].interval: 10 has no unit (write e.g. 10s)",
            "checks[1].provider: exactly one of traffic, health, prometheus, webhook",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        for w in [
            "checks[1].interval: 500ms is out of range (1s to 1h)",
            "checks[1].when: \"sometimes\" is not one of gray, afterEachBatch, background",
            "checks[1].count: must be at least 1",
            "checks[2].colour: unknown field",
            "checks[2].name: 1 to 63 letters",
            "checks[2].provider.webhook.url: must be an http:// or https:// URL with a host",
            "checks[2].provider.webhook.retries: must be a whole number from 0 to 5",
            "checks[2].failureLimit: 2 tolerated failures of 2 measurements",
            "checks[2].settle: only for when: afterEachBatch",
            "checks[3].provider.prometheus.address: not a URL",
            "checks[3].provider.prometheus.query: unknown placeholder '{{version}}'",
            "checks[3].interval: 2h is out of range (1s to 1h)",
            "checks[3].onFailure: \"explode\" is not one of pause, rollback",
        ] {
            assert!(
                got.iter().any(|g| g.starts_with(w)),
                "missing {w:?} in {got:#?}"
            );
        }
        let cond = ReleasePolicy::from_text(
            "checks:\n- {name: a, provider: {health: {metric: restarts}}, successCondition: result == 0 && result, interval: 5s, when: background}\n",
        )
        .unwrap_err();
        assert_eq!(
            cond.to_string(),
            "checks[0].successCondition: '&&' needs a boolean, not a number at column 13"
        );
        // The duplicate name is reported only for checks that are otherwise valid.
        let dup = ReleasePolicy::from_text(
            "checks:\n- {name: a, provider: {health: {metric: restarts}}, successCondition: result == 0, interval: 5s, when: background}\n- {name: a, provider: {health: {metric: oomKills}}, successCondition: result == 0, interval: 5s, when: background}\n",
        )
        .unwrap_err();
        assert_eq!(
            dup.to_string(),
            "checks[1].name: \"a\" is the name of an earlier check"
        );
    }

    #[test]
    fn whole_document_mistakes() {
        let e = |t: &str| ReleasePolicy::from_text(t).unwrap_err().to_string();
        assert_eq!(e("checks: 3"), "checks: must be a list, not a number");
        assert_eq!(e("{}"), "checks: required (an empty list for none)");
        assert!(e("[1, 2]").starts_with("policy: must be a map"));
        assert!(e("checks: [").starts_with("policy: not YAML"));
        assert!(e("{\"checks\": ").starts_with("policy: not JSON"));
        assert_eq!(
            e("checks: []\nfoo: 1"),
            "foo: unknown field (known: checks, inconclusiveLimit)"
        );
        assert_eq!(
            ReleasePolicy::from_text("checks: []")
                .unwrap()
                .inconclusive_limit,
            DEFAULT_INCONCLUSIVE_LIMIT
        );
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../../docs/RELEASE-POLICY.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let p = ReleasePolicy::from_text(yaml).unwrap();
        assert_eq!(p.checks.len(), 4);
        assert_eq!(p.checks[3].provider.kind(), "webhook");
    }

    proptest::proptest! {
        /// The admin API hands it untrusted bodies: any text is a policy or violations.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = ReleasePolicy::from_text(&s);
        }

        #[test]
        fn yaml_shaped_text_never_panics(
            s in "(checks:|- |name: |provider: |\\{|\\}|\\[|\\]|traffic|webhook|url: |interval: |count: |when: |gray|1s|-1|9999999999999|\"|\n|  |,|: ){0,60}"
        ) {
            let _ = ReleasePolicy::from_text(&s);
        }
    }

    #[test]
    fn intervals() {
        for (t, ms, back) in [
            ("10s", 10_000, "10s"),
            ("1500ms", 1500, "1500ms"),
            ("2m", 120_000, "2m"),
            ("60s", 60_000, "1m"),
            ("1h", 3_600_000, "1h"),
        ] {
            let i = Interval::parse(t).unwrap();
            assert_eq!(i.ms(), ms);
            assert_eq!(i.to_string(), back);
        }
        assert!(Interval::parse("10").is_err());
        assert!(Interval::parse("s").is_err());
        assert!(Interval::parse("10d").is_err());
        assert!(Interval::parse("99999999999999999999h").is_err());
        assert!(Interval::parse("-1s").is_err());
    }
}
