//! Two edasd processes on one PostgreSQL database sharing one (fake) Kubernetes cluster: the one
//! driving a release (the lease owner in the database) is killed (SIGKILL), and the other takes
//! the release over when its lease expires and finishes it, without doubling pods.
//!
//! Needs `EDAS_TEST_PG_URL` (`source scripts/setup.d/20-postgres.sh`); without it the test says
//! it was skipped, except in CI or with `EDAS_TEST_REQUIRE_PG=1`, where it fails.

mod kube_support;

use std::time::{Duration, Instant};

use kube_support::support::{pg_schema, pg_url};
use kube_support::*;
use sqlx::Connection;

const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

/// Two edasd on one PostgreSQL schema and one fake cluster whose pods become Ready after
/// `ready_after`.
struct Pair {
    database: String,
    backend: Backend,
    edasds: [Edasd; 2],
    _dir: tempfile::TempDir,
}

/// The pair of test `test`, or `None` (the test is skipped) without PostgreSQL.
async fn pair(test: &str, ready_after: Duration) -> Option<Pair> {
    let url = pg_url()?;
    let database = pg_schema(&url, &format!("edasd_{test}_{}", std::process::id())).await;
    let backend = Backend::fake(test, ready_after).await;
    let dir = tempfile::tempdir().unwrap();
    let a = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, Some(&database));
    // B shares the database and the store's encryption key (as an operator deploys them).
    let b = a.another(&dir.path().join("b"), &backend, &database, "");
    Some(Pair {
        database,
        backend,
        edasds: [a, b],
        _dir: dir,
    })
}

