//! Issue 24, black-box: an autoscaled application on Kubernetes (the fake API server with its
//! HPA stand-in). Enabling a scaling rule applies a HorizontalPodAutoscaler targeting the
//! serving revision; the HPA scales it to 5; a gray + 2-batch release plans against those 5,
//! ends with 5 pods of the new revision, and leaves the HPA targeting the new Deployment;
//! disabling the rule removes the HPA.

mod kube_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;
use kube_support::*;

const RULE: &str = "/pop/v1/eam/scale/application_scaling_rule";
const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;
const METRIC: &str = r#"{"minReplicas": 2, "maxReplicas": 6, "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]}"#;

fn counts(revision: &str, n: u32) -> BTreeMap<String, (u32, u32)> {
    BTreeMap::from([(revision.to_owned(), (n, n))])
}

async fn hpa_target(hpas: &Api<HorizontalPodAutoscaler>, name: &str) -> Option<String> {
    let hpa = hpas.get_opt(name).await.unwrap()?;
    Some(hpa.spec?.scale_target_ref.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_application_keeps_its_hpa_count_through_a_gray_batch_release() {
    let backend = Backend::fake("hpa", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
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

    // The HPA decides 5; edasd follows (no drift restore to 3).
    let fake = backend.fake.as_ref().unwrap();
    assert_eq!(fake.autoscale(&backend.namespace, "scaled", 5), Ok(5));
    backend
        .wait_pods(&app, "the HPA's 5", |p| *p == counts("1", 5))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backend.deployments(&app).await["1"], 5);

    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    backend
        .wait_pods(&app, "5 pods of revision 2", |p| *p == counts("2", 5))
        .await;
    assert_eq!(
        backend.deployments(&app).await,
        BTreeMap::from([("2".to_owned(), 5)])
    );
    assert_eq!(
        hpa_target(&hpas, "scaled").await.as_deref(),
        Some("scaled-r2")
    );

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
        (8, "scaled-r2")
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
