//! Pending sweeps and the deletion that does not wait for the cluster.

use edas_store::*;

use crate::harness::*;

pub async fn deleting_now_ends_the_active_order_and_leaves_a_sweep(ts: &TestStore) {
    let store = &ts.store;
    let (_, co) = store
        .create_application(
            new_app("app-d", "doomed", "cn-hangzhou:a", "c1"),
            new_co("co-1"),
            audit("Insert", "app-d"),
            t(0),
        )
        .await
        .unwrap();
    // A sweep recorded before the deletion waits for it.
    store.add_sweep("app-d", "c1", false, t(1)).await.unwrap();
    assert!(store.pending_sweeps("c1").await.unwrap().is_empty());

    // A stale version is refused and nothing changes.
    let stale = Superseded {
        id: co.id.clone(),
        expected_version: co.version + 5,
        status: st(6),
        state: state("ended"),
    };
    let err = store
        .delete_application_now(
            "app-d",
            "c1",
            true,
            &[stale],
            NewChangeOrder {
                id: "co-del".into(),
                co_type: "CoDelete".into(),
                status: st(2),
                state: state("empty"),
                description: String::new(),
            },
            audit("DeleteK8sApplication", "app-d"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err:?}");
    assert!(!store.get_application("app-d").await.unwrap().deleted);

    // Without ending the active order: a conflict naming it.
    let err = store
        .delete_application_now(
            "app-d",
            "c1",
            true,
            &[],
            NewChangeOrder {
                id: "co-del".into(),
                co_type: "CoDelete".into(),
                status: st(2),
                state: state("empty"),
                description: String::new(),
            },
            audit("DeleteK8sApplication", "app-d"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ActiveChangeOrder { .. }),
        "{err:?}"
    );

    let ended = Superseded {
        id: co.id.clone(),
        expected_version: co.version,
        status: st(6),
        state: state("ended"),
    };
    let deleted = store
        .delete_application_now(
            "app-d",
            "c1",
            true,
            &[ended],
            NewChangeOrder {
                id: "co-del".into(),
                co_type: "CoDelete".into(),
                status: st(2),
                state: state("forced"),
                description: String::new(),
            },
            audit("DeleteK8sApplication", "app-d"),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(deleted.finished_at, Some(t(3)));
    assert_eq!(store.get_change_order("co-del").await.unwrap(), deleted);
    let old = store.get_change_order(&co.id).await.unwrap();
    assert_eq!((old.status.code(), old.finished_at), (6, Some(t(3))));
    assert_eq!(old.state, state("ended"));
    assert!(store.get_application("app-d").await.unwrap().deleted);
    assert_eq!(store.active_change_order("app-d").await.unwrap(), None);

    let owed = store.pending_sweeps("c1").await.unwrap();
    assert_eq!(owed.len(), 1);
    // Forced if either request asked for it; other clusters owe nothing.
    assert_eq!((owed[0].app_id.as_str(), owed[0].forced), ("app-d", true));
    assert!(store.pending_sweeps("c2").await.unwrap().is_empty());
    assert!(store.sweep_of("app-d").await.unwrap().is_some());

    // Deleting again: the application is gone.
    let again = store
        .delete_application_now(
            "app-d",
            "c1",
            false,
            &[],
            NewChangeOrder {
                id: "co-del2".into(),
                co_type: "CoDelete".into(),
                status: st(2),
                state: state("empty"),
                description: String::new(),
            },
            audit("DeleteK8sApplication", "app-d"),
            t(4),
        )
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound { .. }), "{again:?}");

    assert!(store.remove_sweep("app-d").await.unwrap());
    assert!(!store.remove_sweep("app-d").await.unwrap());
    assert!(store.pending_sweeps("c1").await.unwrap().is_empty());
}
