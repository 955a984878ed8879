//! A scriptable, deterministic runtime for tests of the release engine: instances become ready
//! after a configurable delay (on tokio's clock, so paused-time tests run instantly), revisions
//! can be told never to become ready or to fail, and it counts every instance it ever started so
//! tests can prove a resumed release never doubled one. Writes and observations can be made to
//! fail, transiently or for good ([`FakeRuntime::fail_writes`], [`FakeRuntime::fail_observes`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::{
    AppRef, BoxFuture, Instance, RevisionState, Routing, Runtime, RuntimeError, RuntimeEvent,
    Target,
};

#[derive(Default)]
struct FakeRevision {
    instances: Vec<FakeInstance>,
}

#[derive(Clone)]
struct FakeInstance {
    name: String,
    ready: bool,
}

/// One thing the fake runtime did, for benchmarks and tests that measure the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// `set_replicas(revision, replicas)` was called.
    SetReplicas {
        /// The revision.
        revision: String,
        /// The count asked for.
        replicas: u32,
    },
    /// An instance of `revision` became ready.
    Ready {
        /// The revision.
        revision: String,
    },
}

/// How the next writes fail ([`FakeRuntime::fail_writes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The runtime did not answer and did nothing (`Unavailable`).
    NoAnswer,
    /// The runtime did it, then its answer was lost (`Unavailable`).
    LostAnswer,
    /// The runtime refused it for good (`Unsupported`, with this reason).
    Refused(String),
}

#[derive(Default)]
struct State {
    /// Faults of the next `set_replicas`/`set_routing` calls, first first.
    write_faults: std::collections::VecDeque<WriteFault>,
    /// How many of the next `observe` calls fail with `Unavailable`.
    observe_faults: u32,
    routing: BTreeMap<String, Routing>,
    specs: BTreeMap<(String, String), Arc<crate::AppSpec>>,
    configs: BTreeMap<(String, String), Arc<crate::ConfigSnapshot>>,
    log: Vec<(std::time::Instant, LogEntry)>,
    revisions: BTreeMap<(String, String), FakeRevision>,
    never_ready: BTreeSet<String>,
    failing: BTreeMap<String, String>,
    started: BTreeMap<(String, String), u32>,
    next_id: u64,
    unavailable: bool,
    /// Applications `delete_application` was called for, with `force`.
    deleted: Vec<(String, bool)>,
    /// The autoscaler of each application, as last set.
    autoscaling: BTreeMap<String, crate::Autoscaling>,
    /// What each application's autoscaler wants (the test decides).
    autoscaled: BTreeMap<String, u32>,
}

/// The fake runtime. Clones share state.
#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    ready_after: Duration,
    events: broadcast::Sender<RuntimeEvent>,
    /// `true` while available (for `wait_available`).
    available: watch::Sender<bool>,
    /// The autoscaler decisions a test plays ([`FakeRuntime::decide`]).
    decisions: broadcast::Sender<crate::ScaleDecision>,
}

