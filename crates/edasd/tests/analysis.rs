//! Issue 21, black-box: releases judged by an application's release policy, with the real
//! edasd on `local`, edas-testapp instances and the built-in traffic provider (edasd's own
//! proxy counts every request of every revision) while a load generator sends requests
//! through the application's Service port.
//!
//! - A version answering 30 % errors is rolled back automatically during its gray batch; a
//!   healthy one is promoted with no human step.
//! - A pause-on-failure policy holds the release at status 8 naming the failing check; a
//!   plain ContinuePipeline judges again; `SkipAnalysis=true` is refused without
//!   `edas:SkipReleaseAnalysis`, allowed with it, and audited.
//! - kill -9 of edasd during an analysis: the restarted edasd resumes it (the measurements
//!   taken before are kept and the count goes on).
//! - The admin API's policy errors: a bad policy names its fields and stores nothing.

#[path = "support/analysis.rs"]
mod analysis_support;
mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use analysis_support::{Load, app_with_service, deploy_gray, set_policy};
use serde_json::{Value, json};
use support::{Cluster, admin_call, pipelines, user_with_policy};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// The new revision's share of 5xx answers at edasd's proxy, judged during the gray batch.
fn errors_policy(on_failure: &str, count: u32) -> Value {
    json!({
        "checks": [{
            "name": "errors",
            "provider": {"traffic": {"metric": "errorRate"}},
            "successCondition": "result < 0.05",
            "interval": "1s",
            "count": count,
            "failureLimit": 0,
            "when": "gray",
            "onFailure": on_failure,
        }]
    })
}

