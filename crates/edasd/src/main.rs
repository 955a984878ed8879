//! `edasd`: the self-hosted EDAS API server.
//!
//! `edasd serve --listen ADDR --data-dir DIR [--database-url URL] [--tls-cert PEM --tls-key PEM]
//! [--config FILE]` opens the store (SQLite in the data directory, or PostgreSQL), makes sure an
//! administrator access key exists, registers the clusters, starts the release engine and serves
//! the API until SIGTERM or Ctrl-C, then drains connections and stops the engine.

mod config;
mod connections;
mod kube_clusters;
mod metrics_catalog;
mod notify;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::ServiceExt as _;
use clap::{Parser, Subcommand};
use edas_api::{Api, ApiConfig};
use edas_engine::{Engine, EngineConfig, Runtimes};
use edas_store::{
    AccessKey, Cluster, EncryptionKey, KEY_FILE_NAME, Sensitive, Store, StoreError, User,
};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LOCAL_CLUSTER};

/// The file a generated administrator key is written to, in the data directory.
const ADMIN_KEY_FILE: &str = "admin-access-key";
/// The user that owns the administrator key.
const ADMIN_USER: &str = "admin";
/// The HTTP/1 read buffer: the API's URL limit plus room for the headers.
const MAX_BUF: usize = edas_api::MAX_REQUEST_BYTES + 64 * 1024;
/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
#[command(
    name = "edasd",
    version,
    about = "Self-hosted, wire-compatible EDAS API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves the EDAS API.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory for the SQLite database, the encryption key and the generated admin key.
    #[arg(long)]
    data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://…`) to keep state in instead of the data directory's SQLite.
    #[arg(long, env = "EDASD_DATABASE_URL")]
    database_url: Option<String>,
    /// PEM certificate chain: serve HTTPS (requires --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Configuration file (TOML): region, account, namespaces, clusters, retention.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Environment variables that carry secrets: edasd re-executes itself without them (they reach
/// the new process through its stdin), so `/proc/<pid>/environ` never shows them once read.
const SECRET_ENV: [&str; 2] = ["EDASD_ACCESS_KEY_SECRET", "EDASD_DATABASE_URL"];
/// Set in the re-executed edasd: its stdin carries the secrets, `NAME=value` lines.
const SECRETS_ON_STDIN: &str = "EDASD_SECRETS_ON_STDIN";

/// The secrets taken out of the environment (see [`SECRET_ENV`]).
static SECRETS: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
    std::sync::OnceLock::new();

/// A secret variable: from the re-exec's stdin, or from the environment.
fn secret_var(name: &str) -> Option<String> {
    SECRETS
        .get()
        .and_then(|m| m.get(name).cloned())
        .or_else(|| std::env::var(name).ok())
        .filter(|v| !v.is_empty())
}

/// Takes the secrets out of the process environment: when any is set, edasd re-executes itself
/// (same pid) without them and with a pipe holding them as stdin. In the re-executed process,
/// reads them back. Then marks the process non-dumpable, so neither its memory nor its
/// `/proc/<pid>/environ` can be read by another process of the same user.
fn scrub_secrets() -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(SECRETS_ON_STDIN).is_some() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the secrets passed by the re-executed edasd")?;
        let secrets = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let _ = SECRETS.set(secrets);
    } else {
        let present: Vec<(&str, String)> = SECRET_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v)))
            .collect();
        if !present.is_empty() {
            let mut text = String::new();
            for (k, v) in &present {
                if v.contains('\n') {
                    bail!("{k} must not contain a line break");
                }
                text.push_str(&format!("{k}={v}\n"));
            }
            // A pipe buffer holds 64 KiB; the write must not block before the exec.
            if text.len() > 60 * 1024 {
                bail!("the secret environment variables are too long");
            }
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .context("creating a pipe for the secrets")?;
            std::fs::File::from(write)
                .write_all(text.as_bytes())
                .context("passing the secrets")?;
            let exe = std::env::current_exe().context("finding edasd's own binary")?;
            let mut command = std::process::Command::new(exe);
            command
                .args(std::env::args_os().skip(1))
                .env(SECRETS_ON_STDIN, "1")
                .stdin(std::process::Stdio::from(read));
            for k in SECRET_ENV {
                command.env_remove(k);
            }
            let err = command.exec();
            return Err(err).context("re-executing edasd without the secrets in its environment");
        }
    }
    nix::sys::prctl::set_dumpable(false).context("marking edasd non-dumpable")?;
    Ok(())
}

