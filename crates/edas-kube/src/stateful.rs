//! `WorkloadType=StatefulSet`: the application runs as one StatefulSet `<name>` (pods
//! `<name>-0..N-1`, stable network identity through the headless Service `<name>-headless`)
//! instead of a Deployment per revision, inside the same port contract: `set_replicas(revision,
//! n)` still means "exactly n instances of this revision".
//!
//! A StatefulSet holds two revisions at most, by ordinal: the **base** below
//! `updateStrategy.rollingUpdate.partition` (the revision that served before the release) and
//! the **top**, the template's revision, at and above it. Their counts are the [`Layout`],
//! kept on the StatefulSet ([`ANNOTATION_LAYOUT`]) so any edasd process, or this one after a
//! restart, reads the same state. **Invariant:** the StatefulSet always is `replicas = base +
//! top`, `partition = base`, template = the top revision's; each call changes the count of its
//! own revision in the layout read from the cluster and writes the object that follows, so a
//! repeated call (a resumed step) writes the same object again.
//!
//! The engine's calls, new revision up first and then old down, map onto it like this:
//! - a revision not in the layout going up becomes the top (the one before it the base): the
//!   gray and batch steps add ordinals at the top for the new revision, then lowering the base
//!   moves the partition down, so Kubernetes replaces pods from the highest ordinal down, one
//!   at a time (`OrderedReady`);
//! - the base going to 0 ends the release: partition 0, one revision;
//! - the base going *up* while the top runs (a rollback of a release in progress) cannot be
//!   pods inserted below the top: the template goes back to the base's revision with partition
//!   0, so the top's pods are replaced, highest first, before the engine asks for them to go
//!   (the one place where a revision has fewer instances than last asked);
//! - a third revision is refused until one of the two is gone (roll back or finish first).
//!
//! The StatefulSet's `spec.replicas` may change under edasd (its HorizontalPodAutoscaler,
//! `kubectl scale`): with the partition fixed, Kubernetes adds or removes ordinals at the top,
//! so the difference is the top's, and the layout read back says so.
//!
//! After a template change, a pod of the old revision at or above the partition that is not
//! Ready would block the rollout for good (OrderedReady waits for it; Kubernetes' documented
//! "forced rollback"): it is deleted, so the controller re-creates it from the template.
//!
//! Drift ([`watch`]): a StatefulSet deleted outside edasd is restored on its watch event with
//! what the store says runs; a `replicas` changed by its HPA is followed (the top's count) and
//! reported as a scale decision, one changed by hand is restored from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;

use edas_runtime::{AppRef, RuntimeError, Target};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Inner, KubeRuntime, LABEL_APP_ID, LABEL_REVISION, label, state};

/// Annotation on an application's StatefulSet: its [`Layout`], as JSON.
pub const ANNOTATION_LAYOUT: &str = "edas.oam.statefulset-layout";
/// Annotation on an application's StatefulSet while a release runs: the base revision's pod
/// template, as JSON, so the StatefulSet can return to it when the release is undone (the
/// engine's calls carry only the called revision's spec).
pub const ANNOTATION_BASE_TEMPLATE: &str = "edas.oam.statefulset-base-template";

/// The revisions of an application's StatefulSet and their instance counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The revision below the partition and its count, while a release runs (never 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<(String, u32)>,
    /// The template's revision and its count (ordinals `base..base + top`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<(String, u32)>,
}

/// What a call makes of a layout: the next layout, and the template it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub layout: Layout,
    pub template: Template,
}

/// The StatefulSet's template after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// Stays as it is (only counts and partition change).
    Keep,
    /// Becomes the called revision's.
    Called,
    /// Goes back to the base revision's (kept in [`ANNOTATION_BASE_TEMPLATE`]): the top went
    /// to 0, so nothing may be left that would start pods of it (an HPA scaling up).
    Base,
}

