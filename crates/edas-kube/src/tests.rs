//! The runtime against the in-process fake API server (`edas-fake-kube`): applies, watches,
//! observes and cleans up as the release engine needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use edas_fake_kube::{Config, FakeCluster, PodFault};
use edas_runtime::{Routing, Runtime, RuntimeError, Target};
use edas_spec::AppSpec;
use edas_spec::model::{PortMapping, ServiceConfig, ServicePort};
use edas_spec::release::{TrafficControl, TrafficRule};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::json;

use super::*;

/// Every wait gives up after this long.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct MemSettled {
    /// What the store says a revision runs (`settled_replicas`), by (app id, revision).
    settled: Mutex<HashMap<(String, String), SettledReplicas>>,
}

impl Settled for MemSettled {
    fn settled_replicas<'a>(
        &'a self,
        app_id: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<SettledReplicas, String>> {
        let found = self
            .settled
            .lock()
            .unwrap()
            .get(&(app_id.to_owned(), revision.to_owned()))
            .copied();
        Box::pin(async move { Ok(found.unwrap_or(SettledReplicas::Unknown)) })
    }
}

/// An application of the tests by id (name and namespace matter to routing only).
fn app_ref(id: &str) -> AppRef {
    AppRef {
        id: id.to_owned(),
        name: "demo".into(),
        namespace: "apps".into(),
    }
}

async fn fake(gateway_api: bool) -> FakeCluster {
    FakeCluster::start(Config {
        pod_ready_delay: Duration::from_millis(100),
        gateway_api,
        ..Config::default()
    })
    .await
    .unwrap()
}

async fn runtime(cluster: &FakeCluster, gateway: bool) -> (KubeRuntime, Arc<MemSettled>) {
    let mut options = Options::new("fake");
    options.gateway = gateway.then(|| GatewayRef {
        namespace: "infra".into(),
        name: "gw".into(),
    });
    runtime_with(cluster, options).await
}

async fn runtime_with(cluster: &FakeCluster, options: Options) -> (KubeRuntime, Arc<MemSettled>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&path, "default").unwrap();
    let client = connect(&ClusterAccess::Kubeconfig {
        path: Some(path),
        context: None,
    })
    .await
    .unwrap();
    let directory = Arc::new(MemSettled::default());
    let rt = KubeRuntime::start(client.clone(), directory.clone(), options);
    (rt, directory)
}

fn spec(name: &str) -> Arc<AppSpec> {
    Arc::new(
        serde_json::from_value(json!({
            "name": name,
            "cluster_id": "fake",
            "k8s_namespace": "apps",
            "artifact": {"type": "image", "url": "registry.example/demo:1"},
            "replicas": 3,
        }))
        .unwrap(),
    )
}

fn target(spec: &Arc<AppSpec>, revision: &str) -> Target {
    Target {
        app: AppRef {
            id: "7f0c5a1e-0000-4000-8000-000000000001".into(),
            name: spec.name.clone(),
            namespace: spec.k8s_namespace.clone(),
        },
        revision: revision.into(),
        spec: spec.clone(),
        config: Default::default(),
    }
}

