//! The processes the HTTP benchmarks talk to: the real `edasd` binary, and the floor (a bare
//! axum handler doing one durable SQLite write per request), each in a process of its own, plus
//! a signed client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use edas_pop::{encode_form, sign_v1};
use serde_json::Value;

/// The administrator key the benchmarks start edasd with.
pub(crate) const KEY: (&str, &str) = ("LTAIbenchmark", "benchmark-secret-0123456789");

/// A child process that said where it listens; killed when dropped.
pub(crate) struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `command`, waiting (at most a minute) for a stderr or stdout line containing
    /// `marker` followed by the base URL; the rest of its output is drained and dropped.
    fn start(command: Command, marker: &'static str) -> anyhow::Result<Server> {
        Server::start_counting(command, marker, None)
    }

    /// [`Server::start`], counting the output lines that contain `count.0` in `count.1`.
    fn start_counting(
        mut command: Command,
        marker: &'static str,
        count: Option<(&'static str, Arc<AtomicU64>)>,
    ) -> anyhow::Result<Server> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().context("starting the server process")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // The last lines it wrote, for the error when it never says where it listens.
        let last = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            let count = count.clone();
            let last = last.clone();
            std::thread::spawn(move || {
                let mut backtrace = false;
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    // An error's message and causes, not the backtrace printed after them.
                    backtrace |= line.starts_with("Stack backtrace:");
                    if !backtrace && !line.trim().is_empty() {
                        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                        if last.len() == 6 {
                            last.pop_front();
                        }
                        last.push_back(line.trim().to_owned());
                    }
                    if let Some((needle, n)) = &count
                        && line.contains(needle)
                    {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(rest) = line.split(marker).nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                    }
                }
            });
        }
        // Only the readers hold senders now: a server that exits ends the wait at once.
        drop(tx);
        let base = rx.recv_timeout(Duration::from_secs(60)).map_err(|e| {
            let last = last.lock().unwrap_or_else(|p| p.into_inner());
            let said: Vec<&str> = last.iter().map(String::as_str).collect();
            let why = match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => "did not say within a minute",
                std::sync::mpsc::RecvTimeoutError::Disconnected => "exited without saying",
            };
            anyhow::anyhow!("the server {why} where it listens; its last lines: {said:?}")
        })?;
        Ok(Server { child, base })
    }

    /// The real edasd on a data directory (release build expected), logging at `info`.
    pub fn edasd(binary: &Path, data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Server> {
        Server::edasd_on(binary, data_dir, config, None)
    }

    /// [`Server::edasd`] keeping its state in the PostgreSQL database `database_url` instead
    /// of the data directory's SQLite, when given.
    pub fn edasd_on(
        binary: &Path,
        data_dir: &Path,
        config: Option<&Path>,
        database_url: Option<&str>,
    ) -> anyhow::Result<Server> {
        if !binary.exists() {
            bail!(
                "{} does not exist: build it with `cargo build --release -p edasd` or pass --edasd",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("EDASD_ACCESS_KEY_ID", KEY.0)
            .env("EDASD_ACCESS_KEY_SECRET", KEY.1)
            .env("EDASD_LOG", "info");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        Server::start(command, "edasd listening on ")
    }

    /// The real edasd like [`Server::edasd`], with the statement logs on (sqlx's, and the
    /// group writer's and inline readers' `edas_store::sql`; both name the SQL `db.statement`):
    /// the answer counts the SQL statements it runs.
    pub fn edasd_counting_statements(
        binary: &Path,
        data_dir: &Path,
    ) -> anyhow::Result<(Server, Arc<AtomicU64>)> {
        let statements = Arc::new(AtomicU64::new(0));
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("EDASD_ACCESS_KEY_ID", KEY.0)
            .env("EDASD_ACCESS_KEY_SECRET", KEY.1)
            .env("EDASD_LOG", "info,sqlx::query=debug,edas_store::sql=debug");
        let server = Server::start_counting(
            command,
            "edasd listening on ",
            Some(("db.statement", statements.clone())),
        )?;
        Ok((server, statements))
    }

    /// The floor: `edas-bench floor-server` (this binary) on its own database.
    pub fn floor(data_dir: &Path) -> anyhow::Result<Server> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("floor-server").arg("--data-dir").arg(data_dir);
        Server::start(command, "floor listening on ")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The edasd binary next to this one (`target/release/edasd` for a release build).
pub(crate) fn sibling_edasd() -> PathBuf {
    sibling("edasd")
}

/// A binary of the workspace next to this one.
pub(crate) fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{t}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One V1-signed request with its parameters in the query string, as the classic SDK sends
/// it, ready to send.
fn signed_request(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    action: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<reqwest::RequestBuilder> {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let query = encode_form(&pairs);
    let request = edas_pop::Request::new(method, path)
        .with_raw_query(&query)?
        .with_header("x-acs-action", action)
        .with_header("x-acs-version", "2017-08-01");
    let headers = sign_v1(&request, KEY.0, KEY.1, SystemTime::now(), Some(&nonce()))?;
    let mut builder = client.request(
        reqwest::Method::from_bytes(method.as_bytes())?,
        format!("{base}{path}?{query}"),
    );
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    Ok(builder)
}

/// Sends one V1-signed request with its parameters in the query string, as the classic SDK
/// does; (HTTP status, body as JSON or `null`).
pub(crate) async fn signed(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    action: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let response = signed_request(client, base, method, path, action, params)?
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A signed client of one edasd for the release benchmarks.
pub(crate) struct Operations {
    http: reqwest::Client,
    base: String,
}

impl Operations {
    /// A client of `server`.
    pub(crate) fn new(server: &Server) -> Operations {
        Operations {
            http: reqwest::Client::new(),
            base: server.base.clone(),
        }
    }

    /// POSTs operation `action` with `params`; its JSON answer, or an error unless HTTP 200.
    pub(crate) async fn call(
        &self,
        path: &str,
        action: &str,
        params: Vec<(&str, String)>,
    ) -> anyhow::Result<Value> {
        self.call_with("POST", path, action, params).await
    }

    /// Operation `action` with HTTP `method` (the one the EDAS API gives it) and `params`; its
    /// JSON answer, or an error unless HTTP 200.
    pub(crate) async fn call_with(
        &self,
        method: &str,
        path: &str,
        action: &str,
        params: Vec<(&str, String)>,
    ) -> anyhow::Result<Value> {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = signed(&self.http, &self.base, method, path, action, &p).await?;
        if status != 200 {
            bail!("{action} answered {status}: {body}");
        }
        Ok(body)
    }

    /// GetChangeOrderInfo of change order `id`: its `changeOrderInfo`.
    pub(crate) async fn order(&self, id: &str) -> anyhow::Result<Value> {
        let body = self
            .call(
                "/pop/v5/changeorder/change_order_info",
                "GetChangeOrderInfo",
                vec![("ChangeOrderId", id.to_owned())],
            )
            .await?;
        Ok(body["changeOrderInfo"].clone())
    }

    /// Opens edasd's push stream (`GET /edasd/v1/events`, signed, server-sent events) with
    /// `params` (`ChangeOrderId` or `AppId`); the response, its body still to be read.
    pub(crate) async fn events(
        &self,
        params: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let response = signed_request(
            &self.http,
            &self.base,
            "GET",
            "/edasd/v1/events",
            "edasd.events",
            params,
        )?
        .send()
        .await?;
        if response.status() != 200 {
            let status = response.status();
            bail!(
                "GET /edasd/v1/events answered {status}: {}",
                response.text().await?
            );
        }
        Ok(response)
    }

    /// InsertK8sApplication with `params`, waited for: the new application's id.
    pub(crate) async fn insert(&self, params: Vec<(&str, String)>) -> anyhow::Result<String> {
        let body = self
            .call(
                "/pop/v5/k8s/acs/create_k8s_app",
                "InsertK8sApplication",
                params,
            )
            .await?;
        let info = &body["ApplicationInfo"];
        let first = info["ChangeOrderId"].as_str().context("ChangeOrderId")?;
        self.finished(first).await?;
        Ok(info["AppId"].as_str().context("AppId")?.to_owned())
    }

    /// DeployK8sApplication with `params`, waited for: the change order's CreateTime (Unix
    /// milliseconds) and its wall time from CreateTime to FinishTime.
    pub(crate) async fn deploy(
        &self,
        params: Vec<(&str, String)>,
    ) -> anyhow::Result<(u64, Duration)> {
        let body = self
            .call("/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication", params)
            .await?;
        let id = body["ChangeOrderId"].as_str().context("ChangeOrderId")?;
        let info = self.finished(id).await?;
        let created = number(&info["CreateTime"]).context("CreateTime")?;
        let done = number(&info["FinishTime"]).context("FinishTime")?;
        Ok((created, Duration::from_millis(done.saturating_sub(created))))
    }

    /// Waits (at most 10 minutes, polling GetChangeOrderInfo every 50 ms: the benchmark's
    /// timings come from the order's own CreateTime/FinishTime and the runtime's records, not
    /// from this loop) until change order `id` succeeded; its `changeOrderInfo`.
    pub(crate) async fn finished(&self, id: &str) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            let info = self.order(id).await?;
            match info["Status"].as_i64() {
                Some(2) => return Ok(info),
                Some(0 | 1 | 8 | 9) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => bail!("change order {id} ended badly: {info}"),
            }
        }
    }
}

/// A number the API answers as a string (or a number).
fn number(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

/// `edas-bench floor-server`: one axum handler that commits one row per request to SQLite,
/// durably (WAL, `synchronous=FULL`: an fsync per commit; one writer connection, `BEGIN
/// IMMEDIATE`) and
/// answers a small JSON body. No signature check, no routing table, no engine: the least a
/// durable HTTP write can cost on this machine.
pub(crate) async fn floor_server(data_dir: PathBuf) -> anyhow::Result<()> {
    use axum::extract::{RawQuery, State};
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };

    std::fs::create_dir_all(&data_dir)?;
    let options = SqliteConnectOptions::new()
        .filename(data_dir.join("floor.sqlite3"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, query TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    async fn handle(
        State(pool): State<sqlx::SqlitePool>,
        RawQuery(q): RawQuery,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let result = async {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let id: i64 = sqlx::query_scalar("INSERT INTO writes (query) VALUES ($1) RETURNING id")
                .bind(q.unwrap_or_default())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(id)
        }
        .await;
        match result {
            Ok(id) => axum::Json(serde_json::json!({
                "Code": 200,
                "ChangeOrderId": id.to_string(),
                "RequestId": id.to_string(),
            }))
            .into_response(),
            Err(e) => {
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
        }
    }
    let app = axum::Router::new().fallback(handle).with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
