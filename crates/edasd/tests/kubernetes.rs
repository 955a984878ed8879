//! Black-box tests of whole releases on a Kubernetes cluster: the real `edasd` binary with a
//! `[[clusters]]` entry whose kubeconfig points at the cluster, driven by signed requests, while
//! the test reads the cluster with kube-rs (as `kubectl` would).
//!
//! Every scenario runs twice: on the in-process fake API server (`edas-fake-kube`, always), and
//! as `real_cluster_*` on the cluster named by `EDAS_TEST_KUBECONFIG` (the real-cluster tier,
//! `#[ignore]`d in the normal run; `scripts/tiers.d/20-kubernetes.sh` runs it, and with
//! `EDAS_TEST_REQUIRE_KUBERNETES=1` a missing kubeconfig fails instead of skipping). Each
//! scenario uses a fresh namespace labelled `edas.test/run`, deleted afterwards.

mod kube_support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube_support::*;

/// A gray instance, then two manual batches (plan for 4 replicas: 1, 1, 2).
const GRAY_MANUAL: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
/// A gray instance, then one manual batch (for 2 replicas).
const GRAY_ONE: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":1,"releaseType":"manual","batchWaitTime":0}}"#;
/// A gray instance, then two automatic batches.
const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, (u32, u32)> {
    pairs
        .iter()
        .map(|(rev, n)| ((*rev).to_owned(), (*n, *n)))
        .collect()
}

fn replicas(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
}

/// Creates an application of `n` ready instances (revision 1); returns its id.
async fn running_app(edasd: &Edasd, backend: &Backend, name: &str, n: u32) -> String {
    let (app, order) = edasd.insert(backend, name, n, &[]).await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    backend
        .wait_pods(&app, "revision 1 runs", |p| *p == counts(&[("1", n)]))
        .await;
    assert_eq!(
        backend.deployments(&app).await,
        replicas(&[("1", n as i32)])
    );
    app
}

/// A manual GrayBatchUpdate: after each batch the cluster runs exactly the planned counts of
/// each revision, and waits for the next confirmation; at the end only the new revision is left.
async fn manual_gray_batches(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, "manual", 4).await;
    let log = backend.record_pods();
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_MANUAL)])
        .await;
    for (k, expected) in [counts(&[("1", 3), ("2", 1)]), counts(&[("1", 2), ("2", 2)])]
        .into_iter()
        .enumerate()
    {
        backend
            .wait_pods(&app, &format!("after batch {k}"), |p| *p == expected)
            .await;
        let info = edasd.wait_status(&order, &[8], backend.patience).await;
        let done = pipelines(&info)
            .iter()
            .filter(|p| p["PipelineStatus"] == 2)
            .count();
        assert_eq!(done, k + 1, "{info:#}");
        // Waiting for confirmation: nothing moves.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = backend.wait_pods(&app, "still", |_| true).await;
        assert_eq!(now, expected, "nothing moves while waiting");
        let want: BTreeMap<String, i32> = expected
            .iter()
            .map(|(r, (n, _))| (r.clone(), *n as i32))
            .collect();
        assert_eq!(backend.deployments(&app).await, want);
        edasd.continue_next(&order).await;
    }
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 4)]))
        .await;
    assert_eq!(backend.deployments(&app).await, replicas(&[("2", 4)]));
    assert_eq!(
        log.created().get("2"),
        Some(&4),
        "no new pod replaced another"
    );
    assert!(
        log.max_live() <= 6,
        "at most one batch (2) of surplus pods (new ones are Ready before old ones stop): {}",
        log.max_live()
    );
}

/// An automatic GrayBatchUpdate finishes by itself with the exact batch sizes.
async fn automatic_gray_batches(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, "auto", 4).await;
    let log = backend.record_pods();
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    // Each batch lists the new revision's instances after it: 1, 2, 4.
    let sizes: Vec<usize> = pipelines(&info)
        .iter()
        .map(|p| {
            p["StageList"]["StageInfoDTO"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    s["StageResultDTO"]["InstanceDTOList"]["InstanceDTO"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|i| i["InstanceName"].as_str().map(str::to_owned))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .collect();
    assert_eq!(sizes, [1, 2, 4], "{info:#}");
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 4)]))
        .await;
    assert_eq!(backend.deployments(&app).await, replicas(&[("2", 4)]));
    assert_eq!(log.created().get("2"), Some(&4));
    assert!(
        log.max_live() <= 6,
        "at most one batch (2) of surplus pods (new ones are Ready before old ones stop): {}",
        log.max_live()
    );
}

