//! Black-box tests of the operator's views on the built-in cluster `local`: DescribeAppInstanceList
//! (revision, version, readiness, restarts, last exit, port), an instance's output through the
//! signed `GET /edasd/v1/logs` (tail, follow, previous), ListHistoryDeployVersion and a rollback
//! to revision N (DeployK8sApplication with `RollbackToRevision`) whose instances and traffic end
//! on N.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, free_port, get, read_until};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

async fn instances(edasd: &Cluster, app: &str) -> Vec<Value> {
    edasd.instance_list(app).await
}

async fn logs(edasd: &Cluster, params: &[(&str, &str)]) -> reqwest::Response {
    edasd.logs(params).await
}

async fn log_text(edasd: &Cluster, params: &[(&str, &str)]) -> String {
    edasd.log_text(params).await
}

/// An edasd and an application `name` of `replicas` ready instances of v1 behind a Service on
/// a free port; (edasd, AppId, port).
async fn serving(name: &str, replicas: u32) -> (Cluster, String, u16) {
    let edasd = Cluster::start(name, "", false);
    let port = free_port();
    let configs = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (app, co) = edasd
        .insert(
            name,
            replicas,
            &[("ServiceConfigs", &configs)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    (edasd, app, port)
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
    for (extra, named) in [
        (("Previous", "true"), "Previous"),
        (("TailLines", "-1"), "TailLines"),
        (("Color", "red"), "Color"),
        (("SinceSeconds", "soon"), "SinceSeconds"),
    ] {
        let response = logs(&edasd, &[("AppId", &app), ("InstanceName", &name), extra]).await;
        assert_eq!(response.status().as_u16(), 400, "{extra:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["Message"].as_str().unwrap().contains(named), "{body}");
    }
    let response = logs(&edasd, &[("AppId", &app), ("InstanceName", "nope")]).await;
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
    let inst = edasd
        .wait_restarted(&crashing, Duration::from_secs(20))
        .await;
    assert!(
        inst["LastExitReason"]
            .as_str()
            .unwrap()
            .contains("status 1"),
        "{inst}"
    );
    let name = inst["InstanceName"].as_str().unwrap();
    // QueryApplicationStatus's EccList carries the same (edasd's keys beside EDAS's).
    let status = edasd
        .call(
            "GET",
            "/pop/v5/app/app_status",
            "QueryApplicationStatus",
            &[("AppId", &crashing)],
        )
        .await;
    let ecc = &status["AppInfo"]["EccList"]["Ecc"][0];
    assert_eq!(ecc["EccId"], name);
    assert_eq!(ecc["Revision"], "1");
    assert!(ecc["Restarts"].as_i64() >= Some(1), "{ecc}");
    assert!(
        ecc["LastExitReason"].as_str().unwrap().contains("status 1"),
        "{ecc}"
    );
    assert!(ecc["Port"].as_i64() > Some(0), "{ecc}");
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

/// A followed log that stays silent longer than the connection idle timeout is still open when
/// the instance writes again: a response in flight is not an idle connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_followed_log_outlives_the_idle_timeout() {
    let edasd = Cluster::start("follow-idle", "[server]\nidle_timeout_seconds = 1\n", false);
    let (app, co) = edasd
        .insert("quiet", 1, &[], &[("APP_VERSION", "v1")])
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let inst = instances(&edasd, &app).await.remove(0);
    let name = inst["InstanceName"].as_str().unwrap().to_owned();
    let port = u16::try_from(inst["Port"].as_u64().unwrap()).unwrap();
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
    read_until(&mut follow, "listening on", Duration::from_secs(5)).await;
    // Three idle timeouts of silence.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(port, "/log?line=after-the-silence").map(|r| r.0),
        Some(200)
    );
    read_until(&mut follow, "after-the-silence", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_rollback_to_a_revision_end_on_it() {
    let (edasd, app, port) = serving("history", 2).await;
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

    // RAM: a user who may manage the application but not use `local` may read its history
    // and logs, but not go back (a change on `local`); one who may not read it sees nothing.
    let manager = support::user_with_policy(
        &edasd,
        "manager",
        serde_json::json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": ["edas:ReadApplication", "edas:ManageApplication"], "Resource": "*"}]}),
    )
    .await;
    let as_manager = |action: &'static str,
                      path: &'static str,
                      params: Vec<(&'static str, String)>| {
        let edasd = &edasd;
        async move {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            support::signed(
                &edasd.client,
                &edasd.base,
                "GET",
                path,
                action,
                &pairs,
                manager,
            )
            .await
        }
    };
    let (status, body) = as_manager(
        "ListHistoryDeployVersion",
        "/pop/v5/app/deploy_history_version_list",
        vec![("AppId", app.clone())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = support::signed(
        &edasd.client,
        &edasd.base,
        "POST",
        "/pop/v5/k8s/acs/k8s_apps",
        "DeployK8sApplication",
        &[("AppId", &app), ("RollbackToRevision", "1")],
        manager,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("UseLocalCluster"),
        "{body}"
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

/// A gray release with a 50 % rule, aborted while it waits: the answer has come back once the
/// proxy was updated, and from then on no request reaches the new revision, whose instance stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_gray_release_sends_no_traffic_to_the_new_revision() {
    let (edasd, app, port) = serving("abort", 3).await;
    let strategy = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
    let traffic = r#"{"http":{"rules":[{"conditionType":"percent","percent":50}]}}"#;
    let co = edasd
        .deploy(
            &app,
            "v2",
            &[
                ("UpdateStrategy", strategy),
                ("TrafficControlStrategy", traffic),
            ],
            &[("APP_VERSION", "v2")],
        )
        .await;
    edasd.wait_status(&co, &[8], Duration::from_secs(30)).await;
    let share = |n: usize| {
        (0..n)
            .filter(|_| get(port, "/").is_some_and(|(_, t)| t.starts_with("version=v2 ")))
            .count()
    };
    assert!(
        share(40) > 0,
        "the gray instance gets its share before the abort"
    );
    let answer = edasd
        .call(
            "PUT",
            "/pop/v5/changeorder/change_order_abort",
            "AbortChangeOrder",
            &[("ChangeOrderId", &co)],
        )
        .await;
    let traffic = answer["Data"]["Traffic"].as_str().unwrap_or_default();
    assert!(
        traffic.starts_with("all traffic goes to revision 1 (2 instances)")
            && traffic.contains("the 1 instances of revision 2 stay"),
        "{answer}"
    );
    assert_eq!(share(100), 0, "no request reaches the aborted revision");
    let list = instances(&edasd, &app).await;
    assert_eq!(
        list.iter()
            .filter(|i| i["Version"] == "edas-testapp:v2")
            .count(),
        1,
        "the new instance stays: {list:?}"
    );
}
