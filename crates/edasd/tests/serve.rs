//! Black-box tests: the real `edasd` binary on a loopback port with a temporary data directory.

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use support::{edasd_command, pg_schema, pg_url, signed, spawn_edasd};

/// An edasd started with the test's own environment (or none of the key variables, so it
/// generates a key) and arguments; killed when dropped, unless [`Server::terminate`] stopped it.
struct Server {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(data_dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
        let mut command = edasd_command(data_dir);
        command
            .args(extra)
            .env_remove("EDASD_ACCESS_KEY_ID")
            .env_remove("EDASD_ACCESS_KEY_SECRET");
        for (k, v) in env {
            command.env(k, v);
        }
        let (child, base, rx) = spawn_edasd(&mut command, Some("edasd".to_owned()));
        Server {
            child,
            base,
            lines: rx,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("edasd did not stop within 10 s of SIGTERM");
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines.try_iter().any(|l| l.contains(needle))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serves_signed_requests_health_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = ("LTAIblackbox", "blackbox-secret-0123456789");
    let server = Server::start(
        dir.path(),
        &[
            ("EDASD_ACCESS_KEY_ID", key.0),
            ("EDASD_ACCESS_KEY_SECRET", key.1),
        ],
        &[],
    );
    assert!(server.base.starts_with("http://127.0.0.1:"));
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let (status, body) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/app/app_list",
        "ListApplication",
        &[("RegionId", "cn-hangzhou")],
        key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Code"], 200);
    assert_eq!(
        body["ApplicationList"]["Application"],
        serde_json::json!([])
    );
    // A successful read is logged at DEBUG only (watches poll); a change or a refusal at INFO.
    let read_id = body["RequestId"].as_str().unwrap().to_owned();

    let (status, body) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/app/app_list",
        "ListApplication",
        &[],
        ("unknown", "x"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["Code"], "InvalidAccessKeyId.NotFound");

    let (status, body) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/k8s/acs/create_k8s_app",
        "InsertK8sApplication",
        &[
            ("AppName", "demo"),
            ("ClusterId", "nowhere"),
            ("ImageUrl", "nginx"),
        ],
        key,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["Message"].as_str().unwrap().contains("ClusterId"));
    let request_id = body["RequestId"].as_str().unwrap().to_owned();

    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("edasd_requests_total"), "{metrics}");
    assert!(metrics.contains("action=\"ListApplication\""), "{metrics}");
    assert!(
        metrics.contains("edasd_request_duration_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edasd_active_change_orders{status=\"1\"} 0"),
        "{metrics}"
    );

    std::thread::sleep(Duration::from_millis(200));
    assert!(server.logged(&request_id), "the RequestId is in the logs");
    assert!(
        !server.logged(&read_id),
        "a successful read is not logged at INFO"
    );
    let status = server.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

#[tokio::test]
async fn generates_an_admin_key_once_into_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let file = dir.path().join("admin-access-key");
    let text = std::fs::read_to_string(&file).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (id, secret) = (
        value("EDASD_ACCESS_KEY_ID"),
        value("EDASD_ACCESS_KEY_SECRET"),
    );
    let client = reqwest::Client::new();
    let (status, _) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/app/app_list",
        "ListApplication",
        &[],
        (&id, &secret),
    )
    .await;
    assert_eq!(status, 200);
    assert!(server.terminate().success());
    // A restart keeps the key and does not write another.
    let server = Server::start(dir.path(), &[], &[]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let (status, _) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/app/app_list",
        "ListApplication",
        &[],
        (&id, &secret),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let cert = fixtures.join("cert.pem");
    let key = fixtures.join("key.pem");
    let server = Server::start(
        dir.path(),
        &[],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let root =
        reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn bad_configuration_is_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edasd.toml");
    std::fs::write(&config, "regoin_id = \"x\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_edasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("regoin_id"), "{stderr}");
}

/// `--database-url`: the same API over PostgreSQL, in a schema of its own. Skipped (with a note)
/// when `EDAS_TEST_PG_URL` is unset, except in CI (or with `EDAS_TEST_REQUIRE_PG=1`), where it
/// must run.
#[tokio::test]
async fn keeps_state_in_postgresql_with_database_url() {
    use sqlx::Connection;
    let Some(url) = pg_url() else {
        return;
    };
    let schema = format!("edasd_{}", std::process::id());
    let location = pg_schema(&url, &schema).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = ("LTAIpostgres", "postgres-secret-0123456789");
    let server = Server::start(
        dir.path(),
        &[
            ("EDASD_ACCESS_KEY_ID", key.0),
            ("EDASD_ACCESS_KEY_SECRET", key.1),
        ],
        &["--database-url", &location],
    );
    let client = reqwest::Client::new();
    let (status, body) = signed(
        &client,
        &server.base,
        "POST",
        "/pop/v5/k8s/acs/create_k8s_app",
        "InsertK8sApplication",
        &[
            ("AppName", "pg-app"),
            ("ClusterId", "local"),
            ("ImageUrl", "nginx"),
            ("Replicas", "0"),
        ],
        key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let app_id = body["ApplicationInfo"]["AppId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(server.terminate().success());
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {schema}.applications WHERE id = $1"
    )))
    .bind(&app_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stored, 1, "the application is in PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();
}