/// A revision whose pods never become Ready fails on BatchTimeout; the old revision keeps its
/// full size.
async fn batch_timeout(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, "timeout", 2).await;
    let started = std::time::Instant::now();
    let order = edasd
        .deploy(
            &app,
            IMAGE_BROKEN,
            &[
                ("BatchTimeout", "3"),
                ("Readiness", NEVER_READY_PROBE),
                (
                    "UpdateStrategy",
                    r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
                ),
            ],
        )
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 3, "failed: {info:#}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before the timeout"
    );
    assert_eq!(task_error_codes(&info), ["BatchTimeout"], "{info:#}");
    let pods = backend.wait_pods(&app, "now", |_| true).await;
    assert_eq!(
        pods.get("1"),
        Some(&(2, 2)),
        "the old revision serves at full size: {pods:?}"
    );
    assert_eq!(pods.get("2").map(|p| p.0).unwrap_or(0), 0, "{pods:?}");
    assert_eq!(backend.deployments(&app).await.get("1"), Some(&2));
}

/// Abort stops the release where it stands; rolling the aborted release back, or aborting and
/// rolling back at once, leaves the previous revision at full size and no new-revision pod.
async fn abort_and_rollback(backend: &Backend, at_once: bool) {
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let name = if at_once { "abortrb" } else { "abort" };
    let app = running_app(&edasd, backend, name, 3).await;
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_MANUAL)])
        .await;
    let gray = counts(&[("1", 2), ("2", 1)]);
    backend.wait_pods(&app, "gray batch", |p| *p == gray).await;
    edasd.wait_status(&order, &[8], backend.patience).await;
    let rollback = if at_once {
        edasd
            .control(
                "AbortAndRollbackChangeOrder",
                "/pop/v5/changeorder/change_order_abort_and_rollback",
                &order,
            )
            .await
    } else {
        edasd
            .control(
                "AbortChangeOrder",
                "/pop/v5/changeorder/change_order_abort",
                &order,
            )
            .await;
        let info = edasd.finished(&order, backend.patience).await;
        assert_eq!(info["Status"], 6, "terminated: {info:#}");
        // Aborted: nothing is undone by itself.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(backend.wait_pods(&app, "as is", |_| true).await, gray);
        let body = edasd
            .call(
                "PUT",
                "/pop/v5/oam/changeorder/rollback",
                "RollbackChangeOrder",
                &[("ChangeOrderId", &order)],
            )
            .await;
        body["Data"]["ChangeOrderId"].as_str().unwrap().to_owned()
    };
    assert!(!rollback.is_empty());
    let info = edasd.finished(&rollback, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    backend
        .wait_pods(&app, "only the previous revision", |p| {
            *p == counts(&[("1", 3)])
        })
        .await;
    assert_eq!(backend.deployments(&app).await, replicas(&[("1", 3)]));
}

/// edasd killed in the middle of a batch: a restarted edasd resumes the release from what the
/// cluster shows, without creating any pod twice.
async fn restart_mid_release(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, "restart", 4).await;
    let log = backend.record_pods();
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    // Kill it as soon as the second batch asked for its pods.
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        if backend
            .deployments(&app)
            .await
            .get("2")
            .copied()
            .unwrap_or(0)
            >= 2
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second batch never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edasd.kill();
    let killed_at = backend.wait_pods(&app, "at the kill", |_| true).await;
    edasd.spawn();
    let info = edasd.order(&order).await;
    assert!(
        [1, 8, 9].contains(&info["Status"].as_i64().unwrap()),
        "killed mid-release: {info:#}"
    );
    eprintln!(
        "after the restart: {}; pods at the kill: {killed_at:?}",
        info["Status"]
    );
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 4)]))
        .await;
    assert_eq!(backend.deployments(&app).await, replicas(&[("2", 4)]));
    assert_eq!(
        log.created().get("2"),
        Some(&4),
        "no pod doubled: {:?}",
        log.created()
    );
    assert!(
        log.max_live() <= 6,
        "at most one batch (2) of surplus pods (new ones are Ready before old ones stop): {}",
        log.max_live()
    );
}

async fn abort_then_rollback(backend: &Backend) {
    abort_and_rollback(backend, false).await;
}

async fn abort_with_rollback(backend: &Backend) {
    abort_and_rollback(backend, true).await;
}

