//! The conformance suite: each function takes a store and is run against SQLite and
//! PostgreSQL by the `conformance!` macro in `main.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edas_store::*;
use serde_json::json;

use crate::harness::*;

fn page(number: u32, size: u32) -> PageRequest {
    PageRequest::new(number, size)
}

pub async fn create_application_is_atomic_and_listed(ts: &TestStore) {
    let store = &ts.store;
    let (app, co) = store
        .create_application(
            new_app("app-1", "alpha", "cn-hangzhou:a", "c1"),
            new_co("co-1"),
            audit("Insert", "app-1"),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(store.get_application("app-1").await.unwrap(), app);
    // Several at once (what a resume reads): unknown ids are left out.
    assert_eq!(
        store
            .get_applications(&["app-1".into(), "nope".into()])
            .await
            .unwrap(),
        vec![app.clone()]
    );
    assert!(store.get_applications(&[]).await.unwrap().is_empty());
    assert_eq!(app.current_revision, 1);
    assert_eq!(store.get_change_order("co-1").await.unwrap(), co);
    assert_eq!(
        (co.version, co.revision, co.lease.clone()),
        (1, Some(1), None)
    );
    assert_eq!(store.open_change_orders().await.unwrap(), vec![co.clone()]);
    assert_eq!(store.active_change_order("app-1").await.unwrap(), Some(co));
    let rev = store.get_revision("app-1", 1).await.unwrap();
    assert_eq!(rev.spec, app.spec);
    let trail = store
        .list_audit(
            &AuditQuery {
                app_id: Some("app-1".into()),
                ..Default::default()
            },
            page(1, 10),
        )
        .await
        .unwrap();
    assert_eq!(trail.total, 1);
    assert_eq!(trail.items[0].entry, audit("Insert", "app-1"));
    assert_eq!(trail.items[0].at, t(0));

    store
        .create_application(
            new_app("app-2", "beta", "cn-hangzhou:a", "c2"),
            new_co("co-2"),
            audit("Insert", "app-2"),
            t(1),
        )
        .await
        .unwrap();
    store
        .create_application(
            new_app("app-3", "gamma", "cn-hangzhou:b", "c1"),
            new_co("co-3"),
            audit("Insert", "app-3"),
            t(2),
        )
        .await
        .unwrap();

    let names = |p: Page<Application>| p.items.into_iter().map(|a| a.name).collect::<Vec<_>>();
    let by_ns = ApplicationFilter {
        namespace_id: Some("cn-hangzhou:a".into()),
        cluster_id: None,
    };
    assert_eq!(
        names(store.list_applications(&by_ns, page(1, 10)).await.unwrap()),
        ["alpha", "beta"]
    );
    let by_both = ApplicationFilter {
        namespace_id: Some("cn-hangzhou:a".into()),
        cluster_id: Some("c1".into()),
    };
    assert_eq!(
        names(
            store
                .list_applications(&by_both, page(1, 10))
                .await
                .unwrap()
        ),
        ["alpha"]
    );
    let by_cluster = ApplicationFilter {
        namespace_id: None,
        cluster_id: Some("c1".into()),
    };
    assert_eq!(
        names(
            store
                .list_applications(&by_cluster, page(1, 10))
                .await
                .unwrap()
        ),
        ["alpha", "gamma"]
    );
    let second = store
        .list_applications(&ApplicationFilter::default(), page(2, 2))
        .await
        .unwrap();
    assert_eq!((second.total, names(second)), (3, vec!["gamma".to_owned()]));

    // Same name in the same region: refused, and nothing of it is written.
    let err = store
        .create_application(
            new_app("app-4", "alpha", "cn-hangzhou:b", "c9"),
            new_co("co-4"),
            audit("Insert", "app-4"),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(matches!(
        store.get_change_order("co-4").await,
        Err(StoreError::NotFound { .. })
    ));
    // A change-order id already taken: the application insert is rolled back with it.
    let err = store
        .create_application(
            new_app("app-5", "delta", "cn-hangzhou:b", "c1"),
            new_co("co-1"),
            audit("Insert", "app-5"),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(matches!(
        store.get_application("app-5").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_revision("app-5", 1).await,
        Err(StoreError::NotFound { .. })
    ));
    let trail = store
        .list_audit(
            &AuditQuery {
                app_id: Some("app-5".into()),
                ..Default::default()
            },
            page(1, 10),
        )
        .await
        .unwrap();
    assert_eq!(trail.total, 0);
    // Duplicate application id.
    let err = store
        .create_application(
            new_app("app-1", "epsilon", "cn-hangzhou:b", "c1"),
            new_co("co-6"),
            audit("Insert", "app-1"),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    // Bad input is named.
    let err = store
        .list_applications(&ApplicationFilter::default(), page(0, 10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("page number"), "{err}");
    let err = store
        .list_applications(&ApplicationFilter::default(), page(1, 5000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("page size"), "{err}");
    let err = store
        .create_application(
            new_app("", "x", "n", "c"),
            new_co("co-x"),
            audit("Insert", ""),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("application id"), "{err}");
    assert!(matches!(
        store.get_application("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn deploy_refuses_a_second_active_change_order(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app", "co-1", t(0)).await;
    let spec2 = spec("app-2");

    let err = store
        .deploy(
            "app",
            spec2.clone(),
            new_co("co-2"),
            audit("Deploy", "app"),
            t(1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ActiveChangeOrder { app_id, active } if app_id == "app" && active == "co-1"),
        "{err:?}"
    );
    // The refused deploy left nothing behind.
    let app = store.get_application("app").await.unwrap();
    assert_eq!(app.current_revision, 1);
    assert_eq!(
        store
            .list_revisions("app", page(1, 10))
            .await
            .unwrap()
            .total,
        1
    );
    assert!(matches!(
        store.get_change_order("co-2").await,
        Err(StoreError::NotFound { .. })
    ));
    let err = store
        .start_change_order("app", new_co("co-stop"), audit("Stop", "app"), t(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ActiveChangeOrder { active, .. } if active == "co-1"),
        "{err:?}"
    );

    store
        .transition("co-1", 1, finish(2), audit("Finish", "app"), t(2))
        .await
        .unwrap();
    let (rev, co) = store
        .deploy(
            "app",
            spec2.clone(),
            new_co("co-2"),
            audit("Deploy", "app"),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!((rev.number, co.revision, co.version), (2, Some(2), 1));
    assert_eq!(store.get_change_order("co-2").await.unwrap(), co);
    let app = store.get_application("app").await.unwrap();
    assert_eq!((app.current_revision, &app.spec), (2, &spec2));
    let revisions = store.list_revisions("app", page(1, 10)).await.unwrap();
    assert_eq!(
        revisions.items.iter().map(|r| r.number).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(revisions.items[0], rev);

    store
        .transition("co-2", 1, finish(2), audit("Finish", "app"), t(4))
        .await
        .unwrap();
    // A taken change-order id is a conflict on that id, not an active change order.
    let err = store
        .start_change_order("app", new_co("co-1"), audit("Stop", "app"), t(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { entity: "change order", id, .. } if id == "co-1"),
        "{err:?}"
    );
    // So is a deploy's, and it leaves nothing behind: no revision, no change of the
    // application (PostgreSQL writes a deploy as one statement and names the constraint).
    let err = store
        .deploy(
            "app",
            spec("app-3"),
            new_co("co-1"),
            audit("Deploy", "app"),
            t(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { entity: "change order", id, .. } if id == "co-1"),
        "{err:?}"
    );
    let app = store.get_application("app").await.unwrap();
    assert_eq!((app.current_revision, &app.spec), (2, &spec2));
    assert_eq!(
        store
            .list_revisions("app", page(1, 10))
            .await
            .unwrap()
            .total,
        2
    );
    let stop = store
        .start_change_order("app", new_co("co-stop"), audit("Stop", "app"), t(5))
        .await
        .unwrap();
    assert_eq!(stop.revision, None);
    assert_eq!(
        store.get_application("app").await.unwrap().current_revision,
        2
    );

    let err = store
        .deploy(
            "missing",
            spec2,
            new_co("co-9"),
            audit("Deploy", "missing"),
            t(6),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

pub async fn concurrent_deploys_have_one_winner(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app", "co-0", t(0)).await;
    store
        .transition("co-0", 1, finish(2), audit("Finish", "app"), t(1))
        .await
        .unwrap();
    // Separate stores (separate pools) race like separate processes would.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let racer = ts.reopen().await;
        tasks.push(tokio::spawn(async move {
            let result = racer
                .deploy(
                    "app",
                    spec(&format!("app-{i}")),
                    new_co(&format!("co-{}", i + 1)),
                    audit("Deploy", "app"),
                    t(2),
                )
                .await;
            racer.close().await;
            result
        }));
    }
    let mut won = 0;
    let mut winner = None;
    let mut named = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((_, co)) => {
                won += 1;
                winner = Some(co.id);
            }
            // Every loser is told which order is active, also when the unique index (not the
            // in-transaction check) caught it.
            Err(StoreError::ActiveChangeOrder { active, .. }) => named.push(active),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let winner = winner.unwrap();
    assert!(named.iter().all(|a| *a == winner), "{named:?} vs {winner}");
    assert_eq!(
        store
            .list_revisions("app", page(1, 10))
            .await
            .unwrap()
            .total,
        2
    );
    assert_eq!(
        store
            .list_change_orders("app", page(1, 10))
            .await
            .unwrap()
            .total,
        2
    );
    assert_eq!(
        store.get_application("app").await.unwrap().current_revision,
        2
    );
}

pub async fn transitions_are_compare_and_swap(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app", "co", t(0)).await;
    let v2 = store
        .transition(
            "co",
            1,
            step(1, state("stage 1")),
            audit("Step", "app"),
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    // A stale writer (still at version 1) is refused and writes nothing, audit included.
    let err = store
        .transition(
            "co",
            1,
            step(3, state("stale")),
            audit("Stale", "app"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Stale {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let co = store.get_change_order("co").await.unwrap();
    assert_eq!(
        (co.status.code(), co.version, &co.state),
        (1, 2, &state("stage 1"))
    );
    assert_eq!(co.updated_at, t(1));
    let query = AuditQuery {
        app_id: Some("app".into()),
        ..Default::default()
    };
    let trail = store.list_audit(&query, page(1, 10)).await.unwrap();
    assert_eq!(
        trail
            .items
            .iter()
            .map(|r| r.entry.action.as_str())
            .collect::<Vec<_>>(),
        ["Step", "Insert"]
    );

    // A second store instance is another writer: it sees the same CAS.
    let other = ts.reopen().await;
    let err = other
        .transition(
            "co",
            1,
            step(3, state("empty")),
            audit("Stale", "app"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err:?}");
    other.close().await;

    let v3 = store
        .transition("co", 2, finish(2), audit("Finish", "app"), t(3))
        .await
        .unwrap();
    assert_eq!(v3, 3);
    let co = store.get_change_order("co").await.unwrap();
    assert_eq!((co.status.code(), co.finished_at), (2, Some(t(3))));
    assert_eq!(store.get_application("app").await.unwrap().state, "RUNNING");
    assert_eq!(store.active_change_order("app").await.unwrap(), None);
    let err = store
        .transition("co", 3, step(1, state("empty")), audit("X", "app"), t(4))
        .await;
    assert!(matches!(err, Err(StoreError::Finished { .. })), "{err:?}");
    let err = store
        .transition("nope", 1, step(1, state("empty")), audit("X", "app"), t(4))
        .await;
    assert!(matches!(err, Err(StoreError::NotFound { .. })), "{err:?}");
    assert_eq!(
        store.list_audit(&query, page(1, 10)).await.unwrap().total,
        3
    );

    // A delete change order marks the application deleted when it finishes; its history stays
    // and the name can be used again.
    store
        .start_change_order("app", new_co("co-del"), audit("Delete", "app"), t(5))
        .await
        .unwrap();
    let delete = Transition {
        status: st(2),
        state: state("empty"),
        finished: true,
        app_state: Some("DELETED".into()),
        delete_app: true,
        before: None,
    };
    store
        .transition("co-del", 1, delete, audit("Deleted", "app"), t(6))
        .await
        .unwrap();
    let app = store.get_application("app").await.unwrap();
    assert!(app.deleted);
    assert_eq!(app.state, "DELETED");
    assert_eq!(
        store
            .list_applications(&ApplicationFilter::default(), page(1, 10))
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        store
            .list_change_orders("app", page(1, 10))
            .await
            .unwrap()
            .total,
        2
    );
    let err = store
        .deploy(
            "app",
            spec("empty"),
            new_co("co-after"),
            audit("Deploy", "app"),
            t(7),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store
        .create_application(
            new_app("app-again", "app", "cn-hangzhou:ns", "c1"),
            new_co("co-again"),
            audit("Insert", "app-again"),
            t(8),
        )
        .await
        .unwrap();
}

pub async fn change_orders_are_listed_newest_first(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app", "co-1", t(0)).await;
    store
        .transition("co-1", 1, finish(2), audit("Finish", "app"), t(1))
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
    store
        .transition("co-2", 1, finish(3), audit("Finish", "app"), t(3))
        .await
        .unwrap();
    store
        .deploy(
            "app",
            spec("v3"),
            new_co("co-3"),
            audit("Deploy", "app"),
            t(4),
        )
        .await
        .unwrap();
    create(store, "other", "co-other", t(5)).await;

    let ids = |p: Page<ChangeOrder>| p.items.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = store.list_change_orders("app", page(1, 10)).await.unwrap();
    assert_eq!(
        (all.total, ids(all)),
        (3, vec!["co-3".into(), "co-2".into(), "co-1".into()])
    );
    let last = store.list_change_orders("app", page(2, 2)).await.unwrap();
    assert_eq!((last.total, ids(last)), (3, vec!["co-1".to_owned()]));
    assert_eq!(
        store
            .list_change_orders("nobody", page(1, 10))
            .await
            .unwrap()
            .total,
        0
    );
}

pub async fn audit_is_listed_by_application_and_time(ts: &TestStore) {
    let store = &ts.store;
    for (seconds, app) in [(10, "a"), (20, "a"), (20, "b"), (30, "a")] {
        let mut entry = audit(&format!("act-{seconds}"), app);
        entry.request_id = None;
        store.append_audit(&entry, t(seconds)).await.unwrap();
    }
    let query = AuditQuery {
        app_id: Some("a".into()),
        from: Some(t(15)),
        to: Some(t(30)),
    };
    let found = store.list_audit(&query, page(1, 10)).await.unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(
        (found.items[0].at, found.items[0].entry.action.as_str()),
        (t(20), "act-20")
    );
    assert_eq!(found.items[0].entry.request_id, None);

    let query = AuditQuery {
        app_id: Some("a".into()),
        from: None,
        to: None,
    };
    let found = store.list_audit(&query, page(1, 10)).await.unwrap();
    let times = found.items.iter().map(|r| r.at).collect::<Vec<_>>();
    assert_eq!(times, [t(30), t(20), t(10)]);

    let query = AuditQuery {
        app_id: None,
        from: Some(t(20)),
        to: None,
    };
    let found = store.list_audit(&query, page(1, 2)).await.unwrap();
    assert_eq!(found.total, 3);
    assert_eq!(found.items.len(), 2);
    assert_eq!(found.items[0].at, t(30));
}

pub async fn leases_are_exclusive_and_expire(ts: &TestStore) {
    let store = &ts.store;
    let lease = Duration::from_secs(30);
    create(store, "a", "co-a", t(0)).await;
    create(store, "b", "co-b", t(1)).await;

    // Oldest first; each claim bumps the version.
    let a = store
        .claim_next("w1", lease, t(100))
        .await
        .unwrap()
        .expect("co-a claimable");
    assert_eq!((a.id.as_str(), a.version), ("co-a", 2));
    assert_eq!(
        a.lease,
        Some(Lease {
            owner: "w1".into(),
            expires_at: t(130)
        })
    );
    let b = store
        .claim_next("w2", lease, t(100))
        .await
        .unwrap()
        .expect("co-b claimable");
    assert_eq!(b.id, "co-b");
    assert_eq!(store.claim_next("w3", lease, t(100)).await.unwrap(), None);

    // A restarted w1 (same worker id) takes its own orders back at once, fencing its old self.
    let own = store.reclaim_own("w1", lease, t(101)).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!((own[0].id.as_str(), own[0].version), ("co-a", 3));
    assert_eq!(own[0].lease.as_ref().unwrap().expires_at, t(131));
    assert!(
        store
            .reclaim_own("nobody", lease, t(101))
            .await
            .unwrap()
            .is_empty()
    );
    let a = own[0].clone();

    // w1 renews; others cannot.
    assert_eq!(
        store
            .renew_lease("co-a", "w1", lease, t(110))
            .await
            .unwrap(),
        t(140)
    );
    let err = store
        .renew_lease("co-a", "w2", lease, t(110))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err:?}");
    assert_eq!(
        store.claim_next("w3", lease, t(129)).await.unwrap(),
        None,
        "lease not expired yet"
    );

    // w2's lease expired at 130 and it did not renew: w3 takes co-b over at 131…
    let taken = store
        .claim_next("w3", lease, t(131))
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!((taken.id.as_str(), taken.version), ("co-b", b.version + 1));
    assert_eq!(taken.lease.as_ref().map(|l| l.owner.as_str()), Some("w3"));
    // …and w2, waking up, is fenced off: its transition is stale, its renew and release fail.
    let err = store
        .transition(
            "co-b",
            b.version,
            step(1, state("empty")),
            audit("Step", "b"),
            t(132),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err:?}");
    let err = store
        .renew_lease("co-b", "w2", lease, t(132))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err:?}");
    // Renewing all of a worker's leases at once answers the orders it still holds.
    assert!(
        store
            .renew_leases("w2", &["co-b".to_owned()], lease, t(132))
            .await
            .unwrap()
            .is_empty(),
        "w2 lost co-b"
    );
    assert_eq!(
        store
            .renew_leases("w3", &["co-b".to_owned(), "co-x".to_owned()], lease, t(132))
            .await
            .unwrap(),
        vec!["co-b".to_owned()]
    );
    assert!(!store.release_lease("co-b", "w2").await.unwrap());
    // The new owner works normally; releasing frees it for anyone at once.
    store
        .transition(
            "co-b",
            taken.version,
            step(1, state("empty")),
            audit("Step", "b"),
            t(132),
        )
        .await
        .unwrap();
    assert!(store.release_lease("co-b", "w3").await.unwrap());
    assert_eq!(store.get_change_order("co-b").await.unwrap().lease, None);
    let again = store
        .claim_next("w1", lease, t(133))
        .await
        .unwrap()
        .expect("released");
    assert_eq!(again.id, "co-b");

    // Finishing releases the lease and the order is never claimed again.
    store
        .transition("co-a", a.version, finish(2), audit("Finish", "a"), t(134))
        .await
        .unwrap();
    assert_eq!(store.get_change_order("co-a").await.unwrap().lease, None);
    let later = store
        .claim_next("w4", lease, t(10_000))
        .await
        .unwrap()
        .expect("co-b expired");
    assert_eq!(later.id, "co-b");
    assert_eq!(
        store.claim_next("w4", lease, t(10_000)).await.unwrap(),
        None
    );
    let err = store
        .renew_lease("co-a", "w1", lease, t(10_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotHeld { .. }), "{err:?}");
    let err = store.claim_next("", lease, t(1)).await.unwrap_err();
    assert!(err.to_string().contains("worker id"), "{err}");
}

/// Resuming in bulk: one statement claims every claimable order (oldest first, up to a limit),
/// a graceful shutdown hands its leases over in one statement (the owner stays, so the same
/// worker re-claims them; another may claim them at once), and the start-up routing pass
/// finds exactly the idle applications with Services.
pub async fn claims_in_bulk_and_hands_leases_over(ts: &TestStore) {
    let store = &ts.store;
    let lease = Duration::from_secs(30);
    for i in 0..5 {
        create(store, &format!("app-{i}"), &format!("co-{i}"), t(i)).await;
    }
    let first = store.claim_claimable("w1", lease, t(100), 3).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["co-0", "co-1", "co-2"]);
    assert!(first.iter().all(|c| c.version == 2
        && c.lease
            == Some(Lease {
                owner: "w1".into(),
                expires_at: t(130)
            })));
    assert_eq!(store.count_leased("w1", t(100)).await.unwrap(), 3);
    let rest = store
        .claim_claimable("w1", lease, t(100), 1000)
        .await
        .unwrap();
    let ids: Vec<&str> = rest.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["co-3", "co-4"]);
    assert!(
        store
            .claim_claimable("w2", lease, t(101), 1000)
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );
    let err = store.claim_claimable("", lease, t(1), 1).await.unwrap_err();
    assert!(err.to_string().contains("worker id"), "{err}");

    // A finished order is neither handed over nor claimed.
    store
        .transition("co-4", 2, finish(2), audit("Finish", "app-4"), t(102))
        .await
        .unwrap();
    assert_eq!(store.hand_over_leases("w1", t(110)).await.unwrap(), 4);
    assert_eq!(store.hand_over_leases("w1", t(110)).await.unwrap(), 0);
    assert_eq!(store.count_leased("w1", t(110)).await.unwrap(), 0);
    let co = store.get_change_order("co-0").await.unwrap();
    assert_eq!(
        co.lease,
        Some(Lease {
            owner: "w1".into(),
            expires_at: t(110)
        }),
        "the owner stays"
    );
    assert_eq!(co.version, 2, "handing over fences nothing by itself");
    // Another worker may claim at once; the claim fences w1's old version.
    let taken = store.claim_claimable("w2", lease, t(111), 1).await.unwrap();
    assert_eq!((taken[0].id.as_str(), taken[0].version), ("co-0", 3));
    // The same worker re-claims the rest of its own at once.
    let own = store.reclaim_own("w1", lease, t(111)).await.unwrap();
    let ids: Vec<&str> = own.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["co-1", "co-2", "co-3"]);

    // An order created already leased to the process that stores it: nobody else claims it.
    let held = Lease {
        owner: "w3".into(),
        expires_at: t(500),
    };
    let (_, co) = store
        .create_application_leased(
            new_app("leased", "leased", "cn-hangzhou:ns", "c1"),
            new_co("co-leased"),
            audit("Insert", "leased"),
            t(120),
            held.clone(),
        )
        .await
        .unwrap();
    assert_eq!((co.version, co.lease.as_ref()), (1, Some(&held)));
    assert_eq!(store.get_change_order("co-leased").await.unwrap(), co);
    assert!(
        store
            .claim_claimable("w4", lease, t(121), 1000)
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != "co-leased")
    );
    store
        .transition("co-leased", 1, finish(2), audit("Finish", "leased"), t(122))
        .await
        .unwrap();
    let (_, co) = store
        .deploy_leased(
            "leased",
            spec("leased-2"),
            new_co("co-leased-2"),
            audit("Deploy", "leased"),
            t(123),
            held.clone(),
        )
        .await
        .unwrap();
    assert_eq!(co.lease.as_ref(), Some(&held));
    assert_eq!(store.get_change_order("co-leased-2").await.unwrap(), co);
    store
        .transition(
            "co-leased-2",
            1,
            finish(2),
            audit("Finish", "leased"),
            t(124),
        )
        .await
        .unwrap();

    // Routing at start-up: live applications with Services and no unfinished order only.
    store
        .create_application(
            NewApplication {
                spec: spec_with_ports("svc-1", &[8080]),
                ..new_app("svc-idle", "svc-idle", "cn-hangzhou:ns", "c1")
            },
            new_co("co-svc-idle"),
            audit("Insert", "svc-idle"),
            t(200),
        )
        .await
        .unwrap();
    store
        .transition(
            "co-svc-idle",
            1,
            finish(2),
            audit("Finish", "svc-idle"),
            t(201),
        )
        .await
        .unwrap();
    store
        .create_application(
            NewApplication {
                spec: spec_with_ports("svc-1", &[8081]),
                ..new_app("svc-busy", "svc-busy", "cn-hangzhou:ns", "c1")
            },
            new_co("co-svc-busy"),
            audit("Insert", "svc-busy"),
            t(200),
        )
        .await
        .unwrap();
    let idle = store
        .idle_applications_with_services(None, "", 10)
        .await
        .unwrap();
    let ids: Vec<&str> = idle.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        ["svc-idle"],
        "app-4 has no Services, svc-busy is driven"
    );
    assert!(
        store
            .idle_applications_with_services(Some("c2"), "", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .idle_applications_with_services(Some("c1"), "svc-idle", 10)
            .await
            .unwrap()
            .is_empty(),
        "keyset page after the last one"
    );
}

/// Several claimers on separate connections pools (like separate processes) drain many change
/// orders: each is claimed exactly once while leases are valid, and its owner's CAS always
/// succeeds (nobody else touched it).
pub async fn concurrent_claimers_never_share_a_change_order(ts: &TestStore) {
    const ORDERS: usize = 40;
    const WORKERS: usize = 4;
    for i in 0..ORDERS {
        create(
            &ts.store,
            &format!("app-{i:02}"),
            &format!("co-{i:02}"),
            t(i as i64),
        )
        .await;
    }
    let claimed: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = ts.reopen().await;
        let claimed = Arc::clone(&claimed);
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut mine = 0;
            while let Some(co) = store
                .claim_next(&worker, Duration::from_secs(600), t(1000))
                .await
                .unwrap()
            {
                if let Some(previous) = claimed
                    .lock()
                    .unwrap()
                    .insert(co.id.clone(), worker.clone())
                {
                    panic!("{} claimed by {previous} and {worker}", co.id);
                }
                tokio::task::yield_now().await;
                store
                    .renew_lease(&co.id, &worker, Duration::from_secs(600), t(1001))
                    .await
                    .unwrap();
                store
                    .transition(
                        &co.id,
                        co.version,
                        finish(2),
                        audit("Finish", &co.app_id),
                        t(1002),
                    )
                    .await
                    .unwrap();
                mine += 1;
            }
            store.close().await;
            mine
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, ORDERS);
    assert_eq!(claimed.lock().unwrap().len(), ORDERS);
    assert_eq!(
        ts.store
            .claim_next("late", Duration::from_secs(1), t(5000))
            .await
            .unwrap(),
        None
    );
}

pub async fn secrets_are_encrypted_at_rest(ts: &TestStore) {
    let store = &ts.store;
    let marker = "s3cr3t-MARKER-value";
    let secret = SecretRecord {
        cluster_id: "c1".into(),
        k8s_namespace: "default".into(),
        name: "db".into(),
        data: Sensitive::new(json!({ "password": marker })),
        created_at: t(0),
        updated_at: t(0),
    };
    store.put_secret(&secret).await.unwrap();
    let read = store.get_secret("c1", "default", "db").await.unwrap();
    assert_eq!(read, secret);
    assert!(!format!("{read:?}").contains(marker));
    assert_eq!(
        store.list_secrets("c1", "default").await.unwrap(),
        vec![secret.clone()]
    );
    assert_eq!(
        store.list_cluster_secrets("c1").await.unwrap(),
        vec![secret.clone()]
    );
    assert!(store.list_cluster_secrets("c2").await.unwrap().is_empty());

    store
        .put_user(
            &User {
                name: "alice".into(),
                admin: false,
                created_at: t(0),
            },
            by_admin(),
            t(0),
        )
        .await
        .unwrap();
    let key = AccessKey {
        id: "LTAIalice".into(),
        secret: Sensitive::new(marker.to_owned()),
        user: "alice".into(),
        enabled: true,
        created_at: t(0),
    };
    store
        .create_access_key(&key, by_admin(), t(0))
        .await
        .unwrap();
    let read = store.get_access_key("LTAIalice").await.unwrap();
    assert_eq!(read, key);
    assert!(!format!("{read:?}").contains(marker));

    for sql in [
        "SELECT data_encrypted FROM secrets",
        "SELECT secret_encrypted FROM access_keys",
    ] {
        let blobs = ts.raw_blobs(sql).await;
        assert_eq!(blobs.len(), 1);
        assert!(
            !blobs[0]
                .windows(marker.len())
                .any(|w| w == marker.as_bytes()),
            "{sql}"
        );
    }
    // A ciphertext moved to another row does not decrypt.
    store
        .put_secret(&SecretRecord {
            name: "other".into(),
            ..secret.clone()
        })
        .await
        .unwrap();
    ts.raw_execute(
        "UPDATE secrets SET data_encrypted = (SELECT data_encrypted FROM secrets WHERE name = 'db') \
         WHERE name = 'other'",
    )
    .await;
    let err = store
        .get_secret("c1", "default", "other")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Crypto { .. }), "{err:?}");

    // Another key is refused when opening; the right one reads everything back.
    let err = Store::open(&ts.location, &EncryptionKey::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err:?}");
    let reopened = ts.reopen().await;
    assert_eq!(
        reopened
            .get_access_key("LTAIalice")
            .await
            .unwrap()
            .secret
            .expose(),
        marker
    );
    reopened.close().await;
    assert!(store.delete_secret("c1", "default", "db").await.unwrap());
    assert!(!store.delete_secret("c1", "default", "db").await.unwrap());
}

pub async fn users_access_keys_and_policies(ts: &TestStore) {
    let store = &ts.store;
    let alice = User {
        name: "alice".into(),
        admin: false,
        created_at: t(0),
    };
    store.put_user(&alice, by_admin(), t(0)).await.unwrap();
    store
        .put_user(
            &User {
                name: "root".into(),
                admin: true,
                created_at: t(1),
            },
            by_admin(),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(store.get_user("alice").await.unwrap(), alice);
    assert_eq!(store.list_users().await.unwrap().len(), 2);

    let key = |id: &str, user: &str| AccessKey {
        id: id.into(),
        secret: Sensitive::new(format!("secret-of-{id}")),
        user: user.into(),
        enabled: true,
        created_at: t(2),
    };
    store
        .create_access_key(&key("AK1", "alice"), by_admin(), t(0))
        .await
        .unwrap();
    store
        .create_access_key(&key("AK2", "alice"), by_admin(), t(0))
        .await
        .unwrap();
    let err = store
        .create_access_key(&key("AK1", "alice"), by_admin(), t(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let err = store
        .create_access_key(&key("AK3", "nobody"), by_admin(), t(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { entity: "user", .. }),
        "{err:?}"
    );
    store
        .set_access_key_enabled("AK2", false, by_admin(), t(0))
        .await
        .unwrap();
    assert!(!store.get_access_key("AK2").await.unwrap().enabled);
    let err = store
        .set_access_key_enabled("AK9", false, by_admin(), t(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let ids: Vec<_> = store
        .list_access_keys("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["AK1", "AK2"]);
    assert!(
        store
            .delete_access_key("AK2", by_admin(), t(0))
            .await
            .unwrap()
    );

    let policy = |name: &str| Policy {
        name: name.into(),
        document: json!({ "Statement": [{ "Effect": "Allow", "Action": [name] }] }),
        created_at: t(3),
        updated_at: t(3),
    };
    store
        .put_policy(&policy("deploy"), by_admin(), t(0))
        .await
        .unwrap();
    store
        .put_policy(&policy("read"), by_admin(), t(0))
        .await
        .unwrap();
    let mut changed = policy("read");
    changed.document = json!({ "Statement": [] });
    changed.created_at = t(99);
    changed.updated_at = t(4);
    store.put_policy(&changed, by_admin(), t(0)).await.unwrap();
    let read = store.get_policy("read").await.unwrap();
    assert_eq!(
        (read.created_at, read.updated_at, &read.document),
        (t(3), t(4), &changed.document)
    );

    store
        .attach_policy("alice", "deploy", by_admin(), t(0))
        .await
        .unwrap();
    store
        .attach_policy("alice", "deploy", by_admin(), t(0))
        .await
        .unwrap();
    store
        .attach_policy("alice", "read", by_admin(), t(0))
        .await
        .unwrap();
    let names = |p: Vec<Policy>| p.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.user_policies("alice").await.unwrap()),
        ["deploy", "read"]
    );
    let err = store
        .attach_policy("alice", "missing", by_admin(), t(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        store
            .detach_policy("alice", "deploy", by_admin(), t(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .detach_policy("alice", "deploy", by_admin(), t(0))
            .await
            .unwrap()
    );
    assert!(store.delete_policy("read", by_admin(), t(0)).await.unwrap());
    assert!(store.user_policies("alice").await.unwrap().is_empty());
    assert_eq!(names(store.list_policies().await.unwrap()), ["deploy"]);

    assert!(store.delete_user("alice", by_admin(), t(0)).await.unwrap());
    assert!(matches!(
        store.get_access_key("AK1").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_user("alice").await,
        Err(StoreError::NotFound { .. })
    ));

    // Every change above left its audit record, written with it; refused ones left none.
    let recorded = store
        .list_audit(&AuditQuery::default(), page(1, 100))
        .await
        .unwrap();
    assert!(
        recorded
            .items
            .iter()
            .all(|r| r.entry.action == "Admin.Test")
    );
    // 2 users, 2 keys, 1 disable, 1 key deletion, 3 policy puts, 3 attachments (one repeated),
    // 1 detach, 1 policy deletion, 1 user deletion.
    assert_eq!(recorded.total, 15, "{:?}", recorded.items);
    store
        .create_access_key(&key("AK5", "nobody"), by_admin(), t(0))
        .await
        .unwrap_err();
    assert!(!store.delete_user("nobody", by_admin(), t(0)).await.unwrap());
    let after = store
        .list_audit(&AuditQuery::default(), page(1, 100))
        .await
        .unwrap();
    assert_eq!(after.total, 15);
}

pub async fn clusters_and_config_maps(ts: &TestStore) {
    let store = &ts.store;
    let cluster = Cluster {
        id: "c1".into(),
        name: "local".into(),
        region_id: "cn-hangzhou".into(),
        cluster_type: "local".into(),
        config: json!({ "root": "/var/lib/edas" }),
        created_at: t(0),
        updated_at: t(0),
    };
    store.put_cluster(&cluster).await.unwrap();
    assert_eq!(store.get_cluster("c1").await.unwrap(), cluster);
    let renamed = Cluster {
        name: "renamed".into(),
        created_at: t(50),
        updated_at: t(5),
        ..cluster
    };
    store.put_cluster(&renamed).await.unwrap();
    let read = store.get_cluster("c1").await.unwrap();
    assert_eq!(
        (read.name.as_str(), read.created_at, read.updated_at),
        ("renamed", t(0), t(5))
    );
    assert_eq!(store.list_clusters().await.unwrap().len(), 1);
    assert!(store.delete_cluster("c1").await.unwrap());
    assert!(matches!(
        store.get_cluster("c1").await,
        Err(StoreError::NotFound { .. })
    ));

    let cm = |name: &str| ConfigMap {
        cluster_id: "c1".into(),
        k8s_namespace: "default".into(),
        name: name.into(),
        data: json!({ "app.properties": format!("name={name}") }),
        created_at: t(0),
        updated_at: t(0),
    };
    store.put_config_map(&cm("b")).await.unwrap();
    store.put_config_map(&cm("a")).await.unwrap();
    assert_eq!(
        store.get_config_map("c1", "default", "a").await.unwrap(),
        cm("a")
    );
    let names: Vec<_> = store
        .list_config_maps("c1", "default")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(
        store
            .list_config_maps("c1", "other")
            .await
            .unwrap()
            .is_empty()
    );
    let elsewhere = ConfigMap {
        k8s_namespace: "aaa".into(),
        ..cm("z")
    };
    store.put_config_map(&elsewhere).await.unwrap();
    let all: Vec<_> = store
        .list_cluster_config_maps("c1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("{}/{}", c.k8s_namespace, c.name))
        .collect();
    assert_eq!(all, ["aaa/z", "default/a", "default/b"]);
    assert!(
        store
            .list_cluster_config_maps("c2")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.delete_config_map("c1", "aaa", "z").await.unwrap());
    assert!(store.delete_config_map("c1", "default", "a").await.unwrap());
    let err = store
        .get_config_map("c1", "default", "a")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("c1/default/a"), "{err}");
}

pub async fn config_writes_are_audited_in_the_same_transaction(ts: &TestStore) {
    let store = &ts.store;
    let trail = || async {
        store
            .list_audit(&AuditQuery::default(), PageRequest::new(1, 100))
            .await
            .unwrap()
            .items
            .len()
    };
    let cm = ConfigMap {
        cluster_id: "c1".into(),
        k8s_namespace: "default".into(),
        name: "web".into(),
        data: json!({ "k": "v" }),
        created_at: t(0),
        updated_at: t(0),
    };
    store
        .put_config_map_audited(&cm, &by_admin(), t(1))
        .await
        .unwrap();
    let secret = SecretRecord {
        cluster_id: "c1".into(),
        k8s_namespace: "default".into(),
        name: "db".into(),
        data: Sensitive::new(json!({ "password": "p" })),
        created_at: t(0),
        updated_at: t(0),
    };
    store
        .put_secret_audited(&secret, &by_admin(), t(2))
        .await
        .unwrap();
    assert_eq!(trail().await, 2);
    assert!(
        store
            .delete_config_object_audited(
                ConfigObject::ConfigMap,
                ("c1", "default", "web"),
                &by_admin(),
                t(3)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_config_object_audited(
                ConfigObject::Secret,
                ("c1", "default", "db"),
                &by_admin(),
                t(4)
            )
            .await
            .unwrap()
    );
    assert_eq!(trail().await, 4);
    // Nothing deleted, nothing audited.
    assert!(
        !store
            .delete_config_object_audited(
                ConfigObject::Secret,
                ("c1", "default", "db"),
                &by_admin(),
                t(5)
            )
            .await
            .unwrap()
    );
    assert_eq!(trail().await, 4);
    // An invalid object is refused with no audit record.
    let unnamed = ConfigMap {
        name: String::new(),
        ..cm
    };
    assert!(
        store
            .put_config_map_audited(&unnamed, &by_admin(), t(6))
            .await
            .is_err()
    );
    assert_eq!(trail().await, 4);
}

pub async fn retention_prunes_only_finished_and_old(ts: &TestStore) {
    let store = &ts.store;
    for i in 0..5 {
        create(store, &format!("app-{i}"), &format!("co-{i}"), t(i)).await;
    }
    // co-0..co-3 finish at 10, 20, 30, 40; co-4 stays active.
    for i in 0..4 {
        store
            .transition(
                &format!("co-{i}"),
                1,
                finish(2),
                audit("Finish", "x"),
                t(10 * (i + 1)),
            )
            .await
            .unwrap();
    }
    let by_age = Retention {
        max_age: Some(Duration::from_secs(25)),
        max_count: None,
    };
    let report = store
        .prune(by_age, Retention::default(), t(50))
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            change_orders: 2,
            audit_records: 0
        }
    );
    let by_count = Retention {
        max_age: None,
        max_count: Some(1),
    };
    let report = store
        .prune(by_count, Retention::default(), t(50))
        .await
        .unwrap();
    assert_eq!(report.change_orders, 1);
    for (id, kept) in [
        ("co-0", false),
        ("co-1", false),
        ("co-2", false),
        ("co-3", true),
        ("co-4", true),
    ] {
        assert_eq!(store.get_change_order(id).await.is_ok(), kept, "{id}");
    }
    // Applications and revisions are never pruned.
    assert!(store.get_revision("app-0", 1).await.is_ok());

    // Audit: 5 creations (t 0..4) and 4 finishes (t 10..40).
    let all = AuditQuery::default();
    assert_eq!(
        store
            .list_audit(&all, PageRequest::new(1, 100))
            .await
            .unwrap()
            .total,
        9
    );
    let by_age = Retention {
        max_age: Some(Duration::from_secs(45)),
        max_count: None,
    };
    let report = store
        .prune(Retention::default(), by_age, t(50))
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            change_orders: 0,
            audit_records: 5
        }
    );
    let by_count = Retention {
        max_age: None,
        max_count: Some(2),
    };
    let report = store
        .prune(Retention::default(), by_count, t(50))
        .await
        .unwrap();
    assert_eq!(report.audit_records, 2);
    let left = store
        .list_audit(&all, PageRequest::new(1, 100))
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|r| r.at).collect::<Vec<_>>(),
        [t(40), t(30)]
    );
}

pub async fn a_newer_schema_is_refused(ts: &TestStore) {
    ts.raw_execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', TRUE, '', 0)",
    )
    .await;
    let err = Store::open(&ts.location, &ts.key).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99991231000000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

/// The audit record of an identity change made by a test.
fn by_admin() -> AuditEntry {
    AuditEntry {
        actor: "admin-key".into(),
        action: "Admin.Test".into(),
        resource: "user/test".into(),
        app_id: None,
        request_id: None,
        detail: json!({}),
    }
}
