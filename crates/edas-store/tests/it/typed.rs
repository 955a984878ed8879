//! Conformance of the typed change-order columns and of the one-transaction commands.

use edas_store::{
    AuditEntry, AuditQuery, ChangeOrderStatus, FollowUpDeploy, PageRequest, ServicePortUse,
    StoreError,
};

use crate::harness::*;

/// AbortAndRollbackChangeOrder's write: the terminated order and the rollback (revision,
/// change order, both audit records) commit together. When the rollback cannot be stored
/// (here: its application is gone, a stand-in for any failure of the second half, a crash
/// included) the termination is not stored either, so no order is ever left terminated
/// without its rollback.
pub async fn a_rollback_is_stored_with_the_transition_or_not_at_all(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app", "co-1", t(0)).await;
    store
        .transition("co-1", 1, finish(2), audit("Done", "app"), t(1))
        .await
        .unwrap();
    store
        .deploy(
            "app",
            spec("v2"),
            new_co("co-2"),
            audit("Deploy", "app"),
            t(2),
        )
        .await
        .unwrap();
    let audit_total = |s: &edas_store::Store| {
        let s = s.clone();
        async move {
            let q = AuditQuery {
                app_id: Some("app".into()),
                ..Default::default()
            };
            s.list_audit(&q, PageRequest::new(1, 100))
                .await
                .unwrap()
                .total
        }
    };
    let before_audit = audit_total(store).await;
    let rollback_of = |app: &str, id: &str| FollowUpDeploy {
        app_id: app.into(),
        revision: spec_with_ports("v1", &[7001]),
        change_order: new_co(id),
        audit: AuditEntry {
            actor: "LTAIroller".into(),
            ..audit("Rollback", "app")
        },
    };
    let terminate = || edas_store::Transition {
        status: ChangeOrderStatus::Terminated,
        ..finish(6)
    };

    // The second half fails: nothing of the first half is kept.
    let err = store
        .transition_and_deploy(
            "co-2",
            1,
            terminate(),
            audit("Abort", "app"),
            rollback_of("gone", "co-rb"),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let co2 = store.get_change_order("co-2").await.unwrap();
    assert_eq!(
        (co2.status, co2.version, co2.finished_at),
        (ChangeOrderStatus::Ready, 1, None)
    );
    assert_eq!(
        store.get_application("app").await.unwrap().current_revision,
        2
    );
    assert_eq!(audit_total(store).await, before_audit);

    // Both halves succeed together.
    let (version, revision, order) = store
        .transition_and_deploy(
            "co-2",
            1,
            terminate(),
            audit("Abort", "app"),
            rollback_of("app", "co-rb"),
            t(4),
        )
        .await
        .unwrap();
    assert_eq!((version, revision.number), (2, 3));
    let co2 = store.get_change_order("co-2").await.unwrap();
    assert_eq!(
        (co2.status, co2.finished_at),
        (ChangeOrderStatus::Terminated, Some(t(4)))
    );
    assert_eq!(store.get_change_order("co-rb").await.unwrap(), order);
    assert_eq!(order.creator.as_deref(), Some("LTAIroller"));
    assert_eq!(
        store
            .active_change_order("app")
            .await
            .unwrap()
            .map(|o| o.id),
        Some("co-rb".into())
    );
    assert_eq!(
        store.get_revision("app", 3).await.unwrap().spec,
        spec_with_ports("v1", &[7001])
    );
    assert_eq!(audit_total(store).await, before_audit + 2);

    // A stale first half refuses the whole command.
    let err = store
        .transition_and_deploy(
            "co-2",
            1,
            terminate(),
            audit("Abort", "app"),
            rollback_of("app", "co-x"),
            t(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Finished { .. }), "{err:?}");
    assert!(matches!(
        store.get_change_order("co-x").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// `creator` is the actor of the audit record written with the order and does not follow
/// later transitions; unfinished orders are counted by status.
pub async fn the_creator_is_written_with_the_change_order(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app-a", "co-a", t(0)).await;
    create(store, "app-b", "co-b", t(0)).await;
    let system = AuditEntry {
        actor: "system".into(),
        ..audit("Step", "app-a")
    };
    store
        .transition("co-a", 1, step(1, state("empty")), system, t(1))
        .await
        .unwrap();
    let co = store.get_change_order("co-a").await.unwrap();
    assert_eq!(co.creator.as_deref(), Some("LTAItest"));
    assert_eq!(co.status, ChangeOrderStatus::InProgress);
    let mut counts = store.count_active_change_orders().await.unwrap();
    counts.sort_by_key(|(s, _)| s.code());
    assert_eq!(
        counts,
        [
            (ChangeOrderStatus::Ready, 1),
            (ChangeOrderStatus::InProgress, 1)
        ]
    );
    // A status code this binary does not know is corrupt data, named as such.
    ts.raw_execute("UPDATE change_orders SET status = 42 WHERE id = 'co-b'")
        .await;
    let err = store.get_change_order("co-b").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "change_orders.status",
                ..
            }
        ),
        "{err:?}"
    );
}

/// The Service ports of each live application's current revision are indexed with it: written
/// by creation, deploys and rollbacks (replacing the previous revision's), scoped to a cluster,
/// and forgotten when the application is deleted.
pub async fn service_ports_are_indexed_with_the_revision(ts: &TestStore) {
    let store = &ts.store;
    let mut app = new_app("app-a", "alpha", "cn-hangzhou:ns", "local");
    app.spec = spec_with_ports("alpha-1", &[8080, 8081]);
    store
        .create_application(app, new_co("co-a"), audit("Insert", "app-a"), t(0))
        .await
        .unwrap();
    let used = |port: i64| ServicePortUse {
        app_id: "app-a".into(),
        app_name: "alpha".into(),
        port,
    };
    assert_eq!(
        store
            .service_port_in_use("local", &[9000, 8081], None)
            .await
            .unwrap(),
        Some(used(8081))
    );
    assert_eq!(
        store
            .service_port_in_use("c2", &[8080], None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .service_port_in_use("local", &[8080], Some("app-a"))
            .await
            .unwrap(),
        None
    );
    store
        .transition("co-a", 1, finish(2), audit("Done", "app-a"), t(1))
        .await
        .unwrap();
    let next = spec_with_ports("v2", &[9090]);
    store
        .deploy(
            "app-a",
            next,
            new_co("co-b"),
            audit("Deploy", "app-a"),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .service_port_in_use("local", &[8080, 8081], None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .service_port_in_use("local", &[9090], None)
            .await
            .unwrap(),
        Some(used(9090))
    );
    let delete = edas_store::Transition {
        delete_app: true,
        before: None,
        ..finish(2)
    };
    store
        .transition("co-b", 1, delete, audit("Deleted", "app-a"), t(3))
        .await
        .unwrap();
    assert_eq!(
        store
            .service_port_in_use("local", &[9090], None)
            .await
            .unwrap(),
        None
    );
}

/// Revision documents and change-order states are read straight into their types: what was
/// written reads back equal, and a stored document that does not decode is
/// [`StoreError::Corrupt`] naming its column, not a driver error.
pub async fn typed_documents_read_back_or_are_corrupt(ts: &TestStore) {
    let store = &ts.store;
    let mut app = new_app("app", "app", "cn-hangzhou:ns", "c1");
    app.spec = spec_with_ports("1", &[8080]);
    let (created, order) = store
        .create_application(app, new_co("co"), audit("Insert", "app"), t(0))
        .await
        .unwrap();
    assert_eq!(store.get_application("app").await.unwrap(), created);
    assert_eq!(store.get_change_order("co").await.unwrap(), order);
    assert_eq!(order.state, state("new"));
    assert_eq!(
        store.get_revision("app", 1).await.unwrap().spec,
        spec_with_ports("1", &[8080])
    );

    ts.raw_execute("UPDATE change_orders SET state = '{\"not\": \"a change order\"}'")
        .await;
    let err = store.get_change_order("co").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "change_orders.state",
                ..
            }
        ),
        "{err:?}"
    );
    ts.raw_execute("UPDATE revisions SET spec = '[]'").await;
    let err = store.get_revision("app", 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "revisions.spec",
                ..
            }
        ),
        "{err:?}"
    );
    ts.raw_execute("UPDATE applications SET spec = '{\"spec\": {}}'")
        .await;
    let err = store.get_application("app").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "applications.spec",
                ..
            }
        ),
        "{err:?}"
    );
}
