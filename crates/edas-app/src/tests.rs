//! The layer's queries and commands on a real SQLite store with the fake runtime.

use std::sync::Arc;
use std::time::Duration;

use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes};
use edas_runtime::fake::FakeRuntime;
use edas_spec::{Operation, Params, apply};
use edas_store::{Application, ApplicationFilter, AuditQuery, PageRequest, Store};

use crate::{
    Abort, Actor, App, AppError, FixedNamespaces, LocalUse, ObjectKind, ObjectRef, local_use,
    service_address,
};

/// The namespaces of the tests' configuration: the region's default one only.
fn fixed() -> FixedNamespaces<'static> {
    FixedNamespaces {
        region_id: "cn-hangzhou",
        configured: &[],
    }
}

struct World {
    app: App,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let engine = Engine::new(
        store.clone(),
        Runtimes::new().with(
            "local",
            Arc::new(FakeRuntime::new(Duration::from_millis(1))),
        ),
        EngineConfig::default(),
    );
    World {
        app: App::new(store, engine),
        _dir: dir,
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// Creates application `app-1` through the engine; returns its change order.
async fn create(w: &World) -> String {
    create_named(w, "app-1", "demo").await
}

/// Creates application `id` named `name` through the engine; returns its change order.
async fn create_named(w: &World, id: &str, name: &str) -> String {
    create_in(w, id, name, "cn-hangzhou").await
}

/// Creates application `id` named `name` in EDAS namespace `namespace`; returns its change
/// order.
async fn create_in(w: &World, id: &str, name: &str, namespace: &str) -> String {
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", name),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
        ]),
    )
    .unwrap();
    w.app
        .engine()
        .create_application(CreateApplication {
            app_id: id.into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: namespace.into(),
            namespace_stored: false,
            change,
            actor: "alice (AK1)".into(),
            request_id: "req-1".into(),
        })
        .await
        .unwrap()
        .change_order_id
}

#[tokio::test]
async fn a_page_of_applications_reads_only_what_it_needs() {
    let w = world().await;
    for i in 0..5 {
        create_named(&w, &format!("app-{i}"), &format!("demo{i}")).await;
    }
    let page = async |number, size, keep: &dyn Fn(&Application) -> bool| {
        let apps = w
            .app
            .application_page(&ApplicationFilter::default(), number, size, keep)
            .await
            .unwrap();
        apps.into_iter().map(|a| a.name).collect::<Vec<_>>()
    };
    let all = |_: &Application| true;
    assert_eq!(page(2, Some(2), &all).await, ["demo2", "demo3"]);
    assert_eq!(page(3, Some(2), &all).await, ["demo4"]);
    assert!(page(4, Some(2), &all).await.is_empty());
    assert_eq!(page(1, None, &all).await.len(), 5);
    assert!(page(2, None, &all).await.is_empty());
    // What `keep` refuses is not counted.
    let odd = |a: &Application| a.name.ends_with(['1', '3']);
    assert_eq!(page(1, Some(1), &odd).await, ["demo1"]);
    assert_eq!(page(2, Some(1), &odd).await, ["demo3"]);
    assert!(page(3, Some(1), &odd).await.is_empty());
    // Nothing past the page is read.
    let asked = std::cell::Cell::new(0);
    let counting = |_: &Application| {
        asked.set(asked.get() + 1);
        true
    };
    assert_eq!(page(1, Some(2), &counting).await, ["demo0", "demo1"]);
    assert_eq!(asked.get(), 2);
}