impl Layout {
    /// `replicas` of the StatefulSet.
    pub fn replicas(&self) -> u32 {
        self.base_count() + self.top.as_ref().map_or(0, |t| t.1)
    }

    /// `partition` of the StatefulSet.
    pub fn partition(&self) -> u32 {
        self.base_count()
    }

    fn base_count(&self) -> u32 {
        self.base.as_ref().map_or(0, |b| b.1)
    }

    /// Whether nothing runs (the StatefulSet goes).
    pub fn is_empty(&self) -> bool {
        self.replicas() == 0
    }

    /// The layout an object of `replicas` and `partition` with template revision `template`
    /// has, starting from the annotated one: a `replicas` changed by someone else (its HPA)
    /// changed the top's count, as Kubernetes adds or removes ordinals at the top.
    pub fn read(annotated: Option<Layout>, template: Option<&str>, replicas: u32) -> Layout {
        let mut layout = annotated.unwrap_or_else(|| Layout {
            base: None,
            top: template.map(|t| (t.to_owned(), replicas)),
        });
        let base = layout.base_count();
        if replicas < base {
            layout.base = layout.base.map(|(r, _)| (r, replicas)).filter(|b| b.1 > 0);
            if let Some(top) = layout.top.as_mut() {
                top.1 = 0;
            }
        } else if let Some(top) = layout.top.as_mut() {
            top.1 = replicas - base;
        }
        layout
    }

    /// The layout after "exactly `n` instances of `revision`", or why a StatefulSet cannot
    /// hold it.
    pub fn set(&self, revision: &str, n: u32) -> Result<Step, String> {
        let is = |slot: &Option<(String, u32)>| slot.as_ref().is_some_and(|s| s.0 == revision);
        let keep = |layout: Layout| Step {
            layout,
            template: Template::Keep,
        };
        if is(&self.top) {
            if n == 0
                && let Some(base) = &self.base
            {
                // The release is undone: the base alone, on its own template again.
                return Ok(Step {
                    layout: Layout {
                        base: None,
                        top: Some(base.clone()),
                    },
                    template: Template::Base,
                });
            }
            let mut next = self.clone();
            next.top = (n > 0).then(|| (revision.to_owned(), n));
            return Ok(Step {
                layout: next,
                template: if n > 0 {
                    Template::Called
                } else {
                    Template::Keep
                },
            });
        }
        if let Some((_, b)) = self.base.as_ref().filter(|_| is(&self.base)) {
            if n <= *b {
                // The old revision going down: the partition follows.
                let mut next = self.clone();
                next.base = (n > 0).then(|| (revision.to_owned(), n));
                if next.base.is_none() && next.top.as_ref().is_some_and(|t| t.1 == 0) {
                    next.top = None;
                }
                return Ok(keep(next));
            }
            // The old revision going up while the top runs (a rollback): no ordinal can be
            // inserted below the top, so the template goes back and the top is replaced.
            return Ok(Step {
                layout: Layout {
                    base: None,
                    top: Some((revision.to_owned(), n)),
                },
                template: Template::Called,
            });
        }
        if n == 0 {
            return Ok(keep(self.clone()));
        }
        let top = Some((revision.to_owned(), n));
        match (&self.base, &self.top) {
            (None, None) => Ok(Step {
                layout: Layout { base: None, top },
                template: Template::Called,
            }),
            // A release starts: what ran becomes the base.
            (None, Some(old)) => Ok(Step {
                layout: Layout {
                    base: (old.1 > 0).then(|| old.clone()),
                    top,
                },
                template: Template::Called,
            }),
            (Some(base), Some(old)) if old.1 == 0 => Ok(Step {
                layout: Layout {
                    base: Some(base.clone()),
                    top,
                },
                template: Template::Called,
            }),
            (Some(base), old) => Err(format!(
                "a StatefulSet runs two revisions at most: it runs revision {}{}, so revision {revision} cannot start before one of them is gone (roll the release back or finish it first)",
                base.0,
                old.as_ref()
                    .map(|o| format!(" and revision {}", o.0))
                    .unwrap_or_default()
            )),
        }
    }
}

