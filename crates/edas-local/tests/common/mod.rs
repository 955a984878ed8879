//! What the local runtime's integration tests share: a runtime on a temporary directory that
//! kills its instance processes when dropped, the test application's spec, probes and a plain
//! HTTP client. (Each test file keeps its own `testapp_entry`: the runtime re-executes the test
//! binary with `testapp_entry --exact`, which must name a test at the crate root.)

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edas_local::{LocalConfig, LocalRuntime};
use edas_runtime::{
    AppRef, ConfigData, ConfigSnapshot, RevisionState, Runtime, RuntimeEvent, Target,
};
use edas_spec::AppSpec;
use k8s_openapi::api::core::v1::{EnvVar, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::broadcast;

pub const APP: &str = "app-1";

/// The application `id` as runtime calls name it.
pub fn app_ref(id: &str) -> AppRef {
    AppRef {
        id: id.to_owned(),
        name: "app".into(),
        namespace: "default".into(),
    }
}

/// The ConfigMaps and Secrets the harness's targets carry (as the engine's snapshot would).
#[derive(Default)]
pub struct Source(std::sync::Mutex<ConfigSnapshot>);

impl Source {
    pub fn put_config_map(&self, _namespace: &str, name: &str, data: ConfigData) {
        self.0
            .lock()
            .unwrap()
            .config_maps
            .insert(name.to_owned(), data);
    }

    pub fn put_secret(&self, _namespace: &str, name: &str, data: ConfigData) {
        self.0.lock().unwrap().secrets.insert(name.to_owned(), data);
    }

    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        Arc::new(self.0.lock().unwrap().clone())
    }
}

/// A runtime on a temporary data directory, with short restart delays, that kills every
/// instance process it knows of when dropped (so a failing test leaves nothing behind).
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub source: Arc<Source>,
    pub rt: Option<LocalRuntime>,
    pub events: broadcast::Receiver<RuntimeEvent>,
}

pub fn config(dir: &Path) -> LocalConfig {
    LocalConfig {
        restart_backoff: Duration::from_millis(200),
        max_restart_backoff: Duration::from_secs(1),
        crash_loop_limit: 3,
        quick_failure: Duration::from_secs(10),
        ..LocalConfig::new(dir)
    }
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let source = Arc::new(Source::default());
        let rt = LocalRuntime::new(config(dir.path())).unwrap();
        let events = rt.subscribe();
        Harness {
            dir,
            source,
            rt: Some(rt),
            events,
        }
    }

    pub fn rt(&self) -> &LocalRuntime {
        self.rt.as_ref().unwrap()
    }

    /// Drops the runtime (as if edasd went away) and starts a new one on the same directory.
    pub fn restart_runtime(&mut self) {
        drop(self.rt.take());
        let rt = LocalRuntime::new(config(self.dir.path())).unwrap();
        self.events = rt.subscribe();
        self.rt = Some(rt);
    }

    pub async fn set(&self, spec: &Arc<AppSpec>, revision: &str, replicas: u32) {
        let target = Target {
            app: app_ref(APP),
            revision: revision.into(),
            spec: spec.clone(),
            config: self.source.snapshot(),
        };
        self.rt().set_replicas(&target, replicas).await.unwrap();
    }

    pub async fn observe(&self, revision: &str) -> RevisionState {
        self.rt().observe(&app_ref(APP), revision).await.unwrap()
    }

    /// Waits, driven by events only, until `done` holds for the revision's state.
    pub async fn wait_for(
        &mut self,
        revision: &str,
        within: Duration,
        done: impl Fn(&RevisionState) -> bool,
    ) -> RevisionState {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let state = self.observe(revision).await;
            if done(&state) {
                return state;
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!(
                    "timed out after {within:?} waiting on revision {revision}; last state: {state:#?}"
                ),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("event channel: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    }

    pub fn pid(&self, revision: &str, instance: &str) -> i32 {
        self.rt()
            .process_id(APP, revision, instance)
            .expect("instance has a process")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        drop(self.rt.take());
        for state in find_files(self.dir.path(), "state.json") {
            let Ok(text) = std::fs::read_to_string(&state) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(pid) = json["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) {
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
                if cwd.is_ok_and(|c| c.starts_with(self.dir.path())) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

pub fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(find_files(&path, name));
            } else if path.file_name().is_some_and(|n| n == name) {
                out.push(path);
            }
        }
    }
    out
}

pub fn is_testapp(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("testapp_entry"))
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

pub fn kill_if_testapp(pid: i32) {
    if is_testapp(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// The test application, version `version`, with extra environment variables.
pub fn testapp(version: &str, extra: &[(&str, &str)]) -> AppSpec {
    let mut envs = vec![
        env("EDAS_LOCAL_RUN_TESTAPP", "1"),
        env("APP_VERSION", version),
    ];
    envs.extend(extra.iter().map(|(k, v)| env(k, v)));
    AppSpec {
        name: "demo".into(),
        cluster_id: "local".into(),
        k8s_namespace: "default".into(),
        command: Some(std::env::current_exe().unwrap().display().to_string()),
        args: vec![
            "testapp_entry".into(),
            "--exact".into(),
            "--nocapture".into(),
        ],
        envs,
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    }
}

pub fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(8080),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// A plain HTTP GET to an instance: (status, body).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn alive(pid: i32) -> bool {
    is_testapp(pid)
}
