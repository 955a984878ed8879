//! Settings that describe one release rather than the application. They are stored with the
//! change order and never carried into the next revision.

use serde::{Deserialize, Serialize};

/// The default change-order timeout in seconds (EDAS's documented default for `Timeout`).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 600;

/// How one change is released.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseSettings {
    /// `ChangeOrderDesc`.
    pub description: Option<String>,
    /// `UpdateStrategy`; `None` releases in one batch.
    pub strategy: Option<UpdateStrategy>,
    /// `BatchTimeout` in seconds; when `None` the change order's `timeout_seconds` applies per batch.
    pub batch_timeout_seconds: Option<u32>,
    /// `Timeout` in seconds (1–1800, default 600).
    pub timeout_seconds: u32,
    /// `TrafficControlStrategy`: how requests are shared with the gray instances.
    pub traffic_control: Option<TrafficControl>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        ReleaseSettings {
            description: None,
            strategy: None,
            batch_timeout_seconds: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            traffic_control: None,
        }
    }
}

impl ReleaseSettings {
    /// The time one batch may take before the change order fails.
    pub fn effective_batch_timeout_seconds(&self) -> u32 {
        self.batch_timeout_seconds.unwrap_or(self.timeout_seconds)
    }
}

/// `UpdateStrategy`, decoded from
/// `{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":1},"grayUpdate":{"gray":1}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStrategy {
    /// `BatchUpdate` or `GrayBatchUpdate`.
    pub kind: StrategyKind,
    /// Gray instances released first (`grayUpdate.gray`; 0 for `BatchUpdate`).
    pub gray: u32,
    /// Batches after the gray step (`batchUpdate.batch`, ≥ 1).
    pub batches: u32,
    /// `batchUpdate.releaseType`.
    pub release_type: ReleaseType,
    /// `batchUpdate.batchWaitTime` in minutes, between automatic batches.
    pub batch_wait_minutes: u32,
}

/// The `type` of an `UpdateStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrategyKind {
    /// Batches only.
    BatchUpdate,
    /// A gray batch first, then batches.
    GrayBatchUpdate,
}

/// How the release moves from one batch to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseType {
    /// After `batch_wait_minutes`.
    Auto,
    /// After ContinuePipeline with `Confirm=true`.
    Manual,
}

/// `TrafficControlStrategy`: `{"http":{"rules":[…]}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficControl {
    /// HTTP rules, evaluated in order; a request matching none goes to the stable instances.
    pub rules: Vec<TrafficRule>,
}

/// One rule of `TrafficControlStrategy.http.rules`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "condition_type", rename_all = "snake_case")]
pub enum TrafficRule {
    /// `{"conditionType":"percent","percent":20}`: that share of requests goes to gray.
    Percent {
        /// 0–100.
        percent: u32,
    },
    /// `{"conditionType":"content","conditions":[{"type":"header","name":"x-gray","operator":"==","value":"1"}]}`:
    /// requests matching every condition go to gray.
    Content {
        /// All must match.
        conditions: Vec<TrafficCondition>,
    },
}

/// One content condition of a traffic rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCondition {
    /// What is inspected.
    pub source: ConditionSource,
    /// The header, cookie or query parameter name.
    pub name: String,
    /// How the value is compared.
    pub operator: ConditionOperator,
    /// The value (a regular expression for `regex`).
    pub value: String,
}

/// Where a condition reads its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionSource {
    /// An HTTP request header.
    Header,
    /// A cookie.
    Cookie,
    /// A query-string parameter.
    Param,
}

/// How a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionOperator {
    /// `==`: equal.
    Equal,
    /// `regex`: the whole value matches the regular expression.
    Regex,
}
