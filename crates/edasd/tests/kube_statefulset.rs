//! Issue 24, black-box: `WorkloadType=StatefulSet` on Kubernetes (the real edasd against the
//! fake API server and its StatefulSet stand-in). InsertK8sApplication creates one StatefulSet
//! with pods `<name>-0..3` and the headless Service; GetAppDeployment answers the StatefulSet;
//! a gray + 2-batch release moves the partition down batch by batch, the new revision always on
//! the highest ordinals and old pods replaced from the highest ordinal down; an abort and
//! rollback puts the template back; DeleteK8sApplication removes the StatefulSet, its headless
//! Service and every pod.

mod kube_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube_support::*;
use serde_json::Value;

const GRAY_MANUAL: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

/// edasd against a fresh fake cluster (`test`, pods ready after `ready_after`) with the
/// StatefulSet application `ledger` of `replicas` inserted (the insert finished, status 2);
/// (the cluster, edasd's directory, edasd, AppId).
async fn ledger(
    test: &str,
    ready_after: Duration,
    replicas: u32,
) -> (Backend, tempfile::TempDir, Edasd, String) {
    let backend = Backend::fake(test, ready_after).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd
        .insert(
            &backend,
            "ledger",
            replicas,
            &[("WorkloadType", "StatefulSet")],
        )
        .await;
    succeeded(&edasd, &backend, &order).await;
    (backend, dir, edasd, app)
}

/// Waits until change order `order` is finished and asserts it succeeded (status 2).
async fn succeeded(edasd: &Edasd, backend: &Backend, order: &str) {
    let info = edasd.finished(order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
}

/// Waits until the application runs exactly `n` ready pods, all of `revision` (`what` names the
/// wait), then asserts the StatefulSet's shape: `n` replicas, partition 0, `revision`'s template.
async fn settled_on(backend: &Backend, app: &str, what: &str, revision: &str, n: u32) {
    backend
        .wait_pods(app, what, |p| *p == counts(&[(revision, n)]))
        .await;
    assert_eq!(
        shape(backend).await,
        Some((n as i32, 0, revision.to_owned()))
    );
}

/// The pods `ledger-0..4` in the order [`record_first_seen`] saw them with its revision.
fn replaced(first_seen: &Mutex<Vec<String>>) -> Vec<String> {
    first_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|n| names(0..4).contains(n))
        .cloned()
        .collect()
}

/// (kind, name) of what the HorizontalPodAutoscaler `ledger` scales.
async fn hpa_target(hpas: &Api<HorizontalPodAutoscaler>) -> (String, String) {
    let target = hpas
        .get("ledger")
        .await
        .unwrap()
        .spec
        .unwrap()
        .scale_target_ref;
    (target.kind, target.name)
}

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, (u32, u32)> {
    pairs
        .iter()
        .map(|(r, n)| ((*r).to_owned(), (*n, *n)))
        .collect()
}

/// (replicas, partition, template revision) of the application's StatefulSet.
async fn shape(backend: &Backend) -> Option<(i32, i32, String)> {
    let api: Api<StatefulSet> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let set = bounded("reading the StatefulSet", api.get_opt("ledger"))
        .await
        .unwrap()?;
    let spec = set.spec?;
    let partition = spec.update_strategy?.rolling_update?.partition?;
    let revision = set.metadata.labels?.get(LABEL_REVISION)?.clone();
    Some((spec.replicas?, partition, revision))
}

/// Revision → pod names of the application, from the cluster.
async fn by_revision(backend: &Backend, app: &str) -> BTreeMap<String, Vec<String>> {
    backend
        .pods(app)
        .await
        .into_iter()
        .map(|(r, (_, _, names))| (r, names.into_iter().collect()))
        .collect()
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("ledger-{i}")).collect()
}

