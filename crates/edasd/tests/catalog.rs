//! Black-box tests of issue 24's catalog operations on the real edasd: EDAS namespaces created
//! through the API merged with the configuration's and kept across a restart, refused on
//! delete while an application is in one; applications' base information; tags, ListApplication's
//! tag filter and policies conditioned on tags; a user without the rights is refused and nothing
//! is stored.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Cluster, QUICK_RESTARTS};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

const REGION_DEF: &str = "/pop/v5/user_region_def";

fn start(name: &str) -> Cluster {
    Cluster::launch(
        format!("edasd-catalog-{name}-{}", std::process::id()),
        |_, _| format!("namespaces = [\"cn-hangzhou:conf\"]\n{QUICK_RESTARTS}"),
        false,
        Duration::from_millis(50),
    )
}

async fn namespaces(edasd: &Cluster) -> Vec<(i64, String)> {
    let listed = edasd
        .call(
            "POST",
            "/pop/v5/user_region_defs",
            "ListUserDefineRegion",
            &[],
        )
        .await;
    listed["UserDefineRegionList"]["UserDefineRegionEntity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Id"].as_i64().unwrap(),
                e["RegionId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_stored_merged_and_kept_while_used() {
    let started = Instant::now();
    let mut edasd = start("namespaces");
    assert_eq!(
        namespaces(&edasd).await,
        [
            (0, "cn-hangzhou".to_owned()),
            (0, "cn-hangzhou:conf".to_owned())
        ]
    );
    let created = edasd
        .call(
            "POST",
            REGION_DEF,
            "InsertOrUpdateRegion",
            &[("RegionTag", "cn-hangzhou:prod"), ("RegionName", "Prod")],
        )
        .await;
    let id = created["UserDefineRegionEntity"]["Id"].as_i64().unwrap();
    assert!(id > 0, "{created}");
    // The configuration's namespace is not the API's: refused, nothing stored.
    let (status, refused) = edasd
        .call_raw(
            "DELETE",
            REGION_DEF,
            "DeleteUserDefineRegion",
            &[("RegionTag", "cn-hangzhou:conf")],
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["Message"]
            .as_str()
            .unwrap()
            .contains("configuration file"),
        "{refused}"
    );

    // Stored: it outlives a restart.
    edasd.stop_edasd();
    edasd.spawn();
    assert_eq!(
        namespaces(&edasd).await,
        [
            (0, "cn-hangzhou".to_owned()),
            (0, "cn-hangzhou:conf".to_owned()),
            (id, "cn-hangzhou:prod".to_owned())
        ]
    );

    // An application in it keeps it.
    let (app, co) = edasd
        .insert(
            "in-prod",
            0,
            &[("LogicalRegionId", "cn-hangzhou:prod")],
            &[],
        )
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let id_text = id.to_string();
    let (status, in_use) = edasd
        .call_raw(
            "DELETE",
            REGION_DEF,
            "DeleteUserDefineRegion",
            &[("Id", &id_text)],
        )
        .await;
    assert_eq!(
        (status, in_use["Code"].as_str()),
        (409, Some("OperationDenied.ResourceInUse")),
        "{in_use}"
    );
    assert!(
        in_use["Message"]
            .as_str()
            .unwrap()
            .contains(&format!("in-prod ({app})")),
        "{in_use}"
    );
    assert_eq!(namespaces(&edasd).await.len(), 3);

    edasd
        .call(
            "DELETE",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeleteK8sApplication",
            &[("AppId", &app), ("Force", "true")],
        )
        .await;
    let gone = edasd
        .call(
            "DELETE",
            REGION_DEF,
            "DeleteUserDefineRegion",
            &[("Id", &id_text)],
        )
        .await;
    assert_eq!(gone["RegionDefine"]["RegionId"], "cn-hangzhou:prod");
    assert_eq!(namespaces(&edasd).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// GetApplication's answer.
async fn application(edasd: &Cluster, app: &str) -> Value {
    edasd
        .call(
            "POST",
            "/pop/v5/app/app_info",
            "GetApplication",
            &[("AppId", app)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_info_and_tags_are_kept_and_authorized() {
    let edasd = start("tags");
    let (app, co) = edasd.insert("tagged", 0, &[], &[]).await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let (other, co) = edasd.insert("plain", 0, &[], &[]).await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );

    edasd
        .call(
            "POST",
            "/pop/v5/oam/update_app_basic_info",
            "UpdateK8sApplicationBaseInfo",
            &[
                ("AppId", &app),
                ("Owner", "alice"),
                ("Description", "the shop"),
            ],
        )
        .await;
    let got = application(&edasd, &app).await;
    assert_eq!(
        (
            &got["Application"]["Owner"],
            &got["Application"]["Description"]
        ),
        (&json!("alice"), &json!("the shop"))
    );
    // Invalid input: refused, nothing changed.
    let (status, _) = edasd
        .call_raw(
            "POST",
            "/pop/v5/oam/update_app_basic_info",
            "UpdateK8sApplicationBaseInfo",
            &[("AppId", &app), ("Owner", "bob"), ("Email", "no-address")],
        )
        .await;
    assert_eq!(status, 400);
    let got = application(&edasd, &app).await;
    assert_eq!(got["Application"]["Owner"], "alice");

    let ids = serde_json::to_string(&[&app]).unwrap();
    let tag_params = |tags: &'static str| {
        [
            ("ResourceRegionId", "cn-hangzhou"),
            ("ResourceType", "application"),
            ("ResourceIds", ids.as_str()),
            ("Tags", tags),
        ]
    };
    edasd
        .call(
            "POST",
            "/pop/v5/tag/tags",
            "TagResources",
            &tag_params(r#"[{"key":"env","value":"prod"}]"#),
        )
        .await;
    let listed = |tags: &'static str| {
        let edasd = &edasd;
        async move {
            let body = edasd
                .call(
                    "POST",
                    "/pop/v5/app/app_list",
                    "ListApplication",
                    &[("Tags", tags)],
                )
                .await;
            body["ApplicationList"]["Application"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["AppId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(r#"{"env":"prod"}"#).await, vec![app.clone()]);
    assert!(listed(r#"{"env":"test"}"#).await.is_empty());
    let all = listed("").await;
    assert!(all.contains(&app) && all.contains(&other));

    // A user allowed to read but not to manage: cannot tag, sees the tags.
    let reader = support::user_with_policy(
        &edasd,
        "tagreader",
        json!({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "edas:Read*", "Resource": "*"}]}),
    )
    .await;
    let (status, denied) = support::signed(
        &edasd.client,
        &edasd.base,
        "POST",
        "/pop/v5/tag/tags",
        "TagResources",
        &tag_params(r#"[{"key":"env","value":"dev"}]"#),
        reader,
    )
    .await;
    assert_eq!(
        (status, &denied["Code"]),
        (401, &Value::from("AUTH_ERROR")),
        "{denied}"
    );
    // A policy conditioned on the resource's tags (EDAS's tag-based access control).
    let team = support::user_with_policy(
        &edasd,
        "produser",
        json!({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "edas:*", "Resource": "*",
            "Condition": {"StringEquals": {"acs:ResourceTag/env": ["prod"]}}}]}),
    )
    .await;
    for (target, expected) in [(&app, 200), (&other, 401)] {
        let (status, body) = support::signed(
            &edasd.client,
            &edasd.base,
            "POST",
            "/pop/v5/oam/update_app_basic_info",
            "UpdateK8sApplicationBaseInfo",
            &[("AppId", target.as_str()), ("Owner", "prod team")],
            team,
        )
        .await;
        assert_eq!(status, expected, "{target}: {body}");
    }
    let tags = edasd
        .call(
            "GET",
            "/pop/v5/tag/tags",
            "ListTagResources",
            &[
                ("ResourceRegionId", "cn-hangzhou"),
                ("ResourceType", "application"),
            ],
        )
        .await;
    assert_eq!(
        tags["TagResources"]["TagResource"],
        json!([{"ResourceId": app, "ResourceType": "application", "TagKey": "env", "TagValue": "prod"}])
    );
}
