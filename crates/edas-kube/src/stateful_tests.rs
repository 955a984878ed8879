//! `WorkloadType=StatefulSet` against the in-process fake API server: a gray + batch release
//! moves the partition, a rollback puts the template back (deleting a stuck pod), the headless
//! Service outlives routing changes, and scaling to 0 removes everything.

use std::sync::Arc;
use std::time::Duration;

use edas_fake_kube::{Config, FakeCluster, PodFault};
use edas_runtime::{RevisionState, Routing, Runtime, Target};
use edas_spec::AppSpec;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::json;

use super::{Layout, read_layout};
use crate::{AppRef, ClusterAccess, KubeRuntime, Options, Settled, connect};

const WAIT: Duration = Duration::from_secs(15);
const APP: &str = "5e7c0a1e-0000-4000-8000-0000000000aa";

struct NoStore;
impl Settled for NoStore {}

/// A store that says revision 1 runs 4 instances, no change in progress.
struct RunsFour;
impl Settled for RunsFour {
    fn settled_target<'a>(
        &'a self,
        _app_id: &'a str,
        revision: &'a str,
    ) -> edas_runtime::BoxFuture<'a, Result<Option<(u32, Target)>, String>> {
        let found = (revision == "1").then(|| (4, target("1", "1")));
        Box::pin(async move { Ok(found) })
    }
}

async fn start() -> (FakeCluster, KubeRuntime, tempfile::TempDir) {
    start_with(Arc::new(NoStore)).await
}

