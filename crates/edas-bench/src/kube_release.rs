//! `edas-bench release-overhead --runtime fake-kube`: the same measurement as on the local
//! runtime, on the fake Kubernetes API server (`edas-fake-kube`, in this process: pods become
//! Ready `--pod-ready-ms` after they start). The real edasd (release build) runs the release
//! through a `[[clusters]]` entry; a kube-rs watcher in this process records when each pod
//! appears, becomes Ready and disappears.
//!
//! - **Gap**, batch N done → batch N+1 started: batch N's old pod gone (its first watch event
//!   with a deletion timestamp, or its delete event) → batch N+1's new pod created (its first
//!   watch event).
//! - **Floor**, in the same run and on the same fake cluster: the same batches driven directly
//!   on the Kubernetes runtime edasd itself uses (`edas_kube::KubeRuntime`: server-side apply of
//!   the rendered Deployment, its own watches): scale the new revision up, wait on the runtime's
//!   events until its pods are Ready, scale the old one down, wait until its pods are gone. No
//!   store, no engine, no API: the difference is what edasd adds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edas_runtime::{Runtime, Target};
use edas_spec::{Operation, apply};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::batch_gap::params;
use crate::release::{floor_batches, until};
use crate::server::{Operations, Server};

const IMAGES: [&str; 2] = ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.9"];

/// The floor's store: it never settles anything (no drift correction).
struct FloorSettled;

impl edas_kube::Settled for FloorSettled {}

/// The floor's one application.
pub(crate) fn floor_app() -> edas_runtime::AppRef {
    edas_runtime::AppRef {
        id: "floor".into(),
        name: "floor".into(),
        namespace: "floor".into(),
    }
}

/// What the watcher saw of one pod.
#[derive(Clone, Debug, Default)]
struct PodSeen {
    namespace: String,
    revision: String,
    created: Option<Instant>,
    ready: bool,
    gone: Option<Instant>,
}

/// Every pod of the cluster as the watcher saw it.
#[derive(Clone)]
struct Recorder {
    pods: Arc<Mutex<BTreeMap<String, PodSeen>>>,
}

impl Recorder {
    fn start(client: kube::Client) -> Recorder {
        let rec = Recorder {
            pods: Arc::default(),
        };
        let r = rec.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::all(client);
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { continue };
                let (pod, deleted) = match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                    watcher::Event::Delete(p) => (p, true),
                    _ => continue,
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                let now = Instant::now();
                let mut pods = r.pods.lock().unwrap_or_else(|e| e.into_inner());
                let seen = pods.entry(name).or_default();
                seen.namespace = pod.metadata.namespace.clone().unwrap_or_default();
                seen.revision = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("edas.oam.revision").cloned())
                    .unwrap_or_default();
                seen.created.get_or_insert(now);
                seen.ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                // Gone once being deleted: a terminating pod no longer counts for its
                // Deployment (nor for edasd's Kubernetes runtime).
                if deleted || pod.metadata.deletion_timestamp.is_some() {
                    seen.gone.get_or_insert(now);
                }
                drop(pods);
            }
        });
        rec
    }

    /// The gaps of a release in `namespace` that started at `since`: old pod k gone → new pod
    /// k+1 created (new = of `revision`).
    fn gaps(&self, namespace: &str, revision: &str, since: Instant) -> Vec<Duration> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone: Vec<Instant> = pods
            .values()
            .filter(|p| p.namespace == namespace && p.revision != revision)
            .filter_map(|p| p.gone.filter(|g| *g >= since))
            .collect();
        let mut created: Vec<Instant> = pods
            .values()
            .filter(|p| p.namespace == namespace && p.revision == revision)
            .filter_map(|p| p.created.filter(|c| *c >= since))
            .collect();
        gone.sort();
        created.sort();
        gone.iter()
            .zip(created.iter().skip(1))
            .map(|(g, c)| c.saturating_duration_since(*g))
            .collect()
    }
}