/// The order in which pods of `revision` first appear, by name.
fn record_first_seen(
    backend: &Backend,
    revision: &str,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api: Api<Pod> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let (shared, revision) = (seen.clone(), revision.to_owned());
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else {
                continue;
            };
            let of_revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_REVISION))
                .is_some_and(|r| *r == revision);
            let name = pod.metadata.name.unwrap_or_default();
            let mut seen = shared.lock().unwrap();
            if of_revision && !seen.contains(&name) {
                seen.push(name);
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_is_released_by_partition_rolled_back_and_deleted() {
    let started = Instant::now();
    let (backend, _dir, edasd, app) = ledger("sts", Duration::from_millis(150), 4).await;
    backend
        .wait_pods(&app, "revision 1 runs", |p| *p == counts(&[("1", 4)]))
        .await;
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([("1".to_owned(), names(0..4))])
    );
    assert_eq!(shape(&backend).await, Some((4, 0, "1".into())));
    assert!(backend.deployments(&app).await.is_empty(), "no Deployment");
    let services: Api<Service> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let headless = services.get("ledger-headless").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));

    // The instances are the pods, by their stable names.
    let mut listed: Vec<String> = edasd
        .instance_list(&app)
        .await
        .iter()
        .filter_map(|i| i["InstanceName"].as_str().map(str::to_owned))
        .collect();
    listed.sort();
    assert_eq!(listed, names(0..4));
    // An instance's output by its stable name.
    backend.fake.as_ref().unwrap().write_log(
        &backend.namespace,
        "ledger-2",
        "ledger",
        "hello from ledger-2\n",
    );
    let text = edasd
        .log_text(&[("AppId", &app), ("InstanceName", "ledger-2")])
        .await;
    assert!(text.contains("hello from ledger-2"), "{text}");

    // GetAppDeployment answers the StatefulSet; the application says its workload type.
    let body = edasd
        .call(
            "GET",
            "/pop/v5/oam/app_deployment",
            "GetAppDeployment",
            &[("AppId", &app)],
        )
        .await;
    let object: Value = serde_json::from_str(body["Data"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&object["kind"], &object["metadata"]["name"]),
        (&Value::from("StatefulSet"), &Value::from("ledger")),
        "{object:#}"
    );

    // Gray + 2 manual batches: after each, the new revision runs exactly the top ordinals
    // and the partition is the old revision's count.
    let (first_seen, recorder) = record_first_seen(&backend, "2");
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_MANUAL)])
        .await;
    let mut partitions = Vec::new();
    for (k, (old, new)) in [(3, 1), (2, 2)].into_iter().enumerate() {
        let expected = counts(&[("1", old), ("2", new)]);
        backend
            .wait_pods(&app, &format!("after batch {k}"), |p| *p == expected)
            .await;
        let info = edasd.wait_status(&order, &[8], backend.patience).await;
        assert_eq!(
            pipelines(&info)
                .iter()
                .filter(|p| p["PipelineStatus"] == 2)
                .count(),
            k + 1,
            "{info:#}"
        );
        let (replicas, partition, template) = shape(&backend).await.unwrap();
        assert_eq!((replicas, template.as_str()), (4, "2"));
        assert_eq!(partition, old as i32);
        partitions.push(partition);
        assert_eq!(
            by_revision(&backend, &app).await,
            BTreeMap::from([
                ("1".to_owned(), names(0..old)),
                ("2".to_owned(), names(old..4)),
            ]),
            "the new revision runs the highest ordinals"
        );
        edasd.continue_next(&order).await;
    }
    succeeded(&edasd, &backend, &order).await;
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 4)]))
        .await;
    partitions.push(shape(&backend).await.unwrap().1);
    assert_eq!(
        partitions,
        [3, 2, 0],
        "the partition moves down batch by batch"
    );
    assert_eq!(shape(&backend).await, Some((4, 0, "2".into())));
    recorder.abort();
    assert_eq!(
        replaced(&first_seen),
        ["ledger-3", "ledger-2", "ledger-1", "ledger-0"],
        "pods are updated from the highest ordinal down"
    );

    // Abort and roll back a release in its gray batch: the template goes back to revision 2.
    let order = edasd
        .deploy(&app, IMAGE_V1, &[("UpdateStrategy", GRAY_MANUAL)])
        .await;
    let gray = counts(&[("2", 3), ("3", 1)]);
    backend.wait_pods(&app, "gray batch", |p| *p == gray).await;
    edasd.wait_status(&order, &[8], backend.patience).await;
    assert_eq!(shape(&backend).await, Some((4, 3, "3".into())));
    let rollback = edasd
        .control(
            "AbortAndRollbackChangeOrder",
            "/pop/v5/changeorder/change_order_abort_and_rollback",
            &order,
        )
        .await;
    succeeded(&edasd, &backend, &rollback).await;
    backend
        .wait_pods(&app, "revision 2 again", |p| *p == counts(&[("2", 4)]))
        .await;
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([("2".to_owned(), names(0..4))])
    );
    assert_eq!(shape(&backend).await, Some((4, 0, "2".into())));

    // Delete: the StatefulSet, its headless Service and every pod go.
    let order = edasd.delete(&app).await;
    succeeded(&edasd, &backend, &order).await;
    backend.wait_swept(&app, backend.patience).await;
    assert_eq!(shape(&backend).await, None);
    assert!(services.get_opt("ledger-headless").await.unwrap().is_none());
    eprintln!("StatefulSet scenario took {:?}", started.elapsed());
}