#[tokio::test]
async fn an_unknown_application_is_not_found_naming_its_id() {
    let w = world().await;
    for result in [
        w.app.application("nope").await,
        w.app.application_with_history("nope").await,
    ] {
        match result {
            Err(AppError::ApplicationNotFound(message)) => assert!(message.contains("`nope`")),
            other => panic!("expected ApplicationNotFound, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_change_order_is_read_with_its_state_and_application() {
    let w = world().await;
    let id = create(&w).await;
    let view = w.app.change_order(&id).await.unwrap();
    assert_eq!(view.stored.id, id);
    assert_eq!(view.app.id, "app-1");
    assert_eq!(view.app, w.app.application("app-1").await.unwrap());
    let listed = w.app.change_orders("app-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(matches!(
        w.app.change_order("nope").await,
        Err(AppError::ChangeOrderNotFound(m)) if m.contains("`nope`")
    ));
}

#[tokio::test]
async fn the_audit_trail_names_the_actor_and_request() {
    let w = world().await;
    create(&w).await;
    let query = AuditQuery {
        app_id: Some("app-1".into()),
        from: None,
        to: None,
    };
    let page = w.app.audit(&query, PageRequest::new(1, 10)).await.unwrap();
    assert!(
        page.items
            .iter()
            .any(|r| r.entry.actor == "alice (AK1)"
                && r.entry.request_id.as_deref() == Some("req-1")),
        "{:?}",
        page.items
    );
}

fn actor() -> Actor {
    Actor {
        name: "alice (AK1)".into(),
        request_id: "req-2".into(),
    }
}

#[tokio::test]
async fn abort_stops_an_order_once_and_a_second_abort_is_refused_by_status() {
    let w = world().await;
    let id = create(&w).await;
    assert_eq!(w.app.abort(&id, Abort::Only, &actor()).await.unwrap(), id);
    assert!(
        matches!(
            w.app.abort(&id, Abort::Only, &actor()).await,
            Err(AppError::InvalidStatus(_))
        ),
        "a finished order cannot be aborted again"
    );
    assert!(matches!(
        w.app.abort("nope", Abort::Only, &actor()).await,
        Err(AppError::ChangeOrderNotFound(_))
    ));
}

#[tokio::test]
async fn an_unknown_pipeline_or_task_names_what_was_not_found() {
    let w = world().await;
    create(&w).await;
    match w.app.order_of_pipeline("p-x").await {
        Err(AppError::ChangeOrderNotFound(m)) => assert!(m.contains("`p-x`"), "{m}"),
        other => panic!("expected ChangeOrderNotFound, got {other:?}"),
    }
    match w.app.order_of_task("t-x").await {
        Err(AppError::ChangeOrderNotFound(m)) => assert!(m.contains("`t-x`"), "{m}"),
        other => panic!("expected ChangeOrderNotFound, got {other:?}"),
    }
    assert!(matches!(
        w.app.retry_task("t-x", &actor()).await,
        Err(AppError::ChangeOrderNotFound(_))
    ));
}

async fn world_with_local_cluster() -> World {
    let w = world().await;
    let now = jiff::Timestamp::now();
    w.app
        .store()
        .put_cluster(&edas_store::Cluster {
            id: "local".into(),
            name: "local".into(),
            region_id: "cn-hangzhou".into(),
            cluster_type: "local".into(),
            config: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    w
}

fn insert_change(name: &str, extra: &[(&str, &str)]) -> edas_spec::Change {
    let mut all = vec![
        ("AppName", name),
        ("ClusterId", "local"),
        ("Command", "/bin/app"),
    ];
    all.extend_from_slice(extra);
    apply(Operation::InsertK8sApplication, None, &params(&all)).unwrap()
}

const SERVICE_8080: &str = r#"[{"name":"web","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":8080,"targetPort":80,"protocol":"TCP"}}]}]"#;

#[tokio::test]
async fn insert_refuses_an_unregistered_cluster_naming_the_known_ones() {
    let w = world_with_local_cluster().await;
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "a"),
            ("ClusterId", "elsewhere"),
            ("Command", "/x"),
        ]),
    )
    .unwrap();
    match w.app.insert(fixed(), "cn-hangzhou", change, &actor()).await {
        Err(AppError::Invalid(v)) => {
            assert!(v.names("ClusterId"), "{v}");
            assert!(v.to_string().contains("clusters: local"), "{v}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn on_local_a_service_port_belongs_to_one_application() {
    let w = world_with_local_cluster().await;
    let first = insert_change("a", &[("ServiceConfigs", SERVICE_8080)]);
    let created = w
        .app
        .insert(fixed(), "cn-hangzhou", first, &actor())
        .await
        .unwrap();
    let app = w.app.application(&created.app_id).await.unwrap();
    assert_eq!(app.name, "a");
    let second = insert_change("b", &[("ServiceConfigs", SERVICE_8080)]);
    match w.app.insert(fixed(), "cn-hangzhou", second, &actor()).await {
        Err(AppError::Invalid(v)) => {
            assert!(v.names("ServiceConfigs"), "{v}");
            assert!(v.to_string().contains("port 8080"), "{v}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_change_while_another_is_active_is_a_conflict_naming_it() {
    let w = world_with_local_cluster().await;
    let created = w
        .app
        .insert(fixed(), "cn-hangzhou", insert_change("a", &[]), &actor())
        .await
        .unwrap();
    let app = w.app.application(&created.app_id).await.unwrap();
    let current = &app.spec.spec;
    let change = apply(
        Operation::ScaleK8sApplication,
        Some(current),
        &params(&[("AppId", &app.id), ("Replicas", "3")]),
    )
    .unwrap();
    match w.app.change(&app, current, change, &actor()).await {
        Err(AppError::Conflict(m)) => assert!(m.contains(&created.change_order_id), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[test]
fn local_use_asks_for_the_host_path_grant_only_for_a_new_path() {
    let plain = insert_change("a", &[]).spec;
    assert_eq!(local_use(None, &plain), LocalUse::Cluster);
    let package = insert_change(
        "a",
        &[
            ("PackageUrl", "file:///srv/app.jar"),
            ("PackageVersion", "1"),
        ],
    )
    .spec;
    assert_eq!(local_use(None, &package), LocalUse::ClusterAndNewHostPath);
    assert_eq!(local_use(Some(&package), &package), LocalUse::Cluster);
    let mut elsewhere = plain.clone();
    elsewhere.cluster_id = "k8s-1".into();
    assert_eq!(local_use(None, &elsewhere), LocalUse::None);
}

#[tokio::test]
async fn clusters_describe_local_as_this_host_and_an_unknown_one_lists_the_known() {
    let w = world_with_local_cluster().await;
    let clusters = w.app.clusters().await.unwrap();
    assert_eq!(clusters.len(), 1);
    let local = &clusters[0];
    assert_eq!(
        (local.nodes, local.import_status, local.cluster_status),
        (1, 1, 1)
    );
    assert_eq!(local.provider, "local");
    assert!(!local.unreachable());
    assert_eq!(
        w.app.namespaces_of(&local.cluster).await.unwrap(),
        ["default"]
    );
    assert!(w.app.find_cluster("elsewhere").await.unwrap().is_none());
    match w.app.cluster("elsewhere").await {
        Err(AppError::Invalid(v)) => assert!(v.to_string().contains("clusters: local"), "{v}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_kubernetes_cluster_says_where_and_why() {
    let w = world().await;
    let now = jiff::Timestamp::now();
    w.app
        .store()
        .put_cluster(&edas_store::Cluster {
            id: "k1".into(),
            name: "k1".into(),
            region_id: "cn-hangzhou".into(),
            cluster_type: "kubernetes".into(),
            config: serde_json::json!({"status": {
                "import_status": 2, "cluster_status": 3,
                "api_server": "https://10.0.0.1:6443", "error": "connection refused",
                "missing_rights": ["list nodes"]
            }}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let info = w.app.cluster("k1").await.unwrap();
    assert!(info.unreachable());
    assert_eq!(info.cs_status(), "failed");
    assert_eq!(info.address(), "API server https://10.0.0.1:6443");
    assert_eq!(
        info.description,
        "kubernetes cluster, API server https://10.0.0.1:6443, unreachable: connection refused; edasd lacks the rights: list nodes (deploy/rbac.yaml lists every right it needs)"
    );
    assert_eq!(service_address("k1"), None);
    assert_eq!(service_address("local"), Some("127.0.0.1"));
}

#[tokio::test]
async fn observing_an_application_on_a_cluster_without_runtime_says_so() {
    let w = world().await;
    create(&w).await;
    let mut app = w.app.application("app-1").await.unwrap();
    let on_local = w.app.observe(&app).await;
    assert_eq!(on_local.unknown, None, "the fake runtime answers");
    assert_eq!(on_local.running(), 0, "nothing released yet");
    app.cluster_id = "gone".into();
    let observed = w.app.observe(&app).await;
    assert!(observed.instances.is_empty());
    assert_eq!(
        observed.unknown.as_deref(),
        Some("cluster `gone` has no runtime on this server")
    );
    assert_eq!(w.app.revisions("app-1").await.unwrap().len(), 1);
    let all = w.app.applications(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    let elsewhere = edas_store::ApplicationFilter {
        cluster_id: Some("k1".into()),
        ..Default::default()
    };
    assert!(w.app.applications(&elsewhere).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_config_map_is_created_once_listed_audited_and_deleted_once() {
    let w = world_with_local_cluster().await;
    let at = ObjectRef {
        kind: ObjectKind::ConfigMap,
        cluster_id: "local".into(),
        namespace: "default".into(),
        name: "web".into(),
    };
    let data = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let now = jiff::Timestamp::now();
    let who = actor();
    let put = |create| {
        w.app
            .put_config(&at, data.clone(), create, "CreateK8sConfigMap", &who, now)
    };
    put(true).await.unwrap();
    assert!(
        matches!(put(true).await, Err(AppError::AlreadyExists(m)) if m.contains("UpdateK8sConfigMap"))
    );
    put(false).await.unwrap();
    let listed = w.app.configs(ObjectKind::ConfigMap, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].at.clone(), listed[0].cluster_name.as_str()),
        (at.clone(), "local")
    );
    assert!(
        w.app
            .configs(ObjectKind::Secret, Some("local"))
            .await
            .unwrap()
            .is_empty()
    );
    let trail = w
        .app
        .audit(&AuditQuery::default(), PageRequest::new(1, 10))
        .await
        .unwrap();
    assert!(
        trail
            .items
            .iter()
            .all(|r| r.entry.resource == "configmap/local/default/web")
    );
    assert_eq!(
        trail.items[0].entry.detail,
        serde_json::json!({"keys": ["k"]})
    );
    w.app
        .delete_config(&at, "DeleteK8sConfigMap", &actor(), now)
        .await
        .unwrap();
    assert!(matches!(
        w.app.delete_config(&at, "DeleteK8sConfigMap", &actor(), now).await,
        Err(AppError::EntityNotFound(m)) if m.contains("`web`")
    ));
}
mod catalog;
mod ingress;

#[tokio::test]
async fn a_release_policy_is_refused_what_the_applications_cluster_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(1));
    let engine = Engine::new(
        store.clone(),
        Runtimes::new()
            .with("local", Arc::new(fake.clone()))
            .with("k1", Arc::new(fake)),
        EngineConfig::default(),
    );
    let app = App::new(store, engine);
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "kube"),
            ("ClusterId", "k1"),
            ("ImageUrl", "nginx:1"),
        ]),
    )
    .unwrap();
    app.engine()
        .create_application(CreateApplication {
            app_id: "app-k".into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            namespace_stored: false,
            change,
            actor: "t".into(),
            request_id: "r".into(),
        })
        .await
        .unwrap();
    let actor = Actor {
        name: "t".into(),
        request_id: "r".into(),
    };
    let check = |provider: &str| {
        format!(
            "checks:\n  - name: c\n    provider: {provider}\n    successCondition: result < 1\n    interval: 1s\n    count: 1\n    when: gray\n"
        )
    };
    let refused = |e: AppError| match e {
        AppError::Invalid(v) => v.0.into_iter().map(|v| v.parameter).collect::<Vec<_>>(),
        other => panic!("{other}"),
    };
    // The local proxy's traffic does not exist on Kubernetes.
    let e = app
        .set_release_policy(
            "app-k",
            &check("{traffic: {metric: errorRate}}"),
            &actor,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused(e), ["checks[0].provider.traffic"]);
    // A Prometheus check needs a server: edasd has none configured here.
    let e = app
        .set_release_policy(
            "app-k",
            &check("{prometheus: {query: 'up'}}"),
            &actor,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused(e), ["checks[0].provider.prometheus.address"]);
    assert!(
        app.release_policy_history("app-k")
            .await
            .unwrap()
            .is_empty()
    );
    // With its own address it is stored as version 1.
    let stored = app
        .set_release_policy(
            "app-k",
            &check("{prometheus: {query: 'up', address: 'http://127.0.0.1:9090'}}"),
            &actor,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    let e = app
        .set_release_policy(
            "nope",
            &check("{health: {metric: restarts}}"),
            &actor,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::ApplicationNotFound(_)), "{e}");
}
