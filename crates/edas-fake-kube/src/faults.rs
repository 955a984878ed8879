//! Fault injection: what a test can make go wrong, from Rust ([`crate::FakeCluster::add_pod_fault`],
//! [`crate::FakeCluster::add_api_fault`]) or over HTTP (`/_fake/...`, see [`crate::server`]).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::selector::LabelSelector;

/// A fault on API calls: matching requests fail with an HTTP status, or are delayed (a "timeout"
/// from the client's point of view when the delay exceeds its timeout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiFault {
    /// HTTP method to match (`GET`, `PATCH`, …); `None` matches every method.
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters (`/apis/apps/v1/*/deployments*`). The query
    /// string is not part of the path.
    pub path: String,
    /// Respond with this HTTP status (a Kubernetes `Status` body). Exactly one of `status` and
    /// `delay_ms` must be set.
    #[serde(default)]
    pub status: Option<u16>,
    /// Hold the request this long before serving it normally.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// How many matching calls are affected; `None` means every call until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What an API fault does to one matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFaultAction {
    Fail(u16),
    Delay(Duration),
}

/// How an injected fault affects matching pods.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PodEffect {
    /// The pod runs but its readiness probe never succeeds.
    NeverReady,
    /// The pod becomes Ready, then after `crash_after_ms` its container crashes: Ready turns false,
    /// `restartCount` goes up, and it becomes Ready again after the ready delay, crashing again
    /// after `crash_after_ms`, for as long as the fault is installed. While it is down after a
    /// crash its container waits in `CrashLoopBackOff`.
    Crash,
    /// The scheduler cannot place the pod: `phase: Pending`, condition `PodScheduled=False` with
    /// reason `Unschedulable` and the fault's `message` (default `0/1 nodes are available:
    /// Insufficient cpu.`); no container status, no pod IP.
    Unschedulable,
    /// The image cannot be pulled: the container waits with reason `ErrImagePull`, then (after
    /// its first report) `ImagePullBackOff`, with the fault's `message`.
    ImagePullError,
    /// The container cannot be configured (a missing ConfigMap key, say): it waits with reason
    /// `CreateContainerConfigError` and the fault's `message`.
    ConfigError,
}

/// A fault on simulated pods, selected by labels and/or container image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFault {
    pub effect: PodEffect,
    /// Label selector (string form, e.g. `app=web,track in (canary)`); empty matches every pod.
    #[serde(default)]
    pub selector: String,
    /// Matches pods with a container using exactly this image.
    #[serde(default)]
    pub image: Option<String>,
    /// For [`PodEffect::Crash`]: how long the pod stays Ready before each crash.
    #[serde(default)]
    pub crash_after_ms: Option<u64>,
    /// For [`PodEffect::Unschedulable`], [`PodEffect::ImagePullError`] and
    /// [`PodEffect::ConfigError`]: the message the cluster reports (a default otherwise).
    #[serde(default)]
    pub message: Option<String>,
}

impl PodFault {
    /// Pods matching `selector` never become Ready.
    pub fn never_ready(selector: &str) -> Self {
        Self {
            effect: PodEffect::NeverReady,
            selector: selector.to_owned(),
            image: None,
            crash_after_ms: None,
            message: None,
        }
    }

    /// Pods matching `selector` are never scheduled (`Insufficient cpu`, or `message`).
    pub fn unschedulable(selector: &str, message: Option<&str>) -> Self {
        Self {
            effect: PodEffect::Unschedulable,
            message: message.map(str::to_owned),
            ..Self::never_ready(selector)
        }
    }

    /// Pods matching `selector` cannot pull their image.
    pub fn image_pull_error(selector: &str) -> Self {
        Self {
            effect: PodEffect::ImagePullError,
            ..Self::never_ready(selector)
        }
    }

    /// Pods matching `selector` cannot have their container configured.
    pub fn config_error(selector: &str, message: &str) -> Self {
        Self {
            effect: PodEffect::ConfigError,
            message: Some(message.to_owned()),
            ..Self::never_ready(selector)
        }
    }

    /// Pods running `image` never become Ready.
    pub fn never_ready_image(image: &str) -> Self {
        Self {
            effect: PodEffect::NeverReady,
            selector: String::new(),
            image: Some(image.to_owned()),
            crash_after_ms: None,
            message: None,
        }
    }

