//! EDAS namespaces, tags and base information through the layer.

use super::*;
use crate::{BaseInfoChange, FixedNamespaces, NamespaceKey, NamespaceRequest, TagResourceType};

fn fixed(configured: &[String]) -> FixedNamespaces<'_> {
    FixedNamespaces {
        region_id: "cn-hangzhou",
        configured,
    }
}

fn actor() -> Actor {
    Actor {
        name: "alice (AK1)".into(),
        request_id: "req-ns".into(),
    }
}

fn request(tag: &str, name: &str) -> NamespaceRequest {
    NamespaceRequest {
        region_tag: tag.into(),
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn namespaces_merge_the_configuration_and_refuse_deletion_while_used() {
    let w = world().await;
    let configured = vec!["cn-hangzhou:conf".to_owned()];
    let fixed = fixed(&configured);
    let now = jiff::Timestamp::now();

    // Invalid input: every violation at once, nothing stored.
    let err = w
        .app
        .put_namespace(fixed, &request("eu-west-1:x", ""), &actor(), now)
        .await
        .unwrap_err();
    let AppError::Invalid(v) = err else {
        panic!("{err}")
    };
    assert_eq!(v.0.len(), 2, "{v}");
    // The configuration's namespaces and the default one are not the API's to change.
    for tag in ["cn-hangzhou", "cn-hangzhou:conf"] {
        let err = w
            .app
            .put_namespace(fixed, &request(tag, "x"), &actor(), now)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not through the API"), "{err}");
    }
    assert_eq!(w.app.namespaces(fixed).await.unwrap().len(), 2);

    let prod = w
        .app
        .put_namespace(fixed, &request("cn-hangzhou:prod", "Prod"), &actor(), now)
        .await
        .unwrap();
    let mut update = request("cn-hangzhou:prod", "Production");
    update.id = Some(prod.id);
    update.debug_enable = Some(true);
    let updated = w
        .app
        .put_namespace(fixed, &update, &actor(), now)
        .await
        .unwrap();
    assert_eq!(
        (updated.id, updated.name.as_str(), updated.debug_enable),
        (prod.id, "Production", true)
    );
    let err = w
        .app
        .put_namespace(fixed, &request("cn-hangzhou:prod", "Again"), &actor(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::AlreadyExists(_)), "{err}");

    let listed: Vec<(i64, String)> = w
        .app
        .namespaces(fixed)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.region_tag))
        .collect();
    assert_eq!(
        listed,
        [
            (0, "cn-hangzhou".to_owned()),
            (0, "cn-hangzhou:conf".to_owned()),
            (prod.id, "cn-hangzhou:prod".to_owned())
        ]
    );
    w.app
        .known_namespace(fixed, "LogicalRegionId", "cn-hangzhou:prod")
        .await
        .unwrap();
    let err = w
        .app
        .known_namespace(fixed, "LogicalRegionId", "cn-hangzhou:nope")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cn-hangzhou:prod"), "{err}");

    // An application in it keeps it.
    create_in(&w, "app-shop", "shop", "cn-hangzhou:prod").await;
    let by_tag = NamespaceKey {
        id: None,
        region_tag: Some("cn-hangzhou:prod".into()),
    };
    let err = w
        .app
        .delete_namespace(fixed, &by_tag, &actor(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::InUse(_)), "{err}");
    assert!(err.to_string().contains("shop (app-shop)"), "{err}");
    let err = w
        .app
        .delete_namespace(
            fixed,
            &NamespaceKey {
                id: Some(prod.id),
                region_tag: Some("cn-hangzhou:other".into()),
            },
            &actor(),
            now,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("contradicts"), "{err}");

    let test = w
        .app
        .put_namespace(fixed, &request("cn-hangzhou:test", "Test"), &actor(), now)
        .await
        .unwrap();
    let by_id = NamespaceKey {
        id: Some(test.id),
        region_tag: None,
    };
    let gone = w.app.delete_namespace(fixed, &by_id, &actor(), now).await;
    assert_eq!(gone.unwrap().region_tag, "cn-hangzhou:test");
    let err = w
        .app
        .delete_namespace(fixed, &by_id, &actor(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::EntityNotFound(_)), "{err}");
}

#[tokio::test]
async fn tags_filter_and_base_info_are_audited() {
    let w = world().await;
    create(&w).await;
    create_named(&w, "app-2", "other").await;
    let now = jiff::Timestamp::now();
    let ids = vec!["app-1".to_owned(), "app-2".to_owned()];
    let tags = vec![("env".to_owned(), "prod".to_owned())];
    w.app
        .tag_resources(TagResourceType::Application, &ids, &tags, &actor(), now)
        .await
        .unwrap();
    w.app
        .tag_resources(
            TagResourceType::Application,
            &ids[..1],
            &[("team".to_owned(), "a".to_owned())],
            &actor(),
            now,
        )
        .await
        .unwrap();
    let wanted = [
        ("env".to_owned(), "prod".to_owned()),
        ("team".to_owned(), "a".to_owned()),
    ]
    .into_iter()
    .collect();
    let found = w
        .app
        .tagged(TagResourceType::Application, &wanted)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["app-1"]);
    let removed = w
        .app
        .untag_resources(TagResourceType::Application, &ids, None, &actor(), now)
        .await
        .unwrap();
    assert_eq!(removed, 3);

    let app = w.app.application("app-1").await.unwrap();
    let info = w
        .app
        .update_base_info(
            &app,
            BaseInfoChange {
                owner: Some(("bob".into(), 128)),
                ..Default::default()
            },
            "Description",
            "UpdateK8sApplicationBaseInfo",
            &actor(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(info.owner.as_deref(), Some("bob"));
    assert_eq!(info.description, None, "what is not given is kept");
    let audit = w
        .app
        .store()
        .list_audit(
            &AuditQuery {
                app_id: Some("app-1".into()),
                ..Default::default()
            },
            PageRequest {
                number: 1,
                size: 50,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .items
        .iter()
        .map(|r| r.entry.action.as_str())
        .collect();
    assert!(
        actions.contains(&"UpdateK8sApplicationBaseInfo"),
        "{actions:?}"
    );
    assert!(actions.contains(&"TagResources"), "{actions:?}");
}
