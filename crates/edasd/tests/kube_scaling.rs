//! Issue 24, black-box: an autoscaled application on Kubernetes (the fake API server with its
//! HPA stand-in). Enabling a scaling rule applies a HorizontalPodAutoscaler targeting the
//! serving revision; the HPA scales it to 5, which edasd records as a Scale change order
//! created by `autoscaler`; a gray + 2-batch release plans against those 5 while the HPA is
//! held (both directions `Disabled`: a decision of the HPA meanwhile moves nothing), ends with
//! 5 pods of the new revision, and leaves the HPA targeting the new Deployment, enabled again;
//! an HPA lost while edasd is down is applied again when it starts; a rollback to revision 1
//! keeps the HPA's count; disabling the rule removes the HPA.

mod kube_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;
use kube_support::*;

const RULE: &str = "/pop/v1/eam/scale/application_scaling_rule";
const GRAY_MANUAL: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
const METRIC: &str = r#"{"minReplicas": 2, "maxReplicas": 6, "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]}"#;

fn counts(revision: &str, n: u32) -> BTreeMap<String, (u32, u32)> {
    BTreeMap::from([(revision.to_owned(), (n, n))])
}

/// The change orders of `app` created by the autoscaler, oldest first: (id, description).
async fn autoscaler_orders(edasd: &Edasd, app: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = edasd
        .api
        .recent_change_orders(app)
        .await
        .iter()
        .filter(|o| o["CreateUserId"] == "autoscaler")
        .map(|o| {
            (
                o["ChangeOrderId"].as_str().unwrap().to_owned(),
                o["ChangeOrderDescription"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// The HPA's `behavior` select policies (up, down).
async fn hpa_policies(hpas: &Api<HorizontalPodAutoscaler>, name: &str) -> (String, String) {
    let behavior = hpas.get(name).await.unwrap().spec.unwrap().behavior;
    let policy = |r: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
        r.and_then(|r| r.select_policy.clone()).unwrap_or_default()
    };
    (
        policy(behavior.as_ref().and_then(|b| b.scale_up.as_ref())),
        policy(behavior.as_ref().and_then(|b| b.scale_down.as_ref())),
    )
}

async fn hpa_target(hpas: &Api<HorizontalPodAutoscaler>, name: &str) -> Option<String> {
    let hpa = hpas.get_opt(name).await.unwrap()?;
    Some(hpa.spec?.scale_target_ref.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_application_keeps_its_hpa_count_through_a_gray_batch_release() {
    let backend = Backend::fake("hpa", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    let (app, order) = edasd.insert(&backend, "scaled", 3, &[]).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    backend
        .wait_pods(&app, "revision 1 runs", |p| *p == counts("1", 3))
        .await;

    let created = edasd
        .api
        .call(
            "POST",
            RULE,
            "CreateApplicationScalingRule",
            &[
                ("AppId", &app),
                ("ScalingRuleName", "cpu"),
                ("ScalingRuleType", "metric"),
                ("ScalingRuleEnable", "true"),
                ("ScalingRuleMetric", METRIC),
            ],
        )
        .await;
    assert_eq!(created["AppScalingRule"]["ScaleRuleEnabled"], true);
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(backend.client.clone(), &backend.namespace);
    assert_eq!(
        hpa_target(&hpas, "scaled").await.as_deref(),
        Some("scaled-r1")
    );

    // The HPA decides 5; edasd follows (no drift restore to 3) and records it.
    let fake = backend.fake.as_ref().unwrap();
    assert_eq!(fake.autoscale(&backend.namespace, "scaled", 5), Ok(5));
    backend
        .wait_pods(&app, "the HPA's 5", |p| *p == counts("1", 5))
        .await;
    let deadline = std::time::Instant::now() + backend.patience;
    let recorded = loop {
        if let Some(first) = autoscaler_orders(&edasd, &app).await.into_iter().next() {
            break first;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no autoscaler change order"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        recorded.1,
        "autoscaler: 3 → 5 (HorizontalPodAutoscaler `scaled` scaled Deployment `scaled-r1`)"
    );
    let info = edasd.finished(&recorded.0, backend.patience).await;
    assert_eq!(
        (&info["Status"], &info["CoTypeCode"]),
        (&serde_json::json!(2), &serde_json::json!("CoScale")),
        "{info:#}"
    );
    assert_eq!(backend.deployments(&app).await["1"], 5);

    // A gray + 2-batch release (revision 3: the recorded scale was revision 2), confirmed
    // batch by batch: meanwhile the HPA is held on the stable Deployment and a decision of
    // it moves nothing.
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_MANUAL)])
        .await;
    edasd.api.wait_status(&order, &[8], backend.patience).await;
    assert_eq!(
        hpa_policies(&hpas, "scaled").await,
        ("Disabled".to_owned(), "Disabled".to_owned())
    );
    assert_eq!(
        hpa_target(&hpas, "scaled").await.as_deref(),
        Some("scaled-r1")
    );
    let before = backend.deployments(&app).await;
    assert_eq!(
        before,
        BTreeMap::from([("1".to_owned(), 4), ("3".to_owned(), 1)])
    );
    fake.autoscale(&backend.namespace, "scaled", 9).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backend.deployments(&app).await, before);
    loop {
        let info = edasd.order(&order).await;
        match info["Status"].as_i64() {
            Some(8) => edasd.continue_next(&order).await,
            Some(2) => break,
            Some(0 | 1 | 9) => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => panic!("{info:#}"),
        }
    }
    backend
        .wait_pods(&app, "5 pods of revision 3", |p| *p == counts("3", 5))
        .await;
    assert_eq!(
        backend.deployments(&app).await,
        BTreeMap::from([("3".to_owned(), 5)])
    );
    // Retargeted and enabled again (the rule has no behaviour of its own).
    let deadline = std::time::Instant::now() + backend.patience;
    while hpa_policies(&hpas, "scaled").await != (String::new(), String::new()) {
        assert!(std::time::Instant::now() < deadline, "the HPA stays held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hpa_target(&hpas, "scaled").await.as_deref(),
        Some("scaled-r3")
    );
    // The held HPA's decision was not recorded: one autoscaler order so far.
    assert_eq!(autoscaler_orders(&edasd, &app).await.len(), 1);

    // The HPA is lost while edasd is down: applied again when it starts.
    edasd.kill();
    hpas.delete("scaled", &Default::default()).await.unwrap();
    edasd.spawn();
    let deadline = std::time::Instant::now() + backend.patience;
    while hpa_target(&hpas, "scaled").await.as_deref() != Some("scaled-r3") {
        assert!(
            std::time::Instant::now() < deadline,
            "the HPA did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A rollback to revision 1 keeps the HPA's 5 (revision 1 ran 3).
    let body = edasd
        .api
        .call(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[("AppId", &app), ("RollbackToRevision", "1")],
        )
        .await;
    let rollback = body["ChangeOrderId"].as_str().unwrap().to_owned();
    let info = edasd.finished(&rollback, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    let after = backend.deployments(&app).await;
    assert_eq!(
        after.values().copied().collect::<Vec<_>>(),
        [5],
        "{after:?}"
    );
    let serving = format!("scaled-r{}", after.keys().next().unwrap());

    // One rule scales an application: a second enabled one is refused, nothing stored.
    let (status, body) = edasd
        .api
        .call_raw(
            "POST",
            RULE,
            "CreateApplicationScalingRule",
            &[
                ("AppId", &app),
                ("ScalingRuleName", "mem"),
                ("ScalingRuleType", "metric"),
                ("ScalingRuleEnable", "true"),
                ("ScalingRuleMetric", METRIC),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert!(body.to_string().contains("cpu"), "{body:#}");
    // Changing the enabled rule changes the HPA.
    edasd
        .api
        .call(
            "PUT",
            RULE,
            "UpdateApplicationScalingRule",
            &[
                ("AppId", &app),
                ("ScalingRuleName", "cpu"),
                (
                    "ScalingRuleMetric",
                    &METRIC.replace("\"maxReplicas\": 6", "\"maxReplicas\": 8"),
                ),
            ],
        )
        .await;
    let hpa = hpas.get("scaled").await.unwrap().spec.unwrap();
    assert_eq!(
        (hpa.max_replicas, hpa.scale_target_ref.name.as_str()),
        (8, serving.as_str())
    );

    // Disabled: the HPA is gone.
    edasd
        .api
        .call(
            "PUT",
            "/pop/v1/eam/scale/disable_application_scaling_rule",
            "DisableApplicationScalingRule",
            &[("AppId", &app), ("ScalingRuleName", "cpu")],
        )
        .await;
    assert_eq!(hpa_target(&hpas, "scaled").await, None);
    backend.cleanup().await;
}

/// Issue 24: a rule is stored before its HPA is applied, and the HPA follows the stored rule.
/// While the cluster's API server is down, changing an enabled rule is refused once edasd
/// knows; disabling is stored, and the HPA it could not delete is deleted when edasd starts
/// again with the cluster back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_follows_the_stored_rule_after_an_outage() {
    let backend = Backend::fake("hpadown", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let far_kubeconfig = dir.path().join("far.kubeconfig");
    let relay = relayed(&backend, &far_kubeconfig).await;
    let more = format!(
        "[[clusters]]\nid = \"far\"\nkubeconfig = \"{}\"\n",
        far_kubeconfig.display()
    );
    let mut edasd = Edasd::start_with(&dir.path().join("a"), &backend.kubeconfig, None, &more);
    let (app, order) = edasd
        .insert_app(&[
            ("AppName", "far"),
            ("ClusterId", "far"),
            ("Namespace", &backend.namespace),
            ("ImageUrl", IMAGE_V1),
            ("Replicas", "2"),
        ])
        .await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    edasd
        .api
        .call(
            "POST",
            RULE,
            "CreateApplicationScalingRule",
            &[
                ("AppId", &app),
                ("ScalingRuleName", "cpu"),
                ("ScalingRuleType", "metric"),
                ("ScalingRuleEnable", "true"),
                ("ScalingRuleMetric", METRIC),
            ],
        )
        .await;
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(backend.client.clone(), &backend.namespace);
    assert_eq!(hpa_target(&hpas, "far").await.as_deref(), Some("far-r1"));

    // The API server dies: a change of the enabled rule is refused once edasd knows.
    relay.stop();
    let bigger = METRIC.replace("\"maxReplicas\": 6", "\"maxReplicas\": 9");
    let update = [
        ("AppId", app.as_str()),
        ("ScalingRuleName", "cpu"),
        ("ScalingRuleMetric", bigger.as_str()),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = edasd
            .api
            .call_raw("PUT", RULE, "UpdateApplicationScalingRule", &update)
            .await;
        if status != 200 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body["Message"].as_str().unwrap().contains("far"),
        "{body:#}"
    );
    // Before edasd knew, an update may have gone through: whatever is stored, the HPA of the
    // stored rule is what counts. Disabling is stored even now.
    edasd
        .api
        .call(
            "PUT",
            "/pop/v1/eam/scale/disable_application_scaling_rule",
            "DisableApplicationScalingRule",
            &[("AppId", &app), ("ScalingRuleName", "cpu")],
        )
        .await;
    let listed = edasd
        .api
        .call(
            "GET",
            "/pop/v1/eam/scale/application_scaling_rules",
            "DescribeApplicationScalingRules",
            &[("AppId", &app)],
        )
        .await;
    assert_eq!(
        listed["AppScalingRules"]["Result"][0]["ScaleRuleEnabled"],
        false
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        hpa_target(&hpas, "far").await.is_some(),
        "the cluster is down"
    );

    // It answers again, and edasd starts again: the HPA of the disabled rule goes.
    relay.resume().await;
    edasd.kill();
    edasd.spawn();
    let deadline = std::time::Instant::now() + backend.patience;
    while hpa_target(&hpas, "far").await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the HPA outlived its rule"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    backend.cleanup().await;
}
