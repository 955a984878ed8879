//! What a revision's pods say, as the release engine wants to hear it: plain readiness, and
//! the reason when Kubernetes will not get an instance running by itself. Pure (pods in,
//! [`RevisionState`] out) so it is tested without a cluster.

use std::time::Duration;

use edas_runtime::{Instance, RevisionState};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Default restarts after which a container in `CrashLoopBackOff` is reported failed.
/// Kubernetes keeps restarting it (with back-off up to five minutes); the release fails instead
/// of waiting for its batch timeout, as the local runtime does after its crash-loop limit.
pub const CRASH_LOOP_RESTARTS: i32 = 3;

/// Default time a pod may stay unschedulable before it is reported failed (a cluster
/// autoscaler may add a node meanwhile).
pub const UNSCHEDULABLE_GRACE: Duration = Duration::from_secs(30);

/// Waiting reasons that will not go away without a change (a new image, a new ConfigMap …).
/// `ErrImagePull` is the kubelet's first report of an image it cannot pull; it retries with
/// back-off (`ImagePullBackOff`), which succeeds only if the registry changes.
const STUCK_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// When an instance counts as failed although Kubernetes keeps trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// How long a pod may stay `Unschedulable` (condition `PodScheduled=False`).
    pub unschedulable_grace: Duration,
    /// Restarts after which a container in `CrashLoopBackOff` fails.
    pub crash_loop_restarts: i32,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            unschedulable_grace: UNSCHEDULABLE_GRACE,
            crash_loop_restarts: CRASH_LOOP_RESTARTS,
        }
    }
}

/// When the scheduler gave up on this pod for the time being (`PodScheduled=False`, reason
/// `Unschedulable`), with its message.
fn unschedulable(pod: &Pod) -> Option<(Option<Timestamp>, String)> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    if c.reason.as_deref() != Some("Unschedulable") {
        return None;
    }
    Some((
        c.last_transition_time.as_ref().map(|t| t.0),
        c.message.clone().unwrap_or_default(),
    ))
}

/// When an unschedulable pod's grace period ends, if it is unschedulable and that is still
/// ahead of `now` (the runtime wakes the release then).
pub fn grace_ends(pod: &Pod, policy: &FailurePolicy, now: Timestamp) -> Option<Timestamp> {
    let (since, _) = unschedulable(pod)?;
    let ends = since?
        .checked_add(SignedDuration::try_from(policy.unschedulable_grace).ok()?)
        .ok()?;
    (ends > now).then_some(ends)
}

/// Whether the pod is Ready (its `Ready` condition is `True`) and not being deleted.
pub fn is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why Kubernetes will not get this pod running by itself, if it will not (as of `now`), in the
/// cluster's own words.
pub fn failure(pod: &Pod, policy: &FailurePolicy, now: Timestamp) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref()?;
    if let Some((since, message)) = unschedulable(pod)
        && grace_ends(pod, policy, now).is_none()
    {
        let since = since.map(|t| format!(" since {t}")).unwrap_or_default();
        return Some(format!(
            "pod {name}: Unschedulable{since}: {message} (grace period {}s)",
            policy.unschedulable_grace.as_secs()
        ));
    }
    if status.phase.as_deref() == Some("Failed") {
        let why = status
            .message
            .clone()
            .or_else(|| status.reason.clone())
            .unwrap_or_else(|| "the pod failed".into());
        return Some(format!("pod {name}: {why}"));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or("");
        let stuck = STUCK_REASONS.contains(&reason)
            || (reason == "CrashLoopBackOff" && c.restart_count >= policy.crash_loop_restarts);
        if stuck {
            let message = waiting
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Some(format!(
                "pod {name}, container {}: {reason}{message} (restarts: {})",
                c.name, c.restart_count
            ));
        }
    }
    None
}

fn restarts(pod: &Pod) -> u32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter()
                .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
                .sum()
        })
}

/// How a container of the pod last terminated (`OOMKilled`, `Error` with its exit code …), the
/// most recent first: what `kubectl describe` shows as "Last State".
pub fn last_exit(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .filter_map(|c| {
            let t = c.last_state.as_ref()?.terminated.as_ref()?;
            let reason = t.reason.clone().unwrap_or_else(|| "Terminated".to_owned());
            let text = match (&t.message, t.signal) {
                (Some(m), _) if !m.is_empty() => {
                    format!("{reason} (exit code {}): {m}", t.exit_code)
                }
                (_, Some(sig)) if sig != 0 => format!("{reason} (signal {sig})"),
                _ => format!("{reason} (exit code {})", t.exit_code),
            };
            Some((t.finished_at.clone(), text))
        })
        .max_by(|a, b| a.0.as_ref().map(|t| t.0).cmp(&b.0.as_ref().map(|t| t.0)))
        .map(|(_, text)| text)
}

