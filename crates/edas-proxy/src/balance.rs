//! The pure part of the proxy: which backend gets the next request. Time is an input (`now`), so
//! the warm-up curve and the traffic split are unit-tested without sockets or sleeps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::traffic::{CompiledTraffic, RequestView};

/// The weight floor of a warming-up backend: once past its delay it always gets *some* traffic,
/// so a slow warm-up never looks like a dead instance.
pub const WARMUP_FLOOR: f64 = 0.01;

/// Which side of a gray release a backend belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// The running version.
    Stable,
    /// The gray instances of the version being released.
    Gray,
}

/// One instance behind a service port, as the runtime sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// Where the instance listens (`127.0.0.1:<port>`).
    pub address: SocketAddr,
    /// Stable or gray.
    pub group: Group,
    /// Whether its readiness probe passes; unready backends get no traffic.
    pub ready: bool,
    /// When it last became ready: the origin of the lossless delay and warm-up.
    pub ready_since: Instant,
    /// Whether it is being drained: no new requests (also set by [`crate::ServiceProxy::drain`]).
    pub draining: bool,
}

/// Lossless start (`LosslessRuleDelayTime`, `LosslessRuleWarmupTime`, `LosslessRuleFuncType`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmUp {
    /// No traffic until this long after the backend became ready.
    pub delay: Duration,
    /// How long the share takes to reach full weight after the delay.
    pub warmup: Duration,
    /// The exponent `n` of the curve; 0 means no ramp.
    pub exponent: u32,
}

impl WarmUp {
    /// The backend's weight `since` after it became ready: `None` while in the delay, else
    /// `max(min((t/W)^n, 1), WARMUP_FLOOR)` with `t` the time since the delay ended.
    pub fn weight(&self, since: Duration) -> Option<f64> {
        let t = since.checked_sub(self.delay)?;
        if self.exponent == 0 || self.warmup.is_zero() || t >= self.warmup {
            return Some(1.0);
        }
        let ratio = t.as_secs_f64() / self.warmup.as_secs_f64();
        let exponent = i32::try_from(self.exponent).unwrap_or(i32::MAX);
        Some(ratio.powi(exponent).clamp(WARMUP_FLOOR, 1.0))
    }
}

/// A backend with its smooth-weighted-round-robin state.
#[derive(Debug)]
struct Slot {
    backend: Backend,
    current: f64,
}

/// The selection state of one service port.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    slots: Vec<Slot>,
    /// Addresses drained through `ServiceProxy::drain`; sticky until the runtime removes them.
    drained: HashSet<SocketAddr>,
    traffic: Option<Arc<CompiledTraffic>>,
    warmup: Option<WarmUp>,
    empty_push_reject: bool,
    /// The last non-empty ready set with each backend's `ready_since`, for empty-push
    /// protection.
    last_known: Vec<(SocketAddr, Instant)>,
    last_known_next: usize,
    /// Bresenham accumulator of the percent rule: exact shares, no randomness.
    percent_acc: u32,
}

impl Balancer {
    pub(crate) fn new(warmup: Option<WarmUp>, empty_push_reject: bool) -> Balancer {
        Balancer {
            warmup,
            empty_push_reject,
            ..Balancer::default()
        }
    }

    /// Replaces the backend set, keeping each remaining backend's round-robin state.
    pub(crate) fn update(&mut self, backends: Vec<Backend>) {
        let mut slots = Vec::with_capacity(backends.len());
        for backend in backends {
            let current = self
                .slots
                .iter()
                .find(|s| s.backend.address == backend.address)
                .map_or(0.0, |s| s.current);
            slots.push(Slot { backend, current });
        }
        self.slots = slots;
        let present: HashSet<SocketAddr> = self.slots.iter().map(|s| s.backend.address).collect();
        self.drained.retain(|a| present.contains(a));
        let ready: Vec<(SocketAddr, Instant)> = self
            .slots
            .iter()
            .filter(|s| self.serviceable(&s.backend))
            .map(|s| (s.backend.address, s.backend.ready_since))
            .collect();
        if !ready.is_empty() {
            self.last_known = ready;
        }
    }

    pub(crate) fn set_traffic(&mut self, traffic: Option<Arc<CompiledTraffic>>) {
        self.traffic = traffic;
        self.percent_acc = 0;
    }

    pub(crate) fn traffic(&self) -> Option<&CompiledTraffic> {
        self.traffic.as_deref()
    }

    pub(crate) fn set_warmup(&mut self, warmup: Option<WarmUp>) {
        self.warmup = warmup;
    }