const FAST: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_gray_batch_release_runs_exact_counts_per_batch() {
    let backend = Backend::fake("manual", FAST).await;
    manual_gray_batches(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_gray_batch_release_runs_exact_counts_per_batch() {
    let backend = Backend::fake("auto", FAST).await;
    automatic_gray_batches(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_never_becomes_ready_fails_on_batch_timeout() {
    let backend = Backend::fake("timeout", FAST).await;
    batch_timeout(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_then_rollback_restores_the_previous_revision() {
    let backend = Backend::fake("abort", FAST).await;
    abort_and_rollback(&backend, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_rollback_restores_the_previous_revision() {
    let backend = Backend::fake("abortrb", FAST).await;
    abort_and_rollback(&backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edasd_resumes_the_release_without_doubling_pods() {
    let backend = Backend::fake("restart", Duration::from_millis(800)).await;
    restart_mid_release(&backend).await;
}

/// The real-cluster tier: the same scenarios on `EDAS_TEST_KUBECONFIG`'s cluster.
macro_rules! real_cluster {
    ($name:ident, $test:literal, $scenario:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "real-cluster tier: scripts/tiers.d/20-kubernetes.sh (EDAS_TEST_KUBECONFIG)"]
        async fn $name() {
            let Some(backend) = Backend::real($test).await else {
                return;
            };
            let run = tokio::spawn(async move {
                $scenario(&backend).await;
                backend
            });
            match run.await {
                Ok(backend) => backend.cleanup().await,
                Err(panic) => {
                    // The namespace of a failed scenario is deleted too (by label).
                    delete_test_namespaces($test).await;
                    std::panic::resume_unwind(panic.into_panic());
                }
            }
        }
    };
}

/// Deletes the namespaces `Backend::real(test)` made (after a failure).
async fn delete_test_namespaces(test: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, DeleteParams, ListParams};
    let Some(backend) = Backend::real(&format!("{test}-cleanup")).await else {
        return;
    };
    let api: Api<Namespace> = Api::all(backend.client.clone());
    let prefix = format!("edas-test-{test}-");
    let lp = ListParams::default().labels("edas.test/run=1");
    if let Ok(list) = bounded("listing test namespaces", api.list(&lp)).await {
        for ns in list.items {
            let name = ns.metadata.name.unwrap_or_default();
            if name.starts_with(&prefix) {
                let dp = DeleteParams::background();
                let _ = bounded("deleting a test namespace", api.delete(&name, &dp)).await;
            }
        }
    }
}

real_cluster!(
    real_cluster_manual_gray_batches,
    "manual",
    manual_gray_batches
);
real_cluster!(
    real_cluster_automatic_gray_batches,
    "auto",
    automatic_gray_batches
);
real_cluster!(real_cluster_batch_timeout, "timeout", batch_timeout);
real_cluster!(
    real_cluster_abort_then_rollback,
    "abort",
    abort_then_rollback
);
real_cluster!(
    real_cluster_abort_and_rollback,
    "abortrb",
    abort_with_rollback
);
real_cluster!(
    real_cluster_restart_mid_release,
    "restart",
    restart_mid_release
);

/// GetK8sCluster reports EDAS's import status: 1 for a cluster edasd reached, 2 for one whose
/// API does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_import_status_follows_what_edasd_can_reach() {
    let backend = Backend::fake("status", FAST).await;
    let dir = tempfile::tempdir().unwrap();
    // A second cluster whose API server is gone (a port nothing listens on).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dead = dir.path().join("dead.kubeconfig");
    std::fs::write(&dead, edas_fake_kube::kubeconfig_yaml(&dead_url, "default")).unwrap();
    let edasd = Edasd::start_with(
        &dir.path().join("a"),
        &backend.kubeconfig,
        None,
        &format!(
            "[[clusters]]\nid = \"down\"\nkubeconfig = \"{}\"\n",
            dead.display()
        ),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = edasd
            .call(
                "POST",
                "/pop/v5/k8s_clusters",
                "GetK8sCluster",
                &[("RegionTag", "cn-hangzhou")],
            )
            .await;
        let statuses: BTreeMap<String, (i64, i64)> = body["ClusterPage"]["ClusterList"]["Cluster"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["ClusterId"].as_str().unwrap().to_owned(),
                    (
                        c["ClusterImportStatus"].as_i64().unwrap(),
                        c["ClusterStatus"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        if statuses.get(CLUSTER) == Some(&(1, 1)) && statuses.get("down") == Some(&(2, 3)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import statuses: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ImportK8sCluster: a configured cluster is imported already; others come from the
    // configuration file.
    let body = edasd
        .call(
            "POST",
            "/pop/v5/import_k8s_cluster",
            "ImportK8sCluster",
            &[("ClusterId", CLUSTER)],
        )
        .await;
    assert_eq!(body["Data"], CLUSTER);
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/import_k8s_cluster",
            "ImportK8sCluster",
            &[("ClusterId", "elsewhere")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"].as_str().unwrap().contains("[[clusters]]"),
        "{body}"
    );
}

/// The application's Services select every revision's pods; a release with
/// TrafficControlStrategy gets stable and gray Services and an HTTPRoute while it is in its gray
/// batch (a cluster with Gateway API and a configured Gateway), and is refused without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_the_gray_split_on_the_cluster() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, ApiResource, DynamicObject};

    let backend = Backend::fake_with("routing", FAST, true).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = Edasd::start(&dir.path().join("plain"), &backend.kubeconfig, None);
    let services = r#"[{"name":"web","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080,"protocol":"TCP"}}]}]"#;
    let (app, order) = plain
        .insert(&backend, "web", 2, &[("ServiceConfigs", services)])
        .await;
    assert_eq!(plain.finished(&order, backend.patience).await["Status"], 2);
    let api: Api<Service> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let web = bounded("reading the Service", api.get("web"))
        .await
        .unwrap();
    assert_eq!(
        web.spec.unwrap().selector.unwrap(),
        BTreeMap::from([("edas.oam.acname".to_owned(), "web".to_owned())])
    );
    // No Gateway configured: a gray split is refused at once, saying what is missing.
    let traffic = r#"{"http":{"rules":[{"conditionType":"percent","percent":20}]}}"#;
    let (status, body) = plain
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[
                ("AppId", &app),
                ("Image", IMAGE_V2),
                ("UpdateStrategy", GRAY_ONE),
                ("TrafficControlStrategy", traffic),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"].as_str().unwrap().contains("gateway"),
        "{body}"
    );

    // The same edasd, now with a Gateway configured (and existing, so the Gateway controller
    // accepts the route): the gray batch gets its split.
    let gateways: Api<DynamicObject> = Api::namespaced_with(
        backend.client.clone(),
        "infra",
        &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "Gateway",
        )),
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(backend.client.clone());
    bounded(
        "creating namespace infra",
        namespaces.create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "infra"}})).unwrap(),
        ),
    )
    .await
    .unwrap();
    bounded(
        "creating the Gateway",
        gateways.create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw"},
                "spec": {"gatewayClassName": "fake", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
            }))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    let mut edasd = plain;
    edasd.kill();
    edasd.configure("gateway = \"infra/gw\"\n", "");
    edasd.spawn();
    let params = [
        ("AppId", app.as_str()),
        ("Image", IMAGE_V2),
        ("UpdateStrategy", GRAY_ONE),
        ("TrafficControlStrategy", traffic),
    ];
    // Until edasd has asked the cluster whether it serves Gateway API, it says to try again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let order = loop {
        let (status, body) = edasd
            .call_raw(
                "POST",
                "/pop/v5/k8s/acs/k8s_apps",
                "DeployK8sApplication",
                &params,
            )
            .await;
        if status == 200 {
            break body["ChangeOrderId"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    edasd.wait_status(&order, &[8], backend.patience).await;
    let selector = |s: Service| s.spec.unwrap().selector.unwrap();
    let stable = bounded("reading web-stable", api.get("web-stable"))
        .await
        .unwrap();
    assert_eq!(selector(stable)["edas.oam.revision"], "1");
    let gray = bounded("reading web-gray", api.get("web-gray"))
        .await
        .unwrap();
    assert_eq!(selector(gray)["edas.oam.revision"], "2");
    // In-cluster callers of the plain Service reach the stable revision only during the split.
    let web = bounded("reading web", api.get("web")).await.unwrap();
    assert_eq!(selector(web)["edas.oam.revision"], "1");
    let ar = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let routes: Api<DynamicObject> =
        Api::namespaced_with(backend.client.clone(), &backend.namespace, &ar);
    let route = bounded("reading the HTTPRoute", routes.get("web"))
        .await
        .unwrap();
    let spec = &route.data["spec"];
    assert_eq!(spec["parentRefs"][0]["namespace"], "infra");
    assert_eq!(spec["parentRefs"][0]["name"], "gw");
    let backends = &spec["rules"][0]["backendRefs"];
    assert_eq!(
        (&backends[0]["name"], &backends[0]["weight"]),
        (&serde_json::json!("web-stable"), &serde_json::json!(80))
    );
    assert_eq!(
        (&backends[1]["name"], &backends[1]["weight"]),
        (&serde_json::json!("web-gray"), &serde_json::json!(20))
    );

    // After the gray batch, every ready instance gets traffic again: the split is gone.
    edasd.continue_next(&order).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let route = bounded("reading the HTTPRoute", routes.get_opt("web"))
            .await
            .unwrap();
        let gray = bounded("reading web-gray", api.get_opt("web-gray"))
            .await
            .unwrap();
        if route.is_none() && gray.is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the gray split stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let web = bounded("reading web", api.get("web")).await.unwrap();
    assert!(
        !selector(web).contains_key("edas.oam.revision"),
        "after the split the plain Service selects every revision again"
    );
}

/// The revision's ConfigMap copy is in the cluster before its pods; deleting the application
/// leaves nothing of it in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_copies_are_applied_and_a_deleted_application_leaves_nothing() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
    use kube::api::{Api, ListParams};

    let backend = Backend::fake("cleanup", FAST).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let data = serde_json::json!({"greeting": "hello"}).to_string();
    edasd
        .call_form(
            "POST",
            "/pop/v5/k8s/acs/k8s_config_map",
            "CreateK8sConfigMap",
            &[
                ("ClusterId", CLUSTER),
                ("Namespace", &backend.namespace),
                ("Name", "conf"),
                ("Data", &data),
            ],
        )
        .await;
    let envs =
        r#"[{"name":"GREETING","valueFrom":{"configMapKeyRef":{"name":"conf","key":"greeting"}}}]"#;
    let services = r#"[{"name":"web","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080,"protocol":"TCP"}}]}]"#;
    let (app, order) = edasd
        .insert(
            &backend,
            "configured",
            2,
            &[("Envs", envs), ("ServiceConfigs", services)],
        )
        .await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let copy = format!("conf.{app}.r1");
    let cms: Api<ConfigMap> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let cm = bounded("reading the copy", cms.get(&copy)).await.unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    let deployments: Api<Deployment> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let d = bounded("reading the Deployment", deployments.get("configured-r1"))
        .await
        .unwrap();
    let env =
        serde_json::to_value(&d.spec.unwrap().template.spec.unwrap().containers[0].env).unwrap();
    assert!(env.to_string().contains(&copy), "{env}");

    let order = edasd.delete(&app).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pods: Api<Pod> = Api::namespaced(backend.client.clone(), &backend.namespace);
        let svcs: Api<Service> = Api::namespaced(backend.client.clone(), &backend.namespace);
        let left = (
            bounded("pods", pods.list(&lp)).await.unwrap().items.len(),
            bounded("Deployments", deployments.list(&lp))
                .await
                .unwrap()
                .items
                .len(),
            bounded("Services", svcs.list(&lp))
                .await
                .unwrap()
                .items
                .len(),
            bounded("ConfigMaps", cms.list(&lp))
                .await
                .unwrap()
                .items
                .len(),
        );
        if left == (0, 0, 0, 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left over (pods, Deployments, Services, ConfigMaps): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// === Issue 18: Kubernetes when things go wrong ===

/// A batch whose instances Kubernetes will not start fails at once, long before its
/// BatchTimeout, with the cluster's own reason in the task message: a pod the scheduler cannot
/// place (past the configured grace period), an image that cannot be pulled, a container that
/// cannot be configured.
async fn stuck_instances_fail_fast(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    edasd.kill();
    edasd.configure("unschedulable_grace_seconds = 2\n", "");
    edasd.spawn();
    let timeout = [("BatchTimeout", "900")];
    // On the fake API server the faults stand in for what a real cluster does by itself.
    let fault = |app: &str, fault: edas_fake_kube::PodFault| {
        if let Some(fake) = &backend.fake {
            fake.add_pod_fault(edas_fake_kube::PodFault {
                selector: format!("edas.oam.acname={app},edas.oam.revision=2"),
                ..fault
            })
            .unwrap();
        }
    };
    let missing_image = "registry.k8s.io/pause:0.0.0-edas-missing";
    fault("unsched", edas_fake_kube::PodFault::unschedulable("", None));
    fault("pull", edas_fake_kube::PodFault::image_pull_error(""));
    fault(
        "conf",
        edas_fake_kube::PodFault::config_error(
            "",
            "couldn't find key missing in ConfigMap (edas-fake-kube)",
        ),
    );
    let data = serde_json::json!({"present": "yes"}).to_string();
    edasd
        .call_form(
            "POST",
            "/pop/v5/k8s/acs/k8s_config_map",
            "CreateK8sConfigMap",
            &[
                ("ClusterId", CLUSTER),
                ("Namespace", &backend.namespace),
                ("Name", "settings"),
                ("Data", &data),
            ],
        )
        .await;
    let missing_key =
        r#"[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"settings","key":"missing"}}}]"#;
    /// Application, its deploy parameters, words the failure names.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: [Case<'_>; 3] = [
        (
            "unsched",
            vec![("CpuLimit", "1000"), ("CpuRequest", "1000")],
            &["Unschedulable", "Insufficient cpu"],
        ),
        ("pull", vec![("ImageUrl", missing_image)], &["pause:"]),
        (
            "conf",
            vec![("Envs", missing_key)],
            &["CreateContainerConfigError", "missing"],
        ),
    ];
    for (name, extra, expected) in cases {
        let app = running_app(&edasd, backend, name, 1).await;
        let started = std::time::Instant::now();
        let image = extra
            .iter()
            .find(|(k, _)| *k == "ImageUrl")
            .map_or(IMAGE_V2, |(_, v)| *v);
        let mut params: Vec<(&str, &str)> = extra
            .iter()
            .filter(|(k, _)| *k != "ImageUrl")
            .copied()
            .collect();
        params.extend_from_slice(&timeout);
        params.push((
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
        ));
        let order = edasd.deploy(&app, image, &params).await;
        let info = edasd.finished(&order, backend.patience).await;
        assert_eq!(info["Status"], 3, "{name}: failed: {info:#}");
        let codes = task_error_codes(&info);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == "InstanceFailed"),
            "{name}: {codes:?} {info:#}"
        );
        let text = info.to_string();
        for word in expected {
            assert!(
                text.contains(word),
                "{name}: the reason names {word:?}: {info:#}"
            );
        }
        if name == "pull" {
            assert!(
                text.contains("ErrImagePull") || text.contains("ImagePullBackOff"),
                "{info:#}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{name}: failed long before the 900 s BatchTimeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_kubernetes_will_not_start_fail_the_batch_with_the_clusters_reason() {
    let backend = Backend::fake("stuck", FAST).await;
    stuck_instances_fail_fast(&backend).await;
}

/// ConfigMaps and Secrets created through the API exist in the cluster under their own names
/// and follow Update and Delete; a revision's copies are `immutable` and owned by its
/// Deployment; deleting the application leaves nothing of it.
async fn user_config_and_copies(backend: &Backend) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::Api;

    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let ns = backend.namespace.as_str();
    let put = |action: &'static str, path: &'static str, name: &'static str, data: String| {
        let edasd = &edasd;
        async move {
            edasd
                .call_form(
                    if action.starts_with("Create") {
                        "POST"
                    } else {
                        "PUT"
                    },
                    path,
                    action,
                    &[
                        ("ClusterId", CLUSTER),
                        ("Namespace", ns),
                        ("Name", name),
                        ("Data", &data),
                    ],
                )
                .await;
        }
    };
    put(
        "CreateK8sConfigMap",
        "/pop/v5/k8s/acs/k8s_config_map",
        "settings",
        serde_json::json!({"mode": "a", "level": "1"}).to_string(),
    )
    .await;
    put(
        "CreateK8sSecret",
        "/pop/v5/k8s/acs/k8s_secret",
        "password",
        serde_json::json!({"pw": "s3cret"}).to_string(),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(backend.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(backend.client.clone(), ns);
    let cm = bounded("kubectl get cm settings", cms.get("settings"))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "a");
    let secret = bounded("kubectl get secret password", secrets.get("password"))
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["pw"].0, b"s3cret");
    put(
        "UpdateK8sConfigMap",
        "/pop/v5/k8s/acs/k8s_config_map",
        "settings",
        serde_json::json!({"mode": "b"}).to_string(),
    )
    .await;
    let cm = bounded("kubectl get cm settings", cms.get("settings"))
        .await
        .unwrap();
    assert_eq!(
        cm.data.unwrap(),
        BTreeMap::from([("mode".to_owned(), "b".to_owned())])
    );

    let envs = r#"[{"name":"MODE","valueFrom":{"configMapKeyRef":{"name":"settings","key":"mode"}}},{"name":"PW","valueFrom":{"secretKeyRef":{"name":"password","key":"pw"}}}]"#;
    let (app, order) = edasd.insert(backend, "copies", 1, &[("Envs", envs)]).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let deployments: Api<Deployment> = Api::namespaced(backend.client.clone(), ns);
    let uid = bounded("reading the Deployment", deployments.get("copies-r1"))
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let copy = bounded("reading the copy", cms.get(&format!("settings.{app}.r1")))
        .await
        .unwrap();
    assert_eq!(copy.immutable, Some(true));
    let owner =
        |refs: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.unwrap_or_default()
                .into_iter()
                .map(|o| (o.kind, o.uid))
                .collect::<Vec<_>>()
        };
    assert_eq!(
        owner(copy.metadata.owner_references),
        [("Deployment".to_owned(), uid.clone())]
    );
    let secret_copy = bounded(
        "reading the Secret copy",
        secrets.get(&format!("password.{app}.r1")),
    )
    .await
    .unwrap();
    assert_eq!(secret_copy.immutable, Some(true));
    assert_eq!(
        owner(secret_copy.metadata.owner_references),
        [("Deployment".to_owned(), uid)]
    );

    let order = edasd.delete(&app).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let copies = (
            bounded("the copy", cms.get_opt(&format!("settings.{app}.r1")))
                .await
                .unwrap(),
            bounded(
                "the Secret copy",
                secrets.get_opt(&format!("password.{app}.r1")),
            )
            .await
            .unwrap(),
        );
        if copies.0.is_none() && copies.1.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "copies outlived the application"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The user's own objects stay with the application gone, until deleted through the API.
    assert!(
        bounded("settings", cms.get_opt("settings"))
            .await
            .unwrap()
            .is_some()
    );
    for (action, path, name) in [
        (
            "DeleteK8sConfigMap",
            "/pop/v5/k8s/acs/k8s_config_map",
            "settings",
        ),
        ("DeleteK8sSecret", "/pop/v5/k8s/acs/k8s_secret", "password"),
    ] {
        edasd
            .call(
                "DELETE",
                path,
                action,
                &[("ClusterId", CLUSTER), ("Namespace", ns), ("Name", name)],
            )
            .await;
    }
    assert!(
        bounded("settings", cms.get_opt("settings"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bounded("password", secrets.get_opt("password"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_config_exists_in_the_cluster_and_copies_are_owned_and_immutable() {
    let backend = Backend::fake("userconf", FAST).await;
    user_config_and_copies(&backend).await;
}

/// A right edasd needs and the cluster does not grant is named in the cluster's status
/// (GetK8sCluster's Description).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_right_is_named_in_the_clusters_status() {
    let backend = Backend::fake("rights", FAST).await;
    backend
        .fake
        .as_ref()
        .unwrap()
        .deny(edas_fake_kube::DeniedRight::new("create", "", "secrets"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = edasd
            .call(
                "POST",
                "/pop/v5/k8s_clusters",
                "GetK8sCluster",
                &[("RegionTag", "cn-hangzhou")],
            )
            .await;
        let description = body["ClusterPage"]["ClusterList"]["Cluster"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ClusterId"] == CLUSTER)
            .map(|c| c["Description"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        if description.contains("lacks the rights: create secrets") {
            assert!(description.contains("deploy/rbac.yaml"), "{description}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Description: {description}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A release whose new pods become Ready while the API server is down (`outage`) or while it
/// drains its watches (a graceful restart: open watches say nothing more): edasd sees them
/// within seconds of the recovery, not after a long back-off or a dead watch's timeout.
async fn release_across(backend: &Backend, outage: bool) {
    let fake = backend.fake.as_ref().expect("the fake API server");
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, if outage { "outage" } else { "drain" }, 2).await;
    let order = edasd
        .deploy(
            &app,
            IMAGE_V2,
            &[
                ("BatchTimeout", "120"),
                (
                    "UpdateStrategy",
                    r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
                ),
            ],
        )
        .await;
    // As soon as the batch asked for its pods (they are Ready 3 s later) and its write was
    // answered (a write cut off in flight is retried: kube_failures covers it).
    let deadline = std::time::Instant::now() + backend.patience;
    while backend
        .deployments(&app)
        .await
        .get("2")
        .copied()
        .unwrap_or(0)
        < 2
        || !edasd
            .order(&order)
            .await
            .to_string()
            .contains("instance(s) of revision 2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if outage {
        fake.add_api_fault(edas_fake_kube::ApiFault::error(None, "*", 500))
            .unwrap();
        fake.drop_watches();
        tokio::time::sleep(Duration::from_secs(8)).await;
        fake.clear_faults();
        fake.add_pod_fault(edas_fake_kube::PodFault::never_ready_image(IMAGE_BROKEN))
            .unwrap();
    } else {
        fake.drain_watches();
    }
    let recovered = std::time::Instant::now();
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    // Bounded back-off (2 s) and watch timeout (5 s + 5 s idle margin) instead of kube's 30 s
    // back-off and 290 s watch.
    assert!(
        recovered.elapsed() < Duration::from_secs(20),
        "the release noticed the recovered cluster only after {:?}",
        recovered.elapsed()
    );
    backend
        .wait_pods(&app, "only revision 2", |p| *p == counts(&[("2", 2)]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_sees_pods_that_became_ready_during_an_api_server_outage() {
    let backend = Backend::fake("outage", Duration::from_secs(3)).await;
    release_across(&backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_not_stuck_on_watches_of_a_draining_api_server() {
    let backend = Backend::fake("drain", Duration::from_secs(3)).await;
    release_across(&backend, false).await;
}

/// `kubectl delete deploy` and `kubectl scale` of a running application are undone: its
/// Deployment comes back with the replicas edasd applied.
async fn drift_is_corrected(backend: &Backend) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, DeleteParams, Patch, PatchParams};

    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let app = running_app(&edasd, backend, "drift", 2).await;
    let api: Api<Deployment> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let uid = bounded("reading the Deployment", api.get("drift-r1"))
        .await
        .unwrap()
        .metadata
        .uid;
    bounded(
        "kubectl delete deploy",
        api.delete("drift-r1", &DeleteParams::background()),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let d = bounded("reading the Deployment", api.get_opt("drift-r1"))
            .await
            .unwrap();
        if d.as_ref()
            .is_some_and(|d| d.metadata.uid != uid && d.spec.as_ref().unwrap().replicas == Some(2))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restored: {d:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    backend
        .wait_pods(&app, "revision 1 runs again", |p| *p == counts(&[("1", 2)]))
        .await;
    bounded(
        "kubectl scale --replicas=5",
        api.patch(
            "drift-r1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        ),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let now = backend.deployments(&app).await;
        if now == replicas(&[("1", 2)]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not scaled back: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    backend
        .wait_pods(&app, "back to 2 instances", |p| *p == counts(&[("1", 2)]))
        .await;

    // A restarted edasd (which applied nothing since) corrects drift from the store, with the
    // very pod template its releases apply: the running pods are not replaced.
    edasd.kill();
    edasd.spawn();
    let before = backend.pods(&app).await["1"].2.clone();
    // Until the new process has listed the cluster, a hand-scale would go unnoticed.
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let (status, _) = edasd
            .call_raw(
                "GET",
                "/pop/v5/app/app_status",
                "QueryApplicationStatus",
                &[("AppId", &app)],
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "edasd never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    bounded(
        "kubectl scale --replicas=1",
        api.patch(
            "drift-r1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        ),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let now = backend.deployments(&app).await;
        if now == replicas(&[("1", 2)]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not scaled back after a restart: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = backend
        .wait_pods(&app, "2 instances again", |p| *p == counts(&[("1", 2)]))
        .await;
    let kept = backend.pods(&app).await["1"]
        .2
        .intersection(&before)
        .count();
    assert!(kept >= 1, "the template changed: {before:?} then {after:?}");
    bounded(
        "kubectl delete deploy",
        api.delete("drift-r1", &DeleteParams::background()),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + backend.patience;
    loop {
        let d = bounded("reading the Deployment", api.get_opt("drift-r1"))
            .await
            .unwrap();
        if d.as_ref()
            .is_some_and(|d| d.spec.as_ref().unwrap().replicas == Some(2))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not restored after a restart: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    backend
        .wait_pods(&app, "revision 1 runs again", |p| *p == counts(&[("1", 2)]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_hand_scaled_deployment_is_restored() {
    let backend = Backend::fake("drift", FAST).await;
    drift_is_corrected(&backend).await;
}

real_cluster!(
    real_cluster_stuck_instances_fail_fast,
    "stuck",
    stuck_instances_fail_fast
);
real_cluster!(
    real_cluster_user_config_and_copies,
    "userconf",
    user_config_and_copies
);
real_cluster!(real_cluster_drift_is_corrected, "drift", drift_is_corrected);

/// The API server dies in the middle of a batch (connections cut and refused, through a relay
/// in front of it) and comes back: edasd sees the batch's pods, which became Ready meanwhile,
/// within seconds of the recovery and carries on with the next step.
async fn release_across_a_dead_api_server(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("relayed.kubeconfig");
    let relay = relayed(backend, &kubeconfig).await;
    let edasd = Edasd::start(&dir.path().join("a"), &kubeconfig, None);
    let app = running_app(&edasd, backend, "apidown", 2).await;
    let order = edasd
        .deploy(
            &app,
            IMAGE_V2,
            &[
                ("BatchTimeout", "900"),
                (
                    "UpdateStrategy",
                    r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
                ),
            ],
        )
        .await;
    let deadline = std::time::Instant::now() + backend.patience;
    while backend
        .deployments(&app)
        .await
        .get("2")
        .copied()
        .unwrap_or(0)
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only once the step's write was answered (the batch waits for its instances): a write cut
    // off in flight fails the change order, which is not what this scenario is about.
    let deadline = std::time::Instant::now() + backend.patience;
    while !edasd
        .order(&order)
        .await
        .to_string()
        .contains("instance(s) of revision 2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited for its instances"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 30 s: kube's default watch back-off (0.8 s doubling up to 30 s) would next try about
    // 25 s after the recovery; edasd's is at most 2 s.
    relay.stop();
    tokio::time::sleep(Duration::from_secs(30)).await;
    relay.resume().await;
    // What the test (not through the relay) sees: the new pods Ready, then edasd's next step
    // (the old revision scaled down) within seconds.
    backend
        .wait_pods(&app, "the new revision Ready", |p| {
            p.get("2") == Some(&(2, 2))
        })
        .await;
    let seen = std::time::Instant::now();
    let deadline = seen + backend.patience;
    while backend
        .deployments(&app)
        .await
        .get("1")
        .copied()
        .unwrap_or(0)
        >= 2
    {
        if std::time::Instant::now() >= deadline {
            let info = edasd.order(&order).await;
            panic!("edasd never took the next step: {info:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.elapsed() < Duration::from_secs(10),
        "edasd took {:?} to notice the recovered cluster's Ready pods",
        seen.elapsed()
    );
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_carries_on_within_seconds_after_the_api_server_comes_back() {
    let backend = Backend::fake("apidown", Duration::from_secs(3)).await;
    release_across_a_dead_api_server(&backend).await;
}

real_cluster!(
    real_cluster_release_across_a_dead_api_server,
    "apidown",
    release_across_a_dead_api_server
);
