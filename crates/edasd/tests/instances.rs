//! Black-box tests of the operator's views on the built-in cluster `local`: DescribeAppInstanceList
//! (revision, version, readiness, restarts, last exit, port), an instance's output through the
//! signed `GET /edasd/v1/logs` (tail, follow, previous), ListHistoryDeployVersion and a rollback
//! to revision N (DeployK8sApplication with `RollbackToRevision`) whose instances and traffic end
//! on N.

mod support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::{Cluster, free_port, get};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// DescribeAppInstanceList's `InstanceList`.
async fn instances(edasd: &Cluster, app: &str) -> Vec<Value> {
    let body = edasd
        .call(
            "GET",
            "/pop/v5/oam/app_instance_list",
            "DescribeAppInstanceList",
            &[("AppId", app)],
        )
        .await;
    body["InstanceList"].as_array().cloned().unwrap_or_default()
}

/// A signed `GET /edasd/v1/logs` with `params`; the response, to be read as it streams.
async fn logs(edasd: &Cluster, params: &[(&str, &str)]) -> reqwest::Response {
    let encoded = support::form(params);
    let request = edas_pop::Request::new("GET", "/edasd/v1/logs")
        .with_header("x-acs-action", "edasd.logs")
        .with_header("x-acs-version", "2017-08-01")
        .with_raw_query(&encoded)
        .unwrap();
    let headers = edas_pop::sign_v1(
        &request,
        edasd.key.0,
        edasd.key.1,
        SystemTime::now(),
        Some(&support::nonce()),
    )
    .unwrap();
    let mut builder = edasd
        .client
        .get(format!("{}/edasd/v1/logs?{encoded}", edasd.base));
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.send().await.expect("edasd answers")
}