/// mimalloc: a release allocates and frees many small buffers (request bodies, documents,
/// rows) across threads; glibc's allocator was a tenth of edasd's CPU at 8 clients.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // The instance launcher (see edas_local::sandbox) is this binary re-executed: it never
    // returns, and it must run before anything else.
    edas_local::sandbox::run_if_launcher();
    scrub_secrets()?;
    let mut cli = Cli::parse();
    let Command::Serve(serve_args) = &mut cli.command;
    if serve_args.database_url.is_none() {
        serve_args.database_url = secret_var("EDASD_DATABASE_URL");
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A change of an application on Kubernetes polls deep, large futures (API, layer,
        // engine, runtime check): a debug build overflowed the default 2 MiB worker stack.
        .thread_stack_size(8 << 20)
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("EDASD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("EDASD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let data_dir = private_data_dir(&args.data_dir)?;
    let mut local = config
        .local
        .runtime_config(data_dir.join("local"), std::env::var_os("PATH").as_deref())?;
    local.launcher = Some(
        edas_local::sandbox::Launcher::this_binary()
            .context("finding edasd's own binary (the instance launcher)")?,
    );
    local.hidden_paths = hidden_paths(&data_dir, &args, &config);
    let store = open_store(&args).await?;
    ensure_admin_key(&store, &args.data_dir).await?;
    tighten_files(&args.data_dir);
    register_clusters(&store, &config).await?;

    let metrics = metrics_catalog::install()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let worker_id = worker_id(&args.data_dir)?;
    let (runtimes, local_runtime) = runtimes(&store, local, &config, &worker_id).await?;
    if let Some(address) = local_runtime.ingress_addr() {
        tracing::info!(%address, "ingress listener of the local runtime");
    }
    let store = Arc::new(store);
    let mut engine_config = EngineConfig {
        worker_id,
        ..EngineConfig::default()
    };
    if let Some(lease) = config.engine.lease()? {
        engine_config.lease = lease;
    }
    let notify_config = config.notify.config(&engine_config.worker_id)?;
    let engine = Engine::new(store.clone(), runtimes, engine_config);
    engine.set_analysis(edas_engine::AnalysisSettings {
        prometheus: config.analysis.prometheus()?,
    });
    let engine_task = engine.start();
    // Ingress rules are routed again (the local listener keeps its table in memory; on
    // Kubernetes the apply is idempotent).
    let ingress_rules = edas_app::App::new(store.clone(), engine.clone());
    tokio::spawn(async move {
        match ingress_rules.restore_ingress_rules().await {
            Ok(n) => tracing::info!(applied = n, "ingress rules routed"),
            Err(e) => tracing::warn!(error = %e, "cannot read the ingress rules"),
        }
    });
    let notify_stop = tokio_util::sync::CancellationToken::new();
    let notify_task = tokio::spawn(
        edas_notify::Notifier::new((*store).clone(), notify_config)
            .context("building the notifier's HTTP client")?
            .run(notify_stop.clone()),
    );
    if config.retention.is_set() {
        tokio::spawn(prune_periodically(store.clone(), config.clone()));
    }

    let limits = config.server.limits(connections::raise_fd_limit())?;
    let api = Api::new(
        edas_app::App::new(store.clone(), engine.clone()),
        ApiConfig {
            region_id: config.region_id.clone(),
            account_id: config.account_id.clone(),
            namespaces: config.namespaces.clone(),
        },
    )
    .with_metrics(metrics)
    .with_nonce_capacity(limits.nonce_capacity_per_key);
    let connections = connections::Connections::new(&limits);
    // The whole body must arrive before the deadline (a per-frame timeout would let a client
    // drip one byte at a time forever).
    let app = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
            limits.body_read_timeout,
        ))
        .map_request(|request: axum::http::Request<_>| request.map(axum::body::Body::new))
        // The web console (static files, no data) beside the API it calls.
        .service(edas_api::router(api).merge(edas_console::router()));

    let addr = resolve(&args.listen).await?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        body_read_timeout = ?limits.body_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "connection limits"
    );
    // Every connection is counted and timed before any TLS handshake.
    let guarded = connections::GuardedAcceptor::new(
        axum_server::accept::DefaultAcceptor::new(),
        connections.clone(),
    );
    let configure = |builder: &mut hyper_util::server::conn::auto::Builder<_>| {
        // hyper's default read buffer (~400 KiB) would refuse URLs carrying base64 YAML
        // parameters before edasd sees them: allow the API's limit plus headers. The head
        // timer runs from the connection's start or the previous response, so it bounds
        // half-sent requests and idle keep-alive connections alike.
        builder
            .http1()
            .max_buf_size(MAX_BUF)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
    };

    let served = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            // rustls is built with ring only for edasd, but other crates may enable a second
            // provider; choose ours explicitly (an error means one is already installed).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            tracing::info!(region = %config.region_id, "edasd listening on https://{local}");
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(guarded))
                .handle(handle)
                .first_request_timeout(limits.header_read_timeout);
            configure(server.http_builder());
            server.serve(app.into_make_service()).await
        }
        _ => {
            tracing::info!(region = %config.region_id, "edasd listening on http://{local}");
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(guarded)
                .handle(handle)
                .first_request_timeout(limits.header_read_timeout);
            configure(server.http_builder());
            server.serve(app.into_make_service()).await
        }
    };
    served.context("serving")?;
    tracing::info!("connections drained; stopping the release engine");
    engine.shutdown().await;
    engine_task.abort();
    notify_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), notify_task).await;
    tracing::info!("closing the local service ports; requests in flight finish");
    local_runtime.shutdown_services(DRAIN_TIMEOUT).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The runtimes by cluster id: `local` runs instances as supervised processes under