async fn start_with(settled: Arc<dyn Settled>) -> (FakeCluster, KubeRuntime, tempfile::TempDir) {
    let cluster = FakeCluster::start(Config {
        pod_ready_delay: Duration::from_millis(50),
        ..Config::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&path, "default").unwrap();
    let client = connect(&ClusterAccess::Kubeconfig {
        path: Some(path),
        context: None,
    })
    .await
    .unwrap();
    let rt = KubeRuntime::start(client, settled, Options::new("fake"));
    (cluster, rt, dir)
}

fn target(version: &str, revision: &str) -> Target {
    let spec: AppSpec = serde_json::from_value(json!({
        "name": "Ledger",
        "cluster_id": "fake",
        "k8s_namespace": "apps",
        "artifact": {"type": "image", "url": format!("registry.example/ledger:{version}")},
        "replicas": 4,
        "workload": "StatefulSet",
        "envs": [{"name": "CONF", "valueFrom": {"configMapKeyRef": {"name": format!("conf.{APP}.r{revision}"), "key": "k"}}}],
    }))
    .unwrap();
    let mut config = edas_runtime::ConfigSnapshot::default();
    config.config_maps.insert(
        format!("conf.{APP}.r{revision}"),
        [("k".to_owned(), revision.to_owned())].into(),
    );
    Target {
        app: app(),
        revision: revision.into(),
        spec: Arc::new(spec),
        config: Arc::new(config),
    }
}

fn app() -> AppRef {
    AppRef {
        id: APP.into(),
        name: "Ledger".into(),
        namespace: "apps".into(),
    }
}

/// Waits, woken by the runtime's events, until `check` holds for the two revisions' states.
async fn until(
    rt: &KubeRuntime,
    what: &str,
    check: impl Fn(&RevisionState, &RevisionState) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut events = rt.subscribe();
    loop {
        let one = rt.observe(&app(), "1").await.unwrap();
        let two = rt.observe(&app(), "2").await.unwrap();
        if check(&one, &two) {
            return;
        }
        if tokio::time::timeout_at(deadline, events.recv())
            .await
            .is_err()
        {
            panic!("{what}: not within {WAIT:?}: {one:#?} {two:#?}");
        }
    }
}

fn names(state: &RevisionState) -> Vec<String> {
    let mut names: Vec<String> = state.instances.iter().map(|i| i.name.clone()).collect();
    names.sort();
    names
}

async fn set(rt: &KubeRuntime) -> StatefulSet {
    let api: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    api.get("ledger").await.unwrap()
}

fn counts(s: &StatefulSet) -> (i32, i32) {
    let spec = s.spec.as_ref().unwrap();
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref()?.partition)
        .unwrap();
    (spec.replicas.unwrap(), partition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_moves_the_partition_and_a_rollback_puts_the_template_back() {
    let (cluster, rt, _dir) = start().await;
    rt.set_replicas(&target("1", "1"), 4).await.unwrap();
    until(&rt, "revision 1 ready", |one, _| one.ready == 4).await;
    let one = rt.observe(&app(), "1").await.unwrap();
    assert_eq!(
        names(&one),
        ["ledger-0", "ledger-1", "ledger-2", "ledger-3"]
    );
    let services: Api<Service> = Api::namespaced(rt.inner.client.clone(), "apps");
    let headless = services.get("ledger-headless").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    assert_eq!(
        set(&rt).await.spec.unwrap().service_name.as_deref(),
        Some("ledger-headless")
    );

    // Routing that names no Service leaves the workload's headless Service alone.
    rt.set_routing(&app(), &Routing::default()).await.unwrap();
    assert!(services.get_opt("ledger-headless").await.unwrap().is_some());

    // GetAppDeployment answers the StatefulSet; revisions() names what it runs.
    let json = rt.deployment(&app(), "1").await.unwrap().unwrap();
    assert!(json.contains("\"kind\":\"StatefulSet\""), "{json}");
    assert_eq!(rt.revisions(&app()).await.unwrap(), ["1"]);

    // Gray: one instance of revision 2 at the top ordinal, then the old down.
    cluster
        .add_pod_fault(PodFault::never_ready_image("registry.example/ledger:2"))
        .unwrap();
    rt.set_replicas(&target("2", "2"), 1).await.unwrap();
    assert_eq!(counts(&set(&rt).await), (5, 4));
    // Applied again (a resumed step): the same object.
    rt.set_replicas(&target("2", "2"), 1).await.unwrap();
    assert_eq!(counts(&set(&rt).await), (5, 4));
    until(&rt, "ledger-4 runs revision 2", |_, two| {
        names(two) == ["ledger-4"]
    })
    .await;
    cluster.clear_faults();
    until(&rt, "gray ready", |_, two| two.ready == 1).await;
    cluster
        .add_pod_fault(PodFault::never_ready_image("registry.example/ledger:2"))
        .unwrap();
    rt.set_replicas(&target("1", "1"), 3).await.unwrap();
    let s = set(&rt).await;
    assert_eq!(counts(&s), (4, 3));
    assert_eq!(
        read_layout(&s),
        Layout {
            base: Some(("1".into(), 3)),
            top: Some(("2".into(), 1)),
        }
    );
    // ledger-4 goes, ledger-3 is replaced by revision 2 (which never becomes Ready here).
    until(&rt, "ledger-3 runs revision 2", |one, two| {
        names(one) == ["ledger-0", "ledger-1", "ledger-2"] && names(two) == ["ledger-3"]
    })
    .await;
    let configs: Api<ConfigMap> = Api::namespaced(rt.inner.client.clone(), "apps");
    assert!(
        configs
            .get_opt(&format!("conf.{APP}.r2"))
            .await
            .unwrap()
            .is_some()
    );

    // A third revision cannot start while two run.
    let refused = rt.set_replicas(&target("3", "3"), 1).await.unwrap_err();
    assert!(
        refused.to_string().contains("two revisions at most"),
        "{refused}"
    );

    // Rollback: revision 1 back up to 4; the template goes back, and the stuck pod of
    // revision 2 is deleted so OrderedReady does not wait for it for ever.
    rt.set_replicas(&target("1", "1"), 4).await.unwrap();
    let s = set(&rt).await;
    assert_eq!(counts(&s), (4, 0));
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()["edas.oam.revision"],
        "1"
    );
    until(&rt, "all revision 1 again", |one, two| {
        one.ready == 4 && two.total == 0
    })
    .await;
    rt.set_replicas(&target("2", "2"), 0).await.unwrap();
    assert!(
        configs
            .get_opt(&format!("conf.{APP}.r2"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(counts(&set(&rt).await), (4, 0));

    // Scaled to 0 (stop, delete): the StatefulSet, its headless Service and copies go.
    rt.set_replicas(&target("1", "1"), 0).await.unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    assert!(sets.get_opt("ledger").await.unwrap().is_none());
    assert!(services.get_opt("ledger-headless").await.unwrap().is_none());
    assert!(
        configs
            .get_opt(&format!("conf.{APP}.r1"))
            .await
            .unwrap()
            .is_none()
    );
    until(&rt, "no pods", |one, two| one.total == 0 && two.total == 0).await;
    let pods: Api<Pod> = Api::namespaced(rt.inner.client.clone(), "apps");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scales_the_statefulset_and_the_sweep_removes_it() {
    let (_cluster, rt, _dir) = start().await;
    rt.set_replicas(&target("1", "1"), 2).await.unwrap();
    let rule = edas_runtime::Autoscaler {
        min_replicas: 2,
        max_replicas: 6,
        metrics: vec![edas_runtime::ScaleMetric {
            kind: "CPU".into(),
            target_utilization: 60,
        }],
        scale_up: None,
        scale_down: None,
    };
    let mut decisions = rt.scale_decisions().unwrap();
    rt.set_autoscaling(
        &app(),
        Some(&edas_runtime::Autoscaling {
            revision: "1".into(),
            rule,
            held: false,
        }),
    )
    .await
    .unwrap();
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(rt.inner.client.clone(), "apps");
    let hpa = hpas.get("ledger").await.unwrap();
    let target = &hpa.spec.as_ref().unwrap().scale_target_ref;
    assert_eq!(
        (target.kind.as_str(), target.name.as_str()),
        ("StatefulSet", "ledger")
    );
    // The HPA set 5: the layout reads the difference as the top's, the annotation follows,
    // and the decision is reported for the engine to record.
    let sets: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    let scale = json!({"spec": {"replicas": 5}});
    sets.patch_scale(
        "ledger",
        &Default::default(),
        &kube::api::Patch::Merge(&scale),
    )
    .await
    .unwrap();
    assert_eq!(
        read_layout(&sets.get("ledger").await.unwrap()),
        Layout {
            base: None,
            top: Some(("1".into(), 5)),
        }
    );
    let decision = tokio::time::timeout(WAIT, decisions.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            decision.revision.as_str(),
            decision.from,
            decision.to,
            decision.applied
        ),
        ("1", 2, 5, true)
    );
    assert!(
        decision.reason.contains("StatefulSet `ledger`"),
        "{decision:?}"
    );
    until(&rt, "five", |one, _| one.ready == 5).await;
    let annotated = sets
        .get("ledger")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()[super::ANNOTATION_LAYOUT]
        .clone();
    assert_eq!(
        serde_json::from_str::<Layout>(&annotated).unwrap().top,
        Some(("1".into(), 5))
    );
    rt.delete_application(&app(), false).await.unwrap();
    assert!(sets.get_opt("ledger").await.unwrap().is_none());
    let services: Api<Service> = Api::namespaced(rt.inner.client.clone(), "apps");
    assert!(services.get_opt("ledger-headless").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_deleted_outside_edasd_is_restored_from_the_store() {
    let (_cluster, rt, _dir) = start_with(Arc::new(RunsFour)).await;
    rt.set_replicas(&target("1", "1"), 4).await.unwrap();
    until(&rt, "revision 1 ready", |one, _| one.ready == 4).await;
    let sets: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    let before = sets.get("ledger").await.unwrap().metadata.uid;
    sets.delete("ledger", &Default::default()).await.unwrap();
    // Restored on the watch event: a new object, the store's 4 instances again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(set) = sets.get_opt("ledger").await.unwrap()
            && set.metadata.uid != before
        {
            assert_eq!(counts(&set), (4, 0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not restored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until(&rt, "revision 1 ready again", |one, _| one.ready == 4).await;
    // Scaled by hand (no HPA): restored to the store's 4.
    let scale = json!({"spec": {"replicas": 6}});
    sets.patch_scale(
        "ledger",
        &Default::default(),
        &kube::api::Patch::Merge(&scale),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let set = sets.get("ledger").await.unwrap();
        if counts(&set) == (4, 0) && set.metadata.generation > Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not restored to 4");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until(&rt, "four again", |one, _| one.ready == 4 && one.total == 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undone_release_returns_to_the_base_template_without_replacing_its_pods() {
    let (_cluster, rt, _dir) = start().await;
    let sets: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(rt.inner.client.clone(), "apps");
    let uids = || async {
        let lp = ListParams::default().labels("edas.oam.revision=1");
        let mut out: Vec<(String, String)> = pods
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
            .collect();
        out.sort();
        out
    };
    rt.set_replicas(&target("1", "1"), 3).await.unwrap();
    until(&rt, "revision 1 ready", |one, _| one.ready == 3).await;
    let first = sets
        .get("ledger")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision;
    let before = uids().await;
    // Revision 2 (with a readiness probe revision 1 does not have) in its gray batch, then
    // undone (a failed release rolled back: revision 2 to 0).
    let mut two = target("2", "2");
    let mut spec = (*two.spec).clone();
    spec.readiness = Some(serde_json::from_value(json!({"tcpSocket": {"port": 8080}})).unwrap());
    two.spec = Arc::new(spec);
    rt.set_replicas(&two, 1).await.unwrap();
    let s = sets.get("ledger").await.unwrap();
    assert!(
        s.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(super::ANNOTATION_BASE_TEMPLATE),
        "the base's template is kept while the release runs"
    );
    rt.set_replicas(&two, 0).await.unwrap();
    let s = sets.get("ledger").await.unwrap();
    assert_eq!(counts(&s), (3, 0));
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()["edas.oam.revision"],
        "1"
    );
    assert!(
        !s.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(super::ANNOTATION_BASE_TEMPLATE)
    );
    let template = serde_json::to_string(&s.spec.unwrap().template).unwrap();
    assert!(!template.contains("readinessProbe"), "{template}");
    until(&rt, "revision 2 gone", |one, two| {
        one.ready == 3 && two.total == 0
    })
    .await;
    // The same revision as before, so none of its pods was replaced.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = sets.get("ledger").await.unwrap().status.unwrap();
        if status.update_revision == first && status.current_revision == first {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(uids().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_that_is_not_the_applications_is_left_alone() {
    let (_cluster, rt, _dir) = start().await;
    // Someone else's StatefulSet `ledger` in the namespace.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(rt.inner.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap();
    namespaces.create(&Default::default(), &ns).await.unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(rt.inner.client.clone(), "apps");
    let foreign: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "ledger", "labels": {"app": "theirs"}},
        "spec": {"replicas": 1, "serviceName": "x", "selector": {"matchLabels": {"app": "theirs"}},
            "template": {"metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "c", "image": "theirs:1"}]}}}
    }))
    .unwrap();
    sets.create(&Default::default(), &foreign).await.unwrap();
    // Refused for the StatefulSet application, naming it; not answered as its object.
    let refused = rt.set_replicas(&target("1", "1"), 2).await.unwrap_err();
    assert!(
        matches!(refused, edas_runtime::RuntimeError::Unsupported(_))
            && refused.to_string().contains("is not edasd's"),
        "{refused}"
    );
    assert_eq!(rt.deployment(&app(), "1").await.unwrap(), None);
    let untouched = sets.get("ledger").await.unwrap();
    assert_eq!(untouched.spec.unwrap().replicas, Some(1));
}