    /// Pods matching `selector` crash `after` they became Ready, repeatedly.
    pub fn crash(selector: &str, after: Duration) -> Self {
        Self {
            effect: PodEffect::Crash,
            selector: selector.to_owned(),
            image: None,
            crash_after_ms: Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
            message: None,
        }
    }

    fn check(&self) -> Result<LabelSelector, String> {
        let selector =
            LabelSelector::parse(&self.selector).map_err(|e| format!("selector: {}", e.message))?;
        match (self.effect, self.crash_after_ms) {
            (PodEffect::Crash, None) => Err("crashAfterMs: required when effect is crash".into()),
            (_, Some(_)) if self.effect != PodEffect::Crash => {
                Err("crashAfterMs: only valid when effect is crash".into())
            }
            _ if self.message.is_some()
                && matches!(self.effect, PodEffect::NeverReady | PodEffect::Crash) =>
            {
                Err("message: only valid when effect is unschedulable, imagePullError or configError".into())
            }
            _ => Ok(selector),
        }
    }

    fn matches(&self, selector: &LabelSelector, pod: &Value) -> bool {
        let image_ok = self.image.as_ref().is_none_or(|image| {
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.get("image").and_then(Value::as_str) == Some(image))
                })
        });
        image_ok && selector.matches(pod)
    }
}

impl ApiFault {
    /// Every matching call fails with `status`.
    pub fn error(method: Option<&str>, path: &str, status: u16) -> Self {
        Self {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            status: Some(status),
            delay_ms: None,
            times: None,
        }
    }

    /// Every matching call is held for `delay` first.
    pub fn delay(method: Option<&str>, path: &str, delay: Duration) -> Self {
        Self {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            status: None,
            delay_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            times: None,
        }
    }

    /// Limits the fault to the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn check(&self) -> Result<(), String> {
        if !self.path.starts_with('/') && self.path != "*" {
            return Err(format!(
                "path: {:?} must start with '/' (or be \"*\")",
                self.path
            ));
        }
        match (self.status, self.delay_ms) {
            (Some(code), None) if (400..=599).contains(&code) => Ok(()),
            (Some(code), None) => Err(format!(
                "status: {code} is not an HTTP error status (400-599)"
            )),
            (None, Some(_)) => Ok(()),
            _ => Err("exactly one of status and delayMs must be set".into()),
        }
    }
}

/// `*`-glob matching over the whole text.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(index) => rest = &rest[index + middle.len()..],
            None => return false,
        }
    }
    true
}

/// A right RBAC does not grant: `verb` on `resource` (plural) of API `group` (empty: core).
/// Calls needing it answer 403 Forbidden and SelfSubjectAccessReviews for it answer
/// `allowed: false`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeniedRight {
    pub verb: String,
    #[serde(default)]
    pub group: String,
    pub resource: String,
}

impl DeniedRight {
    /// `verb` on `resource` of `group` is denied.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

/// The installed faults.
#[derive(Default)]
pub struct Faults {
    api: Mutex<Vec<ApiFault>>,
    pods: Mutex<Vec<(PodFault, LabelSelector)>>,
    denied: Mutex<Vec<DeniedRight>>,
}

impl Faults {
    /// Installs an API fault; an invalid one is rejected with the field at fault.
    pub fn add_api(&self, fault: ApiFault) -> Result<(), String> {
        fault.check()?;
        self.api
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
        Ok(())
    }

    /// Installs a pod fault; an invalid one is rejected with the field at fault.
    pub fn add_pod(&self, fault: PodFault) -> Result<(), String> {
        let selector = fault.check()?;
        self.pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((fault, selector));
        Ok(())
    }

    /// Denies a right (see [`DeniedRight`]).
    pub fn deny(&self, right: DeniedRight) -> Result<(), String> {
        if right.verb.is_empty() || right.resource.is_empty() {
            return Err("verb and resource: required".into());
        }
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(right);
        Ok(())
    }

    /// Whether `verb` on `resource` of `group` is denied.
    pub fn is_denied(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|d| {
                (d.verb == verb || d.verb == "*")
                    && d.group == group
                    && (d.resource == resource || d.resource == "*")
            })
    }