/// `<data dir>/local` (adopting those a previous edasd left running), as `[local]` configures;
/// every `[[clusters]]` entry gets a Kubernetes runtime with one shared client (see
/// `kube_clusters`). A cluster that cannot be reached does not stop edasd (its status says so);
/// a kubeconfig that cannot be read does.
async fn runtimes(
    store: &Store,
    local: edas_local::LocalConfig,
    config: &Config,
    worker_id: &str,
) -> anyhow::Result<(Runtimes, Arc<edas_local::LocalRuntime>)> {
    tracing::info!(
        default_java = %local.default_java.display(),
        jdk = %local.java_binaries.keys().cloned().collect::<Vec<_>>().join(", "),
        run_as = %match (&local.run_as_user, local.app_uids) {
            (Some(user), _) => user.clone(),
            (None, Some((first, last))) => format!("each application its own uid from {first}-{last}"),
            (None, None) => "edasd's own user".to_owned(),
        },
        allowed_host_paths = %local
            .allowed_host_paths
            .iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        "local runtime"
    );
    let local = edas_local::LocalRuntime::new(local).context("starting the local runtime")?;
    let local = Arc::new(local);
    let mut runtimes = Runtimes::new().with(LOCAL_CLUSTER, local.clone());
    for cluster in &config.clusters {
        let runtime = kube_clusters::runtime(store, cluster, worker_id).await?;
        runtimes = runtimes.with(&cluster.id, Arc::new(runtime));
    }
    Ok((runtimes, local))
}

async fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen `{listen}` is not a host:port address"))?
        .next()
        .with_context(|| format!("--listen `{listen}` resolves to no address"))
}

async fn shutdown_on_signal(handle: axum_server::Handle<SocketAddr>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: shutting down gracefully"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down gracefully"),
    }
    handle.graceful_shutdown(Some(DRAIN_TIMEOUT));
}

