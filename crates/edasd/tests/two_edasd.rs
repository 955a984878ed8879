//! Two edasd processes on one PostgreSQL database sharing one (fake) Kubernetes cluster: the one
//! driving a release is killed (SIGKILL), and the other takes the release over when its lease
//! expires and finishes it, without doubling pods.
//!
//! Needs `EDAS_TEST_PG_URL` (`source scripts/setup.d/20-postgres.sh`); without it the test says
//! it was skipped, except in CI or with `EDAS_TEST_REQUIRE_PG=1`, where it fails.

mod kube_support;

use std::time::{Duration, Instant};

use kube_support::*;
use sqlx::Connection;

/// The PostgreSQL URL, or `None` (after printing why) when the tier is skipped here.
fn pg_url() -> Option<String> {
    if let Ok(url) = std::env::var("EDAS_TEST_PG_URL")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
    let required = std::env::var("EDAS_TEST_REQUIRE_PG").is_ok_and(|v| v == "1");
    assert!(
        !(ci || required),
        "EDAS_TEST_PG_URL is not set, but the PostgreSQL tests are required here (CI or \
         EDAS_TEST_REQUIRE_PG=1): source scripts/setup.d/20-postgres.sh first"
    );
    eprintln!(
        "SKIPPED: EDAS_TEST_PG_URL is not set; source scripts/setup.d/20-postgres.sh to run the \
         PostgreSQL tier"
    );
    None
}

/// A fresh schema of the test database; the URL that uses it.
async fn fresh_schema(url: &str) -> String {
    let schema = format!("edasd_two_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_edasd_takes_over_a_release_whose_driver_was_killed() {
    let Some(url) = pg_url() else {
        return;
    };
    let database = fresh_schema(&url).await;
    // Pods take 1.5 s to become Ready, so the release (3 batches) is still running when its
    // driver dies.
    let backend = Backend::fake("takeover", Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, Some(&database));

    let (app, order) = a.insert(&backend, "takeover", 4, &[]).await;
    assert_eq!(a.finished(&order, backend.patience).await["Status"], 2);
    backend
        .wait_pods(&app, "revision 1 runs", |p| p.get("1") == Some(&(4, 4)))
        .await;
    let log = backend.record_pods();
    let order = a
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    // A drives it: the gray batch's Deployment appears.
    let deadline = Instant::now() + backend.patience;
    while !backend.deployments(&app).await.contains_key("2") {
        assert!(Instant::now() < deadline, "the release never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // B shares the database and the store's encryption key (as an operator deploys them).
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(b_dir.join("data")).unwrap();
    std::fs::copy(
        a.data_dir().join("store.key"),
        b_dir.join("data").join("store.key"),
    )
    .unwrap();
    let b = Edasd::start(&b_dir, &backend.kubeconfig, Some(&database));

    a.kill();
    let info = b.order(&order).await;
    assert!(
        [1, 8, 9].contains(&info["Status"].as_i64().unwrap()),
        "the driver died mid-release: {info:#}"
    );
    let killed_at = Instant::now();
    let info = b.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!(
        "B finished the release {:?} after A died",
        killed_at.elapsed()
    );
    backend
        .wait_pods(&app, "only revision 2", |p| {
            p.len() == 1 && p.get("2") == Some(&(4, 4))
        })
        .await;
    assert_eq!(
        backend
            .deployments(&app)
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [("2".to_owned(), 4)]
    );
    assert_eq!(
        log.created().get("2"),
        Some(&4),
        "no pod doubled: {:?}",
        log.created()
    );
}