/// Waits until `check` holds for the observed state of a revision.
async fn until(
    rt: &KubeRuntime,
    revision: &str,
    check: impl Fn(&RevisionState) -> bool,
) -> RevisionState {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut events = rt.subscribe();
    loop {
        let state = rt
            .observe(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), revision)
            .await
            .unwrap();
        if check(&state) {
            return state;
        }
        // Woken by the runtime's own events: no polling.
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(_) => {}
            Err(_) => panic!("revision {revision}: not within {WAIT:?}: {state:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_applied_observed_through_watches_and_cleaned_up() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let spec = spec("Demo");
    let app = "7f0c5a1e-0000-4000-8000-000000000001";
    assert_eq!(
        rt.observe(&app_ref(app), "1").await.unwrap(),
        RevisionState::default()
    );

    rt.set_replicas(&target(&spec, "1"), 3).await.unwrap();
    // Idempotent: applying the same step again changes nothing.
    rt.set_replicas(&target(&spec, "1"), 3).await.unwrap();
    let state = until(&rt, "1", |s| s.ready == 3).await;
    assert_eq!(state.total, 3);
    assert!(
        state
            .instances
            .iter()
            .all(|i| i.name.starts_with("demo-r1-"))
    );

    let client = rt.inner.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let d = deployments.get("demo-r1").await.unwrap();
    let labels = d.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_APP], "Demo");
    assert_eq!(labels[LABEL_APP_ID], app);
    assert_eq!(labels[LABEL_REVISION], "1");
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&FIELD_MANAGER.to_owned()), "{managers:?}");

    // A second revision next to the first; the first scales down.
    let mut v2 = (*spec).clone();
    v2.artifact =
        serde_json::from_value(json!({"type": "image", "url": "registry.example/demo:2"})).unwrap();
    let v2 = Arc::new(v2);
    rt.set_replicas(&target(&v2, "2"), 1).await.unwrap();
    rt.set_replicas(&target(&spec, "1"), 2).await.unwrap();
    until(&rt, "2", |s| s.ready == 1).await;
    until(&rt, "1", |s| s.total == 2 && s.ready == 2).await;
    assert_eq!(rt.revisions(&app_ref(app)).await.unwrap(), ["1", "2"]);

    // Scaled to 0, a revision's Deployment goes: nothing is left over.
    rt.set_replicas(&target(&spec, "1"), 0).await.unwrap();
    until(&rt, "1", |s| s.total == 0).await;
    assert!(deployments.get_opt("demo-r1").await.unwrap().is_none());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let left = pods
        .list(&ListParams::default().labels(&format!("{LABEL_REVISION}=1")))
        .await
        .unwrap();
    assert!(left.items.is_empty());
    // Scaling to 0 again (a resumed step) is fine.
    rt.set_replicas(&target(&spec, "1"), 0).await.unwrap();
    // And back up (a rollback) re-creates it.
    rt.set_replicas(&target(&spec, "1"), 1).await.unwrap();
    until(&rt, "1", |s| s.ready == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pods_are_reported_and_recreated() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let mut spec = (*spec("crashy")).clone();
    spec.artifact =
        serde_json::from_value(json!({"type": "image", "url": "registry.example/crash:1"}))
            .unwrap();
    let spec = Arc::new(spec);
    cluster
        .add_pod_fault(PodFault::crash(
            &format!("{LABEL_APP}=crashy"),
            Duration::from_millis(20),
        ))
        .unwrap();
    rt.set_replicas(&target(&spec, "1"), 1).await.unwrap();
    let state = until(&rt, "1", |s| s.failed.is_some()).await;
    assert!(
        state
            .failed
            .as_deref()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{state:#?}"
    );
    // Recreated while it still fails (with the fault cleared first, the fake kubelet's restart
    // could make it healthy before the call, and a healthy pod is rightly left alone).
    let before = state.instances[0].name.clone();
    rt.recreate_failed(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), "1")
        .await
        .unwrap();
    until(&rt, "1", |s| {
        !s.instances.is_empty() && s.instances.iter().all(|i| i.name != before)
    })
    .await;
    cluster.clear_faults();
    let state = until(&rt, "1", |s| {
        s.ready == 1 && s.failed.is_none() && s.instances.iter().all(|i| i.name != before)
    })
    .await;
    assert!(state.failed.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_config_copies_are_applied_before_the_deployment_and_deleted_with_it() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let mut spec = (*spec("withcfg")).clone();
    spec.env_froms = serde_json::from_value(json!([
        {"configMapRef": {"name": "cfg.app.r1"}},
        {"secretRef": {"name": "pw.app.r1"}}
    ]))
    .unwrap();
    let spec = Arc::new(spec);
    let mut cfg = target(&spec, "1");
    cfg.config = Arc::new(edas_runtime::ConfigSnapshot {
        config_maps: BTreeMap::from([(
            "cfg.app.r1".into(),
            BTreeMap::from([("k".into(), "v".into())]),
        )]),
        secrets: BTreeMap::from([(
            "pw.app.r1".into(),
            BTreeMap::from([("p".into(), "s3cret".into())]),
        )]),
    });
    rt.set_replicas(&cfg, 1).await.unwrap();
    let client = rt.inner.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "apps");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let uid = deployments.get("withcfg-r1").await.unwrap().metadata.uid;
    let cm = cms.get("cfg.app.r1").await.unwrap();
    // Issue 18 (3): copies are immutable and owned by the revision's Deployment.
    assert_eq!(cm.immutable, Some(true));
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owners
            .iter()
            .map(|o| (o.kind.as_str(), Some(&o.uid)))
            .collect::<Vec<_>>(),
        [("Deployment", uid.as_ref())]
    );
    assert_eq!(cm.data.unwrap()["k"], "v");
    let secret = secrets.get("pw.app.r1").await.unwrap();
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(
        secret.metadata.owner_references.unwrap_or_default()[0].uid,
        uid.clone().unwrap()
    );
    assert_eq!(secret.data.unwrap()["p"].0, b"s3cret");
    // Applying the same step again (a resumed release) is fine with immutable copies.
    rt.set_replicas(&cfg, 2).await.unwrap();
    rt.set_replicas(&cfg, 0).await.unwrap();
    assert!(cms.get_opt("cfg.app.r1").await.unwrap().is_none());
    assert!(secrets.get_opt("pw.app.r1").await.unwrap().is_none());
    // Whoever deletes the Deployment (a sweep, kubectl), the garbage collector takes the
    // copies. (Forgotten first, as by a Delete, or drift correction would restore it.)
    rt.set_replicas(&cfg, 1).await.unwrap();
    assert!(cms.get_opt("cfg.app.r1").await.unwrap().is_some());
    rt.forget("7f0c5a1e-0000-4000-8000-000000000001");
    deployments
        .delete("withcfg-r1", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while cms.get_opt("cfg.app.r1").await.unwrap().is_some()
        || secrets.get_opt("pw.app.r1").await.unwrap().is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "copies outlived their Deployment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 18 (8): ConfigMaps and Secrets created through the API exist in the cluster under
/// their own names, and go when deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_config_maps_and_secrets_exist_under_their_own_names() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let client = rt.inner.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    let data = |pairs: &[(&str, &str)]| -> ConfigData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    rt.put_config(
        false,
        "team",
        "db",
        Some(data(&[("url", "pg://x"), ("pool", "4")])),
    )
    .await
    .unwrap();
    rt.put_config(true, "team", "db-pw", Some(data(&[("password", "s3cret")])))
        .await
        .unwrap();
    let cm = cms.get("db").await.unwrap();
    assert_eq!(
        cm.data.clone().unwrap(),
        data(&[("url", "pg://x"), ("pool", "4")])
    );
    assert_ne!(
        cm.immutable,
        Some(true),
        "a user's ConfigMap can be updated"
    );
    assert_eq!(
        secrets.get("db-pw").await.unwrap().data.unwrap()["password"].0,
        b"s3cret"
    );
    // An update replaces the data (a removed key goes).
    rt.put_config(false, "team", "db", Some(data(&[("url", "pg://y")])))
        .await
        .unwrap();
    assert_eq!(
        cms.get("db").await.unwrap().data.unwrap(),
        data(&[("url", "pg://y")])
    );
    rt.put_config(false, "team", "db", None).await.unwrap();
    rt.put_config(true, "team", "db-pw", None).await.unwrap();
    assert!(cms.get_opt("db").await.unwrap().is_none());
    assert!(secrets.get_opt("db-pw").await.unwrap().is_none());
    // Deleting what is not there is fine.
    rt.put_config(true, "team", "db-pw", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_what_rendering_refuses() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let command_only: AppSpec = serde_json::from_value(json!({
        "name": "cmd", "cluster_id": "fake", "command": "/bin/true", "replicas": 1
    }))
    .unwrap();
    match rt.check(&command_only) {
        Err(RuntimeError::Unsupported(m)) => {
            assert!(m.contains("ImageUrl"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rt.check(&spec("fine")).is_ok());
}

/// Creates the Gateway `infra/gw` the test runtimes attach HTTPRoutes to (annotated to refuse
/// routes when `reject` says why).
async fn create_gateway(client: &kube::Client, reject: Option<&str>) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = ns
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "infra"}})).unwrap(),
        )
        .await;
    let ar = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ));
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), "infra", &ar);
    let mut annotations = serde_json::Map::new();
    if let Some(why) = reject {
        annotations.insert(
            edas_fake_kube::controller::REJECT_ROUTES_ANNOTATION.into(),
            json!(why),
        );
    }
    gateways
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw", "annotations": annotations},
                "spec": {"gatewayClassName": "fake", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn web_service() -> ServiceConfig {
    ServiceConfig {
        name: "web".into(),
        service_type: "ClusterIP".into(),
        port_mappings: vec![PortMapping {
            service_port: ServicePort {
                port: 80,
                target_port: 8080,
                protocol: None,
                node_port: None,
            },
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_applies_services_and_a_gray_split_with_an_http_route() {
    let cluster = fake(true).await;
    let (rt, _) = runtime(&cluster, true).await;
    let app = &AppRef {
        id: "7f0c5a1e-0000-4000-8000-000000000001".into(),
        name: "Web".into(),
        namespace: "apps".into(),
    };
    let client = rt.inner.client.clone();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
    )
    .await
    .unwrap();
    let routing = Routing {
        services: vec![web_service()],
        ..Routing::default()
    };
    rt.set_routing(app, &routing).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "apps");
    let web = services.get("web").await.unwrap();
    assert_eq!(
        web.spec.unwrap().selector.unwrap(),
        BTreeMap::from([(LABEL_APP.to_owned(), "Web".to_owned())])
    );

    // Wait for discovery, then split.
    let deadline = tokio::time::Instant::now() + WAIT;
    while rt.serves_gateway_api().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        let mut health = rt.health();
        let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
    }
    let gray = Routing {
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            },
        }),
        ..routing.clone()
    };
    rt.check_routing(&gray).unwrap();
    // Issue 18 (8): no Gateway, no gray batch.
    let m = rt.set_routing(app, &gray).await.unwrap_err().to_string();
    assert!(
        m.contains("Gateway infra/gw") && m.contains("does not exist"),
        "{m}"
    );
    create_gateway(&client, None).await;
    rt.set_routing(app, &gray).await.unwrap();
    let g = services.get("web-gray").await.unwrap();
    assert_eq!(g.spec.unwrap().selector.unwrap()[LABEL_REVISION], "2");
    // Issue 18 (8): during the split the plain Service reaches the stable revision only.
    let plain = services
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap();
    assert_eq!(plain[LABEL_REVISION], "1");
    assert_eq!(plain[LABEL_APP], "Web");
    let ar = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &ar);
    let route = routes.get("web").await.unwrap();
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"][1]["weight"],
        json!(20)
    );

    // The split ends: the route and the extra Services go, the plain Service selects every
    // revision again; then the application is deleted.
    rt.set_routing(app, &routing).await.unwrap();
    assert!(routes.get_opt("web").await.unwrap().is_none());
    assert!(services.get_opt("web-gray").await.unwrap().is_none());
    let plain = services
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap();
    assert!(!plain.contains_key(LABEL_REVISION), "{plain:?}");
    rt.set_routing(app, &Routing::default()).await.unwrap();
    assert!(services.get_opt("web").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gray_split_is_refused_naming_what_is_missing() {
    let cluster = fake(false).await;
    let gray = Routing {
        services: vec![web_service()],
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            },
        }),
        ..Routing::default()
    };
    let (rt, _) = runtime(&cluster, false).await;
    let m = rt.check_routing(&gray).unwrap_err().to_string();
    assert!(m.contains("gateway = "), "{m}");
    let (rt, _) = runtime(&cluster, true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while rt.serves_gateway_api().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        let mut health = rt.health();
        let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
    }
    let m = rt.check_routing(&gray).unwrap_err().to_string();
    assert!(m.contains("does not serve HTTPRoutes"), "{m}");
    assert!(rt.check_routing(&Routing::default()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_weights_ramp_along_the_warmup_curve() {
    let cluster = fake(true).await;
    let (rt, _) = runtime(&cluster, true).await;
    let app = &AppRef {
        id: "7f0c5a1e-0000-4000-8000-000000000001".into(),
        name: "Ramp".into(),
        namespace: "apps".into(),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while rt.serves_gateway_api().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        let mut health = rt.health();
        let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
    }
    let routing = Routing {
        services: vec![web_service()],
        lossless: edas_spec::model::Lossless {
            enabled: true,
            delay_seconds: 0,
            warmup_seconds: 3,
            func_type: 1,
            aligned: false,
            related: false,
        },
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 40 }],
            },
        }),
        ..Routing::default()
    };
    rt.ensure_namespace("apps").await.unwrap();
    create_gateway(&rt.inner.client, None).await;
    rt.set_routing(app, &routing).await.unwrap();
    let ar = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let routes: Api<DynamicObject> = Api::namespaced_with(rt.inner.client.clone(), "apps", &ar);
    let weight =
        |r: &DynamicObject| r.data["spec"]["rules"][0]["backendRefs"][1]["weight"].as_u64();
    // The gray share starts near zero and reaches the rule's 40 % after the 3 s warm-up, on
    // timers (at most one update a second here).
    let mut seen = vec![weight(&routes.get("web").await.unwrap()).unwrap()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while *seen.last().unwrap() < 40 {
        assert!(tokio::time::Instant::now() < deadline, "weights: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let w = weight(&routes.get("web").await.unwrap()).unwrap();
        if w != *seen.last().unwrap() {
            seen.push(w);
        }
    }
    assert!(seen[0] <= 1, "starts at the curve's 1 %: {seen:?}");
    assert!(seen.len() >= 3, "ramps in steps: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "only up: {seen:?}");
    // Ending the split stops the ramp and removes the route.
    rt.set_routing(
        app,
        &Routing {
            gray: None,
            ..routing
        },
    )
    .await
    .unwrap();
    assert!(routes.get_opt("web").await.unwrap().is_none());
}

fn spec_with_image(name: &str, image: &str) -> Arc<AppSpec> {
    let mut spec = (*spec(name)).clone();
    spec.artifact = serde_json::from_value(json!({"type": "image", "url": image})).unwrap();
    Arc::new(spec)
}

/// Issue 18 (5): a batch learns at once, with the cluster's own words, that an instance will
/// not start: unschedulable past the grace period, image pull errors, container config errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pods_fail_fast_with_the_clusters_reason() {
    let cluster = fake(false).await;
    let mut options = Options::new("fake");
    options.failure.unschedulable_grace = Duration::from_secs(2);
    let (rt, _) = runtime_with(&cluster, options).await;
    cluster
        .add_pod_fault(PodFault::unschedulable(
            &format!("{LABEL_APP}=big"),
            Some("0/1 nodes are available: 1 Insufficient cpu."),
        ))
        .unwrap();
    let started = tokio::time::Instant::now();
    rt.set_replicas(&target(&spec("big"), "1"), 1)
        .await
        .unwrap();
    // Nothing changes in the cluster when the grace period ends: the runtime's own wake-up
    // makes `until` look again.
    let state = until(&rt, "1", |s| s.failed.is_some()).await;
    // (The condition's lastTransitionTime has whole seconds.)
    assert!(started.elapsed() >= Duration::from_secs(1), "{state:#?}");
    let why = state.failed.unwrap();
    assert!(
        why.contains("Unschedulable")
            && why.contains("0/1 nodes are available: 1 Insufficient cpu."),
        "{why}"
    );
    rt.set_replicas(&target(&spec("big"), "1"), 0)
        .await
        .unwrap();
    until(&rt, "1", |s| s.total == 0).await;

    cluster
        .add_pod_fault(PodFault::image_pull_error(&format!("{LABEL_APP}=pull")))
        .unwrap();
    let pull = spec_with_image("pull", "registry.example/missing:9");
    rt.set_replicas(&target(&pull, "2"), 1).await.unwrap();
    let state = until(&rt, "2", |s| s.failed.is_some()).await;
    let why = state.failed.unwrap();
    assert!(
        (why.contains("ErrImagePull") || why.contains("ImagePullBackOff"))
            && why.contains("registry.example/missing:9"),
        "{why}"
    );
    rt.set_replicas(&target(&pull, "2"), 0).await.unwrap();

    cluster
        .add_pod_fault(PodFault::config_error(
            &format!("{LABEL_APP}=conf"),
            "couldn't find key url in ConfigMap apps/db",
        ))
        .unwrap();
    rt.set_replicas(&target(&spec("conf"), "3"), 1)
        .await
        .unwrap();
    let state = until(&rt, "3", |s| s.failed.is_some()).await;
    let why = state.failed.unwrap();
    assert!(
        why.contains("CreateContainerConfigError")
            && why.contains("couldn't find key url in ConfigMap apps/db"),
        "{why}"
    );
}

/// Issue 18 (6): after an API-server outage the runtime re-lists within a couple of seconds
/// (bounded back-off), not after kube's default back-off of up to 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_over_for_the_runtime_within_seconds_of_the_recovery() {
    let cluster = FakeCluster::start(Config {
        pod_ready_delay: Duration::from_millis(1500),
        ..Config::default()
    })
    .await
    .unwrap();
    let (rt, _) = runtime(&cluster, false).await;
    let spec = spec("outage");
    rt.observe(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), "1")
        .await
        .unwrap();
    rt.set_replicas(&target(&spec, "1"), 1).await.unwrap();
    // The API goes down before the pod is Ready; it becomes Ready during the outage.
    cluster
        .add_api_fault(edas_fake_kube::ApiFault::error(None, "*", 500))
        .unwrap();
    cluster.drop_watches();
    let mut health = rt.health();
    tokio::time::timeout(
        WAIT,
        health.wait_for(|h| matches!(h, Health::Unreachable(_))),
    )
    .await
    .expect("the outage is noticed")
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let state = rt
        .observe(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), "1")
        .await
        .unwrap();
    assert_eq!(state.ready, 0, "nothing is seen during the outage");
    cluster.clear_faults();
    let recovered = tokio::time::Instant::now();
    let mut events = rt.subscribe();
    loop {
        let state = rt
            .observe(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), "1")
            .await
            .unwrap();
        if state.ready == 1 {
            break;
        }
        // kube's default back-off would be at its 12 s attempt by now; ours retries within 2 s.
        let left = Duration::from_secs(4).saturating_sub(recovered.elapsed());
        assert!(
            tokio::time::timeout(left, events.recv()).await.is_ok(),
            "the recovered cluster's Ready pod was not seen within 4 s: {state:#?}"
        );
    }
}

