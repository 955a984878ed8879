//! Black-box test of edasd's extension `Traffic` in GetK8sServices on the built-in cluster
//! `local`: the live split of a gray batch with a 20 % `TrafficControlStrategy`, no split once
//! the next batch starts, and after an abort everything to the revision before it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Cluster, free_port, pipelines};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

async fn traffic(edasd: &Cluster, app: &str) -> Value {
    let answer = edasd
        .call(
            "GET",
            "/pop/v5/k8s/acs/k8s_service",
            "GetK8sServices",
            &[("AppId", app)],
        )
        .await;
    if std::env::var_os("EDASD_PRINT_TRAFFIC").is_some() {
        println!("{answer:#}");
    }
    assert_eq!(answer["Services"][0]["Name"], "web", "{answer}");
    answer["Traffic"].clone()
}

/// ContinuePipeline on the order's first pipeline not yet done.
async fn continue_next(edasd: &Cluster, co: &str) {
    let info = edasd.order(co).await;
    let pipeline = pipelines(&info)
        .into_iter()
        .find(|p| p["PipelineStatus"] != 2)
        .expect("a pipeline waits");
    let id = pipeline["PipelineId"].as_str().unwrap().to_owned();
    edasd
        .call(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
            &[("PipelineId", &id), ("Confirm", "true")],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_k8s_services_answers_the_live_traffic_split() {
    let edasd = Cluster::start("traffic", "", false);
    let port = free_port();
    let configs = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (app, co) = edasd
        .insert(
            "split",
            3,
            &[("ServiceConfigs", &configs)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    assert_eq!(traffic(&edasd, &app).await, json!({"Mode": "AllReady"}));

    // The gray batch of a release with a 20 % rule: the split, while the order waits (8).
    let strategy = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
    let rule = r#"{"http":{"rules":[{"conditionType":"percent","percent":20}]}}"#;
    let release = |version: &'static str| {
        let edasd = &edasd;
        let app = app.clone();
        async move {
            edasd
                .deploy(
                    &app,
                    version,
                    &[
                        ("UpdateStrategy", strategy),
                        ("TrafficControlStrategy", rule),
                    ],
                    &[("APP_VERSION", version)],
                )
                .await
        }
    };
    let co = release("v2").await;
    edasd.wait_status(&co, &[8], Duration::from_secs(30)).await;
    let gray = json!({
        "Mode": "GraySplit",
        "StableRevision": "1",
        "GrayRevision": "2",
        "Rules": [{"ConditionType": "percent", "Percent": 20}],
    });
    assert_eq!(traffic(&edasd, &app).await, gray);

    // Continue: the next batch starts and every ready instance serves again.
    continue_next(&edasd, &co).await;
    assert_eq!(traffic(&edasd, &app).await, json!({"Mode": "AllReady"}));
    edasd
        .wait_status(&co, &[8, 2], Duration::from_secs(30))
        .await;
    if edasd.order(&co).await["Status"] == 8 {
        continue_next(&edasd, &co).await;
    }
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    assert_eq!(traffic(&edasd, &app).await, json!({"Mode": "AllReady"}));

    // A second release, aborted in its gray batch: all to revision 2, none to revision 3.
    let co = release("v3").await;
    edasd.wait_status(&co, &[8], Duration::from_secs(30)).await;
    assert_eq!(traffic(&edasd, &app).await["Mode"], "GraySplit");
    edasd
        .call(
            "PUT",
            "/pop/v5/changeorder/change_order_abort",
            "AbortChangeOrder",
            &[("ChangeOrderId", &co)],
        )
        .await;
    assert_eq!(
        traffic(&edasd, &app).await,
        json!({"Mode": "Aborted", "StableRevision": "2", "GrayRevision": "3"})
    );
}
