//! Black-box tests of Kubernetes when things go wrong (issue 18: 1, 2, 7): a crash-looping or
//! never-created application is deleted without scaling up and leaves nothing labelled with its
//! id; one unreachable cluster neither slows down nor breaks the API for the others; writes to it
//! are refused at once naming it and its address; its applications can still be deleted, and
//! the cluster is swept when it answers again; ImportK8sCluster refuses it; GetK8sCluster and
//! ListK8sNamespaces report what the cluster really has.
//!
//! On the in-process fake API server; an API server "dies" by a relay in front of it that
//! refuses connections (and cuts open ones) until it comes back on the same port, with the
//! cluster's state intact. The `real_cluster_*` scenarios run the ones that need no fault
//! injection on the cluster `EDAS_TEST_KUBECONFIG` names (`scripts/tiers.d/20-kubernetes.sh`).

mod kube_support;

use std::time::{Duration, Instant};

use edas_fake_kube::{ApiFault, PodFault};
use kube_support::*;
use serde_json::Value;

const DELETE: (&str, &str, &str) = ("DELETE", "/pop/v5/k8s/acs/k8s_apps", "DeleteK8sApplication");

/// DeleteK8sApplication; the ChangeOrderId.
async fn delete(edasd: &Edasd, app: &str, force: bool) -> String {
    let mut params = vec![("AppId", app)];
    if force {
        params.push(("Force", "true"));
    }
    let body = edasd.call(DELETE.0, DELETE.1, DELETE.2, &params).await;
    body["ChangeOrderId"].as_str().unwrap().to_owned()
}

/// ListApplication's items, by AppId.
async fn applications(edasd: &Edasd) -> std::collections::BTreeMap<String, Value> {
    let body = edasd
        .call("POST", "/pop/v5/app/app_list", "ListApplication", &[])
        .await;
    body["ApplicationList"]["Application"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["AppId"].as_str().unwrap().to_owned(), a.clone()))
        .collect()
}

