//! The failure faults a Kubernetes client has to cope with: pods Kubernetes will not start by
//! itself (unschedulable, image pull errors, container config errors), denied rights (403 and
//! SelfSubjectAccessReview), a draining API server, and the Gateway controller's route status.

use std::time::Duration;

use edas_fake_kube::controller::REJECT_ROUTES_ANNOTATION;
use edas_fake_kube::{Config, DeniedRight, PodFault};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::{WAIT, client, deployment, eventually, quick_cluster, start};

/// The first container's waiting reason and message of the pod labelled `app=<app>`.
async fn waiting(pods: &Api<Pod>, app: &str) -> Option<(String, String, String)> {
    let pod = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .ok()?
        .items
        .pop()?;
    let status = pod.status?;
    let waiting = status.container_statuses?.pop()?.state?.waiting?;
    Some((
        status.phase.unwrap_or_default(),
        waiting.reason.unwrap_or_default(),
        waiting.message.unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kubernetes_cannot_start_report_the_clusters_reason() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    cluster
        .add_pod_fault(PodFault::unschedulable("app=big", None))
        .unwrap();
    cluster
        .add_pod_fault(PodFault::image_pull_error("app=pull"))
        .unwrap();
    cluster
        .add_pod_fault(PodFault::config_error(
            "app=conf",
            "couldn't find key url in ConfigMap default/db",
        ))
        .unwrap();
    for app in ["big", "pull", "conf"] {
        deployments
            .create(&PostParams::default(), &deployment(app, "nginx:1", 1))
            .await
            .unwrap();
    }
    let unscheduled = eventually("an unschedulable pod", || async {
        let pod = pods
            .list(&ListParams::default().labels("app=big"))
            .await
            .ok()?
            .items
            .pop()?;
        let status = pod.status?;
        let scheduled = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (scheduled.status == "False").then_some((status.phase, scheduled, status.pod_ip))
    })
    .await;
    assert_eq!(unscheduled.0.as_deref(), Some("Pending"));
    assert_eq!(unscheduled.1.reason.as_deref(), Some("Unschedulable"));
    assert!(
        unscheduled
            .1
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("0/1 nodes are available: Insufficient cpu")),
        "{:?}",
        unscheduled.1.message
    );
    assert_eq!(unscheduled.2, None, "an unscheduled pod has no IP");

    let pull = eventually("ImagePullBackOff after ErrImagePull", || async {
        waiting(&pods, "pull")
            .await
            .filter(|w| w.1 == "ImagePullBackOff")
    })
    .await;
    assert_eq!(pull.0, "Pending");
    assert!(pull.2.contains("nginx:1"), "{}", pull.2);

    let conf = eventually("CreateContainerConfigError", || async {
        waiting(&pods, "conf").await
    })
    .await;
    assert_eq!(
        (conf.1.as_str(), conf.2.as_str()),
        (
            "CreateContainerConfigError",
            "couldn't find key url in ConfigMap default/db"
        )
    );

    cluster.clear_faults();
    eventually("recovery of every pod", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .all(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .then_some(())
    })
    .await;

    let invalid = PodFault {
        message: Some("x".into()),
        ..PodFault::never_ready("app=x")
    };
    assert!(
        cluster
            .add_pod_fault(invalid)
            .unwrap_err()
            .contains("message")
    );
}

fn review(verb: &str, group: &str, resource: &str) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some("default".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_rights_answer_403_and_access_reviews() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    cluster
        .deny(DeniedRight::new("deletecollection", "", "configmaps"))
        .unwrap();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let denied = reviews
        .create(
            &PostParams::default(),
            &review("deletecollection", "", "configmaps"),
        )
        .await
        .unwrap();
    assert!(!denied.status.unwrap().allowed);
    let allowed = reviews
        .create(&PostParams::default(), &review("delete", "", "configmaps"))
        .await
        .unwrap();
    assert!(allowed.status.unwrap().allowed);
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let error = cms
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("an API error, got {error}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status
            .message
            .contains("cannot deletecollection resource \"configmaps\""),
        "{}",
        status.message
    );
    cms.list(&ListParams::default()).await.unwrap();
    assert!(cluster.deny(DeniedRight::new("", "", "pods")).is_err());
    cluster.clear_faults();
    cms.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_keeps_watches_open_and_silent() {
    let cluster = start(Config {
        bookmark_interval: Duration::from_millis(50),
        ..Config::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    let mut old = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    cluster.drain_watches();
    // Give the drain a moment to reach the stream's task, then write.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drained_from = cluster.resource_version();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "after-drain"}})).unwrap(),
    )
    .await
    .unwrap();
    // Not even its own one-second timeout ends the old stream: nothing arrives for 2 s.
    let silent = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(event) = old.next().await {
            if let Ok(WatchEvent::Added(cm)) = event
                && cm.metadata.name.as_deref() == Some("after-drain")
            {
                return;
            }
        }
    })
    .await;
    assert!(
        silent.is_err(),
        "a drained watch delivered an event or ended"
    );
    let mut fresh = api
        .watch(&WatchParams::default(), &drained_from.to_string())
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(WAIT, fresh.next())
        .await
        .expect("a new watch is served")
        .expect("open")
        .expect("decodable");
    assert!(
        matches!(event, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("after-drain"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_accepted_by_an_existing_gateway_only() {
    let cluster = start(Config {
        gateway_api: true,
        pod_ready_delay: Duration::from_millis(50),
        ..Config::default()
    })
    .await;
    let client = client(&cluster);
    let gvk = |kind: &str| GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    let routes: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk(&gvk("HTTPRoute")),
    );
    let gateways: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk(&gvk("Gateway")),
    );
    let route = |name: &str, gateway: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": gateway}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
        }))
        .unwrap()
    };
    let gateway = |name: &str, reject: Option<&str>| -> DynamicObject {
        let mut annotations = serde_json::Map::new();
        if let Some(message) = reject {
            annotations.insert(REJECT_ROUTES_ANNOTATION.into(), json!(message));
        }
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"gatewayClassName": "fake", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
        }))
        .unwrap()
    };
    let accepted = |route: &DynamicObject| -> Option<(String, String)> {
        let condition = route.data.pointer("/status/parents/0/conditions/0")?;
        Some((
            condition["status"].as_str()?.to_owned(),
            condition["reason"].as_str()?.to_owned(),
        ))
    };
    let pp = PostParams::default();
    gateways
        .create(&pp, &gateway("public", None))
        .await
        .unwrap();
    gateways
        .create(
            &pp,
            &gateway("closed", Some("no listener allows this namespace")),
        )
        .await
        .unwrap();
    routes.create(&pp, &route("ok", "public")).await.unwrap();
    routes
        .create(&pp, &route("refused", "closed"))
        .await
        .unwrap();
    routes
        .create(&pp, &route("orphan", "missing"))
        .await
        .unwrap();
    let ok = eventually("an Accepted route", || async {
        accepted(&routes.get("ok").await.ok()?)
    })
    .await;
    assert_eq!(ok, ("True".to_owned(), "Accepted".to_owned()));
    let refused = eventually("a refused route", || async {
        accepted(&routes.get("refused").await.ok()?)
    })
    .await;
    assert_eq!(
        refused,
        ("False".to_owned(), "NotAllowedByListeners".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted(&routes.get("orphan").await.unwrap()), None);
    gateways
        .create(&pp, &gateway("missing", None))
        .await
        .unwrap();
    eventually("acceptance once the Gateway exists", || async {
        accepted(&routes.get("orphan").await.ok()?).filter(|a| a.0 == "True")
    })
    .await;
}