/// A cluster that never answers stays unreachable while its watches retry: the watcher's
/// `Init` comes before its list is even requested, so it is no answer (it flipped the health
/// to "connecting", and ImportK8sCluster answered 200 for a dead cluster between retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_never_answers_stays_unreachable_while_its_watches_retry() {
    let cluster = fake(false).await;
    cluster
        .add_api_fault(edas_fake_kube::ApiFault::error(None, "*", 500))
        .unwrap();
    let (rt, _) = runtime(&cluster, false).await;
    let mut health = rt.health();
    tokio::time::timeout(
        WAIT,
        health.wait_for(|h| matches!(h, Health::Unreachable(_))),
    )
    .await
    .expect("the dead cluster is noticed")
    .unwrap();
    // The bounded back-off retries within about 2 s: several retries in 5 s.
    let watching = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(changed) = tokio::time::timeout_at(watching, health.changed()).await {
        changed.unwrap();
        let now = health.borrow_and_update().clone();
        assert!(
            matches!(now, Health::Unreachable(_)),
            "a cluster that never answered became {now:?}"
        );
    }
}

/// Issue 18 (6): a draining API server keeps watches open and silent; the runtime abandons
/// them after the watch timeout (plus 5 s) and sees the cluster through a fresh watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_watches_on_a_draining_server_are_replaced() {
    let cluster = fake(false).await;
    let mut options = Options::new("fake");
    options.watch_timeout = Duration::from_secs(1);
    let (rt, _) = runtime_with(&cluster, options).await;
    let spec = spec("drain");
    rt.set_replicas(&target(&spec, "1"), 1).await.unwrap();
    until(&rt, "1", |s| s.ready == 1).await;
    cluster.drain_watches();
    rt.set_replicas(&target(&spec, "1"), 2).await.unwrap();
    // Seen through a new watch (the drained one would say nothing, ever): within the 1 s watch
    // timeout + 5 s idle margin + back-off, well inside `until`'s 15 s.
    let state = until(&rt, "1", |s| s.ready == 2).await;
    assert_eq!(state.total, 2);
}

