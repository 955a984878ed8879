//! An application's autoscaling rule as the runtimes take it: bounds, metric targets and the
//! behaviour of each direction. Stored in edas-store's own shapes (the storage format), set on
//! the runtime port by the engine, rendered by edas-render as a HorizontalPodAutoscaler.

use serde::{Deserialize, Serialize};

/// One metric of a rule: keep the instances' average `kind` (`CPU` or `MEMORY`) at
/// `target_utilization` percent of their requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleMetric {
    pub kind: String,
    pub target_utilization: u32,
}

/// One policy of a direction: at most `value` pods (`Pods`) or percent (`Percent`) per
/// `period_seconds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalePolicy {
    pub kind: String,
    pub value: u32,
    pub period_seconds: u32,
}

/// How one direction scales: the stabilization (cool-down) window, which policy wins
/// (`Max`, `Min`, `Disabled`) and the policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleDirection {
    pub stabilization_window_seconds: u32,
    pub select_policy: String,
    pub policies: Vec<ScalePolicy>,
}

/// An enabled scaling rule, as the autoscaler needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Autoscaler {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<ScaleMetric>,
    /// `None`: Kubernetes' default for the direction.
    pub scale_up: Option<ScaleDirection>,
    pub scale_down: Option<ScaleDirection>,
}