/// The engine worker id of `edasd` (what its leases name).
fn worker_id(edasd: &Edasd) -> String {
    std::fs::read_to_string(edasd.data_dir().join("worker-id"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_edasd_takes_over_a_release_whose_driver_was_killed() {
    // Pods take 1.5 s to become Ready, so the release (3 batches) is still running when its
    // driver dies.
    let Some(Pair {
        database,
        backend,
        mut edasds,
        _dir,
    }) = pair("takeover", Duration::from_millis(1500)).await
    else {
        return;
    };

    let (app, order) = edasds[0].insert(&backend, "takeover", 4, &[]).await;
    assert_eq!(
        edasds[0].finished(&order, backend.patience).await["Status"],
        2
    );
    backend
        .wait_pods(&app, "revision 1 runs", |p| p.get("1") == Some(&(4, 4)))
        .await;
    let log = backend.record_pods();
    let order = edasds[0]
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    // Whichever process claimed the release drives it: the gray batch's Deployment appears.
    let deadline = Instant::now() + backend.patience;
    while !backend.deployments(&app).await.contains_key("2") {
        assert!(Instant::now() < deadline, "the release never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let owner = driver_of(&database, &order).await;
    let driver = edasds
        .iter()
        .position(|e| worker_id(e) == owner)
        .unwrap_or_else(|| panic!("lease owner {owner} is neither edasd"));
    eprintln!("edasd {driver} drives the release; killing it");
    edasds[driver].kill();
    let survivor = &edasds[1 - driver];
    let info = survivor.order(&order).await;
    assert!(
        [1, 8, 9].contains(&info["Status"].as_i64().unwrap()),
        "the driver died mid-release: {info:#}"
    );
    let killed_at = Instant::now();
    let info = survivor.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!(
        "the survivor finished the release {:?} after the driver died",
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

/// The worker driving change order `order` (its lease owner), read from the database while it
/// runs.
async fn driver_of(database: &str, order: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (owner,): (Option<String>,) =
            sqlx::query_as("SELECT lease_owner FROM change_orders WHERE id = $1")
                .bind(order)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if let Some(owner) = owner {
            return owner;
        }
        assert!(
            Instant::now() < deadline,
            "change order {order} was never claimed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Both edasd alive: one applied revision 1, the other drives the next release and scales
/// revision 1 down batch by batch. The first must not take those steps for drift and restore
/// them (before, the two undid each other's replica counts and the release never finished).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_driven_by_one_edasd_is_not_drift_to_the_other() {
    // Pods take 1 s to become Ready, so each order runs long enough to see who drives it.
    let Some(Pair {
        database,
        backend,
        edasds,
        _dir,
    }) = pair("peer", Duration::from_millis(1000)).await
    else {
        return;
    };

    let (app, created) = edasds[0].insert(&backend, "peer", 4, &[]).await;
    let creator = driver_of(&database, &created).await;
    assert_eq!(
        edasds[0].finished(&created, backend.patience).await["Status"],
        2
    );
    // The release goes through the process that did not apply revision 1; its own engine
    // claims what it accepted.
    let other = edasds
        .iter()
        .position(|e| worker_id(e) != creator)
        .expect("two worker ids");
    let order = edasds[other]
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    let driver = driver_of(&database, &order).await;
    let info = edasds[other].finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!(
        "revision 1 applied by {creator}, the release driven by {driver} ({})",
        if driver == creator {
            "the same process: nothing to fight over this time"
        } else {
            "the other process"
        }
    );
    backend
        .wait_pods(&app, "only revision 2", |p| {
            p.len() == 1 && p.get("2") == Some(&(4, 4))
        })
        .await;
    // Settled: nobody scales revision 1 back up afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        backend
            .deployments(&app)
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [("2".to_owned(), 4)]
    );
}

/// Each edasd keeps the access keys, users and policies it authenticated with in memory, valid
/// while the database's identity version holds: a policy detached, a key disabled or deleted
/// through one edasd counts on the other at the very next request (no expiry to wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_change_through_one_edasd_counts_on_the_other_at_once() {
    use kube_support::support::{admin_call, user_with_policy};
    let Some(Pair {
        backend, edasds, ..
    }) = pair("revoke", Duration::from_millis(100)).await
    else {
        return;
    };
    let (app, _) = edasds[0].insert(&backend, "revoke", 0, &[]).await;
    let dave = user_with_policy(
        &edasds[0],
        "dave",
        serde_json::json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}),
    )
    .await;
    let get = async |through: &Edasd| {
        let mut as_dave = Endpoint::new(dave, Duration::from_secs(30), Duration::from_millis(100));
        as_dave.base = through.base.clone();
        as_dave
            .call_raw(
                "GET",
                "/pop/v5/changeorder/co_application",
                "GetK8sApplication",
                &[("AppId", &app)],
            )
            .await
    };
    let admin =
        async |through: &Edasd, method: &str, path: &str, body: Option<serde_json::Value>| {
            let (status, answer) = admin_call(through, KEY, method, path, body.as_ref()).await;
            assert_eq!(status, 200, "{method} {path}: {answer}");
        };
    for round in 0..3 {
        let (a, b) = if round % 2 == 0 {
            (&edasds[0], &edasds[1])
        } else {
            (&edasds[1], &edasds[0])
        };
        // Both remember dave as allowed.
        for e in [a, b] {
            let (status, body) = get(e).await;
            assert_eq!(status, 200, "round {round}: {body}");
        }
        admin(a, "DELETE", "users/dave/policies/dave-policy", None).await;
        let (status, body) = get(b).await;
        assert_eq!(
            (status, body["Code"].as_str()),
            (401, Some("AUTH_ERROR")),
            "round {round}: the detached policy still counts on the other edasd: {body}"
        );
        admin(b, "PUT", "users/dave/policies/dave-policy", None).await;
        assert_eq!(get(a).await.0, 200, "round {round}: re-attached");
        admin(
            a,
            "PUT",
            "keys/LTAIdave",
            Some(serde_json::json!({"Enabled": false})),
        )
        .await;
        let (status, body) = get(b).await;
        assert_eq!(
            body["Code"], "InvalidAccessKeyId.Inactive",
            "round {round}: the disabled key still works on the other edasd ({status}): {body}"
        );
        admin(
            b,
            "PUT",
            "keys/LTAIdave",
            Some(serde_json::json!({"Enabled": true})),
        )
        .await;
    }
    admin(&edasds[1], "DELETE", "keys/LTAIdave", None).await;
    let (status, body) = get(&edasds[0]).await;
    assert_eq!(
        body["Code"], "InvalidAccessKeyId.NotFound",
        "the deleted key still works on the other edasd ({status}): {body}"
    );
}
