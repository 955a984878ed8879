//! `edas-bench api`: signed DeployK8sApplication requests per second and latency at several
//! concurrency levels against the real edasd (release build, SQLite), next to the floor: the
//! same requests, signed the same way by the same client, against a bare axum handler that does
//! one durable SQLite write (see [`crate::server::floor_server`]).
//!
//! Two ways to pick the application (Replicas 0 on `local`, so no process starts):
//! - **fresh**: every deploy goes to an application no deploy has touched yet (a pool created
//!   beforehand), so none waits for an earlier release: the API's intake of deploys, while the
//!   release engine in the same process runs the change orders they create;
//! - **sustained**: each client deploys to its own `apps_per_client` applications in turn; a
//!   deploy is accepted only once that application's previous release has finished (else 409,
//!   counted apart), so the rate is deploys *and their releases* per second, end to end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::server::{Server, signed};
use crate::stats::{machine, mib, ms, percentile, rss_and_cpu};

const DEPLOY: &str = "/pop/v5/k8s/acs/k8s_apps";

/// What one load run measured.
struct Run {
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    latencies: Vec<Duration>,
    /// The last change order each client's accepted deploys created.
    last_orders: Vec<String>,
    elapsed: Duration,
}

impl Run {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Which application a deploy goes to.
#[derive(Clone)]
enum Pick {
    /// Each client its own `n` applications (at the start of the list), in turn.
    Rotate(usize),
    /// The next untouched application of the pool (after the rotating ones); a client stops
    /// when the pool is used up.
    Fresh(Arc<AtomicUsize>),
}

/// `clients` concurrent clients for `seconds`, deploying to the applications `pick` says.
async fn load(base: &str, apps: Arc<Vec<String>>, clients: usize, pick: Pick, seconds: f64) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let base = base.to_owned();
        let apps = apps.clone();
        let pick = pick.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut last_order = String::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut errors = 0u64;
            let mut round = 0usize;
            while Instant::now() < deadline {
                let app = match &pick {
                    Pick::Rotate(n) => &apps[(c * n + round % n) % apps.len()],
                    Pick::Fresh(next) => match apps.get(next.fetch_add(1, Ordering::Relaxed)) {
                        Some(app) => app,
                        None => break,
                    },
                };
                let image = format!("bench:c{c}r{round}");
                round += 1;
                let sent = Instant::now();
                match signed(
                    &client,
                    &base,
                    "POST",
                    DEPLOY,
                    "DeployK8sApplication",
                    &[("AppId", app), ("Image", &image)],
                )
                .await
                {
                    Ok((status, body)) => {
                        if let Some(id) = body["ChangeOrderId"].as_str() {
                            last_order = id.to_owned();
                        }
                        *statuses.entry(status).or_default() += 1;
                        if status == 200 {
                            lat.push(sent.elapsed());
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, statuses, errors, last_order)
        }));
    }
    let mut run = Run {
        ok: 0,
        statuses: BTreeMap::new(),
        errors: 0,
        latencies: Vec::new(),
        last_orders: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (lat, statuses, errors, last_order) = t.await.expect("a client task");
        run.latencies.extend(lat);
        run.last_orders.push(last_order);
        for (s, n) in statuses {
            *run.statuses.entry(s).or_default() += n;
        }
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    run.ok = run.statuses.get(&200).copied().unwrap_or(0);
    run.latencies.sort();
    run
}

/// edasd's `edasd_store_wal_syncs_total` (group commit's syncs so far) and
/// `edasd_store_wal_checkpoints_total` by who ran them and `edasd_store_wal_pages_total`, from
/// `/metrics`.
async fn wal_counts(http: &reqwest::Client, base: &str) -> Option<[u64; 5]> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some([
        value("edasd_store_wal_syncs_total ")?,
        value("edasd_store_wal_checkpoints_total{by=\"thread\"} ").unwrap_or(0),
        value("edasd_store_wal_checkpoints_total{by=\"finish\"} ").unwrap_or(0),
        value("edasd_store_wal_checkpoints_total{by=\"backstop\"} ").unwrap_or(0),
        value("edasd_store_wal_pages_total ").unwrap_or(0),
    ])
}