/// edasd killed while a StatefulSet release runs: a restarted edasd reads the layout back from
/// the StatefulSet and finishes the release, ending with the new revision on every ordinal; a
/// StatefulSet deleted by hand is restored; stop and start delete and re-create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edasd_resumes_a_statefulset_release() {
    let (backend, _dir, mut edasd, app) = ledger("stsrestart", Duration::from_millis(200), 4).await;
    backend
        .wait_pods(&app, "revision 1 runs", |p| *p == counts(&[("1", 4)]))
        .await;
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    // Kill it once the first batch after the gray one moved the partition.
    let deadline = Instant::now() + backend.patience;
    loop {
        if shape(&backend)
            .await
            .is_some_and(|(_, partition, template)| template == "2" && partition <= 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the batch never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edasd.kill();
    let killed_at = shape(&backend).await;
    edasd.spawn();
    succeeded(&edasd, &backend, &order).await;
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 4)]))
        .await;
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([("2".to_owned(), names(0..4))])
    );
    assert_eq!(shape(&backend).await, Some((4, 0, "2".into())));
    eprintln!("StatefulSet at the kill: {killed_at:?}");

    // Deleted by hand (`kubectl delete sts`): edasd restores it from the store at once.
    let sets: Api<StatefulSet> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let before = sets.get("ledger").await.unwrap().metadata.uid;
    sets.delete("ledger", &Default::default()).await.unwrap();
    let deadline = Instant::now() + backend.patience;
    loop {
        let now = bounded("reading the StatefulSet", sets.get_opt("ledger"))
            .await
            .unwrap();
        if now.as_ref().is_some_and(|s| s.metadata.uid != before) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the StatefulSet was not restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shape(&backend).await, Some((4, 0, "2".into())));
    backend
        .wait_pods(&app, "restored", |p| *p == counts(&[("2", 4)]))
        .await;

    // Stop deletes the StatefulSet (and its headless Service); start brings them back.
    let stop = edasd
        .app_order(
            "POST",
            "/pop/v5/k8s/acs/stop_k8s_app",
            "StopK8sApplication",
            &app,
        )
        .await;
    succeeded(&edasd, &backend, &stop).await;
    backend.wait_pods(&app, "stopped", |p| p.is_empty()).await;
    assert_eq!(shape(&backend).await, None);
    let start = edasd
        .app_order(
            "POST",
            "/pop/v5/k8s/acs/start_k8s_app",
            "StartK8sApplication",
            &app,
        )
        .await;
    succeeded(&edasd, &backend, &start).await;
    settled_on(&backend, &app, "started", "2", 4).await;
    let services: Api<Service> = Api::namespaced(backend.client.clone(), &backend.namespace);
    assert!(services.get_opt("ledger-headless").await.unwrap().is_some());

    // RestartK8sApplication: a revision of its own (5: stop and start were revisions 3 and 4,
    // which ran revision 2's template), every ordinal replaced from the highest.
    let (first_seen, recorder) = record_first_seen(&backend, "5");
    let restart = edasd
        .app_order(
            "POST",
            "/pop/v5/k8s/acs/restart_k8s_app",
            "RestartK8sApplication",
            &app,
        )
        .await;
    succeeded(&edasd, &backend, &restart).await;
    settled_on(&backend, &app, "restarted", "5", 4).await;
    recorder.abort();
    assert_eq!(
        replaced(&first_seen),
        ["ledger-3", "ledger-2", "ledger-1", "ledger-0"]
    );
}

