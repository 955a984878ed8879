//! kube-rs against the in-process fake: CRUD, conflicts, apply, subresources, the simulated
//! controllers and the injected faults.

use std::time::Duration;

use edas_fake_kube::{ApiFault, Config, PodFault};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{client, deployment, eventually, quick_cluster, rolled_out, start};

fn api_code(error: kube::Error) -> (u16, String, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone(), status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_selectors_and_optimistic_concurrency() {
    let cluster = quick_cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    let created = api
        .create(
            &PostParams::default(),
            &config_map("a", json!({"app": "web", "tier": "front"})),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    api.create(
        &PostParams::default(),
        &config_map("b", json!({"app": "api"})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .unwrap();

    let (code, reason, message) = api_code(
        api.create(&PostParams::default(), &config_map("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(message, "configmaps \"a\" already exists");

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (web,api)"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("!app"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(page.clone()), ["a", "b"]);
    let rest = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(rest), ["c"]);
    let (code, _, message) = api_code(
        api.list(&ListParams::default().labels("app in web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400, "{message}");

    // Replace with the current resourceVersion works once; the stale copy then conflicts.
    let mut changed = created.clone();
    changed.data = Some([("k".to_owned(), "w".to_owned())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let (code, reason, _) = api_code(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let (code, reason, message) = api_code(api.get("a").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "configmaps \"a\" not found")
    );

    let elsewhere: Api<ConfigMap> = Api::namespaced(client(&cluster), "missing");
    let (code, _, message) = api_code(
        elsewhere
            .create(&PostParams::default(), &config_map("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_merges_and_reports_conflicts() {
    let cluster = quick_cluster().await;
    let api: Api<Deployment> = Api::default_namespaced(client(&cluster));
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("edas"),
            &Patch::Apply(deployment("web", "nginx:1", 2)),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager, m.operation))
        .collect();
    assert!(
        managers.contains(&(Some("edas".into()), Some("Apply".into()))),
        "{managers:?}"
    );

    // Another manager takes spec.replicas with a merge patch.
    let patch = PatchParams {
        field_manager: Some("hpa".into()),
        ..PatchParams::default()
    };
    api.patch(
        "web",
        &patch,
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    let (code, reason, message) = api_code(
        api.patch(
            "web",
            &PatchParams::apply("edas"),
            &Patch::Apply(deployment("web", "nginx:2", 2)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("conflict with \"hpa\"") && message.contains(".spec.replicas"),
        "{message}"
    );

    // Leaving the contested field out of the configuration applies cleanly.
    let mut without_replicas = deployment("web", "nginx:2", 2);
    without_replicas.spec.as_mut().unwrap().replicas = None;
    let merged = api
        .patch(
            "web",
            &PatchParams::apply("edas"),
            &Patch::Apply(&without_replicas),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(merged.metadata.generation, Some(3));

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("edas").force(),
            &Patch::Apply(deployment("web", "nginx:2", 2)),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(2));

    // Strategic merge patch merges containers by name.
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:3"}]}}}})))
        .await
        .unwrap();
    let containers = patched.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(
        (containers.len(), containers[0].image.as_deref()),
        (1, Some("nginx:3"))
    );

    // Validation errors name the field.
    let mut invalid = deployment("bad", "nginx:1", 1);
    invalid
        .spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_owned(), "other".to_owned())].into());
    let (code, _, message) = api_code(
        api.create(&PostParams::default(), &invalid)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.template.metadata.labels"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_within_surge_and_unavailability_limits() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 3))
        .await
        .unwrap();
    let done = eventually("the first rollout", || async {
        deployments.get("web").await.ok().filter(rolled_out)
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(
        (status.ready_replicas, status.observed_generation),
        (Some(3), Some(1))
    );

    let sets = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Deployment"
    );
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 3);
    for pod in &listed {
        assert!(
            pod.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        assert_eq!(
            pod.metadata.owner_references.as_ref().unwrap()[0].name,
            rs.metadata.name.clone().unwrap()
        );
    }

    // Roll to a new image: with maxSurge 1 / maxUnavailable 0 there are never more than 4 pods
    // and never fewer than 3 available.
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})))
        .await
        .unwrap();
    let max_pods = std::cell::Cell::new(0);
    let finished = eventually("the rolling update", || {
        let (deployments, pods, max_pods) = (deployments.clone(), pods.clone(), &max_pods);
        async move {
            let count = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items
                .len();
            max_pods.set(max_pods.get().max(count));
            let current = deployments.get("web").await.ok()?;
            let available = current
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            assert!(
                available >= 3,
                "availability dropped to {available} during the rollout"
            );
            rolled_out(&current).then_some(current)
        }
    })
    .await;
    assert!(
        max_pods.get() <= 4,
        "maxSurge exceeded: {} pods",
        max_pods.get()
    );
    assert_eq!(finished.metadata.generation, Some(2));
    assert_eq!(
        finished.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let sets = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let replicas: Vec<i32> = sets
        .iter()
        .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap())
        .collect();
    assert_eq!(sets.len(), 2);
    assert!(
        replicas.contains(&0) && replicas.contains(&3),
        "{replicas:?}"
    );

    // Scale subresource.
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("scaled down to 1 pod", || async {
        let count = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len();
        (count == 1).then_some(())
    })
    .await;

    // Deleting the Deployment deletes its ReplicaSets and pods.
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_seconds_delays_availability_and_orphaning_keeps_dependents() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut slow = deployment("slow", "nginx:1", 1);
    slow.spec.as_mut().unwrap().min_ready_seconds = Some(2);
    let started = tokio::time::Instant::now();
    deployments
        .create(&PostParams::default(), &slow)
        .await
        .unwrap();
    let ready = eventually("a ready replica", || async {
        deployments
            .get("slow")
            .await
            .ok()
            .filter(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1))
    })
    .await;
    assert_eq!(
        ready.status.unwrap().available_replicas,
        None,
        "available only after minReadySeconds"
    );
    eventually("an available replica", || async {
        deployments.get("slow").await.ok().filter(rolled_out)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "became available too early"
    );

    deployments
        .delete("slow", &DeleteParams::orphan())
        .await
        .unwrap();
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client);
    let orphans = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(orphans.len(), 1);
    assert_eq!(
        orphans[0].metadata.owner_references.as_deref(),
        Some(&[][..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_faults_stall_rollouts_and_crash_pods() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    cluster
        .add_pod_fault(PodFault::never_ready("app=stuck"))
        .unwrap();
    let mut stuck = deployment("stuck", "nginx:1", 2);
    stuck.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    deployments
        .create(&PostParams::default(), &stuck)
        .await
        .unwrap();
    let stalled = eventually("ProgressDeadlineExceeded", || async {
        let current = deployments.get("stuck").await.ok()?;
        let conditions = current.status.as_ref()?.conditions.clone()?;
        conditions
            .iter()
            .any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .then_some(current)
    })
    .await;
    let status = stalled.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.unavailable_replicas
        ),
        (Some(2), None, Some(2))
    );
    cluster.clear_faults();
    eventually("recovery after clearing the fault", || async {
        deployments.get("stuck").await.ok().filter(rolled_out)
    })
    .await;

    cluster
        .add_pod_fault(PodFault::crash("app=flaky", Duration::from_millis(200)))
        .unwrap();
    deployments
        .create(&PostParams::default(), &deployment("flaky", "nginx:1", 1))
        .await
        .unwrap();
    let crashed = eventually("a restarted container", || async {
        let pod = pods
            .list(&ListParams::default().labels("app=flaky"))
            .await
            .ok()?
            .items
            .pop()?;
        let status = pod.status.clone()?.container_statuses?.pop()?;
        (status.restart_count >= 1 && !status.ready).then_some(status)
    })
    .await;
    assert_eq!(
        crashed.state.unwrap().waiting.unwrap().reason.as_deref(),
        Some("CrashLoopBackOff")
    );

    let invalid = PodFault {
        crash_after_ms: None,
        ..PodFault::crash("app=x", Duration::ZERO)
    };
    assert!(
        cluster
            .add_pod_fault(invalid)
            .unwrap_err()
            .contains("crashAfterMs")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_fail_or_delay_chosen_calls() {
    let cluster = quick_cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    cluster
        .add_api_fault(
            ApiFault::error(Some("GET"), "/api/v1/namespaces/*/configmaps*", 500).times(2),
        )
        .unwrap();
    for _ in 0..2 {
        let (code, reason, _) = api_code(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (500, "InternalError"));
    }
    api.list(&ListParams::default())
        .await
        .expect("the fault was limited to two calls");
    // kube's default retry policy absorbs a transient 503: the fault is consumed, the call succeeds.
    cluster
        .add_api_fault(
            ApiFault::error(Some("GET"), "/api/v1/namespaces/*/configmaps*", 503).times(1),
        )
        .unwrap();
    api.list(&ListParams::default())
        .await
        .expect("kube retried the 503");
    api.list(&ListParams::default()).await.unwrap();
    api.create(&PostParams::default(), &config_map("ok", json!({})))
        .await
        .expect("POST is not matched");

    cluster
        .add_api_fault(ApiFault::delay(Some("POST"), "*", Duration::from_millis(400)).times(1))
        .unwrap();
    let started = tokio::time::Instant::now();
    api.create(&PostParams::default(), &config_map("late", json!({})))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));

    assert!(
        cluster
            .add_api_fault(ApiFault::error(None, "/x", 302))
            .unwrap_err()
            .contains("status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_served_groups_and_gateway_api_on_request() {
    use kube::discovery::Discovery;
    let cluster = quick_cluster().await;
    let discovery = Discovery::new(client(&cluster)).run().await.unwrap();
    let kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| {
            g.recommended_resources()
                .into_iter()
                .map(|(r, _)| format!("{}/{}", r.api_version, r.kind))
        })
        .collect();
    for expected in [
        "v1/Pod",
        "v1/Service",
        "v1/ConfigMap",
        "v1/Secret",
        "v1/Namespace",
        "apps/v1/Deployment",
        "apps/v1/ReplicaSet",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "{expected} missing from {kinds:?}"
        );
    }
    assert!(!kinds.iter().any(|k| k.contains("HTTPRoute")));

    let gateway = start(Config {
        gateway_api: true,
        ..Config::default()
    })
    .await;
    let client = client(&gateway);
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        ))
        .expect("HTTPRoute is served");
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let route: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
    }))
    .unwrap();
    let created = routes
        .patch("web", &PatchParams::apply("edas"), &Patch::Apply(&route))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_overlaps_and_paused_deployments_wait() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let mut recreate = deployment("re", "nginx:1", 2);
    recreate.spec.as_mut().unwrap().strategy =
        Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    deployments
        .create(&PostParams::default(), &recreate)
        .await
        .unwrap();
    eventually("the first rollout", || async {
        deployments.get("re").await.ok().filter(rolled_out)
    })
    .await;
    let image = |pod: &Pod| {
        pod.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    deployments
        .patch("re", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})))
        .await
        .unwrap();
    eventually("the recreate rollout", || {
        let (deployments, pods) = (deployments.clone(), pods.clone());
        async move {
            let images: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(image)
                .collect();
            assert!(
                !(images.contains(&"nginx:1".to_owned()) && images.contains(&"nginx:2".to_owned())),
                "old and new pods overlap: {images:?}"
            );
            deployments.get("re").await.ok().filter(rolled_out)
        }
    })
    .await;

    // A paused Deployment records the new template but does not roll it out until resumed.
    deployments
        .patch(
            "re",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    deployments
        .patch("re", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:3"}]}}}})))
        .await
        .unwrap();
    let paused = eventually("the paused condition", || async {
        let current = deployments.get("re").await.ok()?;
        let conditions = current.status.as_ref()?.conditions.clone()?;
        let observed = current.status.as_ref()?.observed_generation == current.metadata.generation;
        let paused = conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"));
        (observed && paused).then_some(current)
    })
    .await;
    assert_eq!(paused.metadata.generation, Some(4));
    assert_eq!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "no ReplicaSet while paused"
    );
    deployments
        .patch(
            "re",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    eventually("the resumed rollout", || async {
        let images: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(image)
            .collect();
        let done = deployments.get("re").await.ok().filter(rolled_out)?;
        (images == ["nginx:3", "nginx:3"]).then_some(done)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_refuses_connections() {
    let cluster = quick_cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    api.list(&ListParams::default()).await.unwrap();
    drop(cluster);
    eventually("the connection to be refused", || async {
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => panic!("a stopped cluster answered {status:?}"),
            Err(_) => Some(()),
            Ok(_) => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_delete_collection_and_namespace_deletion() {
    use k8s_openapi::api::core::v1::Namespace;
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let preview = api
        .create(&dry, &config_map("preview", json!({})))
        .await
        .unwrap();
    assert!(preview.metadata.uid.is_some());
    assert_eq!(
        api_code(api.get("preview").await.unwrap_err()).0,
        404,
        "dry run stores nothing"
    );

    for (name, app) in [("a", "web"), ("b", "web"), ("c", "api")] {
        api.create(
            &PostParams::default(),
            &config_map(name, json!({"app": app})),
        )
        .await
        .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        api_code(
            api.create(&PostParams::default(), &config_map("d", json!({})))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_replaced_by_its_replica_set() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 2))
        .await
        .unwrap();
    eventually("the rollout", || async {
        deployments.get("web").await.ok().filter(rolled_out)
    })
    .await;
    let victim = pods.list(&ListParams::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually("a replacement pod, ready", || async {
        let names: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect();
        let done = deployments.get("web").await.ok().filter(rolled_out)?;
        (names.len() == 2 && !names.contains(&victim)).then_some(done)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_that_name_the_problem() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let send = |method: &str, path: &str, content_type: &str, body: &str| {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap();
        let client = client.clone();
        async move { client.request_text(request).await }
    };
    let cases = [
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{not json",
            400,
            "error decoding JSON body",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?colour=blue",
            "application/json",
            "",
            400,
            "unknown query parameter \"colour\"",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=a%20b%3Dc",
            "application/json",
            "",
            400,
            "labelSelector",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=abc",
            "application/json",
            "",
            400,
            "resourceVersion",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/vnd.kubernetes.protobuf",
            "\u{0}",
            415,
            "protobuf",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "application/xml",
            "<x/>",
            415,
            "application/xml",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"kind":"Secret","metadata":{"name":"x"}}"#,
            400,
            "kind",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
            "metadata.name",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"metadata":{"name":"x"},"data":{"k":1}}"#,
            422,
            "data",
        ),
        (
            "GET",
            "/apis/apps/v1/namespaces/default/widgets",
            "application/json",
            "",
            404,
            "could not find",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/x?propagationPolicy=Sometimes",
            "application/json",
            "",
            400,
            "propagationPolicy",
        ),
    ];
    for (method, path, content_type, body, code, needle) in cases {
        match send(method, path, content_type, body).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, code, "{method} {path}: {}", status.message);
                assert!(
                    status.message.contains(needle),
                    "{method} {path}: {:?} lacks {needle:?}",
                    status.message
                );
            }
            other => panic!("{method} {path}: expected HTTP {code}, got {other:?}"),
        }
    }
    // A JSON patch whose `test` fails changes nothing.
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("x", json!({})))
        .await
        .unwrap();
    let patch = r#"[{"op":"test","path":"/data/k","value":"other"},{"op":"replace","path":"/data/k","value":"new"}]"#;
    match send(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        "application/json-patch+json",
        patch,
    )
    .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(status.message.contains("test failed"), "{}", status.message)
        }
        other => panic!("expected a failed JSON patch, got {other:?}"),
    }
    assert_eq!(api.get("x").await.unwrap().data.unwrap()["k"], "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_is_applied_and_its_stand_in_scales_the_target() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 2))
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(client.clone());
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70}}}]
        }
    }))
    .unwrap();
    hpas.patch(
        "web",
        &PatchParams::apply("edasd").force(),
        &Patch::Apply(&hpa),
    )
    .await
    .unwrap();
    assert_eq!(cluster.autoscale("default", "web", 5), Ok(5));
    let status = hpas.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.desired_replicas, 5);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    eventually("the HPA's 5 pods", || async {
        let n = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len();
        (n == 5).then_some(())
    })
    .await;
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(5));
    assert!(cluster.autoscale("default", "missing", 3).is_err());
    hpas.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(cluster.autoscale("default", "web", 3).is_err());
}

