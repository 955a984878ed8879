//! Release policies (issue 21): every set or delete is version N+1 with its audit record;
//! refused writes store nothing.

use edas_store::*;
use serde_json::json;

use crate::harness::*;

fn trail_actions(trail: &Page<AuditRecord>) -> Vec<&str> {
    trail
        .items
        .iter()
        .map(|r| r.entry.action.as_str())
        .collect()
}

pub async fn release_policies_are_versioned_and_audited(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app-p", "co-p", t(0)).await;
    assert_eq!(store.release_policy("app-p").await.unwrap(), None);
    // Deleting a policy that does not exist is refused and stores nothing.
    let err = store
        .put_release_policy(
            "app-p",
            None,
            "LTAItest",
            &audit("Policy.Delete", "app-p"),
            t(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let v1 = store
        .put_release_policy(
            "app-p",
            Some(&json!({"checks": [{"name": "a"}]})),
            "LTAItest",
            &audit("Policy.Set", "app-p"),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!((v1.version, v1.created_at), (1, t(2)));
    let v2 = store
        .put_release_policy(
            "app-p",
            Some(&json!({"checks": [{"name": "b"}]})),
            "LTAIother",
            &audit("Policy.Set", "app-p"),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        store.release_policy("app-p").await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(store.release_policy_version("app-p", 1).await.unwrap(), v1);
    let gone = store
        .put_release_policy(
            "app-p",
            None,
            "LTAItest",
            &audit("Policy.Delete", "app-p"),
            t(4),
        )
        .await
        .unwrap();
    assert_eq!((gone.version, gone.policy), (3, None));
    assert_eq!(store.release_policy("app-p").await.unwrap(), None);
    // The history keeps every version, newest first; the old versions still read back.
    let history = store.release_policy_history("app-p").await.unwrap();
    assert_eq!(
        history.iter().map(|p| p.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(history[1].created_by, "LTAIother");
    let err = store.release_policy_version("app-p", 9).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    // An unknown application stores nothing.
    let err = store
        .put_release_policy(
            "app-none",
            Some(&json!({})),
            "x",
            &audit("Policy.Set", "app-none"),
            t(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let trail = store
        .list_audit(
            &AuditQuery {
                app_id: Some("app-p".into()),
                ..Default::default()
            },
            PageRequest {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        trail_actions(&trail),
        ["Policy.Delete", "Policy.Set", "Policy.Set", "Insert"]
    );
    let none = store
        .list_audit(
            &AuditQuery {
                app_id: Some("app-none".into()),
                ..Default::default()
            },
            PageRequest {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(none.total, 0);
}