impl KubeRuntime {
    /// The application's StatefulSet, read from the cluster (not the cache: the layout of the
    /// write just before must be seen), if edasd applied it for this application.
    pub(crate) async fn statefulset_of(
        &self,
        app_id: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StatefulSet>, RuntimeError> {
        match self.statefulset_named(namespace, name).await? {
            Some(set) if label(&set, LABEL_APP_ID) != Some(app_id) => {
                Err(RuntimeError::Unsupported(format!(
                    "cluster `{}`: StatefulSet {namespace}/{name} exists and is not edasd's for application {app_id}: remove or rename it",
                    self.inner.options.cluster_id
                )))
            }
            found => Ok(found),
        }
    }

    /// The StatefulSet named after application `name`, whoever it belongs to.
    async fn statefulset_named(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StatefulSet>, RuntimeError> {
        let api: Api<StatefulSet> = Api::namespaced(self.inner.client.clone(), namespace);
        let name = edas_render::statefulset_name(name);
        let what = format!("reading StatefulSet {namespace}/{name}");
        self.call(&what, api.get_opt(&name)).await
    }

    /// The application's own StatefulSet, if it has one (one named like it that belongs to
    /// another application, or to nobody edasd knows, is not its own: `None`).
    async fn own_statefulset(&self, app: &AppRef) -> Result<Option<StatefulSet>, RuntimeError> {
        if app.name.is_empty() {
            return Ok(None);
        }
        Ok(self
            .statefulset_named(&app.namespace, &app.name)
            .await?
            .filter(|s| label(s, LABEL_APP_ID) == Some(app.id.as_str())))
    }

    /// `set_replicas` of a `WorkloadType=StatefulSet` application (see the module docs).
    pub(crate) async fn set_stateful(
        &self,
        target: &Target,
        replicas: u32,
    ) -> Result<(), RuntimeError> {
        let spec = &target.spec;
        let ns = &spec.k8s_namespace;
        let current = self.statefulset_of(&target.app.id, ns, &spec.name).await?;
        let layout = current.as_ref().map_or_else(Layout::default, read_layout);
        let mut step = layout
            .set(&target.revision, replicas)
            .map_err(|e| RuntimeError::Unsupported(format!("application `{}`: {e}", spec.name)))?;
        let base_template = current
            .as_ref()
            .and_then(|c| base_template(c, &layout, &step));
        if step.template == Template::Base && base_template.is_none() {
            // Without the base's template (an object of an older edasd), the top stays the
            // template with no ordinal at or above the partition.
            step = Step {
                layout: Layout {
                    base: layout.base.clone(),
                    top: Some((target.revision.clone(), 0)),
                },
                template: Template::Keep,
            };
        }
        let sets: Api<StatefulSet> = Api::namespaced(self.inner.client.clone(), ns);
        let name = edas_render::statefulset_name(&spec.name);
        if step.layout.is_empty() {
            if current.is_some() {
                self.delete(&sets, &name).await?;
            }
            let services: Api<Service> = Api::namespaced(self.inner.client.clone(), ns);
            self.delete(&services, &edas_render::headless_name(&spec.name))
                .await?;
            return self.delete_config(target).await;
        }
        if replicas == 0 {
            // Its pods are going; so are its copies (a rollback applies them again).
            self.delete_config(target).await?;
        }
        let annotation = serde_json::to_string(&step.layout)
            .map_err(|e| RuntimeError::Unavailable(format!("encoding the layout: {e}")))?;
        let applied = if step.template == Template::Called {
            let rendered = edas_render::render_statefulset(
                spec,
                &target.revision,
                step.layout.replicas(),
                step.layout.partition(),
            )
            .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
            let mut set = rendered.set;
            let mut headless = rendered.headless;
            for meta in [&mut set.metadata, &mut headless.metadata] {
                meta.labels
                    .get_or_insert_default()
                    .insert(LABEL_APP_ID.to_owned(), target.app.id.clone());
            }
            let annotations = set.metadata.annotations.get_or_insert_default();
            annotations.insert(ANNOTATION_LAYOUT.to_owned(), annotation);
            if let Some(base) = &base_template {
                annotations.insert(ANNOTATION_BASE_TEMPLATE.to_owned(), base.clone());
            }
            if let Some(s) = set.spec.as_mut() {
                s.template
                    .metadata
                    .get_or_insert_default()
                    .labels
                    .get_or_insert_default()
                    .insert(LABEL_APP_ID.to_owned(), target.app.id.clone());
            }
            self.ensure_namespace(ns).await?;
            let copies = self.apply_config(target).await?;
            let services: Api<Service> = Api::namespaced(self.inner.client.clone(), ns);
            let headless_name = edas_render::headless_name(&spec.name);
            self.apply(&services, &headless_name, &headless).await?;
            let applied = self.apply_returning(&sets, &name, &set).await?;
            self.own_copies(target, &copies, "StatefulSet", &applied.metadata)
                .await?;
            applied
        } else if let (Template::Base, Some(base), Some((revision, _)), Some(current)) =
            (step.template, &base_template, &step.layout.top, &current)
        {
            // Back to the base's own template (the same content, so its pods stay): the whole
            // object applied again with it, so nothing of the top's template is left.
            let template = serde_json::from_str(base).map_err(|e| {
                RuntimeError::Unavailable(format!("decoding the base template: {e}"))
            })?;
            let mut labels = current.metadata.labels.clone().unwrap_or_default();
            labels.insert(LABEL_REVISION.to_owned(), revision.clone());
            let mut set = StatefulSet {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(ANNOTATION_LAYOUT.to_owned(), annotation)])),
                    ..ObjectMeta::default()
                },
                spec: current.spec.clone(),
                status: None,
            };
            if let Some(s) = set.spec.as_mut() {
                s.template = template;
                s.replicas = i32::try_from(step.layout.replicas()).ok();
                s.update_strategy = Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateStatefulSetStrategy {
                        partition: Some(0),
                        max_unavailable: None,
                    }),
                });
            }
            self.apply_returning(&sets, &name, &set).await?
        } else {
            // The template stays: only the counts, the partition and the layout change (and
            // the base's template goes with the base).
            let base_annotation = step.layout.base.as_ref().map(|_| ()).and(
                current
                    .as_ref()
                    .and_then(|c| {
                        c.metadata
                            .annotations
                            .as_ref()?
                            .get(ANNOTATION_BASE_TEMPLATE)
                    })
                    .cloned(),
            );
            let patch = json!({
                "metadata": {"annotations": {
                    ANNOTATION_LAYOUT: annotation,
                    ANNOTATION_BASE_TEMPLATE: base_annotation,
                }},
                "spec": {
                    "replicas": step.layout.replicas(),
                    "updateStrategy": {"type": "RollingUpdate",
                        "rollingUpdate": {"partition": step.layout.partition()}},
                },
            });
            let what = format!("scaling StatefulSet {ns}/{name}");
            let params = PatchParams::default();
            self.call(&what, sets.patch(&name, &params, &Patch::Merge(&patch)))
                .await?
        };
        self.unstick(&target.app.id, &applied).await
    }

    /// Deletes the pods at or above the partition that run another revision than the template
    /// and are not Ready: OrderedReady would wait for them for ever (see the module docs).
    async fn unstick(&self, app_id: &str, set: &StatefulSet) -> Result<(), RuntimeError> {
        let (Some(ns), Some(name)) = (&set.metadata.namespace, &set.metadata.name) else {
            return Ok(());
        };
        let Some(top) = label(set, LABEL_REVISION) else {
            return Ok(());
        };
        let partition = set
            .spec
            .as_ref()
            .and_then(|s| {
                s.update_strategy
                    .as_ref()?
                    .rolling_update
                    .as_ref()?
                    .partition
            })
            .unwrap_or(0);
        let (pods, _) = self.listed_pods().await?;
        let stuck: Vec<String> = pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| label(*p, LABEL_APP_ID) == Some(app_id))
            .filter(|p| label(*p, LABEL_REVISION).is_some_and(|r| r != top))
            .filter(|p| !state::is_ready(p))
            .filter_map(|p| {
                let pod = p.metadata.name.as_deref()?;
                let ordinal: i32 = pod
                    .strip_prefix(name.as_str())?
                    .strip_prefix('-')?
                    .parse()
                    .ok()?;
                (ordinal >= partition).then(|| pod.to_owned())
            })
            .collect();
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), ns);
        for pod in stuck {
            tracing::info!(cluster = %self.inner.options.cluster_id, %app_id, %pod, "deleting a pod of the previous revision that is not Ready, so the StatefulSet's rollout can go on");
            self.delete(&api, &pod).await?;
        }
        Ok(())
    }

    /// The revisions the application's StatefulSet runs (with instances or not yet).
    pub(crate) async fn stateful_revisions(
        &self,
        app_id: &str,
    ) -> Result<Vec<String>, RuntimeError> {
        let api: Api<StatefulSet> = Api::all(self.inner.client.clone());
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let what = format!("listing the StatefulSets of application {app_id}");
        let list = self.call(&what, api.list(&lp)).await?;
        Ok(list
            .items
            .iter()
            .flat_map(|s| {
                let layout = read_layout(s);
                [layout.base, layout.top]
            })
            .flatten()
            .map(|(r, _)| r)
            .collect())
    }

    /// Points the application's HPA at its StatefulSet, when it has one: every revision runs
    /// in it, and an HPA scaling it adds or removes ordinals at the top (see the module docs).
    pub(crate) async fn scale_statefulset(
        &self,
        app: &AppRef,
        hpa: &mut HorizontalPodAutoscaler,
    ) -> Result<(), RuntimeError> {
        if self.own_statefulset(app).await?.is_none() {
            return Ok(());
        }
        if let Some(spec) = hpa.spec.as_mut() {
            spec.scale_target_ref = CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "StatefulSet".into(),
                name: edas_render::statefulset_name(&app.name),
            };
        }
        Ok(())
    }

    /// The application's StatefulSet as JSON text (GetAppDeployment), if it has one.
    pub(crate) async fn stateful_json(&self, app: &AppRef) -> Result<Option<String>, RuntimeError> {
        self.own_statefulset(app)
            .await?
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| RuntimeError::Unavailable(format!("encoding the StatefulSet: {e}")))
    }
}