/// Issue 18 (3): at start-up the runtime checks its rights (SelfSubjectAccessReview) and names
/// a missing one; a write that needs it fails with the cluster's own 403 message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rights_are_named_at_start_up() {
    let cluster = fake(false).await;
    let (rt, _) = runtime(&cluster, false).await;
    let mut rights = rt.missing_rights();
    let all = tokio::time::timeout(WAIT, rights.wait_for(Option::is_some))
        .await
        .expect("the rights are checked")
        .unwrap()
        .clone();
    assert_eq!(all, Some(vec![]));
    drop(rt);

    cluster
        .deny(edas_fake_kube::DeniedRight::new("create", "", "secrets"))
        .unwrap();
    cluster
        .deny(edas_fake_kube::DeniedRight::new(
            "watch",
            "apps",
            "deployments",
        ))
        .unwrap();
    let (rt, _) = runtime(&cluster, false).await;
    let mut rights = rt.missing_rights();
    let missing = tokio::time::timeout(WAIT, rights.wait_for(Option::is_some))
        .await
        .expect("the rights are checked")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(missing, ["watch deployments.apps", "create secrets"]);
    let error = rt
        .put_config(
            true,
            "team",
            "pw",
            Some(BTreeMap::from([("p".into(), "x".into())])),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot create resource \"secrets\"") || error.contains("cannot patch"),
        "{error}"
    );
}