/// (gaps, walls) through edasd, then (floor gaps, floor walls) directly.
pub(crate) async fn run(
    edasd: &Path,
    dir: &Path,
    replicas: u32,
    runs: u32,
    pod_ready: Duration,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>, Vec<Duration>)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = edas_fake_kube::FakeCluster::start(edas_fake_kube::Config {
        pod_ready_delay: pod_ready,
        ..edas_fake_kube::Config::default()
    })
    .await?;
    let kubeconfig = dir.join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "default")?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["bench", "floor"] {
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        namespaces.create(&PostParams::default(), &object).await?;
    }
    let rec = Recorder::start(client.clone());

    // Through edasd.
    let config_file = dir.join("edasd.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[clusters]]\nid = \"k8s\"\nkubeconfig = \"{}\"\n",
            kubeconfig.display()
        ),
    )?;
    let server = Server::edasd(edasd, &dir.join("edasd"), Some(&config_file))?;
    let api = Operations::new(&server);
    let app = api
        .insert(vec![
            ("AppName", "overhead".into()),
            ("ClusterId", "k8s".into()),
            ("Namespace", "bench".into()),
            ("ImageUrl", IMAGES[0].into()),
            ("Replicas", replicas.to_string()),
        ])
        .await?;
    let strategy = format!(
        r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{replicas},"releaseType":"auto","batchWaitTime":0}}}}"#
    );
    let (mut gaps, mut walls) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let since = Instant::now();
        let (_, wall) = api
            .deploy(vec![
                ("AppId", app.clone()),
                ("Image", IMAGES[run as usize % 2].into()),
                ("UpdateStrategy", strategy.clone()),
            ])
            .await?;
        walls.push(wall);
        // The new revision is the one with pods created since the deploy.
        let revision = {
            let pods = rec.pods.lock().unwrap_or_else(|e| e.into_inner());
            pods.values()
                .filter(|p| p.namespace == "bench" && p.created.is_some_and(|c| c >= since))
                .map(|p| p.revision.clone())
                .next()
                .unwrap_or_default()
        };
        gaps.extend(rec.gaps("bench", &revision, since));
    }
    drop(server);

    // The floor: the same batches on the same Kubernetes runtime edasd uses (edas-kube's
    // `KubeRuntime`, its own watches), driven directly: no store, no engine, no API.
    let runtime = edas_kube::KubeRuntime::start(
        client.clone(),
        Arc::new(FloorSettled),
        edas_kube::Options::new("floor"),
    );
    let mut events = runtime.subscribe();
    let spec = |image: &str| -> anyhow::Result<Arc<edas_spec::AppSpec>> {
        let replicas = replicas.to_string();
        Ok(Arc::new(
            apply(
                Operation::InsertK8sApplication,
                None,
                &params(&[
                    ("AppName", "floor"),
                    ("ClusterId", "k8s"),
                    ("Namespace", "floor"),
                    ("ImageUrl", image),
                    ("Replicas", &replicas),
                ]),
            )
            .map_err(|v| anyhow::anyhow!("{v}"))?
            .spec,
        ))
    };
    let target = |revision: u32| -> anyhow::Result<Target> {
        Ok(Target {
            app: floor_app(),
            revision: revision.to_string(),
            spec: spec(IMAGES[revision as usize % 2])?,
            config: Default::default(),
        })
    };
    runtime.set_replicas(&target(0)?, replicas).await?;
    until(&runtime, &mut events, "0", |s| s.ready >= replicas).await?;
    let (mut floor_gaps, mut floor_walls) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let (old, new) = (target(run - 1)?, target(run)?);
        let since = Instant::now();
        floor_batches(&runtime, &mut events, &old, &new, replicas).await?;
        floor_walls.push(since.elapsed());
        floor_gaps.extend(rec.gaps("floor", &new.revision, since));
    }
    drop(fake);
    Ok((gaps, walls, floor_gaps, floor_walls))
}