/// Drift: watches the StatefulSets labelled with an application id, and restores one deleted
/// outside edasd (`kubectl delete sts`) with what the store says its application runs, when no
/// change is in progress ([`crate::Settled::settled_target`]; edasd's own deletions, by a stop,
/// a scale to 0 or a deletion, find the store saying 0 or a change in progress, and are left
/// alone). Woken by the watch's events only; a deletion while the watch was down is seen at
/// the next change. Ends when the runtime is dropped.
pub(crate) async fn watch(inner: Weak<Inner>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let api: Api<StatefulSet> = Api::all(strong.client.clone());
    let timeout = u32::try_from(strong.options.watch_timeout.as_secs().max(1)).unwrap_or(290);
    let backoff = crate::WatchBackoff::new(strong.options.watch_backoff_max);
    drop(strong);
    let config = watcher::Config::default()
        .labels(LABEL_APP_ID)
        .timeout(timeout);
    let stream = watcher(api, config).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    // The generation of each StatefulSet whose outside scaling was handled (status writes keep
    // the generation: one scaling is handled once).
    let mut handled: HashMap<String, i64> = HashMap::new();
    while let Some(event) = stream.next().await {
        let (set, deleted) = match event {
            Ok(watcher::Event::Delete(set)) => (set, true),
            Ok(watcher::Event::Apply(set) | watcher::Event::InitApply(set)) => (set, false),
            _ => continue,
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let rt = KubeRuntime { inner: strong };
        if deleted {
            tokio::spawn(async move { rt.restore(&set).await });
            continue;
        }
        let Some(scaled) = scaled_outside(&set) else {
            continue;
        };
        let (uid, generation) = (
            set.metadata.uid.clone().unwrap_or_default(),
            set.metadata.generation.unwrap_or_default(),
        );
        if handled.insert(uid, generation) == Some(generation) {
            continue;
        }
        tokio::spawn(async move { rt.scaled(&set, scaled).await });
    }
}

/// `(from, to)` when a StatefulSet's `replicas` is not what edasd's layout annotation says
/// (its HPA or `kubectl scale` changed it).
fn scaled_outside(set: &StatefulSet) -> Option<(u32, u32)> {
    let annotated: Layout =
        serde_json::from_str(set.metadata.annotations.as_ref()?.get(ANNOTATION_LAYOUT)?).ok()?;
    let replicas = u32::try_from(set.spec.as_ref()?.replicas?).ok()?;
    (set.metadata.deletion_timestamp.is_none() && annotated.replicas() != replicas)
        .then_some((annotated.replicas(), replicas))
}

impl KubeRuntime {
    /// A StatefulSet scaled outside edasd from `from` to `to` instances: by the application's
    /// HPA, the count is followed (the layout annotation takes it, the top's) and reported on
    /// `scale_decisions` for the engine to record; by hand, it is restored to what the store
    /// says runs, when no change is in progress (otherwise the change's steps decide).
    async fn scaled(&self, set: &StatefulSet, (from, to): (u32, u32)) {
        let (Some(app_id), Some(app_name), Some(ns), Some(name)) = (
            label(set, LABEL_APP_ID),
            label(set, crate::LABEL_APP),
            set.metadata.namespace.as_deref(),
            set.metadata.name.as_deref(),
        ) else {
            return;
        };
        let cluster = &self.inner.options.cluster_id;
        let layout = read_layout(set);
        let Some((top, _)) = layout.top.clone() else {
            return;
        };
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(self.inner.client.clone(), ns);
        let hpa_name = edas_render::hpa_name(app_name);
        let what = format!("reading HorizontalPodAutoscaler {ns}/{hpa_name}");
        let by_hpa = match self.call_tolerating(&what, 404, hpas.get(&hpa_name)).await {
            Ok(found) => found.is_some_and(|h| {
                label(&h, LABEL_APP_ID) == Some(app_id)
                    && h.spec.is_some_and(|s| {
                        s.scale_target_ref.kind == "StatefulSet" && s.scale_target_ref.name == name
                    })
            }),
            Err(error) => {
                tracing::warn!(%cluster, %app_id, statefulset = %name, %error, "StatefulSet scaled outside edasd: reading its HorizontalPodAutoscaler failed; the next change applies edasd's count");
                return;
            }
        };
        if by_hpa {
            let annotation = serde_json::to_string(&layout).unwrap_or_default();
            let patch = json!({"metadata": {"annotations": {ANNOTATION_LAYOUT: annotation}}});
            let sets: Api<StatefulSet> = Api::namespaced(self.inner.client.clone(), ns);
            let what = format!("recording the count of StatefulSet {ns}/{name}");
            let result = self
                .call(
                    &what,
                    sets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await;
            let _ = self
                .inner
                .scale_decisions
                .send(edas_runtime::ScaleDecision {
                    app_id: app_id.to_owned(),
                    revision: top,
                    from,
                    to,
                    reason: format!(
                        "HorizontalPodAutoscaler `{hpa_name}` scaled StatefulSet `{name}`"
                    ),
                    applied: true,
                });
            tracing::info!(%cluster, %app_id, statefulset = %name, from, to, ok = result.is_ok(), "StatefulSet scaled by its HorizontalPodAutoscaler: followed, not restored");
            return;
        }
        match self.inner.settled.settled_target(app_id, &top).await {
            Ok(Some((replicas, target))) if replicas != to => {
                let result = self.set_stateful(&target, replicas).await;
                tracing::warn!(%cluster, %app_id, statefulset = %name, from, to, replicas, ok = result.is_ok(), "StatefulSet was scaled outside edasd: restored to what the store says runs");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%cluster, %app_id, statefulset = %name, %error, "StatefulSet scaled outside edasd: reading the store failed; the next change applies edasd's count");
            }
        }
    }

    /// Restores a StatefulSet deleted outside edasd, revision by revision (the base first), as
    /// far as the store says they run.
    async fn restore(&self, deleted: &StatefulSet) {
        let Some(app_id) = label(deleted, LABEL_APP_ID) else {
            return;
        };
        let name = deleted.metadata.name.as_deref().unwrap_or_default();
        let layout = read_layout(deleted);
        for (revision, _) in [layout.base, layout.top].into_iter().flatten() {
            match self.inner.settled.settled_target(app_id, &revision).await {
                Ok(Some((replicas, target))) => {
                    let result = self.set_stateful(&target, replicas).await;
                    match result {
                        Ok(()) => {
                            tracing::warn!(cluster = %self.inner.options.cluster_id, %app_id, statefulset = %name, %revision, replicas, "StatefulSet was deleted outside edasd: restored to what the store says runs")
                        }
                        Err(error) => {
                            tracing::warn!(cluster = %self.inner.options.cluster_id, %app_id, statefulset = %name, %revision, %error, "StatefulSet was deleted outside edasd: restoring it failed; the next change applies it again")
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(cluster = %self.inner.options.cluster_id, %app_id, statefulset = %name, %error, "StatefulSet was deleted outside edasd: reading the store failed; the next change applies it again");
                }
            }
        }
    }
}

/// The base revision's pod template (JSON) to keep on the StatefulSet after `step`: the
/// current template when the current top becomes the base, the one kept so far while the base
/// stays; `None` without a base.
fn base_template(current: &StatefulSet, layout: &Layout, step: &Step) -> Option<String> {
    let (base, _) = step.layout.base.as_ref().or(match step.template {
        Template::Base => layout.base.as_ref(),
        _ => None,
    })?;
    if label(current, LABEL_REVISION) == Some(base.as_str()) {
        return serde_json::to_string(&current.spec.as_ref()?.template).ok();
    }
    let kept = current
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_BASE_TEMPLATE)?;
    (layout.base.as_ref().map(|b| &b.0) == Some(base)).then(|| kept.clone())
}

/// The layout of a StatefulSet edasd applied (see [`Layout::read`]).
pub(crate) fn read_layout(set: &StatefulSet) -> Layout {
    let annotated = set
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_LAYOUT))
        .and_then(|v| serde_json::from_str(v).ok());
    let replicas = set
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    Layout::read(annotated, label(set, LABEL_REVISION), replicas)
}

