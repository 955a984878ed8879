//! `edas-bench api`: signed DeployK8sApplication requests per second and latency at several
//! concurrency levels against the real edasd (release build, SQLite), next to the floor: the
//! same requests, signed the same way by the same client, against a bare axum handler that does
//! one durable SQLite write (see [`crate::server::floor_server`]).
//!
//! Each client owns `apps_per_client` applications (Replicas 0 on `local`, so no process
//! starts) and deploys to them in turn, so a deploy normally finds its application's previous
//! change order finished; one that does not is answered 409 and counted apart (the release
//! engine runs in the same process and shares the single SQLite writer with the API).

use std::collections::BTreeMap;
use std::sync::Arc;
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
    elapsed: Duration,
}

impl Run {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `clients` concurrent clients for `seconds`, each deploying to its own applications in turn.
async fn load(
    base: &str,
    apps: Arc<Vec<String>>,
    clients: usize,
    apps_per_client: usize,
    seconds: f64,
) -> Run {
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
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut errors = 0u64;
            let mut round = 0usize;
            while Instant::now() < deadline {
                let app = &apps[(c * apps_per_client + round % apps_per_client) % apps.len()];
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
                    Ok((status, _)) => {
                        *statuses.entry(status).or_default() += 1;
                        if status == 200 {
                            lat.push(sent.elapsed());
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, statuses, errors)
        }));
    }
    let mut run = Run {
        ok: 0,
        statuses: BTreeMap::new(),
        errors: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (lat, statuses, errors) = t.await.expect("a client task");
        run.latencies.extend(lat);
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

pub(crate) async fn api(
    edasd: std::path::PathBuf,
    levels: Vec<usize>,
    seconds: f64,
    apps_per_client: usize,
) -> anyhow::Result<()> {
    println!("machine: {}", machine());
    let dir = tempfile::tempdir()?;
    let server = Server::edasd(&edasd, &dir.path().join("edasd"), None)?;
    let floor = Server::floor(&dir.path().join("floor"))?;
    let http = reqwest::Client::new();

    // The applications: Replicas 0 on local (nothing runs), created with some concurrency.
    let max = levels.iter().copied().max().unwrap_or(1);
    let count = max * apps_per_client;
    let mut apps = Vec::with_capacity(count);
    let created = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let mut batch = Vec::new();
        for &i in chunk {
            let http = http.clone();
            let base = server.base.clone();
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
            apps.push(
                body["ApplicationInfo"]["AppId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    println!("{count} applications created in {:?}", created.elapsed());
    let apps = Arc::new(apps);
    // Warm both servers up (connections, caches, the engine's first claims).
    let _ = load(&server.base, apps.clone(), 4, apps_per_client, 1.0).await;
    let _ = load(&floor.base, apps.clone(), 4, apps_per_client, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "\n| clients | edasd deploys/s | p50 | p99 | 409 (busy) | floor writes/s | floor p50 | floor p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut cpu_notes = Vec::new();
    for &clients in &levels {
        let before = rss_and_cpu(server.pid());
        let e = load(
            &server.base,
            apps.clone(),
            clients,
            apps_per_client,
            seconds,
        )
        .await;
        // Let the engine finish this level's change orders before the next one measures (its
        // CPU for them counts: they are part of what a deploy costs).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_and_cpu(server.pid());
        if let (Some((_, c0)), Some((rss, c1))) = (before, after) {
            cpu_notes.push(format!(
                "{clients} clients: edasd CPU {:.2} ms per accepted deploy (API + engine), RSS {}",
                (c1 - c0).as_secs_f64() * 1000.0 / e.ok.max(1) as f64,
                mib(rss)
            ));
        }
        let f = load(&floor.base, apps.clone(), clients, apps_per_client, seconds).await;
        let other: BTreeMap<u16, u64> = e
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200 && **s != 409)
            .map(|(s, n)| (*s, *n))
            .collect();
        println!(
            "| {clients} | {:.0} | {} | {} | {} | {:.0} | {} | {} |",
            e.rps(),
            ms(percentile(&e.latencies, 0.5)),
            ms(percentile(&e.latencies, 0.99)),
            e.statuses.get(&409).copied().unwrap_or(0),
            f.rps(),
            ms(percentile(&f.latencies, 0.5)),
            ms(percentile(&f.latencies, 0.99)),
        );
        if !other.is_empty() || e.errors > 0 || f.errors > 0 {
            println!(
                "  unexpected at {clients} clients: edasd statuses {other:?}, transport errors edasd {} floor {}",
                e.errors, f.errors
            );
        }
    }
    for note in cpu_notes {
        println!("  {note}");
    }
    drop(floor);
    drop(server);
    Ok(())
}