async fn open_store(args: &ServeArgs) -> anyhow::Result<Store> {
    let store = match &args.database_url {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("--database-url must be a postgres:// URL (SQLite lives in --data-dir)");
            }
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            let key = EncryptionKey::load_or_create(&args.data_dir.join(KEY_FILE_NAME))
                .context("loading the encryption key")?;
            Store::open(url, &key).await
        }
        None => Store::open_data_dir(&args.data_dir).await,
    };
    let store = store.context("opening the store")?;
    tracing::info!(backend = store.backend_name(), data_dir = %args.data_dir.display(), "store open");
    Ok(store)
}

/// Makes sure an administrator can sign requests: the pair from `EDASD_ACCESS_KEY_ID` /
/// `EDASD_ACCESS_KEY_SECRET` when set, else a generated pair written once to a 0600 file.
/// This installation's engine worker id, kept in the data directory so that a restarted edasd
/// resumes the change orders it held at once (their leases name it) instead of waiting for them
/// to expire. Several edasd processes sharing a PostgreSQL database have separate data
/// directories, hence separate ids.
fn worker_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("worker-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let id = EngineConfig::default().worker_id;
            std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
    }
}

async fn ensure_admin_key(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    let id = std::env::var("EDASD_ACCESS_KEY_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let secret = secret_var("EDASD_ACCESS_KEY_SECRET");
    let now = jiff::Timestamp::now();
    match (id, secret) {
        (Some(id), Some(secret)) => {
            ensure_admin_user(store, now).await?;
            match store.get_access_key(&id).await {
                Ok(key) if key.user == ADMIN_USER && key.secret.expose() == &secret => {
                    if !key.enabled {
                        store
                            .set_access_key_enabled(
                                &id,
                                true,
                                bootstrap_audit("EnableAccessKey", &id),
                                now,
                            )
                            .await?;
                    }
                    tracing::info!(access_key_id = %id, "administrator access key from the environment");
                    return Ok(());
                }
                Ok(_) => {
                    // Same id, another secret or owner: the environment is the source of truth.
                    store
                        .delete_access_key(&id, bootstrap_audit("DeleteAccessKey", &id), now)
                        .await?;
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e).context("reading the administrator access key"),
            }
            store_admin_key(store, &id, secret, now).await?;
            tracing::info!(access_key_id = %id, "administrator access key from the environment stored");
            Ok(())
        }
        (None, None) => {
            let file = data_dir.join(ADMIN_KEY_FILE);
            if admin_has_key(store).await? {
                tracing::info!(
                    file = %file.display(),
                    "an administrator access key exists (a generated one was written to this file on first start)"
                );
                return Ok(());
            }
            ensure_admin_user(store, now).await?;
            let (id, secret) = edas_api::admin::generate_access_key();
            write_private(
                &file,
                &format!(
                    "# edasd administrator access key, generated {now}. Keep it secret.\nEDASD_ACCESS_KEY_ID={id}\nEDASD_ACCESS_KEY_SECRET={secret}\n"
                ),
            )?;
            store_admin_key(store, &id, secret, now).await?;
            tracing::warn!(
                access_key_id = %id,
                file = %file.display(),
                "generated an administrator access key; its secret is in this file (mode 0600)"
            );
            Ok(())
        }
        _ => bail!("set both EDASD_ACCESS_KEY_ID and EDASD_ACCESS_KEY_SECRET, or neither"),
    }
}

/// Stores `id`/`secret` as an enabled access key of the administrator user, audited.
async fn store_admin_key(
    store: &Store,
    id: &str,
    secret: String,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    let key = AccessKey {
        id: id.to_owned(),
        secret: Sensitive::new(secret),
        user: ADMIN_USER.to_owned(),
        enabled: true,
        created_at: now,
    };
    store
        .create_access_key(&key, bootstrap_audit("CreateAccessKey", id), now)
        .await
        .with_context(|| format!("storing the administrator access key {id}"))
}

/// The audit record of an administrator bootstrap change made by edasd itself at start-up.
fn bootstrap_audit(action: &str, target: &str) -> edas_store::AuditEntry {
    let resource = if action.ends_with("User") {
        format!("user/{target}")
    } else {
        format!("access_key/{target}")
    };
    edas_store::AuditEntry {
        actor: "edasd".to_owned(),
        action: format!("Admin.{action}"),
        resource,
        app_id: None,
        request_id: None,
        detail: serde_json::json!({"Reason": "administrator key bootstrap at start-up"}),
    }
}

async fn ensure_admin_user(store: &Store, now: jiff::Timestamp) -> anyhow::Result<()> {
    match store.get_user(ADMIN_USER).await {
        Ok(user) if user.admin => Ok(()),
        Ok(_) | Err(StoreError::NotFound { .. }) => store
            .put_user(
                &User {
                    name: ADMIN_USER.to_owned(),
                    admin: true,
                    created_at: now,
                },
                bootstrap_audit("CreateUser", ADMIN_USER),
                now,
            )
            .await
            .context("creating the administrator user"),
        Err(e) => Err(e).context("reading the administrator user"),
    }
}

async fn admin_has_key(store: &Store) -> anyhow::Result<bool> {
    for user in store.list_users().await? {
        if user.admin
            && store
                .list_access_keys(&user.name)
                .await?
                .iter()
                .any(|k| k.enabled)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates the data directory `0700`, or tightens an existing one that its group or others could
/// read (with a warning); answers its absolute path (instances are told paths outside it).
fn private_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            data_dir = %dir.display(),
            mode = format!("{mode:o}"),
            "the data directory was accessible by its group or others; tightened to 0700"
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("tightening {} to 0700", dir.display()))?;
    }
    std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Makes the database and key files in the data directory `0600` (SQLite creates its files
/// with the process umask; its `-wal` and `-shm` files then follow the database's mode).
fn tighten_files(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            let path = entry.path();
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot make the file 0600");
            }
        }
    }
}