/// Polls the fake API server (not the runtime) until `check` holds for Deployment `name`.
async fn deployment_until(
    api: &Api<Deployment>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&Deployment>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = api.get_opt(name).await.unwrap();
        if check(current.as_ref()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}: {current:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 18 (8): a Deployment deleted or scaled by hand is restored to what edasd applied, as
/// its watch event arrives; one scaled to 0 by edasd (or swept on Delete) stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_hand_scaled_deployments_are_restored() {
    let cluster = fake(false).await;
    let (rt, dir) = runtime(&cluster, false).await;
    let spec = spec("drifty");
    rt.set_replicas(&target(&spec, "1"), 2).await.unwrap();
    until(&rt, "1", |s| s.ready == 2).await;
    let deployments: Api<Deployment> = Api::namespaced(rt.inner.client.clone(), "apps");
    let replicas = |d: Option<&Deployment>| d.and_then(|d| d.spec.as_ref()?.replicas);

    // `kubectl scale --replicas=5`
    deployments
        .patch(
            "drifty-r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    deployment_until(&deployments, "drifty-r1", "restored replicas", |d| {
        replicas(d) == Some(2)
    })
    .await;

    // `kubectl delete deploy`
    let before = deployments.get("drifty-r1").await.unwrap().metadata.uid;
    deployments
        .delete("drifty-r1", &DeleteParams::background())
        .await
        .unwrap();
    deployment_until(&deployments, "drifty-r1", "a re-created Deployment", |d| {
        d.is_some_and(|d| d.metadata.uid != before) && replicas(d) == Some(2)
    })
    .await;
    until(&rt, "1", |s| s.ready == 2 && s.total == 2).await;

    // edasd's own scale-down is not drift.
    rt.set_replicas(&target(&spec, "1"), 1).await.unwrap();
    until(&rt, "1", |s| s.total == 1).await;
    assert_eq!(
        replicas(deployments.get_opt("drifty-r1").await.unwrap().as_ref()),
        Some(1)
    );
    rt.set_replicas(&target(&spec, "1"), 0).await.unwrap();
    until(&rt, "1", |s| s.total == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(deployments.get_opt("drifty-r1").await.unwrap().is_none());

    // Another edasd process stopped the application (the store says 0): not brought back.
    rt.set_replicas(&target(&spec, "3"), 1).await.unwrap();
    until(&rt, "3", |s| s.ready == 1).await;
    dir.settled.lock().unwrap().insert(
        ("7f0c5a1e-0000-4000-8000-000000000001".into(), "3".into()),
        SettledReplicas::Runs(0),
    );
    deployments
        .delete("drifty-r3", &DeleteParams::background())
        .await
        .unwrap();
    until(&rt, "3", |s| s.total == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(deployments.get_opt("drifty-r3").await.unwrap().is_none());

    // Another edasd process drives a change of a revision this one applied (it scales it down
    // step by step): its steps are not drift to this process.
    rt.set_replicas(&target(&spec, "4"), 2).await.unwrap();
    until(&rt, "4", |s| s.ready == 2).await;
    dir.settled.lock().unwrap().insert(
        ("7f0c5a1e-0000-4000-8000-000000000001".into(), "4".into()),
        SettledReplicas::ChangingElsewhere,
    );
    deployments
        .patch(
            "drifty-r4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    until(&rt, "4", |s| s.total == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replicas(deployments.get_opt("drifty-r4").await.unwrap().as_ref()),
        Some(1)
    );
    rt.set_replicas(&target(&spec, "4"), 0).await.unwrap();

    // Deleting the application forgets it: the sweep's deletions stay.
    rt.set_replicas(&target(&spec, "2"), 1).await.unwrap();
    until(&rt, "2", |s| s.ready == 1).await;
    rt.delete_application(&app_ref("7f0c5a1e-0000-4000-8000-000000000001"), true)
        .await
        .unwrap();
    until(&rt, "2", |s| s.total == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(deployments.get_opt("drifty-r2").await.unwrap().is_none());
}

/// Issue 18 (8): a gray batch starts only once the Gateway accepted its HTTPRoute; a refusal
/// fails it with the Gateway's reason, silence after the acceptance timeout too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gray_split_waits_for_the_gateway_to_accept_its_route() {
    let cluster = fake(true).await;
    let mut options = Options::new("fake");
    options.gateway = Some(GatewayRef {
        namespace: "infra".into(),
        name: "gw".into(),
    });
    options.route_acceptance_timeout = Duration::from_secs(2);
    let (rt, _) = runtime_with(&cluster, options).await;
    let app = &AppRef {
        id: "7f0c5a1e-0000-4000-8000-000000000001".into(),
        name: "Web".into(),
        namespace: "apps".into(),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while rt.serves_gateway_api().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        let mut health = rt.health();
        let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
    }
    rt.ensure_namespace("apps").await.unwrap();
    create_gateway(
        &rt.inner.client,
        Some("listener http allows routes from namespace infra only"),
    )
    .await;
    let gray = Routing {
        services: vec![web_service()],
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 10 }],
            },
        }),
        ..Routing::default()
    };
    let m = rt.set_routing(app, &gray).await.unwrap_err().to_string();
    assert!(
        m.contains("did not accept HTTPRoute apps/web")
            && m.contains("NotAllowedByListeners")
            && m.contains("allows routes from namespace infra only"),
        "{m}"
    );
    // A Gateway that no controller reports on: the route is never Accepted.
    let other = Routing {
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 10 }],
            },
        }),
        ..gray.clone()
    };
    let ar = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ));
    let gateways: Api<DynamicObject> = Api::namespaced_with(rt.inner.client.clone(), "infra", &ar);
    gateways
        .patch(
            "gw",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                edas_fake_kube::controller::REJECT_ROUTES_ANNOTATION: null}}})),
        )
        .await
        .unwrap();
    rt.set_routing(app, &other).await.unwrap();

    // A Gateway no controller serves: the route is never Accepted, and the step fails after
    // the acceptance timeout, saying so.
    gateways
        .patch(
            "gw",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                edas_fake_kube::controller::IGNORE_ROUTES_ANNOTATION: "yes"}}})),
        )
        .await
        .unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(
        rt.inner.client.clone(),
        "apps",
        &routing::http_route_resource(),
    );
    routes
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let m = rt.set_routing(app, &gray).await.unwrap_err().to_string();
    assert!(
        m.contains("was not accepted by Gateway infra/gw within 2s"),
        "{m}"
    );
}