/// A revision whose pod never becomes Ready fails its gray batch on BatchTimeout, with the old
/// revision still on its ordinals; rolling the failed order back removes the broken pod and
/// puts the StatefulSet back on the old revision's template, its pods untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gray_batch_is_rolled_back() {
    let (backend, _dir, edasd, app) = ledger("stsfail", Duration::from_millis(150), 3).await;
    let order = edasd
        .deploy(
            &app,
            IMAGE_BROKEN,
            &[
                ("BatchTimeout", "2"),
                ("Readiness", NEVER_READY_PROBE),
                ("UpdateStrategy", GRAY_MANUAL),
            ],
        )
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 3, "failed: {info:#}");
    assert_eq!(task_error_codes(&info), ["BatchTimeout"], "{info:#}");
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([
            ("1".to_owned(), names(0..3)),
            ("2".to_owned(), vec!["ledger-3".to_owned()]),
        ]),
        "the gray pod on the top ordinal, the old revision untouched"
    );
    let pods = backend.wait_pods(&app, "now", |_| true).await;
    assert_eq!(pods.get("1"), Some(&(3, 3)), "{pods:?}");
    let old_uids = uids(&backend, "1").await;
    let body = edasd
        .call(
            "PUT",
            "/pop/v5/oam/changeorder/rollback",
            "RollbackChangeOrder",
            &[("ChangeOrderId", &order)],
        )
        .await;
    let rollback = body["Data"]["ChangeOrderId"].as_str().unwrap().to_owned();
    succeeded(&edasd, &backend, &rollback).await;
    backend
        .wait_pods(&app, "only revision 1", |p| *p == counts(&[("1", 3)]))
        .await;
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([("1".to_owned(), names(0..3))])
    );
    // Back on revision 1's own template, whose pods were never replaced.
    assert_eq!(shape(&backend).await, Some((3, 0, "1".into())));
    assert_eq!(uids(&backend, "1").await, old_uids);
}

/// The uids of the application's pods of `revision`, by name.
async fn uids(backend: &Backend, revision: &str) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let lp = kube::api::ListParams::default().labels(&format!("{LABEL_REVISION}={revision}"));
    let list = bounded("listing pods", api.list(&lp)).await.unwrap();
    list.items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

/// An autoscaled StatefulSet application: the HPA targets the StatefulSet, its 5 are followed
/// and recorded as an autoscaler change order, and a gray + 2-batch release plans against
/// them, ending with 5 pods of the new revision in the same StatefulSet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_statefulset_keeps_its_hpa_count_through_a_release() {
    let (backend, _dir, edasd, app) = ledger("stshpa", Duration::from_millis(150), 3).await;
    edasd
        .call(
            "POST",
            "/pop/v1/eam/scale/application_scaling_rule",
            "CreateApplicationScalingRule",
            &[
                ("AppId", &app),
                ("ScalingRuleName", "cpu"),
                ("ScalingRuleType", "metric"),
                ("ScalingRuleEnable", "true"),
                (
                    "ScalingRuleMetric",
                    r#"{"minReplicas": 2, "maxReplicas": 6, "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]}"#,
                ),
            ],
        )
        .await;
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(backend.client.clone(), &backend.namespace);
    assert_eq!(
        hpa_target(&hpas).await,
        ("StatefulSet".into(), "ledger".into())
    );

    let fake = backend.fake.as_ref().unwrap();
    assert_eq!(fake.autoscale(&backend.namespace, "ledger", 5), Ok(5));
    backend
        .wait_pods(&app, "the HPA's 5", |p| *p == counts(&[("1", 5)]))
        .await;
    let deadline = Instant::now() + backend.patience;
    let (recorded, description) = loop {
        let found = edasd
            .api
            .recent_change_orders(&app)
            .await
            .iter()
            .find(|o| o["CreateUserId"] == "autoscaler")
            .map(|o| {
                (
                    o["ChangeOrderId"].as_str().unwrap().to_owned(),
                    o["ChangeOrderDescription"].as_str().unwrap().to_owned(),
                )
            });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no autoscaler change order");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        description,
        "autoscaler: 3 → 5 (HorizontalPodAutoscaler `ledger` scaled StatefulSet `ledger`)"
    );
    succeeded(&edasd, &backend, &recorded).await;
    assert_eq!(shape(&backend).await, Some((5, 0, "1".into())));

    // The release plans against the HPA's 5 (the recorded scale was revision 2).
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    succeeded(&edasd, &backend, &order).await;
    settled_on(&backend, &app, "5 pods of revision 3", "3", 5).await;
    assert_eq!(
        by_revision(&backend, &app).await,
        BTreeMap::from([("3".to_owned(), names(0..5))])
    );
    assert_eq!(
        hpa_target(&hpas).await,
        ("StatefulSet".into(), "ledger".into())
    );
}

