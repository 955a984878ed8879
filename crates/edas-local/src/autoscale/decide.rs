//! The autoscaler's decision, pure (time and samples are inputs): Kubernetes' HPA algorithm
//! on one rule. Per metric `desired = ceil(ready × value / target)`, unless the ratio is
//! within the 10 % tolerance (then the count stays); the largest proposal wins, clamped to
//! the rule's bounds. Then the behaviour: each direction's stabilization window (scale up to
//! the *lowest* recommendation of the up window, down to the *highest* of the down window, so
//! one spike or dip does not move the count) and its rate policies (`Pods`/`Percent` per
//! period, `selectPolicy` `Max`/`Min`/`Disabled`), with Kubernetes' defaults for a direction
//! the rule leaves out (up: no window, +100 % or +4 pods per 15 s; down: 300 s, −100 % per
//! 15 s).

use std::collections::VecDeque;

use edas_runtime::{Autoscaler, ScaleDirection, ScalePolicy};

/// The HPA's tolerance: a metric within 10 % of its target changes nothing.
pub const TOLERANCE: f64 = 0.1;

/// One metric as sampled over the last interval: the instances' average and the rule's target,
/// in the metric's unit (CPU: percent of the request; QPS: requests per second).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The metric (`CPU`, `QPS`).
    pub metric: String,
    /// The average per ready instance.
    pub value: f64,
    /// The rule's target.
    pub target: f64,
}

impl Reading {
    fn describe(&self, up: bool) -> String {
        let (value, target) = match self.metric.as_str() {
            "QPS" => (
                format!("{:.1}/s per instance", self.value),
                format!("{}/s", self.target),
            ),
            _ => (format!("{:.0}%", self.value), format!("{}%", self.target)),
        };
        let cmp = if up { '>' } else { '<' };
        format!(
            "{} {value} {cmp} target {target}",
            self.metric.to_ascii_lowercase()
        )
    }
}

/// What one autoscaler remembers between decisions: its recent recommendations (for the
/// stabilization windows) and scale events (for the rate policies), by time in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    recommendations: VecDeque<(u64, u32)>,
    events: VecDeque<(u64, i64)>,
}

/// A change of the instance count and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The count wanted.
    pub desired: u32,
    /// Why (`cpu 85% > target 60%`), for the change order's description.
    pub reason: String,
}

