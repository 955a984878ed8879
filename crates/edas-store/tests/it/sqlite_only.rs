//! SQLite-only behaviour: data directory layout, online backup and restore, bad locations.

use std::os::unix::fs::PermissionsExt;

use edas_store::{
    ApplicationFilter, KEY_FILE_NAME, PageRequest, SQLITE_FILE_NAME, Store, StoreError,
    restore_sqlite_backup,
};

use crate::harness::{audit, create, finish, new_co, spec, t};

#[tokio::test]
async fn data_dir_holds_database_and_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let store = Store::open_data_dir(&data).await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    create(&store, "app", "co", t(0)).await;
    store.close().await;
    let key_mode = std::fs::metadata(data.join(KEY_FILE_NAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert!(data.join(SQLITE_FILE_NAME).is_file());

    let store = Store::open_data_dir(&data).await.unwrap();
    assert_eq!(store.get_change_order("co").await.unwrap().version, 1);
    store.close().await;

    // The sqlite:// URL form opens the same database.
    let key = edas_store::EncryptionKey::load_or_create(&data.join(KEY_FILE_NAME)).unwrap();
    let url = format!("sqlite://{}", data.join(SQLITE_FILE_NAME).display());
    let store = Store::open(&url, &key).await.unwrap();
    assert!(store.get_application("app").await.is_ok());
    store.close().await;
}

#[tokio::test]
async fn in_memory_and_empty_locations_are_refused() {
    let key = edas_store::EncryptionKey::generate();
    let err = Store::open("sqlite::memory:", &key).await.unwrap_err();
    assert!(err.to_string().contains("not durable"), "{err}");
    let err = Store::open("  ", &key).await.unwrap_err();
    assert!(err.to_string().contains("store location"), "{err}");
}

#[tokio::test]
async fn online_backup_then_restore_into_a_stopped_data_dir() {
    let ts = crate::harness::sqlite().await;
    create(&ts.store, "before", "co-before", t(0)).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.sqlite3");
    // The store keeps serving while the copy is made.
    let writer = ts.store.clone();
    let busy = tokio::spawn(async move {
        for i in 0..20 {
            create(
                &writer,
                &format!("during-{i}"),
                &format!("co-during-{i}"),
                t(1),
            )
            .await;
        }
    });
    ts.store.backup_to(&backup).await.unwrap();
    busy.await.unwrap();
    let err = ts.store.backup_to(&backup).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    create(&ts.store, "after", "co-after", t(2)).await;
    ts.store.close().await;

    let database = std::path::Path::new(&ts.location).join(SQLITE_FILE_NAME);
    restore_sqlite_backup(&backup, &database).unwrap();
    let store = ts.reopen().await;
    assert!(store.get_application("before").await.is_ok());
    assert!(matches!(
        store.get_application("after").await,
        Err(StoreError::NotFound { .. })
    ));
    // A consistent copy: every application it holds has its change order.
    let apps = store
        .list_applications(&ApplicationFilter::default(), PageRequest::new(1, 100))
        .await
        .unwrap();
    for app in &apps.items {
        assert!(
            store.active_change_order(&app.id).await.unwrap().is_some(),
            "{}",
            app.id
        );
    }
    store.close().await;

    let not_sqlite = dir.path().join("junk");
    std::fs::write(&not_sqlite, b"definitely not a database").unwrap();
    let err = restore_sqlite_backup(&not_sqlite, &database).unwrap_err();
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
}

/// Group commit: concurrent writers share WAL syncs (64 creations, each its own transaction,
/// need far fewer than 64 syncs), every one of them is stored, and a lone write still gets a
/// sync of its own before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let before = store.wal_syncs().expect("SQLite counts its syncs");
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                create(&store, &format!("app-{i}"), &format!("co-{i}"), t(0)).await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let shared = store.wal_syncs().unwrap() - before;
    assert!(
        (1..64).contains(&shared),
        "64 concurrent creations took {shared} syncs"
    );
    for i in 0..64 {
        store.get_change_order(&format!("co-{i}")).await.unwrap();
    }
    let before = store.wal_syncs().unwrap();
    create(&store, "alone", "co-alone", t(0)).await;
    assert_eq!(store.wal_syncs().unwrap() - before, 1);
}

