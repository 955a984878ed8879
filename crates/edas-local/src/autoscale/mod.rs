//! The local runtime's autoscaler ([`edas_runtime::Runtime::set_autoscaling`]): for an
//! application with an enabled scaling rule, one task samples the scaled revision every
//! [`crate::LocalConfig::autoscale_interval`] (default 15 s, the HPA controller's sync period)
//! and decides its count with [`decide::decide`] (Kubernetes' HPA algorithm and behaviour).
//! Sampling on an interval is what an autoscaler is; nothing else runs on it.
//!
//! Metrics: `QPS`, the requests per second per ready instance answered through the
//! application's service proxies (`proxy_metrics`), and `CPU`, the ready instances' average
//! CPU time over the interval as a percentage of their CPU request (else their limit, else
//! one core), read from the instance's cgroup (`cpu.stat` `usage_usec` on v2, `cpuacct.usage`
//! on v1) or, where the host gives no CPU accounting cgroup, from `/proc/<pid>/stat` of its
//! processes. `MEMORY` is refused ([`check`]): the runtime does not measure it against a request.
//!
//! The autoscaler never scales by itself: a decision goes to the engine
//! ([`edas_runtime::Runtime::scale_decisions`]), which stores it as a Scale change order and
//! carries it out, so the store stays the truth and a restart or a release never fights it.
//! While a change order of the application runs the autoscaler is `held`: it keeps sampling
//! (so its baseline is fresh) but decides nothing.

pub mod decide;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edas_runtime::{Autoscaler, Autoscaling, RuntimeError, ScaleDecision};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::Inner;
use crate::cgroup::InstanceCgroup;
use decide::{History, Reading};

/// The metrics the local autoscaler measures.
pub const METRICS: [&str; 2] = ["CPU", "QPS"];

/// A decision not yet carried out is told again after this long (the engine may have been
/// busy with another change order of the application).
const RETELL: Duration = Duration::from_secs(30);

/// Whether the local runtime can scale by `rule`: every metric must be one it measures.
pub fn check(rule: &Autoscaler) -> Result<(), RuntimeError> {
    for (i, m) in rule.metrics.iter().enumerate() {
        if !METRICS.contains(&m.kind.as_str()) {
            return Err(RuntimeError::Unsupported(format!(
                "metrics[{i}].metricType: the `local` runtime cannot measure `{}` (it measures {}: CPU from the instances' cgroups, QPS from its service proxies)",
                m.kind,
                METRICS.join(" and ")
            )));
        }
    }
    Ok(())
}

/// One application's autoscaler, as the engine last set it.
struct Setting {
    autoscaling: Autoscaling,
    history: History,
    /// The count it last decided, until the revision runs it.
    wanted: Option<u32>,
    /// The last decision told to the engine: (from, to, when).
    told: Option<(u32, u32, Instant)>,
}

struct Slot {
    setting: Arc<Mutex<Setting>>,
    stop: CancellationToken,
}

/// Every application's autoscaler.
pub(crate) struct Autoscalers {
    apps: Mutex<HashMap<String, Slot>>,
    decisions: broadcast::Sender<ScaleDecision>,
}

