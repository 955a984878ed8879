//! Black-box tests of an application's instances and their output on a Kubernetes cluster (the
//! in-process fake API server): DescribeAppInstanceList from the pods, and `GET /edasd/v1/logs`
//! through the pod log API — the current run, follow (ending when the container restarts) and
//! previous (the run before the restart).

mod kube_support;

use std::time::Duration;

use edas_fake_kube::PodFault;
use kube_support::support::read_until;
use kube_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_follow_and_previous_through_the_pod_log_api() {
    let backend = Backend::fake("podlogs", Duration::from_millis(200)).await;
    let fake = backend.fake.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd.insert(&backend, "logs", 1, &[]).await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");

    let list = edasd.instance_list(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let pod = list[0]["InstanceName"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["Revision"], "1");
    assert_eq!(list[0]["Version"], IMAGE_V1);
    assert_eq!(list[0]["Ready"], true);
    assert_eq!(list[0]["Restarts"], 0);

    let text = edasd
        .log_text(&[("AppId", &app), ("InstanceName", &pod)])
        .await;
    assert!(text.contains("logs started (restart 0)"), "{text}");
    let response = edasd
        .logs(&[
            ("AppId", &app),
            ("InstanceName", &pod),
            ("Previous", "true"),
        ])
        .await;
    assert_eq!(response.status().as_u16(), 400);

    // Follow: what the container writes arrives while the answer streams.
    let mut follow = edasd
        .logs(&[("AppId", &app), ("InstanceName", &pod), ("Follow", "true")])
        .await;
    assert_eq!(follow.status().as_u16(), 200);
    read_until(&mut follow, "restart 0", Duration::from_secs(5)).await;
    fake.write_log(&backend.namespace, &pod, "logs", "hello-follow\n");
    read_until(&mut follow, "hello-follow", Duration::from_secs(5)).await;

    // The container crashes and restarts: the follow ends with its run, the run is `previous`.
    fake.add_pod_fault(PodFault::crash(
        &format!("{LABEL_APP_ID}={app}"),
        Duration::from_millis(100),
    ))
    .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = follow.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the follow did not end with the run");
    let inst = edasd.wait_restarted(&app, Duration::from_secs(10)).await;
    assert!(
        inst["LastExitReason"]
            .as_str()
            .unwrap()
            .starts_with("Error"),
        "{inst}"
    );
    let previous = edasd
        .log_text(&[
            ("AppId", &app),
            ("InstanceName", &pod),
            ("Previous", "true"),
        ])
        .await;
    assert!(previous.contains("hello-follow"), "{previous}");
    assert!(
        previous.contains("exited: edas-fake-kube crash fault"),
        "{previous}"
    );
    let current = edasd
        .log_text(&[("AppId", &app), ("InstanceName", &pod), ("TailLines", "1")])
        .await;
    assert!(current.contains("started (restart"), "{current}");
    assert!(!current.contains("hello-follow"), "{current}");
    backend.cleanup().await;
}

/// Abort on a cluster without a Gateway: the application's Service selects the stable
/// revision's pods only, at once, while the new revision's pod stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_release_narrows_the_service_to_the_stable_revision() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::Api;

    let backend = Backend::fake("abortsvc", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let services = r#"[{"name":"web","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080,"protocol":"TCP"}}]}]"#;
    let (app, order) = edasd
        .insert(&backend, "web", 2, &[("ServiceConfigs", services)])
        .await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let manual = r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", manual)])
        .await;
    edasd.wait_status(&order, &[8], backend.patience).await;
    let answer = edasd
        .call(
            "PUT",
            "/pop/v5/changeorder/change_order_abort",
            "AbortChangeOrder",
            &[("ChangeOrderId", &order)],
        )
        .await;
    assert!(
        answer["Data"]["Traffic"]
            .as_str()
            .is_some_and(|t| t.starts_with("all traffic goes to revision 1")),
        "{answer}"
    );
    let api: Api<Service> = Api::namespaced(backend.client.clone(), &backend.namespace);
    let web = bounded("reading the Service", api.get("web"))
        .await
        .unwrap();
    let selector = web.spec.unwrap().selector.unwrap();
    assert_eq!(
        selector.get(LABEL_REVISION).map(String::as_str),
        Some("1"),
        "{selector:?}"
    );
    let list = edasd.instance_list(&app).await;
    assert!(
        list.iter().any(|i| i["Revision"] == "2"),
        "the new revision's pod stays: {list:?}"
    );
    backend.cleanup().await;
}
