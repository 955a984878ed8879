//! Shared by every black-box test of `edasd` (each file in `tests/` is its own crate and declares
//! `mod support;`; `kube_support` includes it by path): the real `edasd` binary on a loopback port
//! with a temporary data directory, signed requests, change-order waits, and the local runtime's
//! instances as its state files and the process table show them.
//!
//! Instances run this very test binary re-executed with the filter `testapp_entry` (each test
//! file that runs instances defines that test, calling [`testapp_entry`]), and carry a tag unique to the test so the
//! test can count and kill exactly its own processes: instances outlive edasd by design.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edas_pop::{encode_form, sign_v1};
use serde_json::{Value, json};

/// The environment variable that turns a run of a test binary into the test application.
pub const RUN_TESTAPP: &str = "EDASD_TEST_RUN_TESTAPP";

/// The administrator key a [`Cluster`]'s edasd is started with.
pub const KEY: (&str, &str) = ("LTAIresilience", "resilience-secret-0123456789");

/// The local runtime's quick restart settings: short delays keep restart and liveness tests
/// within seconds.
pub const QUICK_RESTARTS: &str = "[local]\nrestart_backoff_seconds = 0.2\nmax_restart_backoff_seconds = 1\n\
     crash_loop_limit = 20\nquick_failure_seconds = 5\n";

/// The body of each file's `testapp_entry` test: the entry point of the test application when
/// edasd's local runtime runs the test binary as an instance (the variable tells it apart from a
/// normal test run, where it does nothing).
pub fn testapp_entry() {
    if std::env::var_os(RUN_TESTAPP).is_some() {
        if let Err(e) = edas_testapp::run() {
            eprintln!("edas-testapp: {e}");
            std::process::exit(2);
        }
        std::process::exit(0);
    }
}

/// A nonce unique in this process (many concurrent clients share a thread and a millisecond).
pub fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{t}-{n}", std::process::id())
}

/// Milliseconds since the epoch, as edasd and the test application write times.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A free loopback port (bound then released: the test hands it to edasd or an instance).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that refuses every connection for as long as the returned socket lives: bound
/// but never listening, so no other test's server can take the port meanwhile (a port from
/// [`free_port`] can be reused by the time it is dialled, answering 404 instead of refusing).
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Runs a blocking wait without holding up the async worker it is called on (whose queued tasks
/// move to another thread), or plainly outside a multi-threaded runtime: a test's in-process
/// fake cluster (and the test's own watchers) must keep being served meanwhile.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `edasd serve` on an ephemeral loopback port with its data under `data_dir`, stdout discarded
/// and stderr piped for [`spawn_edasd`] (the test learns the port from the log). The caller adds
/// its own arguments and environment.
pub fn edasd_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edasd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("EDASD_LOG", "info")
        .env_remove(RUN_TESTAPP)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Spawns `command` (see [`edasd_command`]) and waits until edasd says where it listens; returns
/// the process, its base URL and a channel of its later log lines. Every line is echoed to the
/// test's stderr prefixed by `label` (none: not echoed, for noisy load runs); the reader thread
/// keeps draining the pipe so edasd never blocks on its log.
pub fn spawn_edasd(
    command: &mut Command,
    label: Option<String>,
) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = command.spawn().expect("spawning edasd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(label) = &label {
                eprintln!("{label}: {line}");
            }
            let _ = tx.send(line);
        }
    });
    let base = blocking(|| {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("edasd did not say where it listens");
            if let Some(rest) = line.split("edasd listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        }
    });
    (child, base, rx)
}