/// Issue 24: NodePort and LoadBalancer Services get node ports from 30000–32767 as from an
/// API server, kept when a server-side apply leaves them out, dropped when the type becomes
/// ClusterIP; Ingresses are served (networking.k8s.io/v1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_are_allocated_kept_and_dropped_and_ingresses_are_served() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::networking::v1::Ingress;
    let cluster = quick_cluster().await;
    let services: Api<Service> = Api::default_namespaced(client(&cluster));
    let apply = |kind: &str, ports: serde_json::Value| -> Service {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "lb"}, "spec": {"type": kind, "ports": ports,
            "selector": {"app": "lb"}}}))
        .unwrap()
    };
    let params = PatchParams::apply("edasd").force();
    let node_ports = |s: Service| -> Vec<Option<i32>> {
        s.spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| p.node_port)
            .collect()
    };
    let first = node_ports(
        services
            .patch(
                "lb",
                &params,
                &Patch::Apply(apply(
                    "LoadBalancer",
                    json!([{"port": 443, "targetPort": 8443}, {"port": 80, "nodePort": 30080}]),
                )),
            )
            .await
            .unwrap(),
    );
    assert!(
        first[0].is_some_and(|p| (30000..=32767).contains(&p)),
        "{first:?}"
    );
    assert_eq!(first[1], Some(30080), "the one asked for");
    let again = node_ports(
        services
            .patch(
                "lb",
                &params,
                &Patch::Apply(apply(
                    "NodePort",
                    json!([{"port": 443, "targetPort": 8443}]),
                )),
            )
            .await
            .unwrap(),
    );
    assert_eq!(again, [first[0]], "kept across the apply");
    let cluster_ip = node_ports(
        services
            .patch(
                "lb",
                &params,
                &Patch::Apply(apply(
                    "ClusterIP",
                    json!([{"port": 443, "targetPort": 8443}]),
                )),
            )
            .await
            .unwrap(),
    );
    assert_eq!(cluster_ip, [None]);

    let ingresses: Api<Ingress> = Api::default_namespaced(client(&cluster));
    let ingress: Ingress = serde_json::from_value(json!({"metadata": {"name": "front"},
        "spec": {"rules": [{"host": "a.test", "http": {"paths": [{"path": "/",
            "pathType": "Prefix", "backend": {"service": {"name": "lb",
                "port": {"number": 443}}}}]}}]}}))
    .unwrap();
    ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();
    let listed = ingresses.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    ingresses
        .delete("front", &DeleteParams::default())
        .await
        .unwrap();
}