/// The state of a revision from its pods (in any order). A pod that has finished for good
/// (`Succeeded`) no longer counts; a pod being deleted still exists (it is shutting down) but is
/// not ready.
pub fn revision_state<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    policy: &FailurePolicy,
    now: Timestamp,
) -> RevisionState {
    let mut pods: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded"))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut state = RevisionState::default();
    for pod in pods {
        let ready = is_ready(pod);
        let failed = failure(pod, policy, now);
        if state.failed.is_none() {
            state.failed.clone_from(&failed);
        }
        state.total += 1;
        state.ready += u32::from(ready);
        state.instances.push(Instance {
            name: pod.metadata.name.clone().unwrap_or_default(),
            revision: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::LABEL_REVISION))
                .cloned()
                .unwrap_or_default(),
            ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            port: None,
            ready,
            restarts: restarts(pod),
            failed,
            last_exit: last_exit(pod),
        });
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ready_pending_terminating_and_failed_pods() {
        let ready = pod(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Running", "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let pending = pod(json!({"metadata": {"name": "b"}, "status": {"phase": "Pending"}}));
        let terminating = pod(
            json!({"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let done = pod(json!({"metadata": {"name": "d"}, "status": {"phase": "Succeeded"}}));
        let state = revision_state(
            [&ready, &pending, &terminating, &done],
            &FailurePolicy::default(),
            Timestamp::now(),
        );
        assert_eq!(
            (state.ready, state.total, state.failed.clone()),
            (1, 3, None)
        );
        assert_eq!(state.instances[0].ip.as_deref(), Some("10.0.0.1"));
        assert!(!state.instances[2].ready);
    }

    #[test]
    fn stuck_pods_are_failed_with_the_reason() {
        let crashing = |restarts: i32| {
            pod(
                json!({"metadata": {"name": "x"}, "status": {"phase": "Running",
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false,
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}}),
            )
        };
        let policy = FailurePolicy::default();
        let now = Timestamp::now();
        let failure = |p: &Pod| failure(p, &policy, now);
        assert_eq!(failure(&crashing(1)), None);
        let reason = failure(&crashing(3)).unwrap();
        let patient = FailurePolicy {
            crash_loop_restarts: 10,
            ..policy
        };
        assert_eq!(super::failure(&crashing(3), &patient, now), None);
        assert!(
            reason.contains("CrashLoopBackOff") && reason.contains("app"),
            "{reason}"
        );
        let config = pod(
            json!({"metadata": {"name": "y"}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                    "message": "configmap \"c\" not found"}}}]}}),
        );
        let state = revision_state([&config], &policy, now);
        assert!(state.failed.unwrap().contains("configmap \"c\" not found"));
        let evicted = pod(
            json!({"metadata": {"name": "z"}, "status": {"phase": "Failed", "reason": "Evicted"}}),
        );
        assert_eq!(failure(&evicted).as_deref(), Some("pod z: Evicted"));
    }

    #[test]
    fn image_pull_errors_fail_at_once() {
        let pull = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "app", "image": "nope:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull",
                    "message": "failed to pull image \"nope:1\": not found"}}}]}}),
        );
        let why = failure(&pull, &FailurePolicy::default(), Timestamp::now()).unwrap();
        assert!(
            why.contains("ErrImagePull") && why.contains("failed to pull image \"nope:1\""),
            "{why}"
        );
    }

    #[test]
    fn unschedulable_pods_fail_after_the_grace_period_with_the_schedulers_message() {
        let since: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let pending = pod(
            json!({"metadata": {"name": "u"}, "status": {"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "message": "0/1 nodes are available: Insufficient cpu."}]}}),
        );
        let policy = FailurePolicy {
            unschedulable_grace: Duration::from_secs(10),
            ..FailurePolicy::default()
        };
        let at = |s: i64| since.checked_add(SignedDuration::from_secs(s)).unwrap();
        assert_eq!(failure(&pending, &policy, at(9)), None);
        assert_eq!(grace_ends(&pending, &policy, at(9)), Some(at(10)));
        let why = failure(&pending, &policy, at(10)).unwrap();
        assert!(
            why.contains("Unschedulable")
                && why.contains("0/1 nodes are available: Insufficient cpu."),
            "{why}"
        );
        assert_eq!(grace_ends(&pending, &policy, at(10)), None);
        let state = revision_state([&pending], &policy, at(11));
        assert_eq!((state.ready, state.total), (0, 1));
        assert!(state.failed.unwrap().contains("Insufficient cpu"));
        // Waiting for a volume to bind is not Unschedulable for good: other reasons wait.
        let binding = pod(
            json!({"metadata": {"name": "v"}, "status": {"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        assert_eq!(failure(&binding, &policy, at(100)), None);
    }
}
