//! `edas-fake-kube`: serves the fake Kubernetes API on 127.0.0.1 for black-box tests.
//!
//! Prints `listening on http://127.0.0.1:PORT` on stdout once it accepts connections, optionally
//! writes a kubeconfig, and runs until SIGINT/SIGTERM. Faults are injected over HTTP under
//! `/_fake/` (see the library's `server` module).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use edas_fake_kube::{Config, FakeCluster};

/// A fake Kubernetes API server with a simulated Deployment controller (test tooling).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free port). The server never listens on another address.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Milliseconds a started pod takes to become Ready.
    #[arg(long, default_value_t = 300)]
    pod_ready_delay_ms: u64,
    /// Serve Gateway API HTTPRoutes (gateway.networking.k8s.io/v1).
    #[arg(long)]
    gateway_api: bool,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    watch_history: u64,
    /// Milliseconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    bookmark_interval_ms: u64,
    /// Write a kubeconfig pointing at the server to this file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Default namespace of the written kubeconfig's context.
    #[arg(long, default_value = "default")]
    namespace: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDAS_FAKE_KUBE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        port: args.port,
        pod_ready_delay: Duration::from_millis(args.pod_ready_delay_ms),
        gateway_api: args.gateway_api,
        watch_history: usize::try_from(args.watch_history)
            .context("--watch-history is too large")?,
        bookmark_interval: Duration::from_millis(args.bookmark_interval_ms),
    };
    let cluster = FakeCluster::start(config)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    if let Some(path) = &args.kubeconfig {
        cluster
            .write_kubeconfig(path, &args.namespace)
            .with_context(|| format!("writing the kubeconfig to {}", path.display()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", cluster.base_url())?;
    stdout.flush()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    drop(cluster);
    Ok(())
}
