//! The identity version a signer cache is validated by: every change of an access key, user,
//! policy or attachment moves it (on PostgreSQL also as another process sees it), and reads do
//! not.

use edas_store::*;
use serde_json::json;

use crate::harness::*;

fn by_admin() -> AuditEntry {
    AuditEntry {
        actor: "admin".into(),
        action: "Admin".into(),
        resource: "identity".into(),
        app_id: None,
        request_id: None,
        detail: serde_json::Value::Null,
    }
}

pub async fn every_identity_change_moves_the_identity_version(ts: &TestStore) {
    let store = &ts.store;
    // Another process on the same database (PostgreSQL; on SQLite one process owns the file and
    // its own count is the version).
    let other = ts.reopen().await;
    let shared = store.backend_name() == "postgres";
    let mut seen = vec![store.identity_version().await.unwrap()];
    let mut moved = async |what: &str| {
        let now = store.identity_version().await.unwrap();
        assert!(!seen.contains(&now), "{what} did not move the version");
        if shared {
            assert_eq!(
                other.identity_version().await.unwrap(),
                now,
                "{what}: another process sees another version"
            );
        }
        seen.push(now);
    };
    let user = User {
        name: "erin".into(),
        admin: false,
        created_at: t(0),
    };
    store.put_user(&user, by_admin(), t(0)).await.unwrap();
    moved("put_user").await;
    let key = AccessKey {
        id: "AKerin".into(),
        secret: Sensitive::new("erin-secret".into()),
        user: "erin".into(),
        enabled: true,
        created_at: t(0),
    };
    store
        .create_access_key(&key, by_admin(), t(0))
        .await
        .unwrap();
    moved("create_access_key").await;
    let policy = Policy {
        name: "read".into(),
        document: json!({"Version": "1", "Statement": []}),
        created_at: t(0),
        updated_at: t(0),
    };
    store.put_policy(&policy, by_admin(), t(0)).await.unwrap();
    moved("put_policy").await;
    store
        .attach_policy("erin", "read", by_admin(), t(0))
        .await
        .unwrap();
    moved("attach_policy").await;
    // Reads leave it alone.
    store.get_access_key("AKerin").await.unwrap();
    let before_reads = store.identity_version().await.unwrap();
    store.get_user("erin").await.unwrap();
    assert_eq!(
        store.identity_version().await.unwrap(),
        before_reads,
        "a read moved the version"
    );
    store
        .set_access_key_enabled("AKerin", false, by_admin(), t(0))
        .await
        .unwrap();
    moved("set_access_key_enabled").await;
    assert!(
        store
            .detach_policy("erin", "read", by_admin(), t(0))
            .await
            .unwrap()
    );
    moved("detach_policy").await;
    assert!(store.delete_policy("read", by_admin(), t(0)).await.unwrap());
    moved("delete_policy").await;
    assert!(
        store
            .delete_access_key("AKerin", by_admin(), t(0))
            .await
            .unwrap()
    );
    moved("delete_access_key").await;
    assert!(store.delete_user("erin", by_admin(), t(0)).await.unwrap());
    moved("delete_user").await;
    // A change made by the other process counts here at once (PostgreSQL).
    if shared {
        other.put_user(&user, by_admin(), t(1)).await.unwrap();
        let now = store.identity_version().await.unwrap();
        assert!(
            !seen.contains(&now),
            "another process's change did not count"
        );
    }
    other.close().await;
}
