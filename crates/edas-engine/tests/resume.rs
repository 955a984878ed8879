//! Shutdown and resume at scale, on a real SQLite file and the fake runtime: a graceful
//! shutdown with 1,000 change orders in flight is quick and keeps their leases (one hand-over
//! write, no livelock with the claim loop), the restarted engine (same worker id) drives every
//! one of them again at once, and another worker id may take them over at once too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes};
use edas_runtime::fake::FakeRuntime;
use edas_spec::{Operation, Params, apply};
use edas_store::Store;

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

fn engine(store: &Arc<Store>, fake: &FakeRuntime, worker: &str) -> Engine {
    let e = Engine::new(
        store.clone(),
        Runtimes::new().with("local", Arc::new(fake.clone())),
        EngineConfig {
            worker_id: worker.into(),
            lease: Duration::from_secs(15),
        },
    );
    e.start();
    e
}

/// Creates applications `app-<i>` (`i` in `apps`) whose first release waits for instances that never become ready
/// (revision 1 is held not ready): as many orders in flight, driven by `engine`.
async fn in_flight(
    engine: &Engine,
    fake: &FakeRuntime,
    apps: std::ops::Range<usize>,
) -> Vec<String> {
    fake.never_ready("1");
    let mut orders = Vec::with_capacity(apps.len());
    let ids: Vec<usize> = apps.collect();
    for chunk in ids.chunks(50) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("app-{i}");
                let change = apply(
                    Operation::InsertK8sApplication,
                    None,
                    &params(&[
                        ("AppName", &name),
                        ("ClusterId", "local"),
                        ("Command", "/bin/app"),
                        ("Replicas", "1"),
                    ]),
                )
                .unwrap();
                engine
                    .create_application(CreateApplication {
                        app_id: name,
                        region_id: "cn-hangzhou".into(),
                        namespace_id: "cn-hangzhou".into(),
                        namespace_stored: false,
                        change,
                        actor: "test".into(),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .change_order_id
            }));
        }
        for t in tasks {
            orders.push(t.await.unwrap());
        }
    }
    orders
}

/// Waits until every order is in progress (status 1) under a live lease of `worker`.
async fn all_driven_by(store: &Store, orders: &[String], worker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open = store.open_change_orders().await.unwrap();
        let now = jiff::Timestamp::now();
        let driven = open
            .iter()
            .filter(|o| orders.contains(&o.id))
            .filter(|o| o.status.code() == 1)
            .filter(|o| {
                o.lease
                    .as_ref()
                    .is_some_and(|l| l.owner == worker && l.expires_at > now)
            })
            .count();
        if driven == orders.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {driven} of {} orders in progress under {worker}",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the drivers are idle (no order's version moved for 500 ms): the orders then wait
/// for their instances, as orders in flight mostly do.
async fn settled(store: &Store) {
    let mut last = (0, Instant::now());
    loop {
        let open = store.open_change_orders().await.unwrap();
        let versions: i64 = open.iter().map(|o| o.version).sum();
        if versions != last.0 {
            last = (versions, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(500) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every order succeeded (status 2).
async fn all_succeeded(store: &Store, orders: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open = store.open_change_orders().await.unwrap();
        let left = open.iter().filter(|o| orders.contains(&o.id)).count();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} of {} orders were not driven to the end",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in orders {
        assert_eq!(store.get_change_order(id).await.unwrap().status.code(), 2);
    }
}

/// 1,000 orders in flight: the shutdown takes well under 2 s even while runtime events keep
/// arriving (the old claim loop re-claimed what stopping drivers gave back, for minutes), every
/// lease still names the worker afterwards, and the restarted engine with the same worker id
/// drives every order again at once: they all finish once their instances become ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_1000_orders_in_flight_is_quick_and_the_restart_drives_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(50));
    let first = engine(&store, &fake, "w1");
    let orders = in_flight(&first, &fake, 0..1000).await;
    all_driven_by(&store, &orders, "w1", Duration::from_secs(60)).await;
    settled(&store).await;

    // Runtime events keep coming while the engine stops.
    let noise = {
        let fake = fake.clone();
        let spec = apply(
            Operation::InsertK8sApplication,
            None,
            &params(&[
                ("AppName", "noise"),
                ("ClusterId", "local"),
                ("Command", "/x"),
            ]),
        )
        .unwrap()
        .spec;
        let target = edas_runtime::Target {
            app: edas_runtime::AppRef {
                id: "noise".into(),
                name: "noise".into(),
                namespace: "default".into(),
            },
            revision: "9".into(),
            spec: Arc::new(spec),
            config: Arc::default(),
        };
        tokio::spawn(async move {
            use edas_runtime::Runtime;
            if std::env::var("NO_NOISE").is_ok() {
                return;
            }
            for n in (0..).cycle() {
                let _ = fake.set_replicas(&target, n % 2).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let started = Instant::now();
    first.shutdown().await;
    let took = started.elapsed();
    noise.abort();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let now = jiff::Timestamp::now();
    for id in &orders {
        let lease = store.get_change_order(id).await.unwrap().lease;
        let lease = lease.unwrap_or_else(|| panic!("order {id} lost its lease at shutdown"));
        assert_eq!(lease.owner, "w1");
        assert!(lease.expires_at <= now, "the lease was not handed over");
    }

    // The restart (same worker id) takes them all back in one go and drives them to the end;
    // a new application is accepted while it resumes (the engine's start returns at once).
    let started = Instant::now();
    let second = engine(&store, &fake, "w1");
    let fresh = in_flight(&second, &fake, 1000..1001).await;
    let accepted = started.elapsed();
    all_driven_by(&store, &orders, "w1", Duration::from_secs(10)).await;
    let resumed = started.elapsed();
    let mut orders = orders;
    orders.extend(fresh);
    assert!(
        accepted < Duration::from_secs(2),
        "a new application waited {accepted:?} for the resume"
    );
    fake.clear_never_ready("1");
    all_succeeded(&store, &orders, Duration::from_secs(60)).await;
    second.shutdown().await;
    println!(
        "shutdown {took:?}; a new application accepted after {accepted:?}; every order leased \
         again after {resumed:?}"
    );
}

/// A graceful shutdown hands the leases over: an engine with another worker id (another
/// process on the same database) takes the orders over at once, not after the 15 s lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_takes_over_a_shut_down_engines_orders_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(50));
    let first = engine(&store, &fake, "w1");
    let orders = in_flight(&first, &fake, 0..20).await;
    all_driven_by(&store, &orders, "w1", Duration::from_secs(30)).await;
    first.shutdown().await;
    let second = engine(&store, &fake, "w2");
    all_driven_by(&store, &orders, "w2", Duration::from_secs(5)).await;
    fake.clear_never_ready("1");
    all_succeeded(&store, &orders, Duration::from_secs(30)).await;
    second.shutdown().await;
}