/// The whole text of a logs answer that must succeed.
async fn log_text(edasd: &Cluster, params: &[(&str, &str)]) -> String {
    let response = logs(edasd, params).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// Reads a streaming answer until `needle` arrived (or fails after `within`).
async fn read_until(response: &mut reqwest::Response, needle: &str, within: Duration) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !got.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("`{needle}` did not arrive within {within:?}: {got:?}"))
            .expect("the stream goes on");
        match chunk {
            Some(bytes) => got.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended before `{needle}`: {got:?}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_and_their_logs_tail_follow_and_previous() {
    let edasd = Cluster::start("instances", "", false);
    let (app, co) = edasd.insert("logs", 1, &[], &[("APP_VERSION", "v1")]).await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let list = instances(&edasd, &app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let inst = &list[0];
    assert_eq!(inst["Revision"], "1");
    assert_eq!(inst["Version"], "edas-testapp:v1");
    assert_eq!(inst["Ready"], true);
    assert_eq!(inst["Restarts"], 0);
    assert_eq!(inst["NodeName"], "local");
    let port = inst["Port"].as_u64().unwrap();
    assert!(port > 0, "{inst}");
    let pod: Value = serde_json::from_str(inst["PodRaw"].as_str().unwrap()).unwrap();
    assert_eq!(pod["metadata"]["labels"]["edas.oam.revision"], "1");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    let name = inst["InstanceName"].as_str().unwrap().to_owned();

    // The current run, its last line.
    let text = log_text(&edasd, &[("AppId", &app), ("InstanceName", &name)]).await;
    assert!(
        text.contains(&format!("listening on 127.0.0.1:{port} version=v1")),
        "{text}"
    );
    // Follow: what the instance writes arrives while the answer streams.
    let mut follow = logs(
        &edasd,
        &[
            ("AppId", &app),
            ("InstanceName", &name),
            ("Follow", "true"),
            ("TailLines", "1"),
        ],
    )
    .await;
    assert_eq!(follow.status().as_u16(), 200);
    let port = u16::try_from(port).unwrap();
    let started = Instant::now();
    assert_eq!(get(port, "/log?line=hello-follow").map(|r| r.0), Some(200));
    read_until(&mut follow, "hello-follow", Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(follow);

    // Refusals name the parameter; nothing to read is not a success.
    let response = logs(
        &edasd,
        &[
            ("AppId", &app),
            ("InstanceName", &name),
            ("Previous", "true"),
        ],
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["Message"].as_str().unwrap().contains("Previous"),
        "{body}"
    );
    let response = logs(&edasd, &[("AppId", &app), ("InstanceName", "nope")]).await;
    assert_eq!(response.status().as_u16(), 400);
    let response = logs(
        &edasd,
        &[
            ("AppId", &app),
            ("InstanceName", &name),
            ("TailLines", "-1"),
        ],
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    let response = logs(
        &edasd,
        &[("AppId", &app), ("InstanceName", &name), ("Color", "red")],
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);

    // An instance that exits: restarts counted, its last exit reported, the run before readable.
    let (crashing, co) = edasd
        .insert(
            "crashing",
            1,
            &[],
            &[("APP_VERSION", "v1"), ("EXIT_AFTER_SECONDS", "1")],
        )
        .await;
    edasd.finished(&co, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let inst = loop {
        let list = instances(&edasd, &crashing).await;
        if let Some(i) = list.iter().find(|i| i["Restarts"].as_i64() >= Some(1)) {
            break i.clone();
        }
        assert!(Instant::now() < deadline, "no restart: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        inst["LastExitReason"]
            .as_str()
            .unwrap()
            .contains("status 1"),
        "{inst}"
    );
    let name = inst["InstanceName"].as_str().unwrap();
    let previous = log_text(
        &edasd,
        &[
            ("AppId", &crashing),
            ("InstanceName", name),
            ("Previous", "true"),
        ],
    )
    .await;
    assert!(
        previous.contains("exiting with status 1 (EXIT_AFTER_SECONDS)"),
        "{previous}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_rollback_to_a_revision_end_on_it() {
    let edasd = Cluster::start("history", "", false);
    let port = free_port();
    let configs = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (app, co) = edasd
        .insert(
            "history",
            2,
            &[("ServiceConfigs", &configs)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    for v in ["v2", "v3"] {
        let co = edasd.deploy(&app, v, &[], &[("APP_VERSION", v)]).await;
        assert_eq!(
            edasd.finished(&co, Duration::from_secs(30)).await["Status"],
            2
        );
    }
    let history = edasd
        .call(
            "GET",
            "/pop/v5/app/deploy_history_version_list",
            "ListHistoryDeployVersion",
            &[("AppId", &app)],
        )
        .await;
    let versions = history["PackageVersionList"]["PackageVersion"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = versions.iter().map(|v| v["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["3", "2", "1"], "{history}");
    assert_eq!(versions[2]["PackageVersion"], "edas-testapp:v1");
    assert_eq!(versions[2]["Type"], "image");
    assert_eq!(versions[0]["Current"], true);
    assert_eq!(versions[0]["Outcome"], "success");
    assert!(!versions[1]["ChangeOrderId"].as_str().unwrap().is_empty());

    // A spec parameter cannot ride along, and revision 9 does not exist: nothing is stored.
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[
                ("AppId", &app),
                ("RollbackToRevision", "1"),
                ("Replicas", "3"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"].as_str().unwrap().contains("Replicas"),
        "{body}"
    );
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[("AppId", &app), ("RollbackToRevision", "9")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("RollbackToRevision")
    );

    // Back to revision 1, in two batches like any release.
    let strategy = r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;
    let body = edasd
        .call(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[
                ("AppId", &app),
                ("RollbackToRevision", "1"),
                ("UpdateStrategy", strategy),
            ],
        )
        .await;
    let co = body["ChangeOrderId"].as_str().unwrap().to_owned();
    let info = edasd.finished(&co, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 2, "{info}");
    assert_eq!(support::pipelines(&info).len(), 2, "{info}");
    let list = instances(&edasd, &app).await;
    assert_eq!(list.len(), 2, "{list:?}");
    for inst in &list {
        assert_eq!(inst["Version"], "edas-testapp:v1", "{inst}");
    }
    for _ in 0..10 {
        let (status, text) = get(port, "/").unwrap();
        assert_eq!(status, 200);
        assert!(text.starts_with("version=v1 "), "{text}");
    }
    let history = edasd
        .call(
            "GET",
            "/pop/v5/app/deploy_history_version_list",
            "ListHistoryDeployVersion",
            &[("AppId", &app)],
        )
        .await;
    let newest = &history["PackageVersionList"]["PackageVersion"][0];
    assert_eq!(newest["Id"], "4");
    assert_eq!(newest["PackageVersion"], "edas-testapp:v1");
    assert_eq!(newest["Current"], true);
}