    /// Removes every fault (denied rights included).
    pub fn clear(&self) {
        self.api.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The action for this call, consuming one use of the first matching fault.
    pub fn take_api(&self, method: &str, path: &str) -> Option<ApiFaultAction> {
        if path.starts_with("/_fake/") {
            return None;
        }
        let mut faults = self.api.lock().unwrap_or_else(|p| p.into_inner());
        let index = faults.iter().position(|f| {
            f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && glob(&f.path, path)
        })?;
        let fault = &mut faults[index];
        let action = match (fault.status, fault.delay_ms) {
            (Some(code), _) => ApiFaultAction::Fail(code),
            (None, delay) => ApiFaultAction::Delay(Duration::from_millis(delay.unwrap_or(0))),
        };
        if let Some(times) = fault.times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                faults.remove(index);
            }
        }
        Some(action)
    }

    /// The first pod fault matching this pod.
    pub fn pod_effect(&self, pod: &Value) -> Option<(PodEffect, Duration)> {
        self.pod_fault(pod).map(|fault| {
            (
                fault.effect,
                Duration::from_millis(fault.crash_after_ms.unwrap_or(0)),
            )
        })
    }

    /// The first pod fault matching this pod, whole.
    pub fn pod_fault(&self, pod: &Value) -> Option<PodFault> {
        let faults = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        faults
            .iter()
            .find(|(fault, selector)| fault.matches(selector, pod))
            .map(|(fault, _)| fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glob_matches_whole_paths() {
        assert!(glob(
            "/apis/apps/v1/*",
            "/apis/apps/v1/namespaces/x/deployments"
        ));
        assert!(glob(
            "*/deployments*",
            "/apis/apps/v1/namespaces/x/deployments/web"
        ));
        assert!(!glob("/api/v1/*", "/apis/apps/v1/x"));
        assert!(glob("/api", "/api"));
        assert!(!glob("/api", "/api/v1"));
    }

    #[test]
    fn api_faults_are_counted_and_validated() {
        let faults = Faults::default();
        faults
            .add_api(ApiFault::error(Some("GET"), "/api/v1/*", 503).times(2))
            .unwrap();
        assert_eq!(faults.take_api("POST", "/api/v1/pods"), None);
        assert_eq!(
            faults.take_api("GET", "/api/v1/pods"),
            Some(ApiFaultAction::Fail(503))
        );
        assert_eq!(
            faults.take_api("get", "/api/v1/pods"),
            Some(ApiFaultAction::Fail(503))
        );
        assert_eq!(faults.take_api("GET", "/api/v1/pods"), None);
        assert!(
            faults
                .add_api(ApiFault::error(None, "/x", 200))
                .unwrap_err()
                .contains("status")
        );
        let both = ApiFault {
            delay_ms: Some(1),
            ..ApiFault::error(None, "/x", 500)
        };
        assert!(faults.add_api(both).is_err());
        assert!(
            faults
                .add_api(ApiFault::error(None, "x", 500))
                .unwrap_err()
                .contains("path")
        );
    }

    #[test]
    fn pod_faults_match_by_selector_and_image() {
        let faults = Faults::default();
        faults
            .add_pod(PodFault::never_ready_image("bad:1"))
            .unwrap();
        faults
            .add_pod(PodFault::crash("app=web", Duration::from_millis(5)))
            .unwrap();
        let pod = |labels: Value, image: &str| json!({"metadata": {"labels": labels}, "spec": {"containers": [{"image": image}]}});
        assert_eq!(
            faults.pod_effect(&pod(json!({}), "bad:1")).map(|e| e.0),
            Some(PodEffect::NeverReady)
        );
        assert_eq!(
            faults
                .pod_effect(&pod(json!({"app": "web"}), "ok"))
                .map(|e| e.0),
            Some(PodEffect::Crash)
        );
        assert_eq!(faults.pod_effect(&pod(json!({"app": "api"}), "ok")), None);
        let missing = PodFault {
            crash_after_ms: None,
            ..PodFault::crash("", Duration::ZERO)
        };
        assert!(
            faults
                .add_pod(missing)
                .unwrap_err()
                .contains("crashAfterMs")
        );
    }
}
