//! Ingress rules: stored per cluster, namespace and name, each write with its audit record;
//! refused writes store nothing.

use edas_spec::ingress::{IngressBackend, IngressHost, IngressPath, IngressSpec, PathType};
use edas_store::*;

use crate::harness::*;

fn rule(cluster: &str, namespace: &str, name: &str, host: &str) -> IngressRule {
    IngressRule {
        cluster_id: cluster.into(),
        namespace: namespace.into(),
        name: name.into(),
        spec: IngressSpec {
            rules: vec![IngressHost {
                host: host.into(),
                secret_name: None,
                paths: vec![IngressPath {
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    backend: IngressBackend {
                        service_name: "web".into(),
                        service_port: 80,
                        app_id: "app-i".into(),
                        app_name: "demo".into(),
                    },
                }],
            }],
            ..IngressSpec::default()
        },
        created_at: t(0),
        updated_at: t(0),
    }
}

pub async fn ingress_rules_are_stored_per_cluster_and_namespace(ts: &TestStore) {
    let store = &ts.store;
    let a = rule("c1", "default", "shop", "a.example.com");
    let stored = store
        .put_ingress_rule(&a, true, &audit("CreateK8sIngressRule", "app-i"), t(1))
        .await
        .unwrap();
    assert_eq!((stored.created_at, stored.updated_at), (t(1), t(1)));
    assert_eq!(stored.spec, a.spec);
    let err = store
        .put_ingress_rule(&a, true, &audit("CreateK8sIngressRule", "app-i"), t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let err = store
        .put_ingress_rule(
            &rule("c1", "default", "none", "b.example.com"),
            false,
            &audit("UpdateK8sIngressRule", "app-i"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    // The same name in another namespace or cluster is another rule.
    for (cluster, namespace) in [("c1", "other"), ("c2", "default")] {
        store
            .put_ingress_rule(
                &rule(cluster, namespace, "shop", "c.example.com"),
                true,
                &audit("CreateK8sIngressRule", "app-i"),
                t(2),
            )
            .await
            .unwrap();
    }
    let updated = store
        .put_ingress_rule(
            &rule("c1", "default", "shop", "d.example.com"),
            false,
            &audit("UpdateK8sIngressRule", "app-i"),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!((updated.created_at, updated.updated_at), (t(1), t(3)));
    assert_eq!(updated.spec.rules[0].host, "d.example.com");
    let keys = |rules: Vec<IngressRule>| -> Vec<(String, String)> {
        rules
            .into_iter()
            .map(|r| (r.cluster_id, r.namespace))
            .collect()
    };
    assert_eq!(
        keys(store.ingress_rules(None, None).await.unwrap()),
        [
            ("c1".into(), "default".into()),
            ("c1".into(), "other".into()),
            ("c2".into(), "default".into())
        ]
    );
    assert_eq!(
        store.ingress_rules(Some("c1"), None).await.unwrap().len(),
        2
    );
    assert_eq!(
        store
            .ingress_rules(Some("c1"), Some("other"))
            .await
            .unwrap()
            .len(),
        1
    );

    store
        .delete_ingress_rule(
            "c1",
            "default",
            "shop",
            &audit("DeleteK8sIngressRule", "app-i"),
            t(4),
        )
        .await
        .unwrap();
    let err = store
        .delete_ingress_rule(
            "c1",
            "default",
            "shop",
            &audit("DeleteK8sIngressRule", "app-i"),
            t(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(
        store.ingress_rules(Some("c1"), None).await.unwrap().len(),
        1
    );
}