fn default_up() -> ScaleDirection {
    ScaleDirection {
        stabilization_window_seconds: 0,
        select_policy: "Max".into(),
        policies: vec![
            ScalePolicy {
                kind: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
            ScalePolicy {
                kind: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
        ],
    }
}

fn default_down() -> ScaleDirection {
    ScaleDirection {
        stabilization_window_seconds: 300,
        select_policy: "Max".into(),
        policies: vec![ScalePolicy {
            kind: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }],
    }
}

/// A direction as Kubernetes defaults it: absent → the default; no policies → the default's.
fn effective(given: Option<&ScaleDirection>, default: ScaleDirection) -> ScaleDirection {
    match given {
        None => default,
        Some(d) if d.policies.is_empty() => ScaleDirection {
            policies: default.policies,
            ..d.clone()
        },
        Some(d) => d.clone(),
    }
}

/// The net change of the count within the last `period_seconds` (added, removed).
fn changes_in(history: &History, now: u64, period_seconds: u32) -> (i64, i64) {
    let since = now.saturating_sub(u64::from(period_seconds) * 1000);
    history.events.iter().filter(|(at, _)| *at > since).fold(
        (0, 0),
        |(added, removed), (_, change)| {
            if *change > 0 {
                (added + change, removed)
            } else {
                (added, removed - change)
            }
        },
    )
}

/// The highest count the up policies allow now (HPA's `calculateScaleUpLimitWithScalingRules`).
fn up_limit(history: &History, now: u64, current: u32, d: &ScaleDirection) -> i64 {
    let limits = d.policies.iter().map(|p| {
        let (added, removed) = changes_in(history, now, p.period_seconds);
        let start = (i64::from(current) - added + removed) as f64;
        if p.kind == "Pods" {
            start as i64 + i64::from(p.value)
        } else {
            (start * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
        }
    });
    match d.select_policy.as_str() {
        "Disabled" => i64::from(current),
        "Min" => limits.min().unwrap_or(i64::from(current)),
        _ => limits.max().unwrap_or(i64::from(current)),
    }
}

/// The lowest count the down policies allow now (HPA's `calculateScaleDownLimitWithBehaviors`).
fn down_limit(history: &History, now: u64, current: u32, d: &ScaleDirection) -> i64 {
    let limits = d.policies.iter().map(|p| {
        let (added, removed) = changes_in(history, now, p.period_seconds);
        let start = (i64::from(current) - added + removed) as f64;
        if p.kind == "Pods" {
            start as i64 - i64::from(p.value)
        } else {
            (start * (1.0 - f64::from(p.value) / 100.0)) as i64
        }
    });
    match d.select_policy.as_str() {
        "Disabled" => i64::from(current),
        "Min" => limits.max().unwrap_or(i64::from(current)),
        _ => limits.min().unwrap_or(i64::from(current)),
    }
}

/// Decides the count of a revision running `current` instances, `ready` of them ready, from
/// the last interval's `readings`, at `now` (milliseconds on any monotonic clock); remembers
/// the recommendation (and the change, when there is one) in `history`. `None`: keep the
/// count (no instance runs or is ready, no reading, within tolerance, or held back by a
/// window or policy).
pub fn decide(
    rule: &Autoscaler,
    history: &mut History,
    current: u32,
    ready: u32,
    readings: &[Reading],
    now: u64,
) -> Option<Decision> {
    let (min, max) = (rule.min_replicas, rule.max_replicas.max(rule.min_replicas));
    if current == 0 {
        // A stopped application is not scaled (as an HPA with a target at 0 replicas).
        return None;
    }
    if current < min || current > max {
        let desired = current.clamp(min, max);
        record(history, now, current, desired);
        return Some(Decision {
            desired,
            reason: format!("the rule's bounds are {min} to {max}"),
        });
    }
    if ready == 0 {
        return None;
    }
    // Each metric's proposal; the largest wins (ties: the first).
    let mut best: Option<(u32, &Reading)> = None;
    for r in readings
        .iter()
        .filter(|r| r.target > 0.0 && r.value.is_finite())
    {
        let ratio = r.value / r.target;
        let proposal = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            let p = (ratio * f64::from(ready)).ceil();
            if p >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                p.max(0.0) as u32
            }
        };
        if best.is_none_or(|(b, _)| proposal > b) {
            best = Some((proposal, r));
        }
    }
    let (proposal, reading) = best?;
    let recommendation = proposal.clamp(min, max);

    let up = effective(rule.scale_up.as_ref(), default_up());
    let down = effective(rule.scale_down.as_ref(), default_down());
    let keep = u64::from(
        up.stabilization_window_seconds
            .max(down.stabilization_window_seconds),
    ) * 1000;
    history.recommendations.push_back((now, recommendation));
    while history
        .recommendations
        .front()
        .is_some_and(|(at, _)| now.saturating_sub(*at) > keep)
    {
        history.recommendations.pop_front();
    }
    let within = |window: u32| {
        let since = now.saturating_sub(u64::from(window) * 1000);
        history
            .recommendations
            .iter()
            .filter(move |(at, _)| *at >= since)
            .map(|(_, r)| *r)
    };
    let up_rec = within(up.stabilization_window_seconds)
        .min()
        .unwrap_or(recommendation);
    let down_rec = within(down.stabilization_window_seconds)
        .max()
        .unwrap_or(recommendation);
    let mut desired = current;
    if desired < up_rec {
        desired = up_rec;
    }
    if desired > down_rec {
        desired = down_rec;
    }
    let limited = if desired > current {
        i64::from(desired).min(up_limit(history, now, current, &up))
    } else if desired < current {
        i64::from(desired).max(down_limit(history, now, current, &down))
    } else {
        i64::from(desired)
    };
    let desired = u32::try_from(limited.max(0))
        .unwrap_or(u32::MAX)
        .clamp(min, max);
    if desired == current {
        return None;
    }
    record(history, now, current, desired);
    let longest = 1800 * 1000;
    while history
        .events
        .front()
        .is_some_and(|(at, _)| now.saturating_sub(*at) > longest)
    {
        history.events.pop_front();
    }
    Some(Decision {
        desired,
        reason: reading.describe(desired > current),
    })
}

fn record(history: &mut History, now: u64, current: u32, desired: u32) {
    history
        .events
        .push_back((now, i64::from(desired) - i64::from(current)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(min: u32, max: u32) -> Autoscaler {
        Autoscaler {
            min_replicas: min,
            max_replicas: max,
            metrics: vec![],
            scale_up: None,
            scale_down: None,
        }
    }

    fn qps(value: f64, target: f64) -> Vec<Reading> {
        vec![Reading {
            metric: "QPS".into(),
            value,
            target,
        }]
    }

    fn cpu(value: f64) -> Reading {
        Reading {
            metric: "CPU".into(),
            value,
            target: 60.0,
        }
    }

    #[test]
    fn the_hpa_formula_with_its_tolerance() {
        let r = rule(1, 10);
        let mut h = History::default();
        // 2 instances at 85 % of a 60 % target: ceil(2 × 85/60) = 3.
        let d = decide(&r, &mut h, 2, 2, &[cpu(85.0)], 0).unwrap();
        assert_eq!(d.desired, 3);
        assert_eq!(d.reason, "cpu 85% > target 60%");
        // Within 10 % of the target: nothing.
        let mut h = History::default();
        assert_eq!(decide(&r, &mut h, 2, 2, &[cpu(65.0)], 0), None);
        assert_eq!(decide(&r, &mut h, 2, 2, &[cpu(54.5)], 0), None);
        // The largest proposal of several metrics wins, and names it.
        let mut h = History::default();
        let mut both = qps(30.0, 10.0);
        both.push(cpu(90.0));
        let d = decide(&r, &mut h, 2, 2, &both, 0).unwrap();
        assert_eq!(
            (d.desired, d.reason.as_str()),
            (6, "qps 30.0/s per instance > target 10/s")
        );
    }

    #[test]
    fn bounds_and_nothing_to_measure() {
        let r = rule(2, 4);
        let mut h = History::default();
        assert_eq!(
            decide(&r, &mut h, 2, 2, &qps(100.0, 1.0), 0)
                .unwrap()
                .desired,
            4
        );
        // Below the minimum: to the minimum whatever the metrics.
        let d = decide(&r, &mut h, 1, 1, &[], 0).unwrap();
        assert_eq!(d.desired, 2);
        assert!(d.reason.contains("bounds"), "{}", d.reason);
        // Stopped, nothing ready, or no reading: keep.
        assert_eq!(
            decide(&r, &mut History::default(), 0, 0, &qps(9.0, 1.0), 0),
            None
        );
        assert_eq!(
            decide(&r, &mut History::default(), 3, 0, &qps(9.0, 1.0), 0),
            None
        );
        assert_eq!(decide(&r, &mut History::default(), 3, 3, &[], 0), None);
    }

    #[test]
    fn scale_down_waits_out_its_window() {
        let r = rule(1, 10);
        let mut h = History::default();
        // Load at t=0 recommends 4; then the load stops.
        assert_eq!(
            decide(&r, &mut h, 2, 2, &qps(20.0, 10.0), 0)
                .unwrap()
                .desired,
            4
        );
        for t in [15_000, 100_000, 299_000] {
            assert_eq!(decide(&r, &mut h, 4, 4, &qps(0.0, 10.0), t), None, "at {t}");
        }
        // 300 s after the last high recommendation the window holds only low ones.
        let d = decide(&r, &mut h, 4, 4, &qps(0.0, 10.0), 301_000).unwrap();
        assert_eq!(d.desired, 1);
        assert_eq!(d.reason, "qps 0.0/s per instance < target 10/s");
    }

    #[test]
    fn a_scale_up_window_takes_the_lowest_recent_recommendation() {
        let mut r = rule(1, 10);
        r.scale_up = Some(ScaleDirection {
            stabilization_window_seconds: 30,
            select_policy: "Max".into(),
            policies: vec![],
        });
        let mut h = History::default();
        assert_eq!(decide(&r, &mut h, 2, 2, &qps(10.0, 10.0), 0), None);
        // A spike: the window still holds the 2 of t=0.
        assert_eq!(decide(&r, &mut h, 2, 2, &qps(40.0, 10.0), 10_000), None);
        // Then the default policies: +4 pods (more than +100 %) per 15 s.
        assert_eq!(
            decide(&r, &mut h, 2, 2, &qps(40.0, 10.0), 31_000)
                .unwrap()
                .desired,
            6
        );
    }

    /// Some time after the clock's origin.
    const T: u64 = 1_000_000;

    #[test]
    fn step_policies_limit_each_period() {
        let mut r = rule(1, 100);
        r.scale_up = Some(ScaleDirection {
            stabilization_window_seconds: 0,
            select_policy: "Max".into(),
            policies: vec![ScalePolicy {
                kind: "Pods".into(),
                value: 2,
                period_seconds: 60,
            }],
        });
        let mut h = History::default();
        assert_eq!(
            decide(&r, &mut h, 2, 2, &qps(100.0, 10.0), T)
                .unwrap()
                .desired,
            4
        );
        // Within the same minute the 2 pods are used up.
        assert_eq!(
            decide(&r, &mut h, 4, 4, &qps(100.0, 10.0), T + 30_000),
            None
        );
        assert_eq!(
            decide(&r, &mut h, 4, 4, &qps(100.0, 10.0), T + 61_000)
                .unwrap()
                .desired,
            6
        );
        // Default up policy: +100 % or +4 pods per 15 s, the larger.
        let mut h = History::default();
        assert_eq!(
            decide(&rule(1, 100), &mut h, 10, 10, &qps(100.0, 10.0), 0)
                .unwrap()
                .desired,
            20
        );
        // Percent down, Min select: the smaller step.
        let mut r = rule(1, 100);
        r.scale_down = Some(ScaleDirection {
            stabilization_window_seconds: 0,
            select_policy: "Min".into(),
            policies: vec![
                ScalePolicy {
                    kind: "Percent".into(),
                    value: 50,
                    period_seconds: 15,
                },
                ScalePolicy {
                    kind: "Pods".into(),
                    value: 1,
                    period_seconds: 15,
                },
            ],
        });
        let mut h = History::default();
        assert_eq!(
            decide(&r, &mut h, 8, 8, &qps(0.0, 10.0), 0)
                .unwrap()
                .desired,
            7
        );
    }

    #[test]
    fn a_disabled_direction_never_moves() {
        let mut r = rule(1, 10);
        r.scale_down = Some(ScaleDirection {
            stabilization_window_seconds: 0,
            select_policy: "Disabled".into(),
            policies: vec![],
        });
        let mut h = History::default();
        assert_eq!(decide(&r, &mut h, 5, 5, &qps(0.0, 10.0), 0), None);
        assert_eq!(
            decide(&r, &mut h, 5, 5, &qps(100.0, 10.0), 1_000)
                .unwrap()
                .desired,
            10
        );
    }
}