    pub(crate) fn set_empty_push_reject(&mut self, on: bool) {
        self.empty_push_reject = on;
    }

    /// Stops new traffic to `address` until the runtime removes it from the set.
    pub(crate) fn drain(&mut self, address: SocketAddr) {
        self.drained.insert(address);
        self.last_known.retain(|(a, _)| *a != address);
    }

    /// Ready and not draining (the lossless delay is checked per pick, as it depends on time).
    fn serviceable(&self, backend: &Backend) -> bool {
        backend.ready && !backend.draining && !self.drained.contains(&backend.address)
    }

    fn weight(&self, backend: &Backend, now: Instant) -> Option<f64> {
        if !self.serviceable(backend) {
            return None;
        }
        match &self.warmup {
            None => Some(1.0),
            Some(w) => w.weight(now.saturating_duration_since(backend.ready_since)),
        }
    }

    /// The backend for the next request (or TCP connection, with `request = None`), skipping
    /// `exclude` (a backend that just refused a connection). Allocation-free.
    pub(crate) fn pick(
        &mut self,
        request: Option<&RequestView<'_>>,
        now: Instant,
        exclude: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let group = self.wanted_group(request);
        let picked = self
            .pick_weighted(group, now, exclude)
            .or_else(|| group.and_then(|_| self.pick_weighted(None, now, exclude)));
        picked.or_else(|| self.pick_last_known(now, exclude))
    }

    /// The group a request should reach under the traffic strategy (`None`: any).
    fn wanted_group(&mut self, request: Option<&RequestView<'_>>) -> Option<Group> {
        let traffic = self.traffic.as_ref()?;
        if traffic.content_matches(request) {
            return Some(Group::Gray);
        }
        match traffic.percent() {
            Some(percent) => {
                self.percent_acc += percent;
                if self.percent_acc >= 100 {
                    self.percent_acc -= 100;
                    Some(Group::Gray)
                } else {
                    Some(Group::Stable)
                }
            }
            None => Some(Group::Stable),
        }
    }

    /// Smooth weighted round-robin (nginx's): every candidate's `current` grows by its weight,
    /// the largest wins and pays back the total. Spreads evenly, follows weight changes at once.
    fn pick_weighted(
        &mut self,
        group: Option<Group>,
        now: Instant,
        exclude: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let mut total = 0.0;
        let mut best: Option<usize> = None;
        for index in 0..self.slots.len() {
            let backend = &self.slots[index].backend;
            if group.is_some_and(|g| g != backend.group) || Some(backend.address) == exclude {
                continue;
            }
            let Some(weight) = self.weight(backend, now) else {
                continue;
            };
            self.slots[index].current += weight;
            total += weight;
            let current = self.slots[index].current;
            if best.is_none_or(|b| current > self.slots[b].current) {
                best = Some(index);
            }
        }
        let best = best?;
        self.slots[best].current -= total;
        Some(self.slots[best].backend.address)
    }