/// A signed admin PUT with a YAML body as `edasctl app policy set` sends it; (status, body).
async fn put_yaml(edasd: &Cluster, path: &str, yaml: &str) -> (u16, Value) {
    let full = format!("/edasd/v1/{path}");
    let request = edas_pop::Request::new("PUT", full.clone())
        .with_header("x-acs-action", "edasd.admin")
        .with_header("x-acs-version", "2017-08-01")
        .with_header("content-type", "application/yaml")
        .with_body(yaml.as_bytes().to_vec());
    let nonce = support::nonce();
    let headers = edas_pop::sign_v1(
        &request,
        edasd.key.0,
        edasd.key.1,
        std::time::SystemTime::now(),
        Some(&nonce),
    )
    .unwrap();
    let mut builder = edasd.client.put(format!("{}{full}", edasd.base));
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(yaml.to_owned()).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// ContinuePipeline with `params`, signed with the user key `key`; (status, body).
async fn continue_as(edasd: &Cluster, params: &[(&str, &str)], key: (&str, &str)) -> (u16, Value) {
    support::signed(
        &edasd.client,
        &edasd.base,
        "GET",
        "/pop/v5/changeorder/pipeline_batch_confirm",
        "ContinuePipeline",
        params,
        key,
    )
    .await
}

/// The task message of the analysis stage of the order's first pipeline (the gray batch).
fn analysis_message(info: &Value) -> String {
    pipelines(info)
        .first()
        .and_then(|p| {
            p["StageDetailList"]["StageDetailDTO"]
                .as_array()?
                .iter()
                .find(|s| s["StageName"] == "Release analysis")
                .and_then(|s| s["TaskList"]["TaskInfoDTO"][0]["TaskMessage"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// How many measurements the analysis stage's message reports for check `errors`.
fn measured(info: &Value) -> u64 {
    let message = analysis_message(info);
    message
        .split(", ")
        .find_map(|part| part.strip_suffix(" measured"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether every change order of `app` has ended (ListRecentChangeOrder).
async fn no_order_open(edasd: &Cluster, app: &str) -> bool {
    edasd
        .api
        .recent_change_orders(app)
        .await
        .iter()
        .all(|o| !matches!(o["Status"].as_i64(), Some(0 | 1 | 8 | 9)))
}

/// The revisions of the application's instances.
fn revisions(edasd: &Cluster, app: &str) -> Vec<String> {
    let mut r: Vec<String> = edasd
        .instances(app)
        .into_iter()
        .map(|i| i.revision)
        .collect();
    r.sort();
    r
}

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_rolled_back_in_its_gray_batch_and_a_healthy_one_promoted() {
    let started = Instant::now();
    let edasd = Cluster::start("analysis-rollback", "", false);
    let (app, port) = app_with_service(&edasd, "judged").await;
    let stored = set_policy(&edasd, &app, &errors_policy("rollback", 3)).await;
    assert_eq!(stored["ReleasePolicy"]["Version"], 1, "{stored}");
    let load = Load::start(port, 2, Duration::from_millis(5));

    // 30 % errors: the first measurement of the gray batch fails the check; the release ends
    // and rolls back at once, with no human step.
    let bad = deploy_gray(&edasd, &app, "v2", &[("ERROR_PERCENT", "30")]).await;
    let info = edasd.finished(&bad, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 6, "terminated by the analysis: {info:#}");
    let message = analysis_message(&info);
    assert!(message.contains("errors"), "{message}");
    let text = info.to_string();
    assert!(
        text.contains("AnalysisFailed") && text.contains("check \\\"errors\\\" failed"),
        "the failing check is named: {info:#}"
    );
    // The rollback brings back 2 instances of revision 1 only, and its order ends (its
    // instances may be ready before its last transition is stored).
    wait_until("the rollback", Duration::from_secs(60), async || {
        revisions(&edasd, &app) == ["1", "1"] && no_order_open(&edasd, &app).await
    })
    .await;
    let rolled_back = Instant::now();

    // A healthy version: judged (3 measurements) and promoted, no ContinuePipeline needed.
    let good = deploy_gray(&edasd, &app, "v3", &[]).await;
    // While the gray batch is judged, a plain ContinuePipeline is refused, saying why.
    let mut judged = Value::Null;
    wait_until(
        "the gray batch judged",
        Duration::from_secs(60),
        async || {
            judged = edasd.order(&good).await;
            analysis_message(&judged).contains("running")
        },
    )
    .await;
    let gray = pipelines(&judged)[0]["PipelineId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = edasd
        .call_raw(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
            &[("PipelineId", &gray), ("Confirm", "true")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .is_some_and(|m| m.contains("analysis") && m.contains("still running")),
        "{body}"
    );
    let info = edasd.finished(&good, Duration::from_secs(90)).await;
    assert_eq!(info["Status"], 2, "promoted: {info:#}");
    let message = analysis_message(&info);
    assert!(
        message.contains("3 measured") && message.contains("passed"),
        "{message}"
    );
    assert!(load.sent.load(Ordering::Relaxed) > 100);
    // The metrics count the measurements and both decisions.
    let metrics = edasd
        .client
        .get(format!("{}/metrics", edasd.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "edasd_analysis_measurements_total{result=\"passed\"}",
        "edasd_analysis_measurements_total{result=\"failed\"}",
        "edasd_analysis_verdicts_total{verdict=\"rolled_back\"}",
        "edasd_analysis_verdicts_total{verdict=\"passed\"}",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    eprintln!(
        "rolled back after {:?}; healthy release judged and promoted in {:?}; {} requests sent",
        rolled_back - started,
        rolled_back.elapsed(),
        load.sent.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_policy_holds_at_status_8_and_skipping_needs_its_own_right() {
    let edasd = Cluster::start("analysis-pause", "", false);
    let (app, port) = app_with_service(&edasd, "paused").await;
    set_policy(&edasd, &app, &errors_policy("pause", 2)).await;
    let _load = Load::start(port, 2, Duration::from_millis(5));
    let co = deploy_gray(&edasd, &app, "v2", &[("ERROR_PERCENT", "30")]).await;
    let info = edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    let gray = &pipelines(&info)[0];
    assert_eq!(gray["PipelineStatus"], 8, "{info:#}");
    let text = info.to_string();
    assert!(
        text.contains("check \\\"errors\\\" failed"),
        "the failing check is named: {info:#}"
    );
    let gray_id = gray["PipelineId"].as_str().unwrap().to_owned();

    // A plain ContinuePipeline judges again: the version is still bad, so it is held again.
    let before = measured(&info);
    edasd
        .call(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
            &[("PipelineId", &gray_id), ("Confirm", "true")],
        )
        .await;
    let again = edasd.order(&co).await;
    assert!(matches!(again["Status"].as_i64(), Some(1 | 8)), "{again:#}");
    let info = edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    assert!(measured(&info) >= 1 && before >= 1, "{info:#}");

    // SkipAnalysis=true: refused to a user who may manage the application but not skip.
    let manage = json!({"Version": "1", "Statement": [{"Effect": "Allow",
        "Action": ["edas:ManageApplication", "edas:ReadApplication"], "Resource": "*"}]});
    let (id, secret) = user_with_policy(&edasd, "releaser", manage).await;
    let skip = [
        ("PipelineId", gray_id.as_str()),
        ("Confirm", "true"),
        ("SkipAnalysis", "true"),
    ];
    let (status, body) = continue_as(&edasd, &skip, (id, secret)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_string().contains("edas:SkipReleaseAnalysis"),
        "{body}"
    );
    assert_eq!(edasd.order(&co).await["Status"], 8, "nothing changed");
    // Allowed with the action: the release moves on past its gray batch and completes.
    let skipper = json!({"Version": "1", "Statement": [{"Effect": "Allow",
        "Action": ["edas:ManageApplication", "edas:ReadApplication", "edas:SkipReleaseAnalysis"],
        "Resource": "*"}]});
    let (id, secret) = user_with_policy(&edasd, "overrider", skipper).await;
    let (status, body) = continue_as(&edasd, &skip, (id, secret)).await;
    assert_eq!(status, 200, "{body}");
    let info = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    // Audited: the transition by the overriding key, input SkipAnalysis.
    let (status, trail) = admin_call(
        &edasd,
        edasd.key,
        "GET",
        &format!("audit?AppId={app}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    let skipped = trail["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Detail"]["input"] == "SkipAnalysis")
        .unwrap_or_else(|| panic!("no SkipAnalysis record: {trail:#}"));
    assert!(
        skipped["Actor"].as_str().is_some_and(|a| a.contains(id)),
        "{skipped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_health_check_rolls_back_a_version_that_restarts() {
    let edasd = Cluster::start("analysis-health", "", false);
    let (app, co) = edasd
        .insert("healthy", 2, &[], &[("APP_VERSION", "v1")])
        .await;
    edasd.finished(&co, Duration::from_secs(30)).await;
    let policy = json!({"checks": [{
        "name": "restarts",
        "provider": {"health": {"metric": "restarts"}},
        "successCondition": "result < 1",
        "interval": "1s",
        "failureLimit": 0,
        "when": "background",
        "onFailure": "rollback",
    }]});
    set_policy(&edasd, &app, &policy).await;
    // v2 is ready at once and exits 2 s later: the gray batch completes and waits for
    // confirmation, and the background check sees the restart while it waits.
    let manual = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":1,"releaseType":"manual"}}"#;
    let co = edasd
        .deploy(
            &app,
            "v2",
            &[("UpdateStrategy", manual)],
            &[("APP_VERSION", "v2"), ("EXIT_AFTER_SECONDS", "2")],
        )
        .await;
    let info = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 6, "{info:#}");
    assert!(
        info.to_string().contains("check \\\"restarts\\\" failed"),
        "{info:#}"
    );
    wait_until("the rollback", Duration::from_secs(60), async || {
        revisions(&edasd, &app) == ["1", "1"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_analysis_resumes_it_where_it_was() {
    let mut edasd = Cluster::start("analysis-kill", "", false);
    let (app, port) = app_with_service(&edasd, "resumed").await;
    set_policy(&edasd, &app, &errors_policy("rollback", 8)).await;
    let _load = Load::start(port, 2, Duration::from_millis(5));
    let co = deploy_gray(&edasd, &app, "v2", &[]).await;
    // Kill once a few measurements are stored.
    let mut before = 0;
    wait_until("3 measurements", Duration::from_secs(60), async || {
        before = measured(&edasd.order(&co).await);
        before >= 3
    })
    .await;
    edasd.kill_edasd();
    edasd.spawn();
    // The count goes on from where it was (never from zero) and the release completes.
    let first = measured(&edasd.order(&co).await);
    assert!(
        first >= before,
        "{first} after the restart, {before} before"
    );
    let info = edasd.finished(&co, Duration::from_secs(90)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    let message = analysis_message(&info);
    assert!(message.contains("8 measured"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_set_get_delete_and_their_errors() {
    let edasd = Cluster::start("analysis-policy", "", false);
    let (app, co) = edasd
        .insert("policed", 1, &[], &[("APP_VERSION", "v1")])
        .await;
    edasd.finished(&co, Duration::from_secs(30)).await;
    let path = format!("applications/{app}/policy");
    // None yet.
    let (status, body) = admin_call(&edasd, edasd.key, "GET", &path, None).await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (404, Some("EntityNotExist")),
        "{body}"
    );
    // A bad policy: every mistake named by its field path, nothing stored.
    let bad = json!({"checks": [{"name": "x", "provider": {"traffic": {"metric": "errorRate"}},
        "successCondition": "rezult < 1", "interval": "1", "count": 0, "when": "sometimes"}]});
    let (status, body) = admin_call(&edasd, edasd.key, "PUT", &path, Some(&bad)).await;
    assert_eq!(status, 400, "{body}");
    let message = body["Message"].as_str().unwrap_or_default();
    for field in [
        "checks[0].successCondition",
        "checks[0].interval",
        "checks[0].when",
    ] {
        assert!(message.contains(field), "{field} in {message}");
    }
    let (status, _) = admin_call(&edasd, edasd.key, "GET", &path, None).await;
    assert_eq!(status, 404);
    // An unknown application.
    let (status, body) = admin_call(
        &edasd,
        edasd.key,
        "PUT",
        "applications/nope/policy",
        Some(&errors_policy("pause", 1)),
    )
    .await;
    assert!(status == 404 || status == 400, "{status} {body}");
    // Set twice: version 2; get answers it; history keeps both.
    set_policy(&edasd, &app, &errors_policy("pause", 1)).await;
    let body = set_policy(&edasd, &app, &errors_policy("rollback", 2)).await;
    assert_eq!(body["ReleasePolicy"]["Version"], 2);
    let (status, body) = admin_call(&edasd, edasd.key, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["ReleasePolicy"]["Document"]["checks"][0]["onFailure"], "rollback",
        "{body}"
    );
    // A reader may get it but not set or delete it.
    let read = json!({"Version": "1", "Statement": [{"Effect": "Allow",
        "Action": ["edas:ReadApplication"], "Resource": "*"}]});
    let reader = user_with_policy(&edasd, "reader", read).await;
    let (status, _) = admin_call(&edasd, reader, "GET", &path, None).await;
    assert_eq!(status, 200);
    let (status, body) = admin_call(&edasd, reader, "DELETE", &path, None).await;
    assert_eq!(status, 401, "{body}");
    // Delete: a new version without a policy; a second delete finds none.
    let (status, body) = admin_call(&edasd, edasd.key, "DELETE", &path, None).await;
    assert_eq!(
        (status, &body["ReleasePolicy"]["Version"]),
        (200, &json!(3))
    );
    let (status, _) = admin_call(&edasd, edasd.key, "DELETE", &path, None).await;
    assert_eq!(status, 404);
    // The README's example, as YAML.
    let readme = include_str!("../../../README.md");
    let example = readme
        .split("# policy.yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's policy.yaml");
    let (status, body) = put_yaml(&edasd, &path, example).await;
    assert_eq!(status, 200, "the README's example: {body}");
    assert_eq!(
        body["ReleasePolicy"]["Document"]["checks"][1]["name"], "p99",
        "{body}"
    );
    let (_, history) = admin_call(&edasd, edasd.key, "GET", &format!("{path}/history"), None).await;
    assert_eq!(
        history["Versions"].as_array().map(Vec::len),
        Some(4),
        "{history}"
    );
}