/// The cluster's entry in GetK8sCluster.
async fn cluster(edasd: &Edasd, id: &str) -> Value {
    let body = edasd
        .call(
            "POST",
            "/pop/v5/k8s_clusters",
            "GetK8sCluster",
            &[("RegionTag", "cn-hangzhou")],
        )
        .await;
    body["ClusterPage"]["ClusterList"]["Cluster"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ClusterId"] == id)
        .unwrap_or_else(|| panic!("no cluster {id}: {body:#}"))
        .clone()
}

/// Waits until GetK8sCluster's entry of `id` satisfies `check`.
async fn wait_cluster(edasd: &Edasd, id: &str, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = cluster(edasd, id).await;
        if check(&c) {
            return;
        }
        assert!(Instant::now() < deadline, "cluster {id}: {what}: {c:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A crash-looping application (its release failed with CrashLoopBackOff) is deleted within
/// 10 s, without ever scaling up, and nothing labelled with its id is left.
async fn crash_looping_application_is_deleted(backend: &Backend, edasd: &Edasd) {
    let (app, order) = edasd.insert(backend, "crashy", 3, &[]).await;
    // Whether the release saw the instances ready before their first crash or not, they
    // crash-loop from then on.
    let info = edasd.finished(&order, backend.patience).await;
    assert!(matches!(info["Status"].as_i64(), Some(2 | 3)), "{info:#}");
    wait_crash_looping(backend, &app).await;
    let before = backend.deployments(&app).await;
    let started = Instant::now();
    let order = delete(edasd, &app, false).await;
    let info = edasd.finished(&order, Duration::from_secs(10)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deleting took {:?}",
        started.elapsed()
    );
    // Never scaled up: the plan only scales to 0.
    let text = info.to_string();
    assert!(!text.contains("to 3 instance"), "{info:#}");
    for (_, replicas) in before {
        assert!(replicas <= 3);
    }
    backend.wait_swept(&app, Duration::from_secs(10)).await;
    let (status, body) = edasd
        .call_raw(
            "GET",
            "/pop/v5/app/app_status",
            "QueryApplicationStatus",
            &[("AppId", &app)],
        )
        .await;
    assert_eq!(status, 404, "{body:#}");
}

/// Waits until a pod of the application is in CrashLoopBackOff.
async fn wait_crash_looping(backend: &Backend, app: &str) {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(backend.client.clone());
    let lp = kube::api::ListParams::default().labels(&format!("{LABEL_APP_ID}={app}"));
    let deadline = Instant::now() + backend.patience;
    loop {
        let list = bounded("listing pods", pods.list(&lp)).await.unwrap();
        let looping = list.items.iter().any(|p| {
            serde_json::to_string(&p.status)
                .unwrap_or_default()
                .contains("CrashLoopBackOff")
        });
        if looping {
            return;
        }
        assert!(Instant::now() < deadline, "no pod of {app} crash-loops");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_application_is_deleted_within_10_s_and_leaves_nothing() {
    let backend = Backend::fake("crashdel", Duration::from_millis(100)).await;
    let fake = backend.fake.as_ref().unwrap();
    fake.add_pod_fault(PodFault::crash(
        "edas.oam.acname=crashy",
        Duration::from_millis(50),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    edasd.configure("crash_loop_restarts = 1", "");
    edasd.kill();
    edasd.spawn();
    crash_looping_application_is_deleted(&backend, &edasd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_deleting_a_never_ready_release_returns_at_once_and_leaves_nothing() {
    let backend = Backend::fake("forcedel", Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd
        .insert_app(&[
            ("AppName", "stuck"),
            ("ClusterId", CLUSTER),
            ("Namespace", &backend.namespace),
            ("ImageUrl", IMAGE_BROKEN),
            ("Readiness", NEVER_READY_PROBE),
            ("Replicas", "2"),
        ])
        .await;
    backend
        .wait_pods(&app, "the pods exist", |p| {
            p.get("1").is_some_and(|c| c.1 == 2)
        })
        .await;
    // The release still runs (it waits for readiness): Force ends it and deletes at once.
    let started = Instant::now();
    let del = delete(&edasd, &app, true).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(edasd.order(&del).await["Status"], 2);
    assert_eq!(edasd.order(&order).await["Status"], 6);
    assert!(!applications(&edasd).await.contains_key(&app));
    backend.wait_swept(&app, Duration::from_secs(10)).await;
}

/// An application whose Deployment was never created (its release failed applying it) is
/// deleted without creating it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_application_that_never_ran_creates_nothing() {
    let backend = Backend::fake("neverran", Duration::from_millis(100)).await;
    let fake = backend.fake.as_ref().unwrap();
    fake.add_api_fault(ApiFault::error(
        Some("PATCH"),
        "/apis/apps/v1/namespaces/*/deployments/*",
        422,
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd.insert(&backend, "never", 2, &[]).await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(
        info["Status"], 10,
        "applying the Deployment failed: {info:#}"
    );
    fake.clear_faults();
    let log = backend.record_pods();
    let del = delete(&edasd, &app, false).await;
    assert_eq!(edasd.finished(&del, backend.patience).await["Status"], 2);
    backend.wait_swept(&app, Duration::from_secs(10)).await;
    assert!(
        log.created().is_empty(),
        "pods created: {:?}",
        log.created()
    );
    assert!(backend.deployments(&app).await.is_empty());
}

/// A write the API server failed (500 twice: kube's client itself retries only 429, 503 and
/// 504) is tried again by the engine with back-off, and the release finishes; a refusal (422,
/// above) still fails it with the cluster's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_api_server_did_not_answer_is_retried() {
    let backend = Backend::fake("retried", Duration::from_millis(100)).await;
    let fake = backend.fake.as_ref().unwrap();
    fake.add_api_fault(
        ApiFault::error(
            Some("PATCH"),
            "/apis/apps/v1/namespaces/*/deployments/*",
            500,
        )
        .times(2),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd.insert(&backend, "retried", 2, &[]).await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "the release carried on: {info:#}");
    backend
        .wait_pods(&app, "two ready pods of revision 1", |p| {
            p.len() == 1 && p.get("1") == Some(&(2, 2))
        })
        .await;
}

/// Two clusters, one of which dies: the API keeps answering within 1 s for everyone, reads of
/// the dead cluster's application answer from the last known state marked unknown, writes to
/// it are refused at once naming the cluster and its address, ImportK8sCluster refuses it,
/// its application can still be deleted (at once), and its objects are swept when it answers
/// again. A cluster that never answered is refused by ImportK8sCluster too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_cluster_is_isolated_and_swept_when_it_comes_back() {
    let backend = Backend::fake("deadcluster", Duration::from_millis(100)).await;
    dead_cluster(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-cluster tier: needs EDAS_TEST_KUBECONFIG (scripts/tiers.d/20-kubernetes.sh)"]
async fn real_cluster_a_dead_cluster_is_isolated_and_swept_when_it_comes_back() {
    let Some(backend) = Backend::real("deadcluster").await else {
        return;
    };
    dead_cluster(&backend).await;
    backend.cleanup().await;
}

async fn dead_cluster(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let far_kubeconfig = dir.path().join("far.kubeconfig");
    let relay = relayed(backend, &far_kubeconfig).await;
    // A cluster whose API server was never there: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gone_kubeconfig = dir.path().join("gone.kubeconfig");
    std::fs::write(
        &gone_kubeconfig,
        edas_fake_kube::kubeconfig_yaml(&gone_url, "default"),
    )
    .unwrap();
    let more = format!(
        "[[clusters]]\nid = \"far\"\nkubeconfig = \"{}\"\n\n[[clusters]]\nid = \"gone\"\nkubeconfig = \"{}\"\n",
        far_kubeconfig.display(),
        gone_kubeconfig.display()
    );
    let edasd = Edasd::start_with(&dir.path().join("a"), &backend.kubeconfig, None, &more);

    let (near, order) = edasd.insert(backend, "near", 1, &[]).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let replicas = "2".to_owned();
    let (far, order) = edasd
        .insert_app(&[
            ("AppName", "far"),
            ("ClusterId", "far"),
            ("Namespace", &backend.namespace),
            ("ImageUrl", IMAGE_V1),
            ("Replicas", &replicas),
        ])
        .await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    backend
        .wait_pods(&far, "far runs", |p| p.get("1") == Some(&(2, 2)))
        .await;

    // ImportK8sCluster of a cluster that never answered: refused, naming its address.
    wait_cluster(&edasd, "gone", "import failed", |c| {
        c["ClusterImportStatus"] == 2
    })
    .await;
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/import_k8s_cluster",
            "ImportK8sCluster",
            &[("ClusterId", "gone")],
        )
        .await;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["Code"], "ClusterUnavailable", "{body:#}");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains("gone") && message.contains(&gone_url),
        "{message}"
    );
    // The live cluster imports.
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/import_k8s_cluster",
            "ImportK8sCluster",
            &[("ClusterId", CLUSTER)],
        )
        .await;
    assert_eq!(status, 200, "{body:#}");

    // The far cluster's API server dies.
    relay.stop();
    wait_cluster(&edasd, "far", "offline", |c| c["ClusterStatus"] == 3).await;

    // Reads answer within 1 s for everyone; the far application's state is unknown.
    let started = Instant::now();
    let apps = applications(&edasd).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "ListApplication took {:?}",
        started.elapsed()
    );
    assert_eq!(apps[&far]["State"], "UNKNOWN", "{:#}", apps[&far]);
    assert_eq!(apps[&near]["State"], "RUNNING", "{:#}", apps[&near]);
    assert_eq!(apps[&near]["RunningInstanceCount"], 1);
    let started = Instant::now();
    let (status, body) = edasd
        .call_raw(
            "GET",
            "/pop/v5/app/app_status",
            "QueryApplicationStatus",
            &[("AppId", &far)],
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert!(started.elapsed() < Duration::from_secs(1));
    for ecc in body["AppInfo"]["EccList"]["Ecc"].as_array().unwrap() {
        assert_eq!(ecc["TaskState"], 0, "{ecc:#}");
    }

    // Writes to it are refused at once, naming the cluster and its address.
    let started = Instant::now();
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/stop_k8s_app",
            "StopK8sApplication",
            &[("AppId", &far)],
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["Code"], "ClusterUnavailable", "{body:#}");
    let message = body["Message"].as_str().unwrap();
    let relay_address = format!("127.0.0.1:{}", relay.port);
    assert!(
        message.contains("`far`") && message.contains(&relay_address),
        "{message}"
    );
    // ImportK8sCluster refuses it too, and GetK8sCluster names its address.
    let (status, _) = edasd
        .call_raw(
            "POST",
            "/pop/v5/import_k8s_cluster",
            "ImportK8sCluster",
            &[("ClusterId", "far")],
        )
        .await;
    assert_eq!(status, 503);
    let far_cluster = cluster(&edasd, "far").await;
    assert!(
        far_cluster["Description"]
            .as_str()
            .unwrap()
            .contains(&relay_address),
        "{far_cluster:#}"
    );

    // The other cluster is not disturbed.
    let order = edasd
        .call(
            "PUT",
            "/pop/v5/k8s/acs/k8s_apps",
            "ScaleK8sApplication",
            &[("AppId", &near), ("Replicas", "2")],
        )
        .await["ChangeOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);

    // Delete of the far application returns at once; nothing is swept yet.
    let started = Instant::now();
    let del = delete(&edasd, &far, false).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(edasd.order(&del).await["Status"], 2);
    assert!(!applications(&edasd).await.contains_key(&far));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !backend.leftovers(&far).await.is_empty(),
        "nothing can be swept while the cluster is away"
    );

    // The cluster comes back: the sweep runs then.
    relay.resume().await;
    backend.wait_swept(&far, Duration::from_secs(30)).await;
    wait_cluster(&edasd, "far", "back", |c| c["ClusterStatus"] == 1).await;
    // The near application kept running all along.
    assert_eq!(applications(&edasd).await[&near]["State"], "RUNNING");
}

/// GetK8sCluster reports the cluster's real address and ListK8sNamespaces the namespaces its API
/// lists, including one edasd never created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_address_come_from_the_cluster() {
    let backend = Backend::fake("inventory", Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let own = "made-by-kubectl";
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(backend.client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": own}})).unwrap();
    bounded(
        "creating a namespace",
        api.create(&kube::api::PostParams::default(), &ns),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = edasd
            .call(
                "GET",
                "/pop/v5/k8s/acs/k8s_namespace",
                "ListK8sNamespaces",
                &[("ClusterId", CLUSTER)],
            )
            .await;
        let names: Vec<&str> = body["Data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["Namespace"].as_str())
            .collect();
        if names.contains(&own) && names.contains(&backend.namespace.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "namespaces: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = cluster(&edasd, CLUSTER).await;
    let address = backend.fake.as_ref().unwrap().base_url();
    assert!(
        c["Description"].as_str().unwrap().contains(&address),
        "{c:#}"
    );
    assert_eq!(c["ClusterStatus"], 1, "{c:#}");
}

/// GetK8sCluster and ListCluster report the nodes, CPU and memory of the cluster's Nodes, and
/// follow them as Nodes come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_comes_from_the_cluster_nodes() {
    let backend = Backend::fake("capacity", Duration::from_millis(100)).await;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(backend.client.clone());
    for (name, cpu, memory) in [("n1", "4", "8Gi"), ("n2", "3500m", "4096Mi")] {
        let node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "capacity": {"cpu": "64", "memory": "1Ti"}}
        }))
        .unwrap();
        bounded(
            "creating a Node",
            nodes.create(&kube::api::PostParams::default(), &node),
        )
        .await
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    // 4 + 3.5 cores (rounded down), 8192 + 4096 MiB.
    wait_cluster(&edasd, CLUSTER, "two nodes", |c| {
        c["NodeNum"] == 2 && c["Cpu"] == 7 && c["Mem"] == 12288
    })
    .await;
    let body = edasd
        .call("POST", "/pop/v5/resource/cluster_list", "ListCluster", &[])
        .await;
    let listed = body["ClusterList"]["Cluster"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ClusterId"] == CLUSTER)
        .unwrap()
        .clone();
    assert_eq!(
        (&listed["NodeNum"], &listed["Cpu"], &listed["Mem"]),
        (&Value::from(2), &Value::from(7), &Value::from(12288)),
        "{listed:#}"
    );
    bounded(
        "deleting a Node",
        nodes.delete("n2", &kube::api::DeleteParams::default()),
    )
    .await
    .unwrap();
    wait_cluster(&edasd, CLUSTER, "one node", |c| {
        c["NodeNum"] == 1 && c["Cpu"] == 4 && c["Mem"] == 8192
    })
    .await;
}

/// The real-cluster tier: a crash-looping application (a container that exits at once) is
/// deleted within 10 s and leaves nothing labelled with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-cluster tier: needs EDAS_TEST_KUBECONFIG (scripts/tiers.d/20-kubernetes.sh)"]
async fn real_cluster_a_crash_looping_application_is_deleted_within_10_s() {
    let Some(backend) = Backend::real("crashdel").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    edasd.configure("crash_loop_restarts = 1", "");
    edasd.kill();
    edasd.spawn();
    let (app, order) = edasd
        .insert_app(&[
            ("AppName", "crashy"),
            ("ClusterId", CLUSTER),
            ("Namespace", &backend.namespace),
            ("ImageUrl", "registry.k8s.io/busybox:1.36"),
            ("Command", "/bin/false"),
            ("Replicas", "2"),
        ])
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert!(matches!(info["Status"].as_i64(), Some(3 | 10)), "{info:#}");
    let started = Instant::now();
    let del = delete(&edasd, &app, false).await;
    assert_eq!(
        edasd.finished(&del, Duration::from_secs(10)).await["Status"],
        2
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    backend.wait_swept(&app, backend.patience).await;
    backend.cleanup().await;
}

/// Not a test: the entry point of the test application when edasd's local runtime runs this
/// binary as an instance (see `local_runtime.rs`).
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// The same on the built-in cluster `local`: an application whose instances exit as soon as
/// they start (the local runtime restarts them until it gives up) is deleted within 10 s, and
/// no instance of it is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_local_application_is_deleted_within_10_s() {
    let cluster = support::Cluster::launch(
        format!("edasd-kube-failures-local-{}", std::process::id()),
        |_, _| support::QUICK_RESTARTS.to_owned(),
        true,
        Duration::from_millis(100),
    );
    let (app, order) = cluster
        .insert("crashy-local", 2, &[], &[("EXIT_AFTER_SECONDS", "0")])
        .await;
    // Give the instances time to crash a few times (the release may fail on it or not yet).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !cluster.instances(&app).is_empty(),
        "instances were started"
    );
    let started = Instant::now();
    let body = cluster
        .call(DELETE.0, DELETE.1, DELETE.2, &[("AppId", &app)])
        .await;
    let del = body["ChangeOrderId"].as_str().unwrap().to_owned();
    let info = cluster.finished(&del, Duration::from_secs(10)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deleting took {:?}",
        started.elapsed()
    );
    let release = cluster.order(&order).await;
    assert_ne!(release["Status"], 1, "the release is not left running");
    // No process of it is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<_> = cluster
            .instances(&app)
            .into_iter()
            .filter(|i| i.pid.is_some_and(support::alive))
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "instances left: {alive:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With a single edasd, a failed release superseded by a newer one (its lease ends because it
/// finished, not because another process took it) logs no "Lost the lease … another process
/// drives it now".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_edasd_never_says_another_process_took_a_lease() {
    let cluster = support::Cluster::launch(
        format!("edasd-kube-failures-lease-{}", std::process::id()),
        |_, _| format!("{}\n[engine]\nlease_seconds = 2\n", support::QUICK_RESTARTS),
        true,
        Duration::from_millis(100),
    );
    let (app, order) = cluster.insert("lease-app", 1, &[], &[]).await;
    assert_eq!(
        cluster.finished(&order, Duration::from_secs(30)).await["Status"],
        2
    );
    let failing = cluster
        .deploy(
            &app,
            "v2",
            &[
                ("BatchTimeout", "1"),
                (
                    "Readiness",
                    r#"{"httpGet":{"path":"/ready","port":8080},"periodSeconds":1,"timeoutSeconds":1,"failureThreshold":1}"#,
                ),
            ],
            &[("NEVER_READY", "1")],
        )
        .await;
    let info = cluster.finished(&failing, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 3, "{info:#}");
    // A newer change supersedes the failed order while its driver still holds it.
    let next = cluster.deploy(&app, "v3", &[], &[]).await;
    assert_eq!(
        cluster.finished(&next, Duration::from_secs(30)).await["Status"],
        2
    );
    // Several lease renewals later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = cluster.new_log_lines();
    assert!(
        lines.iter().any(|l| l.contains("answered")),
        "the log is captured"
    );
    let lost: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Lost the lease"))
        .collect();
    assert!(lost.is_empty(), "{lost:#?}");
}
