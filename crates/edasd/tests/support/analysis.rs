//! Shared by the release-analysis black-box tests on `local` (`analysis`, `analysis_providers`,
//! `analysis_latency`; each includes it by path next to `mod support;`): an application of 2
//! instances behind a Service port, gray releases with no human step, the release policy's PUT
//! and a load generator through the Service port.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Cluster, admin_call, free_port};

/// A gray batch of 1, then 1 automatic batch with no wait: no human step anywhere.
pub const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#;

/// An application `name` of 2 instances of `v1` behind a Service on a free port, its insert
/// finished (status 2 within 30 s); (AppId, port).
pub async fn app_with_service(edasd: &Cluster, name: &str) -> (String, u16) {
    let port = free_port();
    let configs = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (app, co) = edasd
        .insert(
            name,
            2,
            &[("ServiceConfigs", &configs)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    (app, port)
}

/// Deploys `version` of `app` with [`GRAY_AUTO`], `APP_VERSION` set to `version` and `env`
/// besides; the change order's id.
pub async fn deploy_gray(
    edasd: &Cluster,
    app: &str,
    version: &str,
    env: &[(&str, &str)],
) -> String {
    let mut all = vec![("APP_VERSION", version)];
    all.extend_from_slice(env);
    edasd
        .deploy(app, version, &[("UpdateStrategy", GRAY_AUTO)], &all)
        .await
}

/// PUT the application's release policy (JSON), as `edasctl app policy set` does; the answer.
pub async fn set_policy(edasd: &Cluster, app: &str, policy: &Value) -> Value {
    let (status, body) = admin_call(
        edasd,
        edasd.key,
        "PUT",
        &format!("applications/{app}/policy"),
        Some(policy),
    )
    .await;
    assert_eq!(status, 200, "setting the policy: {body}");
    body
}

/// Requests through the application's Service port from `threads` threads, each pausing
/// `pause` between requests, until dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Requests tried, answered or not.
    pub sent: Arc<AtomicU64>,
    /// Requests answered.
    pub answered: Arc<AtomicU64>,
    /// Requests answered 5xx.
    pub failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, threads: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, sent, answered, failed) =
                    (stop.clone(), sent.clone(), answered.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let answer = support::get(port, "/");
                        sent.fetch_add(1, Ordering::Relaxed);
                        if let Some((status, _)) = answer {
                            answered.fetch_add(1, Ordering::Relaxed);
                            if status >= 500 {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            answered,
            failed,
            threads,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