/// Waits until each of `orders` is no longer active (the engine takes orders in creation
/// order, so the clients' last ones finishing means the backlog is gone).
async fn drained(http: &reqwest::Client, base: &str, orders: &[String]) -> anyhow::Result<()> {
    for id in orders.iter().filter(|id| !id.is_empty()) {
        loop {
            let (_, body) = signed(
                http,
                base,
                "POST",
                "/pop/v5/changeorder/change_order_info",
                "GetChangeOrderInfo",
                &[("ChangeOrderId", id)],
            )
            .await?;
            let status = body["changeOrderInfo"]["Status"].as_i64().unwrap_or(-1);
            if ![0, 1, 8, 9].contains(&status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Creates `count` applications (Replicas 0 on `local`, so nothing runs), 32 at a time, and
/// waits until their first change orders are released.
async fn create_apps(
    http: &reqwest::Client,
    base: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut apps = Vec::with_capacity(count);
    let mut last_order = String::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let mut batch = Vec::new();
        for &i in chunk {
            let http = http.clone();
            let base = base.to_owned();
            batch.push(tokio::spawn(async move {
                let name = format!("bench-{i}");
                signed(
                    &http,
                    &base,
                    "POST",
                    "/pop/v5/k8s/acs/create_k8s_app",
                    "InsertK8sApplication",
                    &[
                        ("AppName", &name),
                        ("ClusterId", "local"),
                        ("ImageUrl", "bench:v0"),
                        ("Command", "/bin/true"),
                        ("Replicas", "0"),
                    ],
                )
                .await
            }));
        }
        for b in batch {
            let (status, body) = b.await??;
            if status != 200 {
                bail!("InsertK8sApplication answered {status}: {body}");
            }
            let info = &body["ApplicationInfo"];
            apps.push(info["AppId"].as_str().unwrap_or_default().to_owned());
            last_order = info["ChangeOrderId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
    }
    // Their first change orders are released before anything is measured (the engine takes
    // them in creation order, so the last one finishing means all have).
    drained(http, base, &[last_order]).await?;
    Ok(apps)
}

/// The per-deploy breakdown, on an edasd of its own with sqlx's statement log on (so the
/// figures above do not pay for the log): SQL statements and fsync/fdatasync calls (counted by
/// `strace -c` attached to it) per accepted fresh deploy at `clients` clients, the engine's
/// release of each deploy included.
async fn breakdown(
    edasd: &std::path::Path,
    dir: &std::path::Path,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<String> {
    let (server, statements) = Server::edasd_counting_statements(edasd, dir)?;
    let http = reqwest::Client::new();
    let pool = (clients * 250).max(1000);
    let apps = Arc::new(create_apps(&http, &server.base, pool).await?);
    let _ = load(&server.base, apps.clone(), 2, Pick::Rotate(4), 1.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let trace = dir.with_extension("strace");
    let strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg("-p")
        .arg(server.pid().to_string())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = statements.load(Ordering::Relaxed);
    let fresh = Pick::Fresh(Arc::new(AtomicUsize::new(8)));
    let run = load(&server.base, apps.clone(), clients, fresh, seconds).await;
    drained(&http, &server.base, &run.last_orders).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ran = statements.load(Ordering::Relaxed) - before;
    let per = |n: u64| n as f64 / run.ok.max(1) as f64;
    let fsyncs = match strace {
        Some(mut child) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
            let summary = std::fs::read_to_string(&trace).unwrap_or_default();
            let calls: u64 = summary
                .lines()
                .filter(|l| l.ends_with("fsync") || l.ends_with("fdatasync"))
                .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
                .sum();
            format!("{:.2} fsync/fdatasync", per(calls))
        }
        None => "fsyncs not counted (no strace)".to_owned(),
    };
    Ok(format!(
        "per accepted deploy ({} fresh deploys at {clients} clients, release included): \
         {:.1} SQL statements, {fsyncs}",
        run.ok,
        per(ran)
    ))
}

pub(crate) async fn api(
    edasd: std::path::PathBuf,
    levels: Vec<usize>,
    seconds: f64,
    apps_per_client: usize,
    fresh_pool: usize,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    println!("machine: {}", machine());
    if database_url.is_some() {
        println!("store: PostgreSQL (--database-url); the floor is SQLite's");
    }
    let dir = tempfile::tempdir()?;
    let server = Server::edasd_on(
        &edasd,
        &dir.path().join("edasd"),
        None,
        database_url.as_deref(),
    )?;
    let floor = Server::floor(&dir.path().join("floor"))?;
    let http = reqwest::Client::new();

    // The applications: Replicas 0 on local (nothing runs), created with some concurrency.
    let max = levels.iter().copied().max().unwrap_or(1);
    let rotating = max * apps_per_client;
    let count = rotating + fresh_pool;
    let created = Instant::now();
    let apps = create_apps(&http, &server.base, count).await?;
    println!(
        "{count} applications created and released in {:?}",
        created.elapsed()
    );
    let apps = Arc::new(apps);
    let rotate = Pick::Rotate(apps_per_client);
    let fresh = Pick::Fresh(Arc::new(AtomicUsize::new(rotating)));
    // Warm both servers up (connections, caches, the engine's first claims).
    let _ = load(&server.base, apps.clone(), 4, rotate.clone(), 1.0).await;
    let _ = load(&floor.base, apps.clone(), 4, rotate.clone(), 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "\n| clients | fresh: deploys/s | p50 | p99 | sustained: deploys/s | p50 | p99 | 409 (busy) | floor: writes/s | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for &clients in &levels {
        // (The scrape first: rendering edasd's metrics is not a deploy's cost.)
        let syncs_before = wal_counts(&http, &server.base).await;
        let before = rss_and_cpu(server.pid());
        let n = load(&server.base, apps.clone(), clients, fresh.clone(), seconds).await;
        // Let the engine finish the change orders before the next run measures (its CPU for
        // them counts: they are part of what a deploy costs).
        let drain = Instant::now();
        drained(&http, &server.base, &n.last_orders).await?;
        notes.push(format!(
            "{clients} clients: the engine finished the fresh run's releases {:?} after it ended",
            drain.elapsed()
        ));
        let fresh_ok = n.ok;
        let e = load(&server.base, apps.clone(), clients, rotate.clone(), seconds).await;
        drained(&http, &server.base, &e.last_orders).await?;
        let after = rss_and_cpu(server.pid());
        // The fresh run's syncs and the sustained run's, over both runs' deploys.
        if let (Some(a), Some(b)) = (syncs_before, wal_counts(&http, &server.base).await) {
            notes.push(format!(
                "{clients} clients: {:.2} WAL syncs (fdatasync) per accepted deploy, release included \
                 (edasd_store_wal_syncs_total over the fresh and sustained runs, at full speed); \
                 {:.1} KiB of WAL written per accepted deploy; \
                 WAL checkpoints: {} beside the writer, {} finished by the writer, {} at the backstop",
                b[0].saturating_sub(a[0]) as f64 / (fresh_ok + e.ok).max(1) as f64,
                b[4].saturating_sub(a[4]) as f64 * 4.0 / (fresh_ok + e.ok).max(1) as f64,
                b[1].saturating_sub(a[1]),
                b[2].saturating_sub(a[2]),
                b[3].saturating_sub(a[3]),
            ));
        }
        if let (Some((_, c0)), Some((rss, c1))) = (before, after) {
            notes.push(format!(
                "{clients} clients: edasd CPU {:.2} ms per accepted deploy (API + engine), RSS {}",
                (c1 - c0).as_secs_f64() * 1000.0 / (e.ok + n.ok).max(1) as f64,
                mib(rss)
            ));
        }
        if n.elapsed.as_secs_f64() < seconds * 0.95 {
            notes.push(format!(
                "{clients} clients: the fresh pool ran out after {:?}",
                n.elapsed
            ));
        }
        let f = load(&floor.base, apps.clone(), clients, rotate.clone(), seconds).await;
        println!(
            "| {clients} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {:.0} | {} | {} |",
            n.rps(),
            ms(percentile(&n.latencies, 0.5)),
            ms(percentile(&n.latencies, 0.99)),
            e.rps(),
            ms(percentile(&e.latencies, 0.5)),
            ms(percentile(&e.latencies, 0.99)),
            e.statuses.get(&409).copied().unwrap_or(0),
            f.rps(),
            ms(percentile(&f.latencies, 0.5)),
            ms(percentile(&f.latencies, 0.99)),
        );
        let unexpected = |r: &Run, allowed: &[u16]| -> BTreeMap<u16, u64> {
            r.statuses
                .iter()
                .filter(|(s, _)| !allowed.contains(s))
                .map(|(s, n)| (*s, *n))
                .collect()
        };
        for (what, r, allowed) in [
            ("fresh", &n, &[200][..]),
            ("sustained", &e, &[200, 409][..]),
            ("floor", &f, &[200][..]),
        ] {
            let bad = unexpected(r, allowed);
            if !bad.is_empty() || r.errors > 0 {
                notes.push(format!(
                    "{clients} clients, {what}: unexpected statuses {bad:?}, {} transport errors",
                    r.errors
                ));
            }
        }
    }
    drop(floor);
    drop(server);
    let breakdown_clients = if levels.contains(&8) { 8 } else { max };
    if database_url.is_some() {
        notes.push("per-deploy breakdown: SQLite only".to_owned());
    } else {
        match breakdown(
            &edasd,
            &dir.path().join("breakdown"),
            breakdown_clients,
            seconds.min(5.0),
        )
        .await
        {
            Ok(line) => notes.push(line),
            Err(e) => notes.push(format!("per-deploy breakdown failed: {e:#}")),
        }
    }
    for note in notes {
        println!("  {note}");
    }
    Ok(())
}
