//! Applications' scaling rules: each write with its audit record, refused writes store
//! nothing.

use edas_store::*;

use crate::harness::*;

fn rule(app: &str, name: &str, min: u32, max: u32) -> ScalingRule {
    ScalingRule {
        app_id: app.into(),
        name: name.into(),
        enabled: false,
        min_replicas: min,
        max_replicas: max,
        doc: ScalingRuleDoc {
            metrics: vec![ScalingMetric {
                kind: "CPU".into(),
                target_utilization: 60,
            }],
            scale_up: None,
            scale_down: Some(ScalingDirection {
                stabilization_window_seconds: 300,
                select_policy: "Max".into(),
                policies: vec![ScalingPolicy {
                    kind: "Percent".into(),
                    value: 50,
                    period_seconds: 15,
                }],
            }),
        },
        created_at: t(0),
        updated_at: t(0),
        last_disabled_at: None,
    }
}

pub async fn scaling_rules_are_stored_per_application(ts: &TestStore) {
    let store = &ts.store;
    create(store, "app-s", "co-s", t(0)).await;
    let mut cpu = rule("app-s", "cpu", 1, 4);
    cpu.enabled = true;
    let stored = store
        .put_scaling_rule(&cpu, true, &audit("scaling", "app-s"), t(1))
        .await
        .unwrap();
    assert_eq!((stored.created_at, stored.updated_at), (t(1), t(1)));
    assert!(stored.enabled);
    assert_eq!(stored.doc, cpu.doc);
    let err = store
        .put_scaling_rule(&cpu, true, &audit("scaling", "app-s"), t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    // Read back here, and by a store opened afterwards (SQLite knows which applications have
    // rules from the table when it opens).
    assert_eq!(
        store.scaling_rules("app-s").await.unwrap(),
        std::slice::from_ref(&stored)
    );
    let other = ts.reopen().await;
    assert_eq!(
        other.scaling_rules("app-s").await.unwrap(),
        std::slice::from_ref(&stored)
    );
    other.close().await;
    // The application has a rule (on its cluster c1, not on another).
    assert_eq!(
        store.applications_with_scaling_rules(None).await.unwrap(),
        ["app-s"]
    );
    assert_eq!(
        store
            .applications_with_scaling_rules(Some("c1"))
            .await
            .unwrap(),
        ["app-s"]
    );
    assert!(
        store
            .applications_with_scaling_rules(Some("c2"))
            .await
            .unwrap()
            .is_empty()
    );
    let err = store
        .put_scaling_rule(
            &rule("app-s", "none", 1, 2),
            false,
            &audit("s", "app-s"),
            t(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store
        .put_scaling_rule(&rule("app-none", "cpu", 1, 2), true, &audit("s", "x"), t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // Disabling keeps the creation time and records when.
    let mut off = rule("app-s", "cpu", 2, 8);
    off.enabled = false;
    let updated = store
        .put_scaling_rule(&off, false, &audit("scaling", "app-s"), t(3))
        .await
        .unwrap();
    assert_eq!(
        (
            updated.created_at,
            updated.updated_at,
            updated.last_disabled_at
        ),
        (t(1), t(3), Some(t(3)))
    );
    assert_eq!((updated.min_replicas, updated.max_replicas), (2, 8));
    // Disabled, it still has one (its autoscaler may need removing).
    assert_eq!(
        store.applications_with_scaling_rules(None).await.unwrap(),
        ["app-s"]
    );
    store
        .put_scaling_rule(
            &rule("app-s", "again", 1, 2),
            true,
            &audit("s", "app-s"),
            t(4),
        )
        .await
        .unwrap();
    let names: Vec<String> = store
        .scaling_rules("app-s")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["again", "cpu"]);

    store
        .delete_scaling_rule("app-s", "cpu", &audit("scaling", "app-s"), t(5))
        .await
        .unwrap();
    let err = store
        .delete_scaling_rule("app-s", "cpu", &audit("scaling", "app-s"), t(6))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(store.scaling_rules("app-s").await.unwrap().len(), 1);
    assert!(store.scaling_rules("app-none").await.unwrap().is_empty());
}