/// Many callers waiting for the first list at once are all answered when it arrives (kube's
/// `Store::wait_until_ready` would wake only the last of them, leaving the others to their
/// call timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_observations_are_all_answered() {
    let cluster = fake(false).await;
    // The first lists are slow, so every caller below waits for them.
    cluster
        .add_api_fault(
            edas_fake_kube::ApiFault::delay(
                Some("GET"),
                "/api/v1/pods",
                Duration::from_millis(500),
            )
            .times(1),
        )
        .unwrap();
    let (rt, _) = runtime(&cluster, false).await;
    let started = tokio::time::Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let rt = rt.clone();
            tokio::spawn(async move {
                rt.observe(
                    &app_ref("7f0c5a1e-0000-4000-8000-000000000001"),
                    &i.to_string(),
                )
                .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Far below the 30 s call timeout a stranded waiter would run into.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

fn rule(min: u32, max: u32) -> edas_runtime::Autoscaler {
    edas_runtime::Autoscaler {
        min_replicas: min,
        max_replicas: max,
        metrics: vec![edas_runtime::ScaleMetric {
            kind: "CPU".into(),
            target_utilization: 60,
        }],
        scale_up: None,
        scale_down: Some(edas_runtime::ScaleDirection {
            stabilization_window_seconds: 120,
            select_policy: "Max".into(),
            policies: vec![],
        }),
    }
}

/// Issue 24: an enabled rule is an HPA applied by edasd's field manager, retargeted and
/// deleted on request; its desired count is answered; a Deployment it scaled is followed,
/// not restored; the sweep removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_is_applied_followed_retargeted_and_removed() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let cluster = fake(false).await;
    let (rt, _dir) = runtime(&cluster, false).await;
    assert!(rt.check_autoscaling(&rule(2, 6)).is_ok());
    let mut qps = rule(2, 6);
    qps.metrics[0].kind = "QPS".into();
    let refused = rt.check_autoscaling(&qps).unwrap_err().to_string();
    assert!(refused.starts_with("metrics[0].metricType"), "{refused}");
    let spec = spec("scaled");
    let app = target(&spec, "1").app;
    rt.set_replicas(&target(&spec, "1"), 2).await.unwrap();
    until(&rt, "1", |s| s.ready == 2).await;
    assert_eq!(rt.autoscaled_replicas(&app).await.unwrap(), None);

    let autoscaling = edas_runtime::Autoscaling {
        revision: "1".into(),
        rule: rule(2, 6),
        held: false,
    };
    rt.set_autoscaling(&app, Some(&autoscaling)).await.unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(rt.inner.client.clone(), "apps");
    let hpa = hpas.get("scaled").await.unwrap();
    assert_eq!(label(&hpa, LABEL_APP_ID), Some(app.id.as_str()));
    let managers: Vec<_> = hpa
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, [FIELD_MANAGER]);
    let hpa_spec = hpa.spec.unwrap();
    assert_eq!(hpa_spec.scale_target_ref.name, "scaled-r1");
    assert_eq!((hpa_spec.min_replicas, hpa_spec.max_replicas), (Some(2), 6));
    // Not decided yet.
    assert_eq!(rt.autoscaled_replicas(&app).await.unwrap(), None);

    // The HPA scales to 5: followed (the annotation too), not restored to 2.
    assert_eq!(cluster.autoscale("apps", "scaled", 5), Ok(5));
    assert_eq!(rt.autoscaled_replicas(&app).await.unwrap(), Some(5));
    until(&rt, "1", |s| s.ready == 5).await;
    let deployments: Api<Deployment> = Api::namespaced(rt.inner.client.clone(), "apps");
    deployment_until(&deployments, "scaled-r1", "the annotation follows", |d| {
        d.and_then(|d| d.metadata.annotations.as_ref()?.get(ANNOTATION_REPLICAS))
            .map(String::as_str)
            == Some("5")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = deployments.get("scaled-r1").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(5));

    // A hand-scale of a Deployment no HPA targets is still drift.
    rt.set_replicas(&target(&spec, "2"), 1).await.unwrap();
    until(&rt, "2", |s| s.ready == 1).await;
    deployments
        .patch(
            "scaled-r2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    deployment_until(&deployments, "scaled-r2", "restored replicas", |d| {
        d.and_then(|d| d.spec.as_ref()?.replicas) == Some(1)
    })
    .await;

    // Retargeted at revision 2.
    let retargeted = edas_runtime::Autoscaling {
        revision: "2".into(),
        rule: rule(2, 6),
        held: false,
    };
    rt.set_autoscaling(&app, Some(&retargeted)).await.unwrap();
    let hpa = hpas.get("scaled").await.unwrap();
    assert_eq!(hpa.spec.unwrap().scale_target_ref.name, "scaled-r2");

    // A rule Kubernetes cannot take is refused for good.
    let mut bad = retargeted.clone();
    bad.rule.metrics[0].kind = "QPS".into();
    assert!(matches!(
        rt.set_autoscaling(&app, Some(&bad)).await,
        Err(RuntimeError::Unsupported(_))
    ));

    // Disabled: deleted (twice is fine).
    rt.set_autoscaling(&app, None).await.unwrap();
    rt.set_autoscaling(&app, None).await.unwrap();
    assert!(hpas.get_opt("scaled").await.unwrap().is_none());

    // The sweep of a deleted application removes its HPA.
    rt.set_autoscaling(&app, Some(&retargeted)).await.unwrap();
    rt.delete_application(&app, true).await.unwrap();
    assert!(hpas.get_opt("scaled").await.unwrap().is_none());
}