    /// Empty-push fallback: round-robin over the last known ready backends that are past their
    /// lossless delay (one still in its delay was never registered, so it gets nothing).
    fn pick_last_known(&mut self, now: Instant, exclude: Option<SocketAddr>) -> Option<SocketAddr> {
        if !self.empty_push_reject {
            return None;
        }
        let len = self.last_known.len();
        for _ in 0..len {
            let (address, ready_since) = self.last_known[self.last_known_next % len];
            self.last_known_next = (self.last_known_next + 1) % len;
            let registered = self.warmup.is_none_or(|w| {
                w.weight(now.saturating_duration_since(ready_since))
                    .is_some()
            });
            if registered && Some(address) != exclude {
                return Some(address);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{TrafficControl, TrafficRule};
    use std::collections::HashMap;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn backend(port: u16, group: Group, ready: bool, ready_since: Instant) -> Backend {
        Backend {
            address: addr(port),
            group,
            ready,
            ready_since,
            draining: false,
        }
    }

    fn counts(b: &mut Balancer, n: usize, now: Instant) -> HashMap<u16, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            if let Some(a) = b.pick(None, now, None) {
                *counts.entry(a.port()).or_default() += 1;
            }
        }
        counts
    }

    #[test]
    fn the_warmup_curve_follows_t_over_w_to_the_n() {
        let w = WarmUp {
            delay: Duration::from_secs(10),
            warmup: Duration::from_secs(100),
            exponent: 2,
        };
        assert_eq!(w.weight(Duration::from_secs(9)), None);
        assert_eq!(w.weight(Duration::from_secs(10)), Some(WARMUP_FLOOR));
        assert!((w.weight(Duration::from_secs(60)).unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(w.weight(Duration::from_secs(110)), Some(1.0));
        assert_eq!(w.weight(Duration::from_secs(1000)), Some(1.0));
        let flat = WarmUp { exponent: 0, ..w };
        assert_eq!(flat.weight(Duration::from_secs(10)), Some(1.0));
        let huge = WarmUp {
            exponent: u32::MAX,
            ..w
        };
        assert_eq!(huge.weight(Duration::from_secs(60)), Some(WARMUP_FLOOR));
    }

    #[test]
    fn only_ready_undrained_backends_are_picked() {
        let now = Instant::now();
        let mut b = Balancer::new(None, false);
        let mut drained = backend(3, Group::Stable, true, now);
        drained.draining = true;
        b.update(vec![
            backend(1, Group::Stable, true, now),
            backend(2, Group::Stable, false, now),
            drained,
        ]);
        assert_eq!(counts(&mut b, 10, now), HashMap::from([(1, 10)]));
        b.drain(addr(1));
        assert_eq!(b.pick(None, now, None), None);
    }

    #[test]
    fn percent_rule_is_exact_and_falls_back_when_a_group_is_empty() {
        let now = Instant::now();
        let mut b = Balancer::new(None, false);
        b.update(vec![
            backend(1, Group::Stable, true, now),
            backend(2, Group::Stable, true, now),
            backend(3, Group::Gray, true, now),
        ]);
        let tc = TrafficControl {
            rules: vec![TrafficRule::Percent { percent: 20 }],
        };
        b.set_traffic(Some(Arc::new(CompiledTraffic::compile(&tc).unwrap())));
        let c = counts(&mut b, 1000, now);
        assert_eq!(c[&3], 200);
        assert_eq!(c[&1], 400);
        assert_eq!(c[&2], 400);

        // No gray instance left: everything goes to stable rather than failing.
        b.update(vec![backend(1, Group::Stable, true, now)]);
        assert_eq!(counts(&mut b, 10, now), HashMap::from([(1, 10)]));
    }

    #[test]
    fn a_new_backend_ramps_up_after_its_delay() {
        let start = Instant::now();
        let w = WarmUp {
            delay: Duration::from_secs(5),
            warmup: Duration::from_secs(10),
            exponent: 1,
        };
        let mut b = Balancer::new(Some(w), false);
        let old = backend(1, Group::Stable, true, start);
        b.update(vec![old.clone()]);
        let later = start + Duration::from_secs(100);
        let new = backend(2, Group::Stable, true, later);
        b.update(vec![old, new]);
        // In the delay: nothing.
        assert_eq!(
            counts(&mut b, 100, later + Duration::from_secs(4)).get(&2),
            None
        );
        // Halfway through the warm-up (weight 0.5 vs 1): a third.
        let share = counts(&mut b, 300, later + Duration::from_secs(10))[&2];
        assert!((95..=105).contains(&share), "{share}");
        // Warm: half.
        let share = counts(&mut b, 300, later + Duration::from_secs(15))[&2];
        assert!((145..=155).contains(&share), "{share}");
    }

    #[test]
    fn empty_push_protection_keeps_the_last_known_backends() {
        let now = Instant::now();
        let mut protected = Balancer::new(None, true);
        protected.update(vec![
            backend(1, Group::Stable, true, now),
            backend(2, Group::Stable, true, now),
        ]);
        protected.update(vec![]);
        assert_eq!(
            counts(&mut protected, 10, now),
            HashMap::from([(1, 5), (2, 5)])
        );
        assert_eq!(protected.pick(None, now, Some(addr(1))), Some(addr(2)));
        // A drained backend is not "last known" any more.
        protected.drain(addr(1));
        assert_eq!(counts(&mut protected, 4, now), HashMap::from([(2, 4)]));

        // A backend still in its lossless delay is no fallback until the delay has passed.
        let delay = WarmUp {
            delay: Duration::from_secs(5),
            warmup: Duration::ZERO,
            exponent: 2,
        };
        let mut delayed = Balancer::new(Some(delay), true);
        delayed.update(vec![backend(1, Group::Stable, true, now)]);
        delayed.update(vec![]);
        assert_eq!(delayed.pick(None, now + Duration::from_secs(4), None), None);
        assert_eq!(
            delayed.pick(None, now + Duration::from_secs(5), None),
            Some(addr(1))
        );

        let mut unprotected = Balancer::new(None, false);
        unprotected.update(vec![backend(1, Group::Stable, true, now)]);
        unprotected.update(vec![backend(1, Group::Stable, false, now)]);
        assert_eq!(unprotected.pick(None, now, None), None);
    }
}
