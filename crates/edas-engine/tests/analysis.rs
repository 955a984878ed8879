//! The release analysis (issue 21) in the engine, on a real SQLite store and the fake runtime,
//! with the built-in health provider (the fake reports what it is told): every batch waits for
//! its settle window and checks before the next starts, and a failed check holds the release
//! at status 8 until a ContinuePipeline judges again.

mod support;

use std::time::Duration;

use edas_release::{Input, StageKind, Status};
use edas_spec::Operation;
use edas_store::Store;
use serde_json::{Value, json};
use support::{World, create, submit, world};

/// Application `app-1` with 2 instances of revision 1, and `policy` as its release policy.
async fn app_with_policy(w: &World, policy: Value) {
    let (_, co) = create(w, 2).await;
    wait(&w.store, &co, |o| o.status() == Status::Success).await;
    let audit = edas_store::AuditEntry {
        actor: "test".into(),
        action: "ReleasePolicy.Set".into(),
        resource: "application/app-1".into(),
        app_id: Some("app-1".into()),
        request_id: None,
        detail: json!({}),
    };
    w.store
        .put_release_policy(
            "app-1",
            Some(&policy),
            "test",
            &audit,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
}

async fn deploy(w: &World, strategy: &str) -> String {
    submit(
        w,
        Operation::DeployK8sApplication,
        &[("Command", "/bin/app-v2"), ("UpdateStrategy", strategy)],
    )
    .await
    .unwrap()
}

/// Waits until the stored change order satisfies `check`; panics after 30 seconds.
async fn wait(
    store: &Store,
    id: &str,
    check: impl Fn(&edas_release::ChangeOrder) -> bool,
) -> edas_release::ChangeOrder {
    for _ in 0..1500 {
        let order = store.get_change_order(id).await.unwrap().state;
        if check(&order) {
            return order;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = store.get_change_order(id).await.unwrap().state;
    panic!("change order {id} never got there: {order:#?}");
}

fn health(metric: &str, when: &str, on_failure: &str, count: u32) -> Value {
    json!({"checks": [{
        "name": "health",
        "provider": {"health": {"metric": metric}},
        "successCondition": "result < 1",
        "interval": "1s",
        "count": count,
        "failureLimit": 0,
        "when": when,
        "settle": if when == "afterEachBatch" { json!("1s") } else { Value::Null },
        "onFailure": on_failure,
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_waits_for_its_settle_window_and_its_checks() {
    let w = world().await;
    app_with_policy(&w, health("restarts", "afterEachBatch", "rollback", 1)).await;
    let co = deploy(
        &w,
        r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#,
    )
    .await;
    let order = wait(&w.store, &co, |o| o.status() == Status::Success).await;
    let analysis = order.analysis().expect("judged");
    assert_eq!(analysis.policy_version, 1);
    assert_eq!((analysis.measured, analysis.passes), (2, 2));
    let [first, second] = order.pipelines() else {
        panic!("two batches: {order:#?}")
    };
    let judged = first
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Analysis)
        .unwrap();
    assert_eq!(judged.status, Status::Success);
    // The second batch started only after the first's settle window (1 s) and one interval
    // (1 s) of measuring.
    let waited = second.start_time.unwrap().0 - judged.start_time.unwrap().0;
    assert!(
        waited >= 2000,
        "batch 2 started {waited} ms after batch 1 was judged"
    );
    assert_eq!(w.fake.counts("app-1", "2"), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_holds_the_release_until_continue_judges_again() {
    let w = world().await;
    let mut policy = health("crashLooping", "gray", "pause", 3);
    policy["checks"][0]
        .as_object_mut()
        .unwrap()
        .remove("settle");
    app_with_policy(&w, policy).await;
    let co = deploy(
        &w,
        r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
    )
    .await;
    wait(&w.store, &co, |o| o.judging() == Some(0)).await;
    // The gray instance gives up while it is judged: the next measurement holds the release.
    w.fake.fail("2", "CrashLoopBackOff");
    let held = wait(&w.store, &co, |o| {
        o.status() == Status::WaitingForConfirmation
    })
    .await;
    assert!(
        held.message().is_some_and(|m| m.contains("\"health\"")),
        "{:?}",
        held.message()
    );
    assert_eq!(held.analysis().unwrap().failures, 1);
    // ContinuePipeline judges again from zero: still failing, held again.
    let gray = held.pipelines()[0].id.clone();
    w.engine
        .control(
            &co,
            Input::Continue {
                pipeline_id: gray,
                confirm: true,
            },
            "test",
            "r",
        )
        .await
        .unwrap();
    let again = wait(&w.store, &co, |o| {
        o.analysis().is_some_and(|a| a.failures == 2)
    })
    .await;
    assert_eq!(again.status(), Status::WaitingForConfirmation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gray_check_judges_the_first_batch_of_a_release_without_a_gray_batch() {
    let w = world().await;
    let mut policy = health("crashLooping", "gray", "rollback", 3);
    policy["checks"][0]
        .as_object_mut()
        .unwrap()
        .remove("settle");
    app_with_policy(&w, policy).await;
    let co = deploy(
        &w,
        r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#,
    )
    .await;
    // The first batch plays the canary's role: it waits for the gray check ...
    let judged = wait(&w.store, &co, |o| o.judging() == Some(0)).await;
    let stage = |o: &edas_release::ChangeOrder| {
        o.pipelines()[0]
            .stages
            .iter()
            .find(|s| s.kind == StageKind::Analysis)
            .unwrap()
            .task
            .message
            .clone()
    };
    assert!(
        stage(&judged).contains(edas_release::NO_GRAY),
        "{}",
        stage(&judged)
    );
    // ... which fails: the release is rolled back after its first batch.
    w.fake.fail("2", "CrashLoopBackOff");
    let ended = wait(&w.store, &co, |o| o.rolled_back_by().is_some()).await;
    assert_eq!(ended.status(), Status::Terminated);
    assert!(
        ended.message().is_some_and(|m| m.contains("\"health\"")),
        "{:?}",
        ended.message()
    );
    assert_eq!(
        ended.pipelines()[1].start_time,
        None,
        "batch 2 never started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_checks_end_with_the_order_and_measure_no_more() {
    let w = world().await;
    app_with_policy(
        &w,
        json!({"checks": [{
            "name": "watch",
            "provider": {"health": {"metric": "restarts"}},
            "successCondition": "result < 1",
            "interval": "1s",
            "when": "background",
        }]}),
    )
    .await;
    let co = deploy(
        &w,
        r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"}}"#,
    )
    .await;
    // Waiting for the second batch, the background check measures on.
    wait(&w.store, &co, |o| {
        o.status() == Status::WaitingForConfirmation
            && o.analysis().is_some_and(|a| a.measured >= 1)
    })
    .await;
    w.engine
        .control(&co, Input::Abort, "test", "r")
        .await
        .unwrap();
    let ended = wait(&w.store, &co, |o| o.status() == Status::Terminated).await;
    let check = |o: &edas_release::ChangeOrder| {
        let a = o.analysis().unwrap();
        let doc: Value = serde_json::from_str(&a.doc).unwrap();
        (
            a.measured,
            a.checks[0].outcome.clone(),
            doc["checks"][0]["status"]["state"].clone(),
            doc["checks"][0].get("nextAt").cloned(),
        )
    };
    let (measured, outcome, state, next_at) = check(&ended);
    assert_eq!(outcome, edas_release::ENDED);
    assert_eq!(state, json!("ended"), "the stored analysis state ended too");
    assert_eq!(next_at, None, "nothing is due");
    let messages: Vec<_> = ended
        .pipelines()
        .iter()
        .flat_map(|p| &p.stages)
        .filter(|s| s.kind == StageKind::Analysis)
        .map(|s| s.task.message.clone())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains(edas_release::ENDED))
            && !messages.iter().any(|m| m.contains("running")),
        "{messages:?}"
    );
    // No measurement after the end.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = w.store.get_change_order(&co).await.unwrap().state;
    assert_eq!(check(&later).0, measured);
    assert_eq!(later, ended);
}