/// Issue 24: an ingress rule is an Ingress with the cluster's class, replaced and deleted by
/// the rule's name; a user's own Ingress of that name is refused, never taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_rule_is_applied_replaced_and_deleted_but_never_a_foreign_one() {
    use edas_runtime::{IngressBackend, IngressHost, IngressPath, IngressSpec, PathType};
    use k8s_openapi::api::networking::v1::Ingress;
    let cluster = fake(false).await;
    let mut options = Options::new("fake");
    options.ingress_class = Some("nginx".into());
    let (rt, _) = runtime_with(&cluster, options).await;
    rt.check_ingress(&IngressSpec::default()).unwrap();
    let rule = |host: &str, port: u16| IngressSpec {
        rules: vec![IngressHost {
            host: host.into(),
            secret_name: None,
            paths: vec![IngressPath {
                path: "/".into(),
                path_type: PathType::Prefix,
                backend: IngressBackend {
                    service_name: "web".into(),
                    service_port: port,
                    ..IngressBackend::default()
                },
            }],
        }],
        ..IngressSpec::default()
    };
    // The namespace is created when missing, as for applications.
    rt.set_ingress("edge", "front", Some(&rule("a.test", 80)))
        .await
        .unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(rt.inner.client.clone(), "edge");
    let spec = ingresses.get("front").await.unwrap().spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.rules.as_ref().unwrap()[0].host.as_deref(),
        Some("a.test")
    );
    rt.set_ingress("edge", "front", Some(&rule("b.test", 8080)))
        .await
        .unwrap();
    let value = serde_json::to_value(ingresses.get("front").await.unwrap()).unwrap();
    assert_eq!(value["spec"]["rules"][0]["host"], "b.test");
    assert_eq!(
        value["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        8080
    );
    rt.set_ingress("edge", "front", None).await.unwrap();
    assert!(ingresses.get_opt("front").await.unwrap().is_none());
    rt.set_ingress("edge", "front", None).await.unwrap();

    // Someone's own Ingress: neither replaced nor deleted.
    ingresses
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "theirs"},
                "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 1}}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let e = rt
        .set_ingress("edge", "theirs", Some(&rule("a.test", 80)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RuntimeError::Unsupported(_)) && e.to_string().contains("did not create"),
        "{e}"
    );
    assert!(rt.set_ingress("edge", "theirs", None).await.is_err());
    assert!(ingresses.get_opt("theirs").await.unwrap().is_some());
}

