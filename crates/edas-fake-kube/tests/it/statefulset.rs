//! The StatefulSet controller stand-in, through kube-rs: ordinals created in order, the
//! partition honoured, updates from the highest ordinal down, scale-down from the top, status.

use std::collections::BTreeMap;

use edas_fake_kube::PodFault;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{client, eventually, quick_cluster};

fn set(image: &str, replicas: i32, partition: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "spec": {
            "replicas": replicas,
            "serviceName": "db-headless",
            "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": image}]}
            }
        }
    }))
    .expect("a valid StatefulSet")
}

/// Each pod's image by ordinal, once every one of them is Ready; `None` while one is not.
async fn ready_images(pods: &Api<Pod>) -> Option<BTreeMap<String, String>> {
    let list = pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .ok()?;
    let mut out = BTreeMap::new();
    for pod in list.items {
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return None;
        }
        let image = pod.spec.as_ref()?.containers[0].image.clone()?;
        out.insert(pod.metadata.name.clone()?, image);
    }
    Some(out)
}

fn images(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinals_partition_and_ordered_updates() {
    let cluster = quick_cluster().await;
    let client = client(&cluster);
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    sets.create(&PostParams::default(), &set("db:1", 3, 0))
        .await
        .unwrap();
    let want = images(&[("db-0", "db:1"), ("db-1", "db:1"), ("db-2", "db:1")]);
    eventually("three ordinals", || async {
        ready_images(&pods).await.filter(|m| *m == want)
    })
    .await;
    let pod = pods.get("db-1").await.unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("db-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("db-headless"));
    let first_revision = pod.metadata.labels.unwrap()["controller-revision-hash"].clone();

    // A new template above partition 2: only the highest ordinal moves.
    let ssa = PatchParams::apply("test").force();
    sets.patch("db", &ssa, &Patch::Apply(set("db:2", 3, 2)))
        .await
        .unwrap();
    let want = images(&[("db-0", "db:1"), ("db-1", "db:1"), ("db-2", "db:2")]);
    let status = eventually("db-2 updated", || async {
        ready_images(&pods).await.filter(|m| *m == want)?;
        let s = sets.get("db").await.ok()?.status?;
        (s.updated_replicas == Some(1) && s.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(
        status.current_revision.as_deref(),
        Some(first_revision.as_str())
    );
    assert_ne!(status.update_revision, status.current_revision);
    assert_eq!(status.current_replicas, Some(2));

    // One more pod (partition 2): ordinal 3 gets the update revision.
    sets.patch("db", &ssa, &Patch::Apply(set("db:2", 4, 2)))
        .await
        .unwrap();
    let want = images(&[
        ("db-0", "db:1"),
        ("db-1", "db:1"),
        ("db-2", "db:2"),
        ("db-3", "db:2"),
    ]);
    eventually("db-3 created at the update revision", || async {
        ready_images(&pods).await.filter(|m| *m == want)
    })
    .await;

    // Partition 0 and 3 replicas: the top ordinal goes, then the rest are updated from the
    // highest down, so db-1 is replaced before db-0.
    sets.patch("db", &ssa, &Patch::Apply(set("db:2", 3, 0)))
        .await
        .unwrap();
    let order = std::sync::Mutex::new(Vec::<String>::new());
    let want = images(&[("db-0", "db:2"), ("db-1", "db:2"), ("db-2", "db:2")]);
    eventually("all updated", || async {
        let list = pods
            .list(&ListParams::default().labels("app=db"))
            .await
            .ok()?;
        for pod in &list.items {
            let name = pod.metadata.name.clone()?;
            let image = pod.spec.as_ref()?.containers[0].image.clone()?;
            let mut order = order.lock().unwrap();
            if image == "db:2" && !order.contains(&name) {
                order.push(name);
            }
        }
        ready_images(&pods).await.filter(|m| *m == want)
    })
    .await;
    let order = order.into_inner().unwrap();
    let tail: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|n| *n == "db-0" || *n == "db-1")
        .collect();
    assert_eq!(tail, ["db-1", "db-0"], "{order:?}");
    let status = eventually("rollout complete", || async {
        let s = sets.get("db").await.ok()?.status?;
        (s.current_revision == s.update_revision && s.updated_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_replicas, Some(3));

    // Back to the first template: its revision comes back.
    sets.patch("db", &ssa, &Patch::Apply(set("db:1", 3, 0)))
        .await
        .unwrap();
    // (The status right after the patch may still be the finished rollout of `db:2`: wait
    // for the first revision itself.)
    let status = eventually("rolled back", || async {
        let s = sets.get("db").await.ok()?.status?;
        (s.update_revision.as_deref() == Some(first_revision.as_str())
            && s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.current_revision == s.update_revision)
            .then_some(s)
    })
    .await;
    assert_eq!(
        status.update_revision.as_deref(),
        Some(first_revision.as_str())
    );

    // Deleting the StatefulSet deletes its pods.
    sets.delete("db", &DeleteParams::background())
        .await
        .unwrap();
    eventually("pods gone", || async {
        pods.list(&ListParams::default().labels("app=db"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_is_not_ready_blocks_the_ordinals_after_it() {
    let cluster = quick_cluster().await;
    cluster
        .add_pod_fault(PodFault::never_ready("app=db"))
        .unwrap();
    let client = client(&cluster);
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    sets.create(&PostParams::default(), &set("db:1", 3, 0))
        .await
        .unwrap();
    eventually("db-0 created", || async {
        pods.get_opt("db-0").await.ok()?
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        pods.get_opt("db-1").await.unwrap().is_none(),
        "OrderedReady waits for db-0"
    );
    let status = sets.get("db").await.unwrap().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (1, Some(0)));
    cluster.clear_faults();
    eventually("all three once db-0 is Ready", || async {
        ready_images(&pods).await.filter(|m| m.len() == 3)
    })
    .await;
}
