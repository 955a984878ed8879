//! EDAS namespaces, tags and applications' base information: each write with its audit record,
//! refused writes store nothing.

use edas_store::*;

use crate::harness::*;

fn fields(tag: &str, name: &str) -> NamespaceFields {
    NamespaceFields {
        region_tag: tag.into(),
        name: name.into(),
        description: format!("{name} namespace"),
        debug_enable: false,
    }
}

async fn audit_count(store: &Store) -> u64 {
    store
        .list_audit(
            &AuditQuery::default(),
            PageRequest {
                number: 1,
                size: 100,
            },
        )
        .await
        .unwrap()
        .total
}

pub async fn namespaces_are_stored_and_refused_while_used(ts: &TestStore) {
    let store = &ts.store;
    let prod = store
        .insert_namespace(
            &fields("cn-hangzhou:prod", "Prod"),
            "alice",
            &audit("ns", "-"),
            t(0),
        )
        .await
        .unwrap();
    assert!(prod.id > 0);
    let err = store
        .insert_namespace(
            &fields("cn-hangzhou:prod", "Again"),
            "alice",
            &audit("ns", "-"),
            t(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        audit_count(store).await,
        1,
        "a refused insert records nothing"
    );

    let mut changed = fields("cn-hangzhou:prod", "Production");
    changed.debug_enable = true;
    let updated = store
        .update_namespace(prod.id, &changed, &audit("ns", "-"), t(2))
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.debug_enable),
        ("Production", true)
    );
    assert_eq!(updated.created_at, prod.created_at);
    let err = store
        .update_namespace(
            prod.id,
            &fields("cn-hangzhou:other", "X"),
            &audit("ns", "-"),
            t(3),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot change"), "{err}");
    let err = store
        .update_namespace(prod.id + 100, &changed, &audit("ns", "-"), t(3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    store
        .create_application(
            NewApplication {
                namespace_stored: true,
                ..new_app("app-n", "user", "cn-hangzhou:prod", "c1")
            },
            new_co("co-n"),
            audit("Insert", "app-n"),
            t(4),
        )
        .await
        .unwrap();
    let before = audit_count(store).await;
    let err = store
        .delete_namespace(prod.id, &audit("ns", "-"), t(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("user (app-n)"), "{err}");
    assert_eq!(audit_count(store).await, before);
    assert_eq!(
        store.list_namespaces().await.unwrap(),
        vec![updated.clone()]
    );

    let other = store
        .insert_namespace(
            &fields("cn-hangzhou:test", "Test"),
            "bob",
            &audit("ns", "-"),
            t(6),
        )
        .await
        .unwrap();
    assert!(other.id > prod.id);
    let gone = store
        .delete_namespace(other.id, &audit("ns", "-"), t(7))
        .await
        .unwrap();
    assert_eq!(gone.region_tag, "cn-hangzhou:test");
    assert_eq!(store.list_namespaces().await.unwrap(), vec![updated]);

    // An application whose stored namespace was deleted after the API checked it is refused
    // in the creating transaction, and nothing of it is stored.
    let err = store
        .create_application(
            NewApplication {
                namespace_stored: true,
                ..new_app("app-late", "late", "cn-hangzhou:test", "c1")
            },
            new_co("co-late"),
            audit("Insert", "app-late"),
            t(8),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { entity: "namespace", id } if id == "cn-hangzhou:test"),
        "{err}"
    );
    assert!(matches!(
        store.get_application("app-late").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn tags_are_set_replaced_limited_and_removed(ts: &TestStore) {
    let store = &ts.store;
    let ids = vec!["app-1".to_owned(), "app-2".to_owned()];
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    store
        .tag_resources(
            "application",
            &ids,
            &[tag("env", "prod"), tag("team", "a")],
            3,
            &audit("tag", "-"),
            t(0),
        )
        .await
        .unwrap();
    store
        .tag_resources(
            "application",
            &ids[..1],
            &[tag("env", "test")],
            3,
            &audit("tag", "-"),
            t(1),
        )
        .await
        .unwrap();
    let listed = store.list_tags("application", None).await.unwrap();
    let flat: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|t| (t.resource_id.as_str(), t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(
        flat,
        [
            ("app-1", "env", "test"),
            ("app-1", "team", "a"),
            ("app-2", "env", "prod"),
            ("app-2", "team", "a")
        ]
    );
    // Over the limit: nothing of the call is kept.
    let err = store
        .tag_resources(
            "application",
            &ids,
            &[tag("x", "1"), tag("y", "2")],
            3,
            &audit("tag", "-"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidInput { field: "Tags", .. }),
        "{err}"
    );
    assert_eq!(store.list_tags("application", None).await.unwrap().len(), 4);
    assert!(store.list_tags("cluster", None).await.unwrap().is_empty());

    let removed = store
        .untag_resources(
            "application",
            &ids,
            Some(&["team".to_owned()]),
            &audit("untag", "-"),
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let removed = store
        .untag_resources("application", &ids[1..], None, &audit("untag", "-"), t(4))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let left = store.list_tags("application", Some(&ids)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].resource_id.as_str(), left[0].value.as_str()),
        ("app-1", "test")
    );
}

pub async fn base_info_is_kept_beside_the_revisions(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app-b", "co-b", t(0)).await;
    assert_eq!(store.base_info("app-b").await.unwrap(), None);
    let info = BaseInfo {
        description: Some("the shop".into()),
        owner: Some("alice".into()),
        email: None,
        phone_number: Some("123".into()),
    };
    store
        .put_base_info("app-b", &info, &audit("base", "app-b"), t(1))
        .await
        .unwrap();
    assert_eq!(store.base_info("app-b").await.unwrap(), Some(info.clone()));
    let err = store
        .put_base_info("app-none", &info, &audit("base", "app-none"), t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// Eight callers tag one resource at once, each with a key of its own, under a limit of 5:
/// exactly 5 succeed and the resource carries 5 tags (on PostgreSQL each transaction would
/// otherwise count only its own new tag).
pub async fn concurrent_taggers_never_exceed_the_limit(ts: &TestStore) {
    let ids = vec!["app-c".to_owned()];
    let calls = (0..8).map(|i| {
        let store = ts.store.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            store
                .tag_resources(
                    "application",
                    &ids,
                    &[(format!("k{i}"), "v".to_owned())],
                    5,
                    &audit("tag", "-"),
                    t(1),
                )
                .await
        })
    });
    let mut succeeded = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(()) => succeeded += 1,
            Err(StoreError::InvalidInput { field: "Tags", .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    let tags = ts.store.list_tags("application", Some(&ids)).await.unwrap();
    assert_eq!((succeeded, tags.len()), (5, 5), "{tags:?}");
}