/// Issue 24: NodePort and LoadBalancer Services keep their type (the API server allocates
/// the node ports and keeps them across applies); during a gray split their stable/gray
/// copies are ClusterIP, so a release opens no extra node port or load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_services_keep_their_node_ports_and_split_copies_are_cluster_ip() {
    let cluster = fake(true).await;
    let (rt, _) = runtime(&cluster, true).await;
    let app = &AppRef {
        id: "7f0c5a1e-0000-4000-8000-000000000002".into(),
        name: "Lb".into(),
        namespace: "apps".into(),
    };
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(rt.inner.client.clone());
    ns.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
    )
    .await
    .unwrap();
    let mut lb = web_service();
    lb.service_type = "LoadBalancer".into();
    let routing = Routing {
        services: vec![lb],
        ..Routing::default()
    };
    rt.set_routing(app, &routing).await.unwrap();
    let services: Api<Service> = Api::namespaced(rt.inner.client.clone(), "apps");
    let node_port = |s: Service| {
        let spec = s.spec.unwrap();
        (spec.type_.unwrap(), spec.ports.unwrap()[0].node_port)
    };
    let (kind, first) = node_port(services.get("web").await.unwrap());
    assert_eq!(kind, "LoadBalancer");
    assert!(
        first.is_some_and(|p| (30000..=32767).contains(&p)),
        "{first:?}"
    );
    rt.set_routing(app, &routing).await.unwrap();
    assert_eq!(
        node_port(services.get("web").await.unwrap()).1,
        first,
        "kept"
    );

    let deadline = tokio::time::Instant::now() + WAIT;
    while rt.serves_gateway_api().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        let mut health = rt.health();
        let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
    }
    create_gateway(&rt.inner.client.clone(), None).await;
    let gray = Routing {
        gray: Some(edas_runtime::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            },
        }),
        ..routing.clone()
    };
    rt.set_routing(app, &gray).await.unwrap();
    for copy in ["web-stable", "web-gray"] {
        let (kind, port) = node_port(services.get(copy).await.unwrap());
        assert_eq!((kind.as_str(), port), ("ClusterIP", None), "{copy}");
    }
    assert_eq!(
        node_port(services.get("web").await.unwrap()).0,
        "LoadBalancer"
    );
}

/// Issue 24, the configured-gateway option: an ingress rule is an HTTPRoute per host attached
/// to the cluster's Gateway; a host removed removes its route; TLS is refused (the Gateway's
/// listener holds certificates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_gateway_an_ingress_rule_is_an_http_route_per_host() {
    use edas_runtime::{IngressBackend, IngressHost, IngressPath, IngressSpec, PathType};
    let cluster = fake(true).await;
    let mut options = Options::new("fake");
    options.gateway = Some(GatewayRef {
        namespace: "infra".into(),
        name: "gw".into(),
    });
    options.ingress_via_gateway = true;
    let (rt, _) = runtime_with(&cluster, options).await;
    create_gateway(&rt.inner.client.clone(), None).await;
    let host = |host: &str| IngressHost {
        host: host.into(),
        secret_name: None,
        paths: vec![IngressPath {
            path: "/".into(),
            path_type: PathType::Prefix,
            backend: IngressBackend {
                service_name: "web".into(),
                service_port: 80,
                ..IngressBackend::default()
            },
        }],
    };
    let two = IngressSpec {
        rules: vec![host("a.test"), host("b.test")],
        ..IngressSpec::default()
    };
    let mut tls = two.clone();
    tls.rules[1].secret_name = Some("cert".into());
    let e = rt.check_ingress(&tls).unwrap_err().to_string();
    assert!(e.starts_with("IngressConf.rules[1].secretName"), "{e}");
    rt.set_ingress("edge", "front", Some(&two)).await.unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(
        rt.inner.client.clone(),
        "edge",
        &routing::http_route_resource(),
    );
    let route = routes.get("front-1").await.unwrap();
    assert_eq!(route.data["spec"]["hostnames"], json!(["b.test"]));
    assert_eq!(route.data["spec"]["parentRefs"][0]["name"], "gw");
    let one = IngressSpec {
        rules: vec![host("a.test")],
        ..IngressSpec::default()
    };
    rt.set_ingress("edge", "front", Some(&one)).await.unwrap();
    assert!(routes.get_opt("front-1").await.unwrap().is_none());
    assert!(routes.get_opt("front-0").await.unwrap().is_some());
    rt.set_ingress("edge", "front", None).await.unwrap();
    assert!(routes.get_opt("front-0").await.unwrap().is_none());
}