impl FakeRuntime {
    /// Instances become ready `ready_after` after they start.
    pub fn new(ready_after: Duration) -> FakeRuntime {
        FakeRuntime {
            state: Arc::default(),
            ready_after,
            events: broadcast::channel(1024).0,
            available: watch::channel(true).0,
            decisions: broadcast::channel(64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instances of revision `revision` (of any application) never become ready.
    pub fn never_ready(&self, revision: &str) {
        self.lock().never_ready.insert(revision.to_owned());
    }

    /// Instances of `revision` pass their readiness probe again: the not-ready ones become
    /// ready after the usual delay (a dependency came back, say).
    pub fn clear_never_ready(&self, revision: &str) {
        let waiting: Vec<(String, String)> = {
            let mut s = self.lock();
            s.never_ready.remove(revision);
            s.revisions
                .iter()
                .filter(|((_, rev), _)| rev == revision)
                .flat_map(|((app, _), r)| {
                    r.instances
                        .iter()
                        .filter(|i| !i.ready)
                        .map(|i| (app.clone(), i.name.clone()))
                })
                .collect()
        };
        for (app, name) in waiting {
            self.spawn_ready(app, revision.to_owned(), name);
        }
    }

    fn spawn_ready(&self, app: String, rev: String, name: String) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.ready_after).await;
            let changed = {
                let mut s = me.lock();
                let never = s.never_ready.contains(&rev) || s.failing.contains_key(&rev);
                match s
                    .revisions
                    .get_mut(&(app.clone(), rev.clone()))
                    .and_then(|r| r.instances.iter_mut().find(|i| i.name == name))
                {
                    Some(i) if !never => {
                        i.ready = true;
                        s.log.push((
                            std::time::Instant::now(),
                            LogEntry::Ready {
                                revision: rev.clone(),
                            },
                        ));
                        true
                    }
                    Some(_) => true,
                    None => false,
                }
            };
            if changed {
                me.emit(&app, &rev);
            }
        });
    }

    /// The runtime gives up on instances of `revision` with `reason`.
    pub fn fail(&self, revision: &str, reason: &str) {
        self.lock()
            .failing
            .insert(revision.to_owned(), reason.to_owned());
    }

    /// Every call fails with `Unavailable` while set.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
        self.available.send_replace(!unavailable);
    }

    /// The next `count` writes (`set_replicas`, `set_routing`) fail with `fault`.
    pub fn fail_writes(&self, count: usize, fault: WriteFault) {
        let mut s = self.lock();
        s.write_faults.extend(std::iter::repeat_n(fault, count));
    }

    /// The next `count` observations fail with `Unavailable`.
    pub fn fail_observes(&self, count: u32) {
        self.lock().observe_faults += count;
    }

    /// Writes the runtime was asked for that are still to fail ([`FakeRuntime::fail_writes`]).
    pub fn write_faults_left(&self) -> usize {
        self.lock().write_faults.len()
    }

    /// The applications `delete_application` was called for, in order, with `force`.
    pub fn deleted(&self) -> Vec<(String, bool)> {
        self.lock().deleted.clone()
    }

    /// Instances of a revision that exist now (ready, total).
    pub fn counts(&self, app_id: &str, revision: &str) -> (u32, u32) {
        let s = self.lock();
        s.revisions
            .get(&(app_id.to_owned(), revision.to_owned()))
            .map_or((0, 0), |r| {
                (
                    r.instances.iter().filter(|i| i.ready).count() as u32,
                    r.instances.len() as u32,
                )
            })
    }

    /// The spec a revision was last asked to run with.
    pub fn spec(&self, app_id: &str, revision: &str) -> Option<Arc<crate::AppSpec>> {
        self.lock()
            .specs
            .get(&(app_id.to_owned(), revision.to_owned()))
            .cloned()
    }

    /// The ConfigMaps and Secrets a revision was last asked to run with.
    pub fn config(&self, app_id: &str, revision: &str) -> Option<Arc<crate::ConfigSnapshot>> {
        self.lock()
            .configs
            .get(&(app_id.to_owned(), revision.to_owned()))
            .cloned()
    }

    /// Everything the runtime did, with the (real) time it did it.
    pub fn log(&self) -> Vec<(std::time::Instant, LogEntry)> {
        self.lock().log.clone()
    }

    /// The routing last set for an application (`None`: never set).
    pub fn routing(&self, app_id: &str) -> Option<Routing> {
        self.lock().routing.get(app_id).cloned()
    }

    /// The autoscaler last set for an application (`None`: none).
    pub fn autoscaling(&self, app_id: &str) -> Option<crate::Autoscaling> {
        self.lock().autoscaling.get(app_id).cloned()
    }

    /// Plays an autoscaler that scales through edasd: tells the engine `decision`.
    pub fn decide(&self, decision: crate::ScaleDecision) {
        let _ = self.decisions.send(decision);
    }

    /// Plays the application's autoscaler: it wants `replicas` now (what
    /// `autoscaled_replicas` answers while the application has an autoscaler).
    pub fn autoscale(&self, app_id: &str, replicas: u32) {
        self.lock().autoscaled.insert(app_id.to_owned(), replicas);
    }

    /// Instances of a revision ever started.
    pub fn started(&self, app_id: &str, revision: &str) -> u32 {
        self.lock()
            .started
            .get(&(app_id.to_owned(), revision.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn emit(&self, app_id: &str, revision: &str) {
        let _ = self.events.send(RuntimeEvent {
            app_id: app_id.to_owned(),
            revision: revision.to_owned(),
        });
    }
}

/// The fault of this write, before it is applied (`Err`), or after it (`Ok(Some)`).
fn write_fault(s: &mut State) -> Result<Option<RuntimeError>, RuntimeError> {
    if s.unavailable {
        return Err(RuntimeError::Unavailable("fake runtime unavailable".into()));
    }
    match s.write_faults.pop_front() {
        None => Ok(None),
        Some(WriteFault::NoAnswer) => {
            Err(RuntimeError::Unavailable("fake runtime: no answer".into()))
        }
        Some(WriteFault::LostAnswer) => Ok(Some(RuntimeError::Unavailable(
            "fake runtime: connection lost before the answer".into(),
        ))),
        Some(WriteFault::Refused(reason)) => Err(RuntimeError::Unsupported(reason)),
    }
}

impl Runtime for FakeRuntime {
    fn check_autoscaling(&self, _rule: &crate::Autoscaler) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn scale_decisions(&self) -> Option<broadcast::Receiver<crate::ScaleDecision>> {
        Some(self.decisions.subscribe())
    }

    fn set_autoscaling(
        &self,
        app: &AppRef,
        autoscaling: Option<&crate::Autoscaling>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (app, autoscaling) = (app.id.clone(), autoscaling.cloned());
        Box::pin(async move {
            let mut s = self.lock();
            let after = write_fault(&mut s)?;
            match autoscaling {
                Some(a) => {
                    s.autoscaling.insert(app, a);
                }
                None => {
                    s.autoscaling.remove(&app);
                }
            }
            after.map_or(Ok(()), Err)
        })
    }

    fn autoscaled_replicas(
        &self,
        app: &AppRef,
    ) -> BoxFuture<'_, Result<Option<u32>, RuntimeError>> {
        let app = app.id.clone();
        Box::pin(async move {
            let s = self.lock();
            Ok(s.autoscaling
                .contains_key(&app)
                .then(|| s.autoscaled.get(&app).copied())
                .flatten())
        })
    }

    fn set_routing(
        &self,
        app: &AppRef,
        routing: &Routing,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (app, routing) = (app.id.clone(), routing.clone());
        Box::pin(async move {
            let mut s = self.lock();
            let after = write_fault(&mut s)?;
            if routing == Routing::default() {
                s.routing.remove(&app);
            } else {
                s.routing.insert(app, routing);
            }
            after.map_or(Ok(()), Err)
        })
    }

    fn set_replicas(
        &self,
        target: &Target,
        replicas: u32,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app = target.app.id.clone();
        let rev = target.revision.clone();
        let spec = target.spec.clone();
        let config = target.config.clone();
        Box::pin(async move {
            let mut started = Vec::new();
            let after = {
                let mut s = self.lock();
                let after = write_fault(&mut s)?;
                s.log.push((
                    std::time::Instant::now(),
                    LogEntry::SetReplicas {
                        revision: rev.clone(),
                        replicas,
                    },
                ));
                s.specs.insert((app.clone(), rev.clone()), spec.clone());
                s.configs.insert((app.clone(), rev.clone()), config.clone());
                let mut next = s.next_id;
                let r = s.revisions.entry((app.clone(), rev.clone())).or_default();
                let have = r.instances.len() as u32;
                if replicas > have {
                    for _ in have..replicas {
                        next += 1;
                        let name = format!("{app}-{rev}-{next}");
                        r.instances.push(FakeInstance {
                            name: name.clone(),
                            ready: false,
                        });
                        started.push(name);
                    }
                } else {
                    // Stop surplus instances, not-ready ones first.
                    r.instances.sort_by_key(|i| i.ready);
                    let surplus = (have - replicas) as usize;
                    r.instances.drain(..surplus);
                }
                s.next_id = next;
                *s.started.entry((app.clone(), rev.clone())).or_default() += started.len() as u32;
                after
            };
            for name in started {
                self.spawn_ready(app.clone(), rev.clone(), name);
            }
            self.emit(&app, &rev);
            after.map_or(Ok(()), Err)
        })
    }

    fn recreate_failed(
        &self,
        app_ref: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (app_ref, app, rev) = (app_ref.clone(), app_ref.id.clone(), revision.to_owned());
        Box::pin(async move {
            // Replace every not-ready instance with a fresh one.
            let count = {
                let mut s = self.lock();
                s.failing.remove(&rev);
                s.never_ready.remove(&rev);
                let Some(r) = s.revisions.get_mut(&(app.clone(), rev.clone())) else {
                    return Ok(());
                };
                let total = r.instances.len() as u32;
                r.instances.retain(|i| i.ready);
                total
            };
            let spec = self.spec(&app, &rev).unwrap_or_default();
            let config = self.config(&app, &rev).unwrap_or_default();
            let target = Target {
                app: app_ref,
                revision: rev.clone(),
                spec,
                config,
            };
            self.set_replicas(&target, count).await
        })
    }

    fn observe(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<RevisionState, RuntimeError>> {
        let (app, rev) = (app.id.clone(), revision.to_owned());
        Box::pin(async move {
            let mut s = self.lock();
            if s.unavailable {
                return Err(RuntimeError::Unavailable("fake runtime unavailable".into()));
            }
            if s.observe_faults > 0 {
                s.observe_faults -= 1;
                return Err(RuntimeError::Unavailable(
                    "fake runtime: observing failed".into(),
                ));
            }
            let failed = s.failing.get(&rev).cloned();
            let Some(r) = s.revisions.get(&(app, rev.clone())) else {
                return Ok(RevisionState::default());
            };
            let instances: Vec<Instance> = r
                .instances
                .iter()
                .map(|i| Instance {
                    name: i.name.clone(),
                    revision: rev.clone(),
                    ip: Some("127.0.0.1".into()),
                    port: None,
                    ready: i.ready,
                    restarts: 0,
                    failed: if r.instances.is_empty() {
                        None
                    } else {
                        failed.clone()
                    },
                    last_exit: None,
                })
                .collect();
            Ok(RevisionState {
                ready: instances.iter().filter(|i| i.ready).count() as u32,
                total: instances.len() as u32,
                failed: if instances.is_empty() { None } else { failed },
                instances,
            })
        })
    }

    fn revisions(&self, app: &AppRef) -> BoxFuture<'_, Result<Vec<String>, RuntimeError>> {
        let app = app.id.clone();
        Box::pin(async move {
            let s = self.lock();
            Ok(s.revisions
                .iter()
                .filter(|((a, _), r)| *a == app && !r.instances.is_empty())
                .map(|((_, rev), _)| rev.clone())
                .collect())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    fn availability(&self) -> Result<(), RuntimeError> {
        if self.lock().unavailable {
            return Err(RuntimeError::Unavailable("fake runtime unavailable".into()));
        }
        Ok(())
    }

    fn wait_available(&self) -> BoxFuture<'_, ()> {
        let mut rx = self.available.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|available| *available).await;
        })
    }

    fn delete_application(
        &self,
        app: &AppRef,
        force: bool,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app = app.id.clone();
        Box::pin(async move {
            let revisions: Vec<String> = {
                let mut s = self.lock();
                if s.unavailable {
                    return Err(RuntimeError::Unavailable("fake runtime unavailable".into()));
                }
                s.routing.remove(&app);
                s.deleted.push((app.clone(), force));
                let revisions = s
                    .revisions
                    .keys()
                    .filter(|(a, _)| *a == app)
                    .map(|(_, rev)| rev.clone())
                    .collect();
                s.revisions.retain(|(a, _), _| *a != app);
                revisions
            };
            for rev in revisions {
                self.emit(&app, &rev);
            }
            Ok(())
        })
    }
}