/// SIGKILL to every live process carrying `tag` (and its process group), until none is left
/// (bounded): instances outlive edasd by design, so each test removes its own when it ends.
pub fn kill_tagged(tag: &str) {
    for _ in 0..50 {
        let pids = tagged_processes(tag);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signed requests to one edasd, as the EDAS SDKs send them, and the change-order waits built on
/// them.
pub struct Endpoint {
    /// `http://127.0.0.1:port` (changes when edasd restarts).
    pub base: String,
    pub client: reqwest::Client,
    /// The administrator key edasd was started with.
    pub key: (&'static str, &'static str),
    /// How often the waits ask again.
    pub poll: Duration,
}

impl Endpoint {
    /// An endpoint whose requests fail after `timeout`: a request edasd does not answer fails
    /// the test instead of hanging it.
    pub fn new(key: (&'static str, &'static str), timeout: Duration, poll: Duration) -> Endpoint {
        Endpoint {
            base: String::new(),
            client: reqwest::Client::builder().timeout(timeout).build().unwrap(),
            key,
            poll,
        }
    }
    /// A signed request; its parameters travel in the query string, or in a form body (with
    /// Content-MD5, as the classic SDK sends form operations). Answers (HTTP status, body as
    /// JSON, or the text as a JSON string when it is not JSON).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        action: &str,
        params: &[(&str, &str)],
        in_body: bool,
    ) -> (u16, Value) {
        self.send_encoded(method, path, action, &form(params), in_body)
            .await
    }

    /// Like [`Endpoint::send`] with the query or body already encoded (it may be malformed).
    pub async fn send_encoded(
        &self,
        method: &str,
        path: &str,
        action: &str,
        encoded: &str,
        in_body: bool,
    ) -> (u16, Value) {
        signed_encoded(
            &self.client,
            &self.base,
            self.key,
            method,
            path,
            action,
            encoded,
            in_body,
        )
        .await
    }

    /// A query-string request; (HTTP status, body).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        self.send(method, path, action, params, false).await
    }

    /// A form-body operation (CreateK8sConfigMap …) that must succeed; its body.
    pub async fn call_form(
        &self,
        method: &str,
        path: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Value {
        succeeded(action, self.send(method, path, action, params, true).await)
    }

    /// A query-string request that must succeed; its body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Value {
        succeeded(action, self.send(method, path, action, params, false).await)
    }

    /// ListRecentChangeOrder for `app`: its change orders as the API lists them, newest first.
    pub async fn recent_change_orders(&self, app: &str) -> Vec<Value> {
        let body = self
            .call(
                "POST",
                "/pop/v5/changeorder/change_order_list",
                "ListRecentChangeOrder",
                &[("AppId", app)],
            )
            .await;
        body["ChangeOrderList"]["ChangeOrder"]
            .as_array()
            .unwrap_or_else(|| panic!("ListRecentChangeOrder answered no list: {body}"))
            .clone()
    }

    /// A signed `GET /edasd/v1/logs` with `params`: the response, to be read as it streams.
    pub async fn logs(&self, params: &[(&str, &str)]) -> reqwest::Response {
        let encoded = form(params);
        let request = edas_pop::Request::new("GET", "/edasd/v1/logs")
            .with_header("x-acs-action", "edasd.logs")
            .with_header("x-acs-version", "2017-08-01")
            .with_raw_query(&encoded)
            .unwrap();
        let headers = sign_v1(
            &request,
            self.key.0,
            self.key.1,
            SystemTime::now(),
            Some(&nonce()),
        )
        .unwrap();
        let mut builder = self
            .client
            .get(format!("{}/edasd/v1/logs?{encoded}", self.base));
        for (name, value) in request.headers() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.send().await.expect("edasd answers")
    }

    /// The whole text of a logs answer that must succeed.
    pub async fn log_text(&self, params: &[(&str, &str)]) -> String {
        let response = self.logs(params).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        text
    }

    /// DescribeAppInstanceList's `InstanceList`.
    pub async fn instance_list(&self, app: &str) -> Vec<Value> {
        let body = self
            .call(
                "GET",
                "/pop/v5/oam/app_instance_list",
                "DescribeAppInstanceList",
                &[("AppId", app)],
            )
            .await;
        body["InstanceList"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until an instance of the application has restarted; that instance
    /// (DescribeAppInstanceList's item).
    pub async fn wait_restarted(&self, app: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let list = self.instance_list(app).await;
            if let Some(i) = list.iter().find(|i| i["Restarts"].as_i64() >= Some(1)) {
                return i.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no restart within {within:?}: {list:?}"
            );
            tokio::time::sleep(self.poll).await;
        }
    }

    /// InsertK8sApplication with `params`; returns (AppId, ChangeOrderId).
    pub async fn insert_app(&self, params: &[(&str, &str)]) -> (String, String) {
        let body = self
            .call(
                "POST",
                "/pop/v5/k8s/acs/create_k8s_app",
                "InsertK8sApplication",
                params,
            )
            .await;
        let info = &body["ApplicationInfo"];
        (
            info["AppId"].as_str().unwrap().to_owned(),
            info["ChangeOrderId"].as_str().unwrap().to_owned(),
        )
    }

    /// DeployK8sApplication with `params`; returns the ChangeOrderId.
    pub async fn deploy_app(&self, params: &[(&str, &str)]) -> String {
        let body = self
            .call(
                "POST",
                "/pop/v5/k8s/acs/k8s_apps",
                "DeployK8sApplication",
                params,
            )
            .await;
        body["ChangeOrderId"].as_str().unwrap().to_owned()
    }

    /// GetChangeOrderInfo: the order's `changeOrderInfo`.
    pub async fn order(&self, id: &str) -> Value {
        let body = self
            .call(
                "POST",
                "/pop/v5/changeorder/change_order_info",
                "GetChangeOrderInfo",
                &[("ChangeOrderId", id)],
            )
            .await;
        body["changeOrderInfo"].clone()
    }

    /// Waits until the change order's `Status` satisfies `done` (`what` says how it does not, for
    /// the failure); returns its info.
    async fn wait_order(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(i64) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let info = self.order(id).await;
            if done(info["Status"].as_i64().unwrap()) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "change order {id} {what} after {within:?}: {info:#}"
            );
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Waits until the change order's status is one of `statuses`; returns its info.
    pub async fn wait_status(&self, id: &str, statuses: &[i64], within: Duration) -> Value {
        let what = format!("not in {statuses:?}");
        self.wait_order(id, within, &what, |s| statuses.contains(&s))
            .await
    }

    /// Waits until the change order is no longer active; returns its final info.
    pub async fn finished(&self, id: &str, within: Duration) -> Value {
        self.wait_order(id, within, "still active", |s| ![0, 1, 8, 9].contains(&s))
            .await
    }

    /// Whether edasd still answers its health check.
    pub async fn healthy(&self) -> bool {
        match self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
        {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    }
}

/// The body of an answer that must be a success (HTTP 200), or a failure naming the action.
fn succeeded(action: &str, (status, body): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{action}: {body}");
    body
}

/// A signed request with its parameters in the query string, with the key `key` (which need not
/// be the one edasd knows); (HTTP status, body as JSON or the text as a JSON string).
pub async fn signed(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    action: &str,
    params: &[(&str, &str)],
    key: (&str, &str),
) -> (u16, Value) {
    signed_encoded(
        client,
        base,
        key,
        method,
        path,
        action,
        &form(params),
        false,
    )
    .await
}

/// The parameters as the SDKs encode them, for a query string or a form body.
pub fn form(params: &[(&str, &str)]) -> String {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    encode_form(&pairs)
}

/// A request signed as the EDAS SDKs sign it (POP v1 with a fresh nonce); its already encoded
/// parameters travel in the query string, or in a form body (with Content-MD5, as the classic
/// SDK sends form operations). Answers (HTTP status, body as JSON, or the text as a JSON string
/// when it is not JSON).
#[allow(clippy::too_many_arguments)]
pub async fn signed_encoded(
    client: &reqwest::Client,
    base: &str,
    key: (&str, &str),
    method: &str,
    path: &str,
    action: &str,
    encoded: &str,
    in_body: bool,
) -> (u16, Value) {
    let mut request = edas_pop::Request::new(method, path)
        .with_header("x-acs-action", action)
        .with_header("x-acs-version", "2017-08-01");
    let url = if in_body {
        request = request
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(encoded.as_bytes().to_vec());
        format!("{base}{path}")
    } else {
        // A query that does not decode is signed as if empty: the server must refuse it
        // for what it is before the signature matters.
        request = request.clone().with_raw_query(encoded).unwrap_or(request);
        format!("{base}{path}?{encoded}")
    };
    let headers = sign_v1(&request, key.0, key.1, SystemTime::now(), Some(&nonce())).unwrap();
    let mut builder = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if in_body {
        builder = builder.body(encoded.to_owned());
    }
    let response = builder.send().await.expect("edasd answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The PostgreSQL URL of the test database (`EDAS_TEST_PG_URL`), or `None` (after printing why)
/// when the PostgreSQL tier is skipped here; in CI or with `EDAS_TEST_REQUIRE_PG=1` a missing URL
/// fails the test instead, so the tier cannot silently stop running.
pub fn pg_url() -> Option<String> {
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

/// Recreates `schema` (empty) in the test database, so runs do not see each other's state; the
/// URL whose connections use it (for edasd's `--database-url`).
pub async fn pg_schema(url: &str, schema: &str) -> String {
    use sqlx::Connection as _;
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

/// One instance as the local runtime's state file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inst {
    pub revision: String,
    pub name: String,
    pub port: u16,
    pub pid: Option<i32>,
    pub restarts: u64,
    pub created_ms: u64,
}

/// An edasd on the local runtime with its data directory; dropping it kills edasd and then every
/// instance of the test. Derefs to its [`Endpoint`] for the signed requests.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub tag: String,
    child: Option<Child>,
    pub api: Endpoint,
    /// edasd's stderr lines, for the test's own checks (also echoed to the test's stderr).
    lines: Option<std::sync::Mutex<mpsc::Receiver<String>>>,
    /// Echo edasd's log lines to stderr (off for noisy load runs).
    pub echo: bool,
}

impl std::ops::Deref for Cluster {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.api
    }
}

impl Cluster {
    /// The resilience tests' edasd: [`QUICK_RESTARTS`] plus `extra` configuration, waits asking
    /// every 50 ms.
    pub fn start(test: &str, extra: &str, echo: bool) -> Cluster {
        Cluster::launch(
            format!("edasd-resilience-{test}-{}", std::process::id()),
            |_, _| format!("{QUICK_RESTARTS}{extra}"),
            echo,
            Duration::from_millis(50),
        )
    }

    /// Starts edasd with the configuration `config(dir, tag)` writes, instances tagged `tag`
    /// (unique to the test and this process), and waits that ask every `poll`.
    pub fn launch(
        tag: String,
        config: impl FnOnce(&Path, &str) -> String,
        echo: bool,
        poll: Duration,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Instances run as another user when the test runs as root (`nobody`): they must reach
        // their directories (`<data>.instances`) through this one.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        std::fs::write(dir.path().join("edasd.toml"), config(dir.path(), &tag)).unwrap();
        let mut cluster = Cluster {
            tag,
            dir,
            child: None,
            api: Endpoint::new(KEY, Duration::from_secs(60), poll),
            lines: None,
            echo,
        };
        cluster.spawn();
        cluster
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the local runtime keeps instance directories (`[local] instances_dir`'s default:
    /// beside the data directory, which instances must not see).
    pub fn instances_dir(&self) -> PathBuf {
        self.dir.path().join("data.instances")
    }

    /// Starts edasd on the data directory and waits until it listens.
    pub fn spawn(&mut self) {
        let mut command = edasd_command(&self.data_dir());
        command
            .arg("--config")
            .arg(self.dir.path().join("edasd.toml"))
            .env("EDASD_ACCESS_KEY_ID", self.api.key.0)
            .env("EDASD_ACCESS_KEY_SECRET", self.api.key.1);
        let (child, base, rx) = spawn_edasd(&mut command, self.echo.then(|| "edasd".to_owned()));
        self.child = Some(child);
        self.api.base = base;
        self.lines = Some(std::sync::Mutex::new(rx));
    }

    /// The log lines edasd wrote since the last call.
    pub fn new_log_lines(&self) -> Vec<String> {
        self.lines
            .as_ref()
            .map(|rx| rx.lock().unwrap().try_iter().collect())
            .unwrap_or_default()
    }

    /// The pid of the running edasd.
    pub fn edasd_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether edasd is still running (not exited).
    pub fn edasd_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: edasd gets no chance to do anything.
    pub fn kill_edasd(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for edasd to exit (a clean shutdown, unlike [`Cluster::kill_edasd`]).
    pub fn stop_edasd(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// The parameters that make an application run the test app: `Command` (this binary),
    /// its arguments with the test's tag, and `Envs`.
    pub fn app_params(&self, env: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        let exe = std::env::current_exe().unwrap().display().to_string();
        let args: Vec<Value> = ["testapp_entry", &self.tag, "--exact", "--nocapture"]
            .iter()
            .map(|a| json!({ "argument": a }))
            .collect();
        vec![
            ("Command", exe),
            ("CommandArgs", Value::from(args).to_string()),
            ("Envs", envs(env)),
        ]
    }

    /// InsertK8sApplication on `local`; returns (AppId, ChangeOrderId).
    pub async fn insert(
        &self,
        name: &str,
        replicas: u32,
        extra: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> (String, String) {
        let replicas = replicas.to_string();
        let common = self.app_params(env);
        let mut params: Vec<(&str, &str)> = vec![
            ("AppName", name),
            ("ClusterId", "local"),
            ("ImageUrl", "edas-testapp:v1"),
            ("Replicas", &replicas),
        ];
        params.extend(common.iter().map(|(k, v)| (*k, v.as_str())));
        params.extend_from_slice(extra);
        self.insert_app(&params).await
    }

    /// DeployK8sApplication of a new version; returns the ChangeOrderId.
    pub async fn deploy(
        &self,
        app_id: &str,
        version: &str,
        extra: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> String {
        let image = format!("edas-testapp:{version}");
        let envs = envs(env);
        let mut params: Vec<(&str, &str)> =
            vec![("AppId", app_id), ("Image", &image), ("Envs", &envs)];
        params.extend_from_slice(extra);
        self.deploy_app(&params).await
    }

    /// The instances of an application, from the local runtime's state files.
    pub fn instances(&self, app_id: &str) -> Vec<Inst> {
        let mut out = Vec::new();
        let app_dir = self.instances_dir().join(app_id);
        for rev in read_dirs(&app_dir) {
            for inst in read_dirs(&rev) {
                let Ok(text) = std::fs::read_to_string(inst.join("state.json")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                out.push(Inst {
                    revision: rev.file_name().unwrap().to_string_lossy().into_owned(),
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    port: v["port"].as_u64().unwrap_or(0) as u16,
                    pid: v["pid"].as_i64().map(|p| p as i32),
                    restarts: v["restarts"].as_u64().unwrap_or(0),
                    created_ms: v["created_ms"].as_u64().unwrap_or(0),
                });
            }
        }
        out.sort_by_key(|i| i.created_ms);
        out
    }

    /// The pids of the live processes that carry this test's tag.
    pub fn tagged_processes(&self) -> BTreeSet<i32> {
        tagged_processes(&self.tag)
    }

    /// Waits until `check` holds for the application's instances.
    pub async fn wait_instances(
        &self,
        app_id: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&[Inst]) -> bool,
    ) -> Vec<Inst> {
        let deadline = Instant::now() + within;
        loop {
            let insts = self.instances(app_id);
            if check(&insts) {
                return insts;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}: {insts:#?}"
            );
            tokio::time::sleep(self.api.poll).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // edasd first, so it restarts nothing; then every instance, by process group.
        self.kill_edasd();
        kill_tagged(&self.tag);
    }
}

/// The `Envs` parameter: the test-app switch plus `env`.
pub fn envs(env: &[(&str, &str)]) -> String {
    let list: Vec<Value> = [(RUN_TESTAPP, "1")]
        .iter()
        .chain(env)
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    Value::from(list).to_string()
}

pub fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Live (not zombie) processes whose command line contains `tag` as one argument.
pub fn tagged_processes(tag: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|arg| arg == tag.as_bytes()) && alive(pid) {
            out.insert(pid);
        }
    }
    out
}

/// Whether `pid` is a running process (not gone, not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// GET `path` on an instance; (status, body), or `None` when it does not answer.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The version an instance answers with on `/`.
pub fn version(port: u16) -> Option<String> {
    let (status, body) = get(port, "/")?;
    (status == 200).then(|| {
        body.split_whitespace()
            .next()?
            .strip_prefix("version=")
            .map(str::to_owned)
    })?
}

/// The pipelines (batches) of a GetChangeOrderInfo answer.
pub fn pipelines(info: &Value) -> Vec<Value> {
    info["PipelineInfoList"]["PipelineInfo"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The error codes of the order's failed tasks.
pub fn task_error_codes(info: &Value) -> Vec<String> {
    pipelines(info)
        .iter()
        .flat_map(|p| {
            p["StageDetailList"]["StageDetailDTO"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|s| {
            s["TaskList"]["TaskInfoDTO"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|t| t["TaskErrorCode"].as_str().map(str::to_owned))
        .filter(|c| !c.is_empty())
        .collect()
}

/// A small deterministic generator (SplitMix64): the seed alone decides every choice, so a
/// failing run replays exactly (as far as the machine's timing allows).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A signed call to edasd's admin API (`/edasd/v1/<path>`) with an optional JSON body, as
/// `edasctl` sends it; (HTTP status, body).
pub async fn admin_call(
    api: &Endpoint,
    key: (&str, &str),
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let full = format!("/edasd/v1/{path}");
    let bytes = body.map(Value::to_string).unwrap_or_default().into_bytes();
    let mut request = edas_pop::Request::new(method, full.clone())
        .with_header("x-acs-action", "edasd.admin")
        .with_header("x-acs-version", "2017-08-01");
    if !bytes.is_empty() {
        request = request
            .with_header("content-type", "application/json")
            .with_body(bytes.clone());
    }
    let headers = sign_v1(&request, key.0, key.1, SystemTime::now(), Some(&nonce())).unwrap();
    let mut builder = api.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{full}", api.base),
    );
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(bytes).send().await.expect("edasd answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Creates a non-admin user with one access key and one policy document attached (as the
/// administrator `admin` key); answers the user's key.
pub async fn user_with_policy(
    api: &Endpoint,
    name: &str,
    document: Value,
) -> (&'static str, &'static str) {
    let admin = api.key;
    let id: &'static str = Box::leak(format!("LTAI{name}").into_boxed_str());
    let secret: &'static str = Box::leak(format!("{name}-secret-0123456789").into_boxed_str());
    for (method, path, body) in [
        ("POST", "users".to_owned(), Some(json!({"Name": name}))),
        (
            "POST",
            format!("users/{name}/keys"),
            Some(json!({"AccessKeyId": id, "AccessKeySecret": secret})),
        ),
        (
            "PUT",
            format!("policies/{name}-policy"),
            Some(json!({ "Document": document })),
        ),
        ("PUT", format!("users/{name}/policies/{name}-policy"), None),
    ] {
        let (status, answer) = admin_call(api, admin, method, &path, body.as_ref()).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    (id, secret)
}

/// Reads a streaming answer until `needle` arrived; what arrived (fails after `within`, or when
/// the stream ends first).
pub async fn read_until(
    response: &mut reqwest::Response,
    needle: &str,
    within: Duration,
) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !got.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("`{needle}` did not arrive within {within:?}: {got:?}"))
            .expect("the stream goes on");
        match chunk {
            Some(bytes) => got.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended before `{needle}`: {got:?}"),
        }
    }
    got
}