/// A Service named like the StatefulSet's headless Service is refused at submission, naming
/// ServiceConfigs, and nothing is applied; StartK8sAppPrecheck of a StatefulSet application
/// renders its StatefulSet and places its instances like any others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_precheck_and_a_headless_name_clash() {
    const PRECHECK: &str = "/pop/v5/k8s/app_precheck";
    let backend = Backend::fake("stsprecheck", Duration::from_millis(100)).await;
    // The fake places every pod on `edas-fake-node`: 2 CPUs.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(backend.client.clone());
    let node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "edas-fake-node"},
        "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}
    }))
    .unwrap();
    nodes.create(&Default::default(), &node).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let ns = backend.namespace.clone();

    let (status, body) = edasd
        .api
        .send(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
            &[
                ("AppName", "ledger"),
                ("ClusterId", CLUSTER),
                ("Namespace", &ns),
                ("ImageUrl", IMAGE_V1),
                ("Replicas", "1"),
                ("WorkloadType", "StatefulSet"),
                (
                    "ServiceConfigs",
                    r#"[{"name":"ledger-headless","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080}}]}]"#,
                ),
            ],
            false,
        )
        .await;
    assert_eq!(
        (status, &body["Code"]),
        (400, &Value::from("RuntimeRefused")),
        "{body:#}"
    );
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains("ledger-headless") && message.contains("ServiceConfigs"),
        "{message}"
    );
    assert_eq!(shape(&backend).await, None);

    // One instance of 500 mCPU runs: 3 more fit beside it, 4 do not.
    let (app, order) = edasd
        .insert(
            &backend,
            "ledger",
            1,
            &[("RequestsmCpu", "500"), ("WorkloadType", "StatefulSet")],
        )
        .await;
    succeeded(&edasd, &backend, &order).await;
    backend
        .wait_pods(&app, "one pod", |p| *p == counts(&[("1", 1)]))
        .await;
    let precheck = |replicas: &'static str| {
        let (edasd, ns, app) = (&edasd, ns.clone(), app.clone());
        async move {
            edasd
                .call(
                    "POST",
                    PRECHECK,
                    "StartK8sAppPrecheck",
                    &[
                        ("AppId", app.as_str()),
                        ("AppName", "ledger"),
                        ("ClusterId", CLUSTER),
                        ("Namespace", ns.as_str()),
                        ("Replicas", replicas),
                    ],
                )
                .await;
            edasd
                .call(
                    "GET",
                    PRECHECK,
                    "GetK8sAppPrecheckResult",
                    &[
                        ("AppName", "ledger"),
                        ("ClusterId", CLUSTER),
                        ("Namespace", ns.as_str()),
                    ],
                )
                .await["Data"]
                .clone()
        }
    };
    let fits = precheck("3").await;
    assert_eq!(fits["Status"], "pass", "{fits:#}");
    let short = precheck("4").await;
    assert_eq!(short["Status"], "failed", "{short:#}");
    let capacity = short["JobResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["Name"] == "CapacityCheck")
        .cloned()
        .unwrap();
    assert_eq!(capacity["Pass"], false, "{short:#}");
    assert!(
        capacity["Reason"].as_str().unwrap().contains("short by 1"),
        "{capacity:#}"
    );
    // A precheck changes nothing.
    assert_eq!(shape(&backend).await, Some((1, 0, "1".into())));
}

/// The workload type is fixed at creation: a local application cannot be a StatefulSet, and
/// the refusal names the parameter and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runtime_refuses_a_statefulset_naming_the_parameter() {
    let backend = Backend::fake("stslocal", Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (status, body) = edasd
        .api
        .send(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
            &[
                ("AppName", "ledger"),
                ("ClusterId", "local"),
                ("Command", "/bin/true"),
                ("Replicas", "1"),
                ("WorkloadType", "StatefulSet"),
            ],
            false,
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["Code"], "RuntimeRefused", "{body:#}");
    let message = body["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains("WorkloadType") && message.contains("stable network identity"),
        "{body:#}"
    );
}