impl Default for Autoscalers {
    fn default() -> Autoscalers {
        Autoscalers {
            apps: Mutex::default(),
            decisions: broadcast::channel(256).0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Autoscalers {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ScaleDecision> {
        self.decisions.subscribe()
    }

    /// The count the application's autoscaler decided and the revision does not run yet.
    pub(crate) fn wanted(&self, app_id: &str) -> Option<u32> {
        lock(&self.apps)
            .get(app_id)
            .and_then(|s| lock(&s.setting).wanted)
    }
}

/// Makes the application's autoscaler exactly `autoscaling` (`None`: stops it). Its history
/// (recent recommendations and changes) is kept across changes of the rule and the revision.
pub(crate) fn set(inner: &Arc<Inner>, app_id: &str, autoscaling: Option<&Autoscaling>) {
    let mut apps = lock(&inner.autoscalers.apps);
    let Some(autoscaling) = autoscaling else {
        if let Some(slot) = apps.remove(app_id) {
            slot.stop.cancel();
        }
        return;
    };
    if let Some(slot) = apps.get(app_id) {
        let mut s = lock(&slot.setting);
        if s.autoscaling.revision != autoscaling.revision {
            s.wanted = None;
            s.told = None;
        }
        s.autoscaling = autoscaling.clone();
        return;
    }
    let setting = Arc::new(Mutex::new(Setting {
        autoscaling: autoscaling.clone(),
        history: History::default(),
        wanted: None,
        told: None,
    }));
    let stop = inner.detach.child_token();
    apps.insert(
        app_id.to_owned(),
        Slot {
            setting: setting.clone(),
            stop: stop.clone(),
        },
    );
    tokio::spawn(run(inner.clone(), app_id.to_owned(), setting, stop));
}

/// What one sample saw of the scaled revision.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    revision: String,
    /// Requests answered by the revision so far.
    answered: u64,
    /// Instance → its CPU time so far (µs).
    cpu: HashMap<String, u64>,
}

/// One instance of the scaled revision, as a sample needs it.
struct Seen {
    name: String,
    ready: bool,
    pid: Option<i32>,
    cgroup: Option<InstanceCgroup>,
}

impl Inner {
    /// The instances of `revision` (not stopping) and the CPU (millicores) each may use as
    /// its 100 %: its request, else its limit, else one core.
    fn autoscale_view(&self, app_id: &str, revision: &str) -> (Vec<Seen>, u32) {
        let revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = revisions.get(&(app_id.to_owned(), revision.to_owned())) else {
            return (Vec::new(), 1000);
        };
        let r = &entry.spec.resources;
        let base = r
            .cpu_request_millis
            .filter(|m| *m > 0)
            .or(r.cpu_limit_millis.filter(|m| *m > 0))
            .unwrap_or(1000);
        let seen = entry
            .instances
            .iter()
            .filter_map(|i| {
                let st = i.status();
                (!st.stopping).then(|| Seen {
                    name: i.name.clone(),
                    ready: st.ready && st.record.failed.is_none(),
                    pid: st.record.pid,
                    cgroup: st.record.cgroup.clone(),
                })
            })
            .collect();
        (seen, base)
    }
}

/// The CPU time (µs) an instance has used so far: its cgroup's accounting, else the `/proc`
/// times of its processes (those in its cgroups, else its own pid).
fn cpu_usec(pid: Option<i32>, cgroup: Option<&InstanceCgroup>) -> Option<u64> {
    if let Some(cg) = cgroup {
        for dir in &cg.dirs {
            if cg.v2
                && let Ok(text) = std::fs::read_to_string(dir.join("cpu.stat"))
                && let Some(v) = text.lines().find_map(|l| l.strip_prefix("usage_usec "))
            {
                return v.trim().parse().ok();
            }
            if let Ok(text) = std::fs::read_to_string(dir.join("cpuacct.usage")) {
                return text.trim().parse::<u64>().ok().map(|ns| ns / 1000);
            }
        }
    }
    let mut pids = cgroup.map(InstanceCgroup::processes).unwrap_or_default();
    if pids.is_empty() {
        pids.extend(pid);
    }
    if pids.is_empty() {
        return None;
    }
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    let ticks: u64 = pids
        .iter()
        .filter_map(|p| proc_cpu_ticks(&Path::new("/proc").join(p.to_string()).join("stat")))
        .sum();
    Some(ticks * 1_000_000 / tick)
}

/// utime + stime of `/proc/<pid>/stat` (fields 14 and 15, counted after the command's `)`).
fn proc_cpu_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The readings of `rule`'s metrics between two samples of the same revision.
fn readings(
    rule: &Autoscaler,
    prev: &Sample,
    next: &Sample,
    seen: &[Seen],
    cpu_base_millis: u32,
) -> Vec<Reading> {
    let elapsed = next.at.duration_since(prev.at).as_secs_f64();
    let ready: Vec<&Seen> = seen.iter().filter(|s| s.ready).collect();
    if elapsed <= 0.0 || ready.is_empty() {
        return Vec::new();
    }
    rule.metrics
        .iter()
        .filter_map(|m| {
            let value = match m.kind.as_str() {
                "QPS" => {
                    next.answered.saturating_sub(prev.answered) as f64
                        / elapsed
                        / ready.len() as f64
                }
                "CPU" => {
                    let used: Vec<f64> = ready
                        .iter()
                        .filter_map(|s| {
                            let (a, b) = (prev.cpu.get(&s.name)?, next.cpu.get(&s.name)?);
                            Some(b.saturating_sub(*a) as f64)
                        })
                        .collect();
                    if used.is_empty() {
                        return None;
                    }
                    let per_instance = used.iter().sum::<f64>() / used.len() as f64;
                    per_instance / (elapsed * 1e6) / (f64::from(cpu_base_millis) / 1000.0) * 100.0
                }
                _ => return None,
            };
            Some(Reading {
                metric: m.kind.clone(),
                value,
                target: f64::from(m.target_utilization),
            })
        })
        .collect()
}

/// One application's autoscaler: a sample every interval, a decision from the last two.
async fn run(
    inner: Arc<Inner>,
    app_id: String,
    setting: Arc<Mutex<Setting>>,
    stop: CancellationToken,
) {
    let every = inner.config.autoscale_interval;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let origin = Instant::now();
    let mut last: Option<Sample> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let autoscaling = lock(&setting).autoscaling.clone();
        let revision = autoscaling.revision.clone();
        let (seen, cpu_base) = inner.autoscale_view(&app_id, &revision);
        let wants_cpu = autoscaling.rule.metrics.iter().any(|m| m.kind == "CPU");
        let probes: Vec<(String, Option<i32>, Option<InstanceCgroup>)> = seen
            .iter()
            .filter(|_| wants_cpu)
            .map(|s| (s.name.clone(), s.pid, s.cgroup.clone()))
            .collect();
        let cpu = tokio::task::spawn_blocking(move || {
            probes
                .into_iter()
                .filter_map(|(name, pid, cg)| Some((name, cpu_usec(pid, cg.as_ref())?)))
                .collect::<HashMap<_, _>>()
        })
        .await
        .unwrap_or_default();
        let sample = Sample {
            at: Instant::now(),
            revision: revision.clone(),
            answered: inner.routes.answered(&app_id, &revision),
            cpu,
        };
        let Some(prev) = last.replace(sample.clone()) else {
            continue;
        };
        let current = u32::try_from(seen.len()).unwrap_or(u32::MAX);
        let ready = u32::try_from(seen.iter().filter(|s| s.ready).count()).unwrap_or(u32::MAX);
        if prev.revision != revision || autoscaling.held {
            continue;
        }
        let readings = readings(&autoscaling.rule, &prev, &sample, &seen, cpu_base);
        let now = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let decision = {
            let mut s = lock(&setting);
            if s.wanted == Some(current) {
                s.wanted = None;
            }
            let rule = s.autoscaling.rule.clone();
            decide::decide(&rule, &mut s.history, current, ready, &readings, now)
        };
        tracing::debug!(app_id = %app_id, %revision, current, ready, ?readings, ?decision, "autoscaler sample");
        let Some(decision) = decision else { continue };
        let tell = {
            let mut s = lock(&setting);
            s.wanted = Some(decision.desired);
            let again = s.told.is_none_or(|(from, to, at)| {
                (from, to) != (current, decision.desired) || at.elapsed() >= RETELL
            });
            if again {
                s.told = Some((current, decision.desired, Instant::now()));
            }
            again
        };
        if tell {
            tracing::info!(app_id = %app_id, %revision, from = current, to = decision.desired, reason = %decision.reason, "autoscaler decided");
            let _ = inner.autoscalers.decisions.send(ScaleDecision {
                app_id: app_id.clone(),
                revision: revision.clone(),
                from: current,
                to: decision.desired,
                reason: decision.reason,
                applied: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_runtime::ScaleMetric;

    #[test]
    fn memory_is_refused_naming_the_metric() {
        let rule = |kinds: &[&str]| Autoscaler {
            min_replicas: 1,
            max_replicas: 2,
            metrics: kinds
                .iter()
                .map(|k| ScaleMetric {
                    kind: (*k).to_owned(),
                    target_utilization: 50,
                })
                .collect(),
            scale_up: None,
            scale_down: None,
        };
        assert!(check(&rule(&["CPU", "QPS"])).is_ok());
        let e = check(&rule(&["QPS", "MEMORY"])).unwrap_err().to_string();
        assert!(e.starts_with("metrics[1].metricType:"), "{e}");
    }

    #[test]
    fn readings_per_ready_instance() {
        let t0 = Instant::now();
        let seen = |name: &str, ready| Seen {
            name: name.into(),
            ready,
            pid: None,
            cgroup: None,
        };
        let rule = Autoscaler {
            min_replicas: 1,
            max_replicas: 4,
            metrics: vec![
                ScaleMetric {
                    kind: "QPS".into(),
                    target_utilization: 5,
                },
                ScaleMetric {
                    kind: "CPU".into(),
                    target_utilization: 60,
                },
            ],
            scale_up: None,
            scale_down: None,
        };
        let prev = Sample {
            at: t0,
            revision: "1".into(),
            answered: 100,
            cpu: HashMap::from([("a".into(), 0), ("b".into(), 0)]),
        };
        let next = Sample {
            at: t0 + Duration::from_secs(2),
            revision: "1".into(),
            answered: 140,
            // a used 1 s of CPU in 2 s: 50 % of one core, 100 % of a 500m request.
            cpu: HashMap::from([("a".into(), 1_000_000), ("b".into(), 5)]),
        };
        let r = readings(
            &rule,
            &prev,
            &next,
            &[seen("a", true), seen("b", false)],
            500,
        );
        assert_eq!(r[0].metric, "QPS");
        assert!((r[0].value - 20.0).abs() < 1e-9, "{r:?}");
        assert!((r[1].value - 100.0).abs() < 1e-9, "{r:?}");
        assert!(readings(&rule, &prev, &next, &[seen("a", false)], 500).is_empty());
    }

    /// A real process spinning on one core: its CPU time grows by about the wall time.
    #[test]
    fn a_busy_process_is_measured() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = Some(child.id() as i32);
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_usec(pid, None).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let after = cpu_usec(pid, None).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let used = after - before;
        // At least a third of a core over 600 ms, even on a loaded machine; never more than
        // the wall time (one thread).
        assert!((200_000..=700_000).contains(&used), "{used} µs");
    }

    #[test]
    fn proc_stat_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(
            &path,
            "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 0 0",
        )
        .unwrap();
        assert_eq!(proc_cpu_ticks(&path), Some(10));
        let own = cpu_usec(Some(std::process::id() as i32), None);
        assert!(own.is_some());
    }
}