/// Labels that mark an object as the headless Service of a StatefulSet (routing leaves it).
pub(crate) fn is_headless(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.contains_key(edas_render::LABEL_HEADLESS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(base: Option<(&str, u32)>, top: Option<(&str, u32)>) -> Layout {
        Layout {
            base: base.map(|(r, n)| (r.to_owned(), n)),
            top: top.map(|(r, n)| (r.to_owned(), n)),
        }
    }

    fn step(l: &Layout, rev: &str, n: u32) -> (Layout, Template) {
        let s = l.set(rev, n).unwrap();
        (s.layout, s.template)
    }

    #[test]
    fn a_gray_and_two_batch_release_moves_the_partition_down() {
        // r1 serves 4; gray 1, then batches of 2 and 1, each "new up, then old down".
        let start = layout(None, Some(("1", 4)));
        let (l, t) = step(&start, "2", 1);
        assert_eq!(t, Template::Called);
        assert_eq!(l, layout(Some(("1", 4)), Some(("2", 1))));
        assert_eq!((l.replicas(), l.partition()), (5, 4));
        let (l, t) = step(&l, "1", 3);
        assert_eq!(t, Template::Keep);
        assert_eq!((l.replicas(), l.partition()), (4, 3));
        // A resumed step writes the same object again.
        assert_eq!(step(&l, "2", 1).0, l);
        assert_eq!(step(&l, "1", 3).0, l);
        let (l, _) = step(&l, "2", 3);
        assert_eq!((l.replicas(), l.partition()), (6, 3));
        let (l, _) = step(&l, "1", 1);
        assert_eq!((l.replicas(), l.partition()), (4, 1));
        let (l, _) = step(&l, "2", 4);
        let (l, t) = step(&l, "1", 0);
        assert_eq!(t, Template::Keep);
        assert_eq!(l, layout(None, Some(("2", 4))));
        assert_eq!((l.replicas(), l.partition()), (4, 0));
        // The engine stopping leftovers of a revision no longer there changes nothing.
        assert_eq!(step(&l, "1", 0).0, l);
    }

    #[test]
    fn a_rollback_puts_the_template_back_and_a_delete_empties_it() {
        // Aborted after the gray batch: r1 3 (base), r2 1 (top).
        let aborted = layout(Some(("1", 3)), Some(("2", 1)));
        let (l, t) = step(&aborted, "1", 4);
        assert_eq!(t, Template::Called, "the template goes back to revision 1");
        assert_eq!(l, layout(None, Some(("1", 4))));
        assert_eq!((l.replicas(), l.partition()), (4, 0));
        let (l, t) = step(&l, "2", 0);
        assert_eq!(t, Template::Keep);
        assert_eq!(l, layout(None, Some(("1", 4))));
        // A failed gray batch rolled back (revision 1 kept at 3, revision 2 to 0): revision 1
        // alone on its own template again.
        let (l, t) = step(&aborted, "2", 0);
        assert_eq!(t, Template::Base);
        assert_eq!(l, layout(None, Some(("1", 3))));
        assert_eq!((l.replicas(), l.partition()), (3, 0));
        // Stop / delete: every revision to 0.
        let (l, _) = step(&l, "1", 0);
        assert!(l.is_empty());
        assert!(step(&layout(None, Some(("1", 2))), "1", 0).0.is_empty());
    }

    #[test]
    fn a_third_revision_is_refused_and_an_outside_scale_is_the_tops() {
        let two = layout(Some(("1", 3)), Some(("2", 1)));
        let e = two.set("3", 1).unwrap_err();
        assert!(e.contains("revision 1 and revision 2"), "{e}");
        // A top with no instances left makes room.
        let (l, _) = step(&layout(Some(("1", 3)), Some(("2", 0))), "3", 1);
        assert_eq!(l, layout(Some(("1", 3)), Some(("3", 1))));
        // The HPA scaled a settled StatefulSet from 4 to 6.
        let read = Layout::read(Some(layout(None, Some(("1", 4)))), Some("1"), 6);
        assert_eq!(read, layout(None, Some(("1", 6))));
        // … or one in a release below its base.
        let read = Layout::read(Some(two.clone()), Some("2"), 2);
        assert_eq!(read, layout(Some(("1", 2)), Some(("2", 0))));
        // No annotation: the template's revision runs them all.
        assert_eq!(
            Layout::read(None, Some("5"), 3),
            layout(None, Some(("5", 3)))
        );
        // The annotation round-trips.
        let text = serde_json::to_string(&two).unwrap();
        assert_eq!(serde_json::from_str::<Layout>(&text).unwrap(), two);
    }
}

#[cfg(test)]
#[path = "stateful_tests.rs"]
mod kube_tests;