/// What no instance may see: the data directory (database, key files, admin key), the TLS key,
/// the configuration file and every kubeconfig edasd may use.
fn hidden_paths(data_dir: &Path, args: &ServeArgs, config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![data_dir.to_path_buf()];
    paths.extend(args.tls_key.iter().cloned());
    paths.extend(args.config.iter().cloned());
    paths.extend(
        config
            .clusters
            .iter()
            .filter_map(|c| c.kubeconfig.as_ref().map(PathBuf::from)),
    );
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        paths.extend(std::env::split_paths(&list));
    }
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(".kube"));
    }
    paths
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect()
}

/// Creates a file readable and writable by its owner only (refusing to overwrite one).
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Registers `local` and the configured clusters in the store (the cluster registry).
async fn register_clusters(store: &Store, config: &Config) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let mut clusters = vec![Cluster {
        id: LOCAL_CLUSTER.to_owned(),
        name: "This machine".to_owned(),
        region_id: config.region_id.clone(),
        cluster_type: "local".to_owned(),
        config: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }];
    for c in &config.clusters {
        clusters.push(Cluster {
            id: c.id.clone(),
            name: c.name.clone().unwrap_or_else(|| c.id.clone()),
            region_id: config.region_id.clone(),
            cluster_type: c.cluster_type.clone(),
            config: serde_json::json!({
                "kubeconfig": c.kubeconfig,
                "context": c.context,
                "in_cluster": c.in_cluster,
                "gateway": c.gateway,
                "status": {"import_status": 3, "cluster_status": 3},
            }),
            created_at: now,
            updated_at: now,
        });
    }
    for cluster in &clusters {
        store
            .put_cluster(cluster)
            .await
            .with_context(|| format!("registering cluster {}", cluster.id))?;
    }
    tracing::info!(
        clusters = %clusters.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(","),
        namespaces = %std::iter::once(config.region_id.as_str()).chain(config.namespaces.iter().map(String::as_str)).collect::<Vec<_>>().join(","),
        "cluster registry and EDAS namespaces"
    );
    Ok(())
}

async fn prune_periodically(store: Arc<Store>, config: Config) {
    let (orders, audit) = config.retention.rules();
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match store.prune(orders, audit, jiff::Timestamp::now()).await {
            Ok(report) => tracing::info!(
                change_orders = report.change_orders,
                audit_records = report.audit_records,
                "retention: pruned"
            ),
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
        }
    }
}
