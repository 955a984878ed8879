//! Black-box tests: the real `edasctl` binary against the real `edasd` on a loopback port with a
//! temporary data directory; applications on the `local` cluster run `/bin/sleep` for real.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const KEY_ID: &str = "LTAIedasctltest";
const KEY_SECRET: &str = "edasctl-test-secret-0123456789";

/// `edasd` is built into the same directory as `edasctl`.
fn edasd_binary() -> PathBuf {
    let edasctl = Path::new(env!("CARGO_BIN_EXE_edasctl"));
    let path = edasctl.with_file_name("edasd");
    assert!(
        path.exists(),
        "edasd is not built next to edasctl ({}): run `cargo build -p edasd` first",
        path.display()
    );
    path
}

struct Server {
    child: Child,
    base: String,
    data: tempfile::TempDir,
    config: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let config = tempfile::tempdir().unwrap();
        let mut child = Command::new(edasd_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("EDASD_ACCESS_KEY_ID", KEY_ID)
            .env("EDASD_ACCESS_KEY_SECRET", KEY_SECRET)
            .env("EDASD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning edasd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("edasd listening on ").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("edasd did not say where it listens");
        Server {
            child,
            base,
            data,
            config,
        }
    }

    /// `edasctl` with this server's endpoint and admin key in the environment, and a private
    /// configuration directory.
    fn edasctl(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_edasctl"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("EDAS_ENDPOINT", &self.base)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET)
            .env("EDASCTL_CONFIG_DIR", self.config.path())
            .timeout(Duration::from_secs(120));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.edasctl().args(args).output().unwrap()
    }

    /// Runs a command that must succeed and prints JSON; returns it parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Creates `/bin/sleep 600` with `replicas` instances and waits for its first change order.
    fn create_app(&self, name: &str, replicas: &str) -> String {
        let created = self.json(&[
            "app",
            "create",
            name,
            "--cluster",
            "local",
            "--command",
            "/bin/sleep",
            "--args",
            r#"["600"]"#,
            "--replicas",
            replicas,
            "--watch",
            "--interval",
            "1",
        ]);
        created["ApplicationInfo"]["AppId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Polls the change order until its status is `status`.
    fn wait_for_status(&self, change_order: &str, status: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = self.json(&["change-order", "get", change_order]);
            if info["changeOrderInfo"]["Status"] == status {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "status never became {status}: {info}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Kills edasd, then every instance process group the local runtime recorded (instances outlive
/// edasd by design).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut pending = vec![self.data.path().to_owned()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.file_name().is_some_and(|n| n == "state.json")
                    && let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(state) = serde_json::from_str::<Value>(&text)
                    && let Some(pid) = state["pid"].as_i64()
                    && pid > 1
                {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails, showing what the command printed, unless it exited with `code`.
fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn create_deploy_with_watch_and_json_output() {
    let server = Server::start();
    let app = server.create_app("demo", "3");

    let list = server.json(&["app", "list"]);
    let apps = list["ApplicationList"]["Application"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["AppId"], app.as_str());
    assert_eq!(apps[0]["Instances"], 3);
    let got = server.json(&["app", "get", &app]);
    assert_eq!(got["Applcation"]["AppId"], app.as_str());
    let yaml = server.run(&["app", "get", &app, "-o", "yaml"]);
    assert!(yaml.status.success());
    assert!(stdout(&yaml).contains(&app));
    let table = server.run(&["app", "list"]);
    assert!(stdout(&table).contains("demo"), "{}", stdout(&table));

    // A gray batch and two automatic batches, watched to the end: plain lines (no terminal).
    let out = server.run(&[
        "deploy",
        &app,
        "--env",
        "VERSION=2",
        "--gray",
        "1",
        "--batches",
        "2",
        "--batch-wait",
        "0",
        "--watch",
        "--interval",
        "1",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for needle in [
        "Gray Batch Change: 1/1 ready, done",
        "Batch 2 Change: 3/3 ready, done",
        "succeeded",
        // The versions once, the gray batch's traffic share, the elapsed time at the end.
        "version: r1 -> r2",
        "traffic: ",
        "elapsed: ",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(
        !text.contains('\u{1b}'),
        "no terminal escapes when not a terminal: {text}"
    );
    // Plain mode: each watch line starts with a UTC time (`2026-12-06T09:12:03Z `).
    let watched = &text[text.find("version: ").unwrap() - 21..];
    for line in watched.lines() {
        let stamp = line.get(..21).unwrap_or(line);
        assert!(
            stamp.len() == 21 && stamp.as_bytes()[10] == b'T' && stamp.ends_with("Z "),
            "{line}"
        );
    }

    let orders = server.json(&["change-order", "list", &app]);
    let orders = orders["ChangeOrderList"]["ChangeOrder"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(orders.iter().all(|o| o["Status"] == 2), "{orders:?}");
}

/// Starts a `--batches 2 --manual` release of `app` (an environment change), returning its
/// ChangeOrderId.
fn deploy_manual(server: &Server, app: &str, version: &str) -> String {
    let out = server.json(&[
        "deploy",
        app,
        "--env",
        &format!("VERSION={version}"),
        "--batches",
        "2",
        "--manual",
    ]);
    out["ChangeOrderId"].as_str().unwrap().to_owned()
}

/// Continue, `continue --wait`, `watch --timeout` and `promote --full` on manual releases (the
/// abort and rollback half runs beside it, in its own server).
#[test]
fn continue_a_manual_batch() {
    let server = Server::start();
    let app = server.create_app("manual", "2");
    let deploy = |version: &str| deploy_manual(&server, &app, version);

    // Continue: the second batch waits for confirmation, then the release finishes; `--wait`
    // continues it once it waits, typed while the first batch still runs.
    let order = deploy("2");
    let out = server.run(&[
        "change-order",
        "continue",
        &order,
        "--wait",
        "--watch",
        "--interval",
        "1",
    ]);
    exits(&out, 0);
    assert!(
        stdout(&out).contains("ContinuePipeline"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    // A watch with --timeout gives up with exit 4 while the release waits; promote --full
    // confirms every remaining batch and reports the outcome.
    let order = deploy("2b");
    server.wait_for_status(&order, 8);
    let started = std::time::Instant::now();
    let out = server.run(&["change-order", "watch", &order, "--timeout", "1"]);
    exits(&out, 4);
    // The timeout ends the wait on a quiet push stream too (it wakes every 15 s otherwise).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stdout(&out).contains("still runs after 1 s"),
        "{}",
        stdout(&out)
    );
    let out = server.run(&[
        "change-order",
        "promote",
        &order,
        "--full",
        "--interval",
        "1",
    ]);
    exits(&out, 0);
    assert!(stdout(&out).contains(": succeeded"), "{}", stdout(&out));
}

/// Abort, rollback and a refused continue on manual releases.
#[test]
fn abort_and_rollback_a_manual_batch() {
    let server = Server::start();
    let app = server.create_app("manual", "2");
    let deploy = |version: &str| deploy_manual(&server, &app, version);

    // Abort: the watch ends with the terminated outcome and exit code 3.
    let order = deploy("3");
    server.wait_for_status(&order, 8);
    let aborted = server.json(&["change-order", "abort", &order]);
    assert_eq!(aborted["Data"]["ChangeOrderId"], order.as_str());
    assert!(
        aborted["Data"]["Traffic"]
            .as_str()
            .is_some_and(|t| t.starts_with("all traffic goes to revision")),
        "{aborted}"
    );
    let out = server.run(&["change-order", "watch", &order, "--interval", "1"]);
    exits(&out, 3);
    assert!(stdout(&out).contains("was terminated"), "{}", stdout(&out));
    // The watch shows where the traffic went and which versions the release was between.
    for needle in [
        "version: r1 -> r2",
        "traffic: 100% to r1, 0% to r2 (aborted)",
    ] {
        assert!(stdout(&out).contains(needle), "{needle}: {}", stdout(&out));
    }

    // Rollback: a new change order restores the previous revision; watching it succeeds.
    let order = deploy("4");
    server.wait_for_status(&order, 8);
    let out = server.run(&[
        "change-order",
        "rollback",
        &order,
        "--watch",
        "--interval",
        "1",
    ]);
    exits(&out, 0);
    assert!(
        stdout(&out).contains("AbortAndRollbackChangeOrder"),
        "{}",
        stdout(&out)
    );
    let orders = server.json(&["change-order", "list", &app]);
    assert!(
        orders["ChangeOrderList"]["ChangeOrder"]
            .as_array()
            .unwrap()
            .len()
            >= 3,
        "{orders}"
    );

    // Continue with nothing waiting is refused by the client, naming the change order.
    let out = server.run(&["change-order", "continue", &order]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no batch waiting"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failed_release_exits_1_with_its_reason_and_is_retried() {
    let server = Server::start();
    let app = server.create_app("failing", "1");
    let out = server.run(&[
        "deploy",
        &app,
        // Never ready: the readiness probe always fails, so the batch times out for certain.
        "--param",
        r#"Readiness={"exec":{"command":["/bin/false"]},"periodSeconds":1}"#,
        "--batch-timeout",
        "2",
        "--watch",
        "--interval",
        "1",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("failed: batch not done within BatchTimeout"),
        "{text}"
    );
    let orders = server.json(&["change-order", "list", &app]);
    let order = orders["ChangeOrderList"]["ChangeOrder"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["Status"] == 3)
        .unwrap_or_else(|| panic!("a failed change order: {orders}"))["ChangeOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = server.run(&["change-order", "list", &app]);
    assert!(stdout(&table).contains("failed (3)"), "{}", stdout(&table));

    // Retry finds the failed task; the release runs (and fails) again.
    let out = server.run(&[
        "change-order",
        "retry",
        &order,
        "--watch",
        "--interval",
        "1",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("RetryChangeOrderTask"), "{text}");
    assert!(
        text.contains(&format!("change order {order} failed")),
        "{text}"
    );
}

#[test]
fn lifecycle_operations_and_the_audit_trail() {
    let server = Server::start();
    let app = server.create_app("life", "1");
    let changes: [&[&str]; 5] = [
        &["app", "scale", &app, "--replicas", "2"],
        &["app", "stop", &app],
        &["app", "start", &app, "--replicas", "1"],
        &["app", "restart", &app],
        &["app", "delete", &app],
    ];
    for change in changes {
        if change[1] == "delete" {
            let status = server.json(&["app", "status", &app]);
            assert!(status["InstanceList"].is_array(), "{status}");
        }
        let mut args = change.to_vec();
        args.extend(["--watch", "--interval", "1"]);
        let out = server.run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{change:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("succeeded"),
            "{change:?}: {}",
            stdout(&out)
        );
    }
    let list = server.json(&["app", "list"]);
    assert_eq!(
        list["ApplicationList"]["Application"],
        serde_json::json!([])
    );

    let audit = server.json(&["audit", "--app", &app]);
    let records = audit["Records"].as_array().unwrap();
    assert!(records.len() >= 6, "create and five changes: {audit}");
    assert!(
        records.iter().all(|r| r["AppId"] == app.as_str()),
        "{audit}"
    );
    let out = server.run(&["audit", "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("From"), "{}", stderr(&out));
}

#[test]
fn clusters_config_maps_and_secrets() {
    let server = Server::start();
    let clusters = server.json(&["cluster", "list"]);
    assert_eq!(clusters["ClusterList"]["Cluster"][0]["ClusterId"], "local");
    let namespaces = server.json(&["cluster", "namespaces", "--cluster", "local"]);
    assert!(
        namespaces["Data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Namespace"] == "default")
    );

    // Form-encoded bodies (Create/Update), signed over Content-MD5.
    server.json(&[
        "config-map",
        "create",
        "cfg",
        "--data",
        "mode=fast",
        "--data",
        "level=2",
    ]);
    server.json(&["config-map", "update", "cfg", "--data", "mode=slow"]);
    let maps = server.json(&["config-map", "list", "--cluster", "local"]);
    let map = &maps["Result"]["ConfigMaps"][0];
    assert_eq!(map["Name"], "cfg");
    assert_eq!(
        map["Data"],
        serde_json::json!([{"Key": "mode", "Value": "slow"}])
    );
    server.json(&[
        "secret",
        "create",
        "s1",
        "--data",
        "pw=c2VjcmV0",
        "--base64",
    ]);
    let secrets = server.run(&["secret", "list"]);
    assert!(stdout(&secrets).contains("s1"), "{}", stdout(&secrets));
    server.json(&["config-map", "delete", "cfg"]);
    server.json(&["secret", "delete", "s1"]);
    let maps = server.json(&["config-map", "list"]);
    assert_eq!(maps["Result"]["ConfigMaps"], serde_json::json!([]));
    let out = server.run(&["secret", "delete", "s1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("s1"), "{}", stderr(&out));
}

#[test]
fn errors_carry_the_edas_code_and_request_id() {
    let server = Server::start();
    let out = server.run(&["change-order", "get", "no-such-order"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("RequestId "), "{err}");
    assert!(err.contains("no-such-order"), "{err}");

    let out = server
        .edasctl()
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "wrong-secret-0123456789")
        .args(["app", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("hint: ")),
        "the hint comes right after the code: {}",
        stderr(&out)
    );

    // The server validates the parameters; its violation comes back with its code.
    let out = server.run(&[
        "app",
        "create",
        "bad",
        "--command",
        "/bin/sleep",
        "--param",
        "Replicas=many",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Replicas"), "{}", stderr(&out));

    // Nothing to reach: the endpoint is named.
    let out = server
        .edasctl()
        .env("EDAS_ENDPOINT", "http://127.0.0.1:9")
        .args(["app", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
}

/// The operator's views by application name: one row per instance, the history, a rollback to a
/// revision, the logs; a name that names nothing is refused.
#[test]
fn instances_history_rollback_and_logs_by_name() {
    let server = Server::start();
    let app = server.create_app("ops", "2");
    let out = server.run(&["app", "status", "ops"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert_eq!(
        table.matches("ops-").count(),
        2,
        "a row per instance: {table}"
    );
    assert!(table.contains("Restarts"), "{table}");
    let status = server.json(&["app", "status", &app]);
    assert_eq!(status["InstanceList"].as_array().unwrap().len(), 2);

    let out = server.run(&[
        "deploy",
        "ops",
        "--env",
        "V=2",
        "--watch",
        "--interval",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.run(&["app", "history", "ops"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("2 (current)"), "{table}");
    assert!(table.contains(" UTC ("), "human times: {table}");
    let out = server.run(&[
        "app",
        "rollback",
        "ops",
        "--to-revision",
        "1",
        "--batches",
        "2",
        "--watch",
        "--interval",
        "1",
    ]);
    exits(&out, 0);
    let history = server.json(&["app", "history", &app]);
    let newest = &history["PackageVersionList"]["PackageVersion"][0];
    assert_eq!(newest["Id"], "3", "{history}");
    assert_eq!(newest["Current"], true);

    let out = server.run(&["app", "logs", "ops", "--tail", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 instances, showing"),
        "{}",
        stderr(&out)
    );
    let out = server.run(&["app", "logs", "ops", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("InstanceName"), "{}", stderr(&out));
    let out = server.run(&[
        "app",
        "list",
        "-o",
        "jsonpath={.ApplicationList.Application[*].AppId}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{app}\n"),
        "the id alone, for scripts"
    );
    let out = server.run(&["app", "status", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no application is named `nothing-here`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn administrators_manage_users_keys_and_policies_and_profiles_work() {
    let server = Server::start();
    let user = server.json(&["user", "create", "carol"]);
    assert_eq!(user["User"]["Name"], "carol");
    let key = server.json(&["access-key", "create", "carol"]);
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    let secret = key["AccessKey"]["AccessKeySecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = server.json(&["user", "list"]);
    assert!(
        users["Users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["Name"] == "carol")
    );

    // carol has no policy yet: the signed request is authenticated and refused.
    let as_carol = |args: &[&str]| {
        server
            .edasctl()
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &id)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret)
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_carol(&["user", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an administrator"),
        "{}",
        stderr(&out)
    );

    let doc = server.config.path().join("readers.json");
    std::fs::write(
        &doc,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["edas:Read*"],"Resource":["*"]}]}"#,
    )
    .unwrap();
    server.json(&[
        "policy",
        "put",
        "readers",
        "--document",
        doc.to_str().unwrap(),
    ]);
    server.json(&["policy", "attach", "carol", "readers"]);
    let policies = server.json(&["policy", "list", "--user", "carol"]);
    assert_eq!(policies["Policies"][0]["Name"], "readers");
    assert!(as_carol(&["app", "list"]).status.success());

    // configure writes a profile of the aliyun CLI's format that later commands use alone.
    let out = server
        .edasctl()
        .args([
            "configure",
            "--profile",
            "carol",
            "--access-key-id",
            &id,
            "--access-key-secret",
            &secret,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(server.config.path().join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["current"], "carol");
    assert_eq!(file["profiles"][0]["access_key_id"], id.as_str());
    assert_eq!(file["profiles"][0]["edas_endpoint"], server.base.as_str());
    let out = server
        .edasctl()
        .env_remove("EDAS_ENDPOINT")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .args(["app", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    server.json(&["access-key", "disable", &id]);
    let out = as_carol(&["app", "list"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn completions_and_missing_configuration() {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_edasctl"))
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("change-order"));
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_edasctl"))
        .env_clear()
        .env("EDASCTL_CONFIG_DIR", dir.path())
        .args(["app", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EDAS_ENDPOINT"), "{}", stderr(&out));
}

/// `edasctl notify …` through the admin API, and `change-order watch` over edasd's push
/// stream: with a 60 s polling interval, a batch change still shows at once (the measured
/// delay is printed; only "well before the first poll" is asserted).
#[test]
fn notify_subscriptions_and_a_watch_over_the_push_stream() {
    let server = Server::start();
    let added = server.json(&[
        "notify",
        "add",
        "--sink",
        "webhook",
        "--url",
        "http://127.0.0.1:9/hook",
        "--secret",
        "s3cret",
        "--event",
        "change_order.failed",
    ]);
    let id = added["Subscription"]["SubscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = server.json(&["notify", "list"]);
    assert_eq!(
        listed["Subscriptions"][0]["EventTypes"][0],
        "change_order.failed"
    );
    assert!(!listed.to_string().contains("s3cret") && !listed.to_string().contains("/hook"));
    let out = server.run(&["notify", "add", "--sink", "pager", "--url", "http://x/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("InvalidParameter") && stderr(&out).contains("Sink"),
        "{}",
        stderr(&out)
    );
    let table = server.run(&["notify", "deliveries", &id, "--state", "dead"]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(server.run(&["notify", "remove", &id]).status.success());
    assert_eq!(
        server.json(&["notify", "list"])["Subscriptions"],
        serde_json::json!([])
    );

    let app = server.create_app("pushed", "2");
    let order = server.json(&[
        "deploy",
        &app,
        "--env",
        "VERSION=2",
        "--batches",
        "2",
        "--manual",
    ])["ChangeOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_for_status(&order, 8);
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_edasctl"));
    watch
        .env_clear()
        .env("EDAS_ENDPOINT", &server.base)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET)
        .env("EDASCTL_CONFIG_DIR", server.config.path())
        .args(["change-order", "watch", &order, "--interval", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = watch.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout_pipe = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            let _ = tx.send((line, Instant::now()));
        }
    });
    // The watch's first view: batch 2 waits for confirmation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (line, _) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watch prints");
        // Plain mode: a UTC time, then the batch.
        if line.get(21..).is_some_and(|l| l.starts_with("Batch 2")) {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let sent = Instant::now();
    assert!(
        server
            .run(&["change-order", "continue", &order])
            .status
            .success()
    );
    let (line, shown) = loop {
        let (line, at) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watch shows the next batch well before its 60 s poll");
        // Plain mode: a UTC time, then the batch.
        if line.get(21..).is_some_and(|l| l.starts_with("Batch 2")) {
            break (line, at);
        }
    };
    eprintln!(
        "MEASURED edasctl watch over the push stream: `{line}` shown {:?} after `edasctl \
         change-order continue` was started (its own run included; polling interval 60 s)",
        shown - sent
    );
    assert!(shown - sent < Duration::from_secs(20), "pushed, not polled");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the watch ends when the release succeeds"
    );
}

#[test]
fn release_policies_and_a_judged_release_in_the_watch() {
    let server = Server::start();
    let app = server.create_app("judged", "2");
    let dir = tempfile::tempdir().unwrap();
    // A mistake: named by its field, nothing stored.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "checks:\n  - name: restarts\n    provider: {health: {metric: restarts}}\n    successCondition: rezult < 1\n    interval: 1s\n    count: 2\n    when: gray\n",
    )
    .unwrap();
    let out = server.run(&[
        "app",
        "policy",
        "set",
        "judged",
        "--file",
        bad.to_str().unwrap(),
    ]);
    exits(&out, 1);
    assert!(
        stderr(&out).contains("checks[0].successCondition"),
        "{}",
        stderr(&out)
    );
    exits(&server.run(&["app", "policy", "get", "judged"]), 1);
    // The policy, by the application's name: version 1.
    let good = dir.path().join("policy.yaml");
    std::fs::write(
        &good,
        "checks:\n  - name: restarts\n    provider: {health: {metric: restarts}}\n    successCondition: result < 1\n    interval: 1s\n    count: 2\n    when: gray\n    onFailure: pause\n",
    )
    .unwrap();
    let set = server.json(&[
        "app",
        "policy",
        "set",
        "judged",
        "--file",
        good.to_str().unwrap(),
    ]);
    assert_eq!(set["ReleasePolicy"]["Version"], 1, "{set}");
    let got = server.run(&["app", "policy", "get", &app]);
    exits(&got, 0);
    assert!(
        stdout(&got).contains("version 1") && stdout(&got).contains("successCondition: result < 1"),
        "{}",
        stdout(&got)
    );
    // A release judged by it: the watch shows the check against its condition.
    let out = server.run(&[
        "deploy",
        &app,
        "--env",
        "VERSION=2",
        "--gray",
        "1",
        "--batches",
        "1",
        "--batch-wait",
        "0",
        "--watch",
        "--interval",
        "1",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("check restarts: result=0 (condition result < 1), 2 measured"),
        "{text}"
    );
    // History, then delete: a later release is not judged.
    exits(&server.run(&["app", "policy", "delete", &app]), 0);
    let history = server.json(&["app", "policy", "history", &app]);
    assert_eq!(
        history["Versions"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
    exits(&server.run(&["app", "policy", "delete", &app]), 1);
}