/// ListApplication's totals come from counts the database keeps per namespace and cluster
/// (triggers): they follow creations and deletions, for every filter shape.
#[tokio::test]
async fn application_totals_follow_creations_and_deletions() {
    use crate::harness::{audit, finish, new_app, new_co};
    use edas_store::{ApplicationFilter, PageRequest, Transition};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    for (id, ns, cluster) in [
        ("a1", "r:a", "c1"),
        ("a2", "r:a", "c2"),
        ("b1", "r:b", "c1"),
    ] {
        store
            .create_application(
                new_app(id, id, ns, cluster),
                new_co(&format!("co-{id}")),
                audit("Insert", id),
                t(0),
            )
            .await
            .unwrap();
    }
    let total = async |ns: Option<&str>, cluster: Option<&str>| {
        let filter = ApplicationFilter {
            namespace_id: ns.map(str::to_owned),
            cluster_id: cluster.map(str::to_owned),
        };
        let page = store
            .list_applications(&filter, PageRequest::new(1, 20))
            .await
            .unwrap();
        (page.total, page.items.len() as u64)
    };
    assert_eq!(total(None, None).await, (3, 3));
    assert_eq!(total(Some("r:a"), None).await, (2, 2));
    assert_eq!(total(None, Some("c1")).await, (2, 2));
    assert_eq!(total(Some("r:a"), Some("c2")).await, (1, 1));
    // The end of a deletion marks the application deleted: the counts follow.
    store
        .transition(
            "co-a1",
            1,
            Transition {
                delete_app: true,
                ..finish(2)
            },
            audit("Delete", "a1"),
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(total(None, None).await, (2, 2));
    assert_eq!(total(Some("r:a"), None).await, (1, 1));
    assert_eq!(total(None, Some("c1")).await, (1, 1));
    assert_eq!(total(Some("r:b"), Some("c1")).await, (1, 1));
}

/// The group writer: 48 concurrent deploys to 32 idle applications, 16 of them a second deploy
/// of an application another deploy of the group reaches first. Exactly one deploy per
/// application is stored, each loser is refused with the one-active conflict naming the
/// winner's order (its savepoint rolled back, its neighbours untouched: every other
/// application has its new revision and order), and the whole burst shares far fewer syncs
/// than it has writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_stores_its_jobs_and_refuses_its_conflicts_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    for i in 0..32 {
        create(&store, &format!("app-{i}"), &format!("co-{i}"), t(0)).await;
        store
            .transition(&format!("co-{i}"), 1, finish(2), audit("End", "x"), t(1))
            .await
            .unwrap();
    }
    let before = store.wal_syncs().unwrap();
    let deploys: Vec<_> = (0..48)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let app = format!("app-{}", n % 32);
                let result = store
                    .deploy(
                        &app,
                        spec("v2"),
                        new_co(&format!("d-{n}")),
                        audit("Deploy", &app),
                        t(2),
                    )
                    .await;
                (app, n, result)
            })
        })
        .collect();
    let mut stored = std::collections::BTreeMap::new();
    let mut refused = Vec::new();
    for deploy in deploys {
        let (app, n, result) = deploy.await.unwrap();
        match result {
            Ok((revision, order)) => {
                assert_eq!(revision.number, 2, "{app}");
                assert!(
                    stored.insert(app, order.id).is_none(),
                    "two deploys of one application stored"
                );
            }
            Err(StoreError::ActiveChangeOrder { app_id, active }) => {
                refused.push((app_id, active, n))
            }
            Err(other) => panic!("deploy {n} of {app}: {other}"),
        }
    }
    let syncs = store.wal_syncs().unwrap() - before;
    assert_eq!(
        (stored.len(), refused.len()),
        (32, 16),
        "refused: {refused:?}"
    );
    for (app, active, n) in &refused {
        assert_eq!(&stored[app], active, "deploy {n} names the order that won");
    }
    for (app, order) in &stored {
        let active = store.active_change_order(app).await.unwrap().unwrap();
        assert_eq!(&active.id, order);
        assert_eq!(
            store.get_application(app).await.unwrap().current_revision,
            2
        );
    }
    assert!(
        (1..48).contains(&syncs),
        "48 concurrent deploys took {syncs} syncs"
    );
}

/// The inline point read of an application (its own read-only connections): it sees what the
/// writer committed, names a missing application, reads a corrupt document as corrupt, and
/// fails once the store is closed (as sqlx's closed pools do).
#[tokio::test]
async fn point_reads_see_commits_name_what_is_missing_and_end_with_the_store() {
    use crate::harness::new_app;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    match store.get_application("a1").await {
        Err(StoreError::NotFound { entity, id }) => {
            assert_eq!((entity, id.as_str()), ("application", "a1"))
        }
        other => panic!("{other:?}"),
    }
    store
        .create_application(
            new_app("a1", "one", "r:a", "c1"),
            new_co("co-a1"),
            audit("Insert", "a1"),
            t(0),
        )
        .await
        .unwrap();
    let app = store.get_application("a1").await.unwrap();
    assert_eq!((app.name.as_str(), app.current_revision), ("one", 1));
    // A document this binary cannot read is reported as corrupt, naming the column.
    let db = rusqlite::Connection::open(dir.path().join(SQLITE_FILE_NAME)).unwrap();
    db.execute(
        "UPDATE applications SET spec = '{\"nope\"' WHERE id = 'a1'",
        [],
    )
    .unwrap();
    drop(db);
    match store.get_application("a1").await {
        Err(StoreError::Corrupt { what, .. }) => assert_eq!(what, "applications.spec"),
        other => panic!("{other:?}"),
    }
    store.close().await;
    let closed = store.get_application("a1").await.unwrap_err().to_string();
    assert!(closed.contains("closed"), "{closed}");
}

/// The delivery worker's signal moves only once a subscription may receive what a commit
/// recorded (the release-event streams' signal moves with every such commit), and a store
/// opened later knows of the subscriptions stored before.
#[tokio::test]
async fn deliveries_wake_only_once_a_subscription_exists_and_after_a_reopen() {
    use edas_store::{NewSubscription, Sensitive, SubscriptionTarget};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let events = store.events_signal();
    let mut deliveries = store.deliveries_signal();
    create(&store, "a1", "co-1", t(1)).await;
    assert!(events.has_changed().unwrap());
    assert!(
        !deliveries.has_changed().unwrap(),
        "no subscription, no wake-up"
    );
    store
        .create_subscription(
            NewSubscription {
                id: "all".into(),
                app_id: None,
                kinds: Vec::new(),
                sink: "webhook".into(),
                target: Sensitive::new(SubscriptionTarget {
                    url: "http://127.0.0.1:9/hook".into(),
                    secret: None,
                }),
            },
            audit("Subscribe", "-"),
            t(2),
        )
        .await
        .unwrap();
    deliveries.mark_unchanged();
    create(&store, "a2", "co-2", t(3)).await;
    assert!(deliveries.has_changed().unwrap());
    store.close().await;
    drop(store);
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let deliveries = store.deliveries_signal();
    create(&store, "a3", "co-3", t(4)).await;
    assert!(
        deliveries.has_changed().unwrap(),
        "the reopened store knows of the subscription"
    );
}
