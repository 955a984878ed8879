//! The engine end to end on a real SQLite store and the fake runtime (instances ready after
//! 100 ms), in real time with second-scale waits (paused tokio time cannot be used with a real
//! database: its I/O lets the clock jump and times out the pool): gray and
//! batch releases (manual and automatic), batch timeout and retry, abort, abort-and-rollback,
//! rollback of a finished order, a concurrent change refused, a scale during a release, and an
//! engine restart at every step that finishes exactly as an uninterrupted release.

mod support;

use std::sync::Arc;
use std::time::Duration;

use edas_engine::{Submission, SubmitError};
use edas_release::{Input, RollbackRequest, Strategy};
use edas_runtime::fake::FakeRuntime;
use edas_spec::Operation;
use edas_store::Store;
use support::{World, create, create_with, engine, submit, world};

async fn deploy(w: &World, pairs: &[(&str, &str)]) -> String {
    let mut all = vec![("Command", "/bin/app-v2")];
    all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
    all.extend_from_slice(pairs);
    submit(w, Operation::DeployK8sApplication, &all)
        .await
        .unwrap()
}

/// Waits until the change order has `status`; panics after 30 seconds.
async fn wait_status(store: &Store, id: &str, status: i32) {
    for _ in 0..1500 {
        if store.get_change_order(id).await.unwrap().status.code() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let co = store.get_change_order(id).await.unwrap();
    panic!(
        "change order {id} stayed at {} instead of {status}: {}",
        co.status,
        co.state.status()
    );
}

async fn status(store: &Store, id: &str) -> i32 {
    store.get_change_order(id).await.unwrap().status.code()
}

async fn pipeline_ids(store: &Store, id: &str) -> Vec<String> {
    let co = store.get_change_order(id).await.unwrap();
    let order = co.state;
    order.pipelines().iter().map(|p| p.id.clone()).collect()
}

async fn continue_(w: &World, co: &str, pipeline: &str) {
    w.engine
        .control(
            co,
            Input::Continue {
                pipeline_id: pipeline.into(),
                confirm: true,
            },
            "test",
            "r",
        )
        .await
        .unwrap();
}

const GRAY_MANUAL: &str = r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"},"grayUpdate":{"gray":1}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_gray_manual_release_with_continue() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (3, 3));
    assert_eq!(
        w.store.get_application("app-1").await.unwrap().state,
        "RUNNING"
    );

    let co = deploy(&w, &[("UpdateStrategy", GRAY_MANUAL)]).await;
    wait_status(&w.store, &co, 8).await;
    // After the gray batch: one new instance, two old ones.
    assert_eq!(w.fake.counts("app-1", "2"), (1, 1));
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    let ids = pipeline_ids(&w.store, &co).await;
    assert_eq!(ids.len(), 3);
    // confirm=false keeps waiting.
    w.engine
        .control(
            &co,
            Input::Continue {
                pipeline_id: ids[1].clone(),
                confirm: false,
            },
            "test",
            "r",
        )
        .await
        .unwrap();
    assert_eq!(status(&w.store, &co).await, 8);
    // The id of the batch just finished is accepted as well as the one waiting to start.
    continue_(&w, &co, &ids[0]).await;
    wait_status(&w.store, &co, 8).await;
    continue_(&w, &co, &ids[2]).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (3, 3));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
    assert_eq!(w.fake.started("app-1", "2"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_batches_respect_the_ready_window() {
    let w = world().await;
    let (_, co) = create(&w, 4).await;
    wait_status(&w.store, &co, 2).await;
    let started = tokio::time::Instant::now();
    // Each of the four batches must stay ready for one second (BatchWaitTime) before the next.
    let co = deploy(&w, &[("BatchWaitTime", "1"), ("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":3,"releaseType":"auto","batchWaitTime":0},"grayUpdate":{"gray":1}}"#)]).await;
    wait_status(&w.store, &co, 2).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let order = w.store.get_change_order(&co).await.unwrap().state;
    assert!(
        order
            .pipelines()
            .iter()
            .all(|p| p.status == edas_release::Status::Success)
    );
    assert_eq!(w.fake.counts("app-1", "2"), (4, 4));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_timeout_fails_then_retry_finishes() {
    let w = world().await;
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 2).await;
    w.fake.never_ready("2");
    let co = deploy(
        &w,
        &[
            ("BatchTimeout", "2"),
            (
                "UpdateStrategy",
                r#"{"type":"BatchUpdate","batchUpdate":{"batch":2}}"#,
            ),
        ],
    )
    .await;
    wait_status(&w.store, &co, 3).await;
    // Both revisions keep serving as they are.
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    assert_eq!(w.fake.counts("app-1", "2"), (0, 1));
    // The instances come good; a retry re-runs the failed batch with a fresh timeout.
    w.fake.clear_never_ready("2");
    w.engine
        .control(&co, Input::Retry { task_id: None }, "test", "r")
        .await
        .unwrap();
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (2, 2));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_leaves_instances_as_they_are() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(&w, &[("UpdateStrategy", GRAY_MANUAL)]).await;
    wait_status(&w.store, &co, 8).await;
    w.engine
        .control(&co, Input::Abort, "test", "r")
        .await
        .unwrap();
    assert_eq!(status(&w.store, &co).await, 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.fake.counts("app-1", "2"), (1, 1));
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    // The application is free again.
    let next = deploy(&w, &[]).await;
    wait_status(&w.store, &next, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_rollback_restores_the_previous_revision() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(&w, &[("UpdateStrategy", GRAY_MANUAL)]).await;
    wait_status(&w.store, &co, 8).await;
    let out = w
        .engine
        .control(
            &co,
            Input::AbortAndRollback(RollbackRequest {
                order_id: "rb-1".into(),
                strategy: Strategy::Single,
            }),
            "test",
            "r",
        )
        .await
        .unwrap();
    assert_eq!(out.status, 6);
    assert_eq!(out.rollback_change_order.as_deref(), Some("rb-1"));
    wait_status(&w.store, "rb-1", 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (3, 3));
    assert_eq!(w.fake.counts("app-1", "2"), (0, 0));
    let app = w.store.get_application("app-1").await.unwrap();
    let doc = app.spec;
    assert_eq!(doc.template_revision, "1");
    assert_eq!(doc.spec.command.as_deref(), Some("/bin/app"));
}

/// The termination and the rollback are one store transaction: when the rollback cannot be
/// stored (forced here by giving it the id of an existing change order), the order is not
/// terminated either, so it can never be left terminated without its rollback; a retry then
/// does both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_rollback_stores_both_or_neither() {
    let w = world().await;
    let (_, first) = create(&w, 3).await;
    wait_status(&w.store, &first, 2).await;
    let co = deploy(&w, &[("UpdateStrategy", GRAY_MANUAL)]).await;
    wait_status(&w.store, &co, 8).await;
    let abort = |id: &str| {
        Input::AbortAndRollback(RollbackRequest {
            order_id: id.into(),
            strategy: Strategy::Single,
        })
    };
    let refused = w.engine.control(&co, abort(&first), "test", "r1").await;
    assert!(refused.is_err(), "{refused:?}");
    let stored = w.store.get_change_order(&co).await.unwrap();
    assert_eq!(stored.status.code(), 8);
    assert!(!stored.is_finished());
    assert_eq!(
        w.store
            .get_application("app-1")
            .await
            .unwrap()
            .current_revision,
        2
    );

    let out = w
        .engine
        .control(&co, abort("rb-3"), "test", "r2")
        .await
        .unwrap();
    assert_eq!(
        (out.status, out.rollback_change_order.as_deref()),
        (6, Some("rb-3"))
    );
    assert_eq!(status(&w.store, &co).await, 6);
    wait_status(&w.store, "rb-3", 2).await;
    assert_eq!(
        w.store
            .get_change_order("rb-3")
            .await
            .unwrap()
            .creator
            .as_deref(),
        Some("test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_a_finished_order() {
    let w = world().await;
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(&w, &[]).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (2, 2));
    let out = w
        .engine
        .control(
            &co,
            Input::Rollback(RollbackRequest {
                order_id: "rb-2".into(),
                strategy: Strategy::Single,
            }),
            "test",
            "r",
        )
        .await
        .unwrap();
    assert_eq!(out.status, 2);
    wait_status(&w.store, "rb-2", 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    assert_eq!(w.fake.counts("app-1", "2"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_is_refused_and_scale_waits_its_turn() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(&w, &[("UpdateStrategy", GRAY_MANUAL)]).await;
    wait_status(&w.store, &co, 8).await;
    match submit(&w, Operation::ScaleK8sApplication, &[("Replicas", "1")]).await {
        Err(SubmitError::Conflict {
            active_change_order,
        }) => assert_eq!(active_change_order, co),
        other => panic!("{other:?}"),
    }
    let ids = pipeline_ids(&w.store, &co).await;
    continue_(&w, &co, &ids[1]).await;
    wait_status(&w.store, &co, 8).await;
    continue_(&w, &co, &ids[2]).await;
    wait_status(&w.store, &co, 2).await;
    // Scaling down resizes the serving revision; it replaces nothing.
    let scale = submit(&w, Operation::ScaleK8sApplication, &[("Replicas", "1")])
        .await
        .unwrap();
    wait_status(&w.store, &scale, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (1, 1));
    assert_eq!(w.fake.started("app-1", "2"), 3);
    // Stop and start.
    let stop = submit(&w, Operation::StopK8sApplication, &[])
        .await
        .unwrap();
    wait_status(&w.store, &stop, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (0, 0));
    assert_eq!(
        w.store.get_application("app-1").await.unwrap().state,
        "STOPPED"
    );
    let start = submit(&w, Operation::StartK8sApplication, &[])
        .await
        .unwrap();
    wait_status(&w.store, &start, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (1, 1));
}

/// Restarting the engine (a new process on the same store, instances kept) after every step of a
/// gray + batch release finishes exactly as an uninterrupted one: same final status and counts,
/// no instance started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_restart_at_every_step_resumes_exactly() {
    let mut w = world().await;
    let (_, co) = create(&w, 4).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(&w, &[("BatchWaitTime", "1"), ("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":3,"releaseType":"auto","batchWaitTime":0},"grayUpdate":{"gray":1}}"#)]).await;
    let mut restarts = 0;
    let mut last_version = 0;
    for round in 0..2000 {
        let rec = w.store.get_change_order(&co).await.unwrap();
        if rec.status.code() == 2 {
            break;
        }
        if rec.version != last_version {
            last_version = rec.version;
            // A new step was persisted: kill the engine and start another one.
            w.engine.shutdown().await;
            w.engine = engine(&w.store, &w.fake, &format!("w{round}"));
            restarts += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_status(&w.store, &co, 2).await;
    assert!(restarts >= 4, "only {restarts} restarts");
    assert_eq!(w.fake.counts("app-1", "2"), (4, 4));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
    assert_eq!(
        w.fake.started("app-1", "2"),
        4,
        "an instance was started twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_by_pipeline_and_task_ids_and_a_new_deploy_supersedes_a_failed_one() {
    let w = world().await;
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 2).await;
    let co = deploy(
        &w,
        &[(
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"}}"#,
        )],
    )
    .await;
    wait_status(&w.store, &co, 8).await;
    // ContinuePipeline names only a pipeline: the engine finds its change order.
    let ids = pipeline_ids(&w.store, &co).await;
    w.engine
        .continue_pipeline(&ids[1], true, "test", "r")
        .await
        .unwrap();
    wait_status(&w.store, &co, 2).await;
    assert!(
        w.engine
            .continue_pipeline("no-such-pipeline", true, "test", "r")
            .await
            .is_err()
    );

    // A failing release, retried by task id.
    w.fake.never_ready("3");
    let failing = deploy(&w, &[("Command", "/bin/app-v3"), ("BatchTimeout", "1")]).await;
    wait_status(&w.store, &failing, 3).await;
    let rec = w.store.get_change_order(&failing).await.unwrap();
    let order = rec.state;
    let task = order.pipelines()[0].stages[1].task.id.clone();
    w.engine.retry_task(&task, "test", "r").await.unwrap();
    wait_status(&w.store, &failing, 3).await;
    // A new deploy supersedes the failed order instead of being refused.
    let fixed = deploy(&w, &[("Command", "/bin/app-v4")]).await;
    wait_status(&w.store, &fixed, 2).await;
    assert!(
        w.store
            .get_change_order(&failing)
            .await
            .unwrap()
            .finished_at
            .is_some()
    );
    assert_eq!(w.fake.counts("app-1", "4"), (2, 2));
    // Leftovers of revisions other than the one released (the failed release's, and the one
    // before it) are stopped right after the order settles.
    for _ in 0..250 {
        if w.fake.counts("app-1", "2") == (0, 0) && w.fake.counts("app-1", "3") == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.fake.counts("app-1", "3"), (0, 0));
    assert_eq!(w.fake.counts("app-1", "2"), (0, 0));

    // Rollback to any earlier revision is a release of its own.
    let back = w
        .engine
        .rollback_to_revision(
            "app-1",
            2,
            edas_spec::ReleaseSettings::default(),
            "test",
            "r",
        )
        .await
        .unwrap();
    wait_status(&w.store, &back.change_order_id, 2).await;
    let app = w.store.get_application("app-1").await.unwrap();
    assert_eq!(app.spec.spec.command.as_deref(), Some("/bin/app-v2"));
}

/// Each release runs with the ConfigMap contents it was released with: a deploy after a
/// ConfigMap update replaces the instances with ones reading an immutable copy of the new
/// contents, and a rollback brings back the copy of the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_keep_their_own_config_map_contents() {
    let w = world().await;
    let put = |value: &'static str| {
        let store = w.store.clone();
        async move {
            let now = jiff::Timestamp::now();
            store
                .put_config_map(&edas_store::ConfigMap {
                    cluster_id: "local".into(),
                    k8s_namespace: "default".into(),
                    name: "conf".into(),
                    data: serde_json::json!({ "greeting": value }),
                    created_at: now,
                    updated_at: now,
                })
                .await
                .unwrap();
        }
    };
    put("v1").await;
    let envs =
        r#"[{"name":"GREETING","valueFrom":{"configMapKeyRef":{"name":"conf","key":"greeting"}}}]"#;
    let (_, created) = create_with(&w, 2, &[("Envs", envs)]).await;
    wait_status(&w.store, &created, 2).await;
    let used = |rev: &str| {
        let spec = w.fake.spec("app-1", rev).unwrap();
        spec.envs[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref()
            .unwrap()
            .name
            .clone()
    };
    let content = |name: String| {
        let store = w.store.clone();
        async move {
            store
                .get_config_map("local", "default", &name)
                .await
                .unwrap()
                .data["greeting"]
                .clone()
        }
    };
    // The runtime gets the copy's contents with the target (it never reads the store).
    let given = |rev: &str| {
        let config = w.fake.config("app-1", rev).unwrap();
        config.config_maps[&used(rev)]["greeting"].clone()
    };
    assert_eq!(used("1"), "conf.app-1.r1");
    assert_eq!(content(used("1")).await, "v1");
    assert_eq!(given("1"), "v1");

    // The same deploy twice without a ConfigMap change replaces nothing …
    let same = submit(&w, Operation::DeployK8sApplication, &[("Envs", envs)])
        .await
        .unwrap();
    wait_status(&w.store, &same, 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    // … after an update it releases a new template revision reading a copy of the new contents.
    put("v2").await;
    let updated = submit(&w, Operation::DeployK8sApplication, &[])
        .await
        .unwrap();
    wait_status(&w.store, &updated, 2).await;
    assert_eq!(w.fake.counts("app-1", "3"), (2, 2));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
    assert_eq!(used("3"), "conf.app-1.r3");
    assert_eq!(content(used("3")).await, "v2");
    assert_eq!(given("3"), "v2");
    // The old revision's copy is untouched; a rollback runs it again.
    assert_eq!(content("conf.app-1.r1".into()).await, "v1");
    let out = w
        .engine
        .control(
            &updated,
            Input::Rollback(RollbackRequest {
                order_id: "rb-cm".into(),
                strategy: Strategy::Single,
            }),
            "test",
            "r",
        )
        .await
        .unwrap();
    assert_eq!(out.rollback_change_order.as_deref(), Some("rb-cm"));
    wait_status(&w.store, "rb-cm", 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    assert_eq!(used("1"), "conf.app-1.r1");
    assert_eq!(given("1"), "v1");
    // The user's own ConfigMap was never touched.
    assert_eq!(content("conf".into()).await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gray_split_follows_the_gray_batch_and_services_follow_the_revision() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.routing("app-1"), None, "no Services, nothing routed");

    let services = r#"[{"name":"web","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":18080,"targetPort":8080,"protocol":"TCP"}}]}]"#;
    let app = w.store.get_application("app-1").await.unwrap();
    let mut doc = app.spec;
    doc.spec.services = serde_json::from_str(services).unwrap();
    let change = edas_spec::Change {
        operation: Operation::DeployK8sApplication,
        app_id: Some("app-1".into()),
        region_id: None,
        force: false,
        spec: {
            let mut s = doc.spec.clone();
            s.command = Some("/bin/app-v2".into());
            s
        },
        release: edas_spec::ReleaseSettings {
            strategy: Some(
                serde_json::from_value(serde_json::json!({
                    "kind": "GrayBatchUpdate", "gray": 1, "batches": 2,
                    "release_type": "manual", "batch_wait_minutes": 0
                }))
                .unwrap(),
            ),
            traffic_control: Some(
                serde_json::from_value(serde_json::json!({
                    "rules": [{"condition_type": "percent", "percent": 20}]
                }))
                .unwrap(),
            ),
            ..Default::default()
        },
    };
    let co = w
        .engine
        .submit(Submission {
            app_id: "app-1".into(),
            change,
            actor: "test".into(),
            request_id: "r".into(),
        })
        .await
        .unwrap()
        .change_order_id;
    wait_status(&w.store, &co, 8).await;
    let routing = w.fake.routing("app-1").expect("routed");
    assert_eq!(routing.services.len(), 1);
    let gray = routing
        .gray
        .expect("gray split while waiting after the gray batch");
    assert_eq!(
        (gray.stable_revision.as_str(), gray.gray_revision.as_str()),
        ("1", "2")
    );
    let ids = pipeline_ids(&w.store, &co).await;
    continue_(&w, &co, &ids[1]).await;
    wait_status(&w.store, &co, 8).await;
    assert_eq!(
        w.fake.routing("app-1").expect("routed").gray,
        None,
        "the split ends when batch 2 starts"
    );
    continue_(&w, &co, &ids[2]).await;
    wait_status(&w.store, &co, 2).await;
    let routing = w.fake.routing("app-1").expect("routed");
    assert_eq!((routing.services.len(), routing.gray), (1, None));

    // A new engine (edasd restarting) restores the routing of an idle application.
    let fresh = FakeRuntime::new(Duration::from_millis(100));
    let e2 = engine(&w.store, &fresh, "w2");
    for _ in 0..250 {
        if fresh.routing("app-1").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fresh.routing("app-1").map(|r| r.services.len()), Some(1));
    e2.shutdown().await;
}

/// Waits until `check` holds; panics after 30 seconds.
async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_application_is_deleted_without_scaling_up() {
    let w = world().await;
    w.fake.fail(
        "1",
        "CrashLoopBackOff: back-off restarting failed container",
    );
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 3).await;
    let del = submit(&w, Operation::DeleteK8sApplication, &[])
        .await
        .unwrap();
    wait_status(&w.store, &del, 2).await;
    assert!(w.store.get_application("app-1").await.unwrap().deleted);
    // The deletion only ever scaled down.
    let after_delete: Vec<_> = w
        .fake
        .log()
        .into_iter()
        .skip_while(|(_, e)| {
            !matches!(
                e,
                edas_runtime::fake::LogEntry::SetReplicas { replicas: 0, .. }
            )
        })
        .filter_map(|(_, e)| match e {
            edas_runtime::fake::LogEntry::SetReplicas { replicas, .. } => Some(replicas),
            _ => None,
        })
        .collect();
    assert!(after_delete.iter().all(|r| *r == 0), "{after_delete:?}");
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
    // And the cluster was swept of everything labelled with the application.
    wait_until("the sweep", async || {
        w.fake.deleted() == vec![("app-1".to_owned(), false)]
    })
    .await;
    wait_until("the sweep to be forgotten", async || {
        w.store.sweep_of("app-1").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_deletes_at_once_and_ends_the_running_order() {
    let w = world().await;
    w.fake.never_ready("1");
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 1).await;
    let del = submit(&w, Operation::DeleteK8sApplication, &[("Force", "true")])
        .await
        .unwrap();
    // Settled before the call returned: no waiting for instances.
    assert_eq!(status(&w.store, &del).await, 2);
    assert!(w.store.get_application("app-1").await.unwrap().deleted);
    assert_eq!(status(&w.store, &co).await, 6);
    wait_until("the forced sweep", async || {
        w.fake.deleted() == vec![("app-1".to_owned(), true)]
    })
    .await;
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_cluster_refuses_writes_and_sweeps_a_deletion_when_it_returns() {
    let w = world().await;
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 2).await;
    w.fake.set_unavailable(true);
    let refused = submit(&w, Operation::StopK8sApplication, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, SubmitError::Unavailable(ref m) if m.contains("unavailable")),
        "{refused:?}"
    );
    let del = submit(&w, Operation::DeleteK8sApplication, &[])
        .await
        .unwrap();
    assert_eq!(status(&w.store, &del).await, 2);
    assert!(w.store.get_application("app-1").await.unwrap().deleted);
    // Owed while the cluster is away, and nothing was swept.
    let owed = w.store.pending_sweeps("local").await.unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.fake.deleted().is_empty());
    assert_eq!(w.fake.counts("app-1", "1"), (2, 2));
    // The cluster answers again: the sweep runs then.
    w.fake.set_unavailable(false);
    wait_until("the sweep after the outage", async || {
        w.store.pending_sweeps("local").await.unwrap().is_empty()
    })
    .await;
    assert_eq!(w.fake.deleted(), vec![("app-1".to_owned(), false)]);
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_owed_at_start_up_runs_when_the_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(100));
    fake.set_unavailable(true);
    {
        let w = World {
            store: store.clone(),
            fake: fake.clone(),
            engine: engine(&store, &fake, "w1"),
            _dir: tempfile::tempdir().unwrap(),
        };
        fake.set_unavailable(false);
        let (_, co) = create(&w, 1).await;
        wait_status(&store, &co, 2).await;
        fake.set_unavailable(true);
        submit(&w, Operation::DeleteK8sApplication, &[])
            .await
            .unwrap();
        w.engine.shutdown().await;
    }
    assert_eq!(store.pending_sweeps("local").await.unwrap().len(), 1);
    fake.set_unavailable(false);
    let _engine = engine(&store, &fake, "w2");
    wait_until("the sweep owed before the restart", async || {
        store.pending_sweeps("local").await.unwrap().is_empty()
    })
    .await;
    assert_eq!(fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_aborts_a_release_still_waiting_for_its_instances() {
    let w = world().await;
    w.fake.never_ready("1");
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 1).await;
    let del = submit(&w, Operation::DeleteK8sApplication, &[])
        .await
        .unwrap();
    wait_status(&w.store, &del, 2).await;
    assert_eq!(status(&w.store, &co).await, 6);
    assert!(w.store.get_application("app-1").await.unwrap().deleted);
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_of_a_cluster_that_does_not_answer_is_restored_when_it_does() {
    let w = world().await;
    let (_, co) = create(&w, 1).await;
    wait_status(&w.store, &co, 2).await;
    let co = submit(
        &w,
        Operation::CreateK8sService,
        &[
            ("Name", "web"),
            ("Type", "ClusterIP"),
            (
                "ServicePorts",
                r#"[{"port":18080,"targetPort":8080,"protocol":"TCP"}]"#,
            ),
        ],
    )
    .await
    .unwrap();
    wait_status(&w.store, &co, 2).await;
    assert!(w.fake.routing("app-1").is_some());
    w.engine.shutdown().await;

    // edasd restarts while the cluster does not answer, and its routing is gone there.
    w.fake.set_unavailable(true);
    let fresh = FakeRuntime::new(Duration::from_millis(100));
    fresh.set_unavailable(true);
    let engine = engine(&w.store, &fresh, "w2");
    // Nothing is routed while it does not answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fresh.routing("app-1"), None);
    fresh.set_unavailable(false);
    wait_until("the routing restored", async || {
        fresh.routing("app-1").is_some()
    })
    .await;
    engine.shutdown().await;
}

/// A write the runtime did not answer, or applied but whose answer was lost, is tried again
/// with back-off instead of failing the order; being idempotent, it never doubles an instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transiently_failed_write_is_retried() {
    use edas_runtime::fake::WriteFault;
    for fault in [WriteFault::NoAnswer, WriteFault::LostAnswer] {
        let w = world().await;
        w.fake.fail_writes(3, fault.clone());
        let (_, co) = create(&w, 2).await;
        wait_status(&w.store, &co, 2).await;
        assert_eq!(w.fake.write_faults_left(), 0, "{fault:?}");
        assert_eq!(w.fake.counts("app-1", "1"), (2, 2), "{fault:?}");
        assert_eq!(w.fake.started("app-1", "1"), 2, "{fault:?}");
    }
}

/// A runtime's permanent refusal still fails the order at once, with the runtime's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_the_order_with_the_reason() {
    let w = world().await;
    w.fake.fail_writes(
        1,
        edas_runtime::fake::WriteFault::Refused("exceeded quota: pods=10".into()),
    );
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 10).await;
    let state = w.store.get_change_order(&co).await.unwrap().state;
    assert!(
        format!("{state:?}").contains("exceeded quota: pods=10"),
        "{state:?}"
    );
}

/// An observation that fails is tried again with back-off: the release sees its ready
/// instance without waiting for another event or its batch timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_observation_is_retried() {
    let w = world().await;
    w.fake.never_ready("1");
    let (_, co) = create(&w, 1).await;
    wait_status(&w.store, &co, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The one event of the instance becoming ready finds the runtime not answering.
    w.fake.fail_observes(1);
    w.fake.clear_never_ready("1");
    let started = std::time::Instant::now();
    wait_status(&w.store, &co, 2).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Issue 24: an autoscaled application's gray + batch release plans against the count its
/// autoscaler wants (5, not the stored 3), ends with that many instances of the new revision,
/// and points the autoscaler at the new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_release_keeps_the_autoscalers_count_and_retargets_it() {
    let w = world().await;
    let (_, co) = create(&w, 3).await;
    wait_status(&w.store, &co, 2).await;
    let now = jiff::Timestamp::now();
    let rule = edas_store::ScalingRule {
        app_id: "app-1".into(),
        name: "cpu".into(),
        enabled: true,
        min_replicas: 2,
        max_replicas: 6,
        doc: edas_store::ScalingRuleDoc {
            metrics: vec![edas_store::ScalingMetric {
                kind: "CPU".into(),
                target_utilization: 60,
            }],
            scale_up: None,
            scale_down: None,
        },
        created_at: now,
        updated_at: now,
        last_disabled_at: None,
    };
    let audit = edas_store::AuditEntry {
        actor: "test".into(),
        action: "CreateApplicationScalingRule".into(),
        resource: "application/app-1/scaling-rule/cpu".into(),
        app_id: Some("app-1".into()),
        request_id: Some("r".into()),
        detail: serde_json::json!({}),
    };
    w.store
        .put_scaling_rule(&rule, true, &audit, now)
        .await
        .unwrap();
    let app = edas_runtime::AppRef {
        id: "app-1".into(),
        name: "demo".into(),
        namespace: "default".into(),
    };
    use edas_runtime::Runtime;
    w.fake
        .set_autoscaling(
            &app,
            Some(&edas_runtime::Autoscaling {
                revision: "1".into(),
                rule: edas_engine::autoscaling::autoscaler(&rule),
                held: false,
            }),
        )
        .await
        .unwrap();
    w.fake.autoscale("app-1", 5);
    let co = deploy(&w, &[("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0},"grayUpdate":{"gray":1}}"#)]).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "2"), (5, 5));
    assert_eq!(w.fake.counts("app-1", "1"), (0, 0));
    let order = w.store.get_change_order(&co).await.unwrap().state;
    assert_eq!(order.pipelines().len(), 3, "gray + 2 batches");
    // Pointed at the new revision and resumed once the order ended (in the background).
    wait_until("the autoscaler is retargeted", async || {
        w.fake
            .autoscaling("app-1")
            .is_some_and(|a| a.revision == "2" && !a.held)
    })
    .await;
    let autoscaling = w.fake.autoscaling("app-1").unwrap();
    assert_eq!(autoscaling.rule.max_replicas, 6);
    // A change that sets the count itself keeps it.
    let co = submit(&w, Operation::ScaleK8sApplication, &[("Replicas", "2")])
        .await
        .unwrap();
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.counts("app-1", "2").1, 2);
}

/// Issue 24: an autoscaler's decision becomes a Scale change order created by `autoscaler`
/// with the reason in its description, carried out like any other; the autoscaler is held
/// while an order runs and resumes when it ends; a decision while an order runs, for another
/// revision, or without an enabled rule is dropped (the autoscaler decides again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaler_decisions_become_change_orders_and_releases_hold_the_autoscaler() {
    let w = world().await;
    let (_, co) = create(&w, 2).await;
    wait_status(&w.store, &co, 2).await;
    let decision = |from: u32, to: u32, revision: &str| edas_runtime::ScaleDecision {
        app_id: "app-1".into(),
        revision: revision.into(),
        from,
        to,
        reason: "qps 30.0/s per instance > target 10/s".into(),
        applied: false,
    };
    let orders = async |w: &World| {
        w.store
            .list_change_orders("app-1", edas_store::PageRequest::new(1, 50))
            .await
            .unwrap()
            .items
    };
    // No enabled rule: dropped.
    w.fake.decide(decision(2, 4, "1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(orders(&w).await.len(), 1);

    let now = jiff::Timestamp::now();
    let mut rule = edas_store::ScalingRule {
        app_id: "app-1".into(),
        name: "rps".into(),
        enabled: true,
        min_replicas: 1,
        max_replicas: 3,
        doc: edas_store::ScalingRuleDoc {
            metrics: vec![edas_store::ScalingMetric {
                kind: "QPS".into(),
                target_utilization: 10,
            }],
            scale_up: None,
            scale_down: None,
        },
        created_at: now,
        updated_at: now,
        last_disabled_at: None,
    };
    let audit = edas_store::AuditEntry {
        actor: "test".into(),
        action: "CreateApplicationScalingRule".into(),
        resource: "application/app-1/scaling-rule/rps".into(),
        app_id: Some("app-1".into()),
        request_id: Some("r".into()),
        detail: serde_json::json!({}),
    };
    w.store
        .put_scaling_rule(&rule, true, &audit, now)
        .await
        .unwrap();
    // Another revision: dropped. Then 2 → 4, clamped to the rule's 3.
    w.fake.decide(decision(2, 4, "9"));
    w.fake.decide(decision(2, 4, "1"));
    let scale = loop {
        let list = orders(&w).await;
        if let Some(o) = list
            .iter()
            .find(|o| o.creator.as_deref() == Some("autoscaler"))
        {
            break o.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        scale.state.description(),
        "autoscaler: 2 → 3 (qps 30.0/s per instance > target 10/s)"
    );
    assert_eq!(scale.co_type, "CoScale");
    wait_status(&w.store, &scale.id, 2).await;
    assert_eq!(w.fake.counts("app-1", "1"), (3, 3));
    assert_eq!(orders(&w).await.len(), 2);
    let events = w
        .store
        .events_after(
            &edas_store::EventScope::ChangeOrder(scale.id.clone()),
            0,
            1000,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect::<Vec<_>>();
    assert!(events.iter().any(|k| k == "scaling"), "{events:?}");
    // Resumed when the order ended.
    wait_until("the autoscaler resumes", async || {
        w.fake.autoscaling("app-1").is_some_and(|a| !a.held)
    })
    .await;

    // A release holds it: a manual gray batch waits, the autoscaler is held, and a decision
    // meanwhile is dropped.
    let co = deploy(&w, &[("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":1,"releaseType":"manual","batchWaitTime":0},"grayUpdate":{"gray":1}}"#)]).await;
    wait_status(&w.store, &co, 8).await;
    let held = w.fake.autoscaling("app-1").unwrap();
    assert!(held.held);
    assert_eq!(held.revision, "1");
    w.fake.decide(decision(3, 1, "1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(orders(&w).await.len(), 3);
    let pipeline = pipeline_ids(&w.store, &co).await[1].clone();
    continue_(&w, &co, &pipeline).await;
    wait_status(&w.store, &co, 2).await;
    wait_until("the autoscaler resumes on revision 3", async || {
        w.fake
            .autoscaling("app-1")
            .is_some_and(|a| !a.held && a.revision == "3")
    })
    .await;
    assert_eq!(w.fake.counts("app-1", "3"), (3, 3));
    // Disabled: a decision is dropped.
    rule.enabled = false;
    w.store
        .put_scaling_rule(&rule, false, &audit, now)
        .await
        .unwrap();
    w.fake.decide(decision(3, 1, "3"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(orders(&w).await.len(), 3);
}

/// A change order that only changes Services reads success only once they are in place: the
/// first time a client sees status 2, the routing is there, even when applying it needed retries
/// (the finished order's routing is applied before the success is persisted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_change_reads_success_only_once_its_routing_is_applied() {
    use edas_runtime::fake::WriteFault;
    let service = [
        ("Name", "web"),
        ("Type", "ClusterIP"),
        (
            "ServicePorts",
            r#"[{"port":18081,"targetPort":8080,"protocol":"TCP"}]"#,
        ),
    ];
    let w = world().await;
    let (_, co) = create(&w, 1).await;
    wait_status(&w.store, &co, 2).await;
    assert_eq!(w.fake.routing("app-1"), None);
    w.fake.fail_writes(2, WriteFault::NoAnswer);
    let co = submit(&w, Operation::CreateK8sService, &service)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = status(&w.store, &co).await;
        if seen == 2 {
            // Read right after the first observation of success.
            let routing = w.fake.routing("app-1");
            assert_eq!(
                routing.map(|r| r.services.len()),
                Some(1),
                "status 2 before its Service existed"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at status {seen}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(w.fake.write_faults_left(), 0);

    // A refusal fails the order, naming the routing, instead of reading success.
    let w = world().await;
    let (_, co) = create(&w, 1).await;
    wait_status(&w.store, &co, 2).await;
    w.fake
        .fail_writes(1, WriteFault::Refused("ports clash".into()));
    let co = submit(&w, Operation::CreateK8sService, &service)
        .await
        .unwrap();
    wait_status(&w.store, &co, 10).await;
    let failed = w.store.get_change_order(&co).await.unwrap();
    let message = failed.state.message().unwrap_or_default().to_owned();
    assert!(
        message.contains("routing traffic") && message.contains("ports clash"),
        "{message}"
    );
}
