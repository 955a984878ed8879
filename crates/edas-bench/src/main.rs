//! `edas-bench`: benchmarks that print figures (run by hand, never in CI; the figures live in
//! BENCHMARKS.md). Each states what it measures and prints a floor measured in the same run.
//!
//! - `api`: signed DeployK8sApplication requests/s and latency against the real edasd
//!   ([`api`]); floor: a bare HTTP handler doing one durable SQLite write.
//! - `release-overhead`: engine time between batches and its share of a release's wall time
//!   on the local runtime with real instances ([`release`]); floor: the same batch sequence
//!   driven directly on the local runtime.
//! - `scale`: memory, CPU, start-up and resume time of the engine holding many applications
//!   and in-flight change orders ([`scale`]).
//! - `push-latency`: how soon the push stream (`GET /edasd/v1/events`) shows a batch started
//!   by ContinuePipeline, and a GetChangeOrderInfo after it ([`push`]); floor: one
//!   GetChangeOrderInfo round trip.
//!
//! `edas-bench batch-gap`: the engine's overhead between batches. A BatchUpdate release with
//! many single-instance batches, no wait between batches and no ready window, on a real SQLite
//! store (WAL, group commit) with the fake runtime (instances ready after a fixed delay).
//! The gap is measured from the runtime's own log: from the call that stops batch N's old
//! instance (the last thing batch N does) to the call that starts batch N+1's new instance. It
//! contains the runtime event, the observation, the state-machine steps and their durable
//! writes. The floor is one durable change-order transition on the same store.

mod api;
mod batch_gap;
mod kube_release;
mod push;
mod release;
mod scale;
mod server;
mod stats;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of edasd that print figures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time from "batch N done" to "batch N+1 started" (no wait configured), fake runtime.
    BatchGap {
        /// Batches in the release (one instance each).
        #[arg(long, default_value_t = 50)]
        batches: u32,
        /// Releases to run.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Signed DeployK8sApplication requests/s and latency against the real edasd, next to a
    /// bare HTTP handler doing one durable SQLite write.
    Api {
        /// Concurrency levels (clients).
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        clients: Vec<usize>,
        /// Seconds per level and server.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Applications each client deploys to in turn.
        #[arg(long, default_value_t = 32)]
        apps_per_client: usize,
        /// Untouched applications for the "fresh" runs (each deployed at most once).
        #[arg(long, default_value_t = 20_000)]
        fresh_pool: usize,
        /// The edasd binary (default: next to this one).
        #[arg(long)]
        edasd: Option<PathBuf>,
        /// Keep edasd's state in this PostgreSQL database (an empty one: edasd refuses a
        /// database another data directory's key sealed) instead of SQLite. The floor stays
        /// SQLite's; the per-deploy breakdown is skipped (its edasd would need a second one).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Engine overhead between batches and as a share of release wall time, real instances.
    ReleaseOverhead {
        /// `local` (real edasd, real processes of edas-testapp) or `fake-kube` (real edasd, the
        /// fake Kubernetes API server in this process).
        #[arg(long, default_value = "local")]
        runtime: String,
        /// Instances (one per batch).
        #[arg(long, default_value_t = 10)]
        replicas: u32,
        /// Releases to run.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Give the instances a readiness probe (every second) instead of none.
        #[arg(long)]
        probe: bool,
        /// fake-kube: milliseconds from a pod's start to Ready.
        #[arg(long, default_value_t = 100)]
        pod_ready_ms: u64,
        /// The edasd binary (default: next to this one).
        #[arg(long)]
        edasd: Option<PathBuf>,
        /// The edas-testapp binary (default: next to this one).
        #[arg(long)]
        testapp: Option<PathBuf>,
    },
    /// How soon the push stream shows a batch started by ContinuePipeline (real edasd, local
    /// runtime, real processes of edas-testapp), and a GetChangeOrderInfo after the event.
    PushLatency {
        /// Batches of each manual release (one instance each): batches − 1 ContinuePipeline
        /// calls per release.
        #[arg(long, default_value_t = 6)]
        batches: u32,
        /// Releases to run.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// The edasd binary (default: next to this one).
        #[arg(long)]
        edasd: Option<PathBuf>,
        /// The edas-testapp binary (default: next to this one).
        #[arg(long)]
        testapp: Option<PathBuf>,
    },
    /// Memory, CPU, start-up and resume time of the engine holding many applications with
    /// change orders in flight (engine in-process on the fake runtime, real SQLite store).
    Scale {
        /// Applications.
        #[arg(long, default_value_t = 10_000)]
        apps: u32,
        /// Of which with a change order in flight (waiting between batches).
        #[arg(long, default_value_t = 1_000)]
        in_flight: u32,
        /// Seconds to watch the idle process for its CPU use.
        #[arg(long, default_value_t = 30)]
        idle_seconds: u64,
    },
    /// (internal) The floor server of `api`.
    #[command(hide = true)]
    FloorServer {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// (internal) The measured process of `scale`.
    #[command(hide = true)]
    ScaleLoad {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        in_flight: u32,
        #[arg(long)]
        idle_seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match cli.command {
        Command::BatchGap { batches, runs } => rt.block_on(batch_gap::batch_gap(batches, runs)),
        Command::Api {
            clients,
            seconds,
            apps_per_client,
            fresh_pool,
            edasd,
            database_url,
        } => rt.block_on(api::api(
            edasd.unwrap_or_else(server::sibling_edasd),
            clients,
            seconds,
            apps_per_client,
            fresh_pool,
            database_url,
        )),
        Command::ReleaseOverhead {
            runtime,
            replicas,
            runs,
            probe,
            pod_ready_ms,
            edasd,
            testapp,
        } => rt.block_on(release::release_overhead(
            &runtime,
            replicas,
            runs,
            probe,
            std::time::Duration::from_millis(pod_ready_ms),
            edasd.unwrap_or_else(server::sibling_edasd),
            testapp.unwrap_or_else(|| server::sibling("edas-testapp")),
        )),
        Command::PushLatency {
            batches,
            runs,
            edasd,
            testapp,
        } => rt.block_on(push::push_latency(
            batches,
            runs,
            edasd.unwrap_or_else(server::sibling_edasd),
            testapp.unwrap_or_else(|| server::sibling("edas-testapp")),
        )),
        Command::Scale {
            apps,
            in_flight,
            idle_seconds,
        } => rt.block_on(scale::scale(apps, in_flight, idle_seconds)),
        Command::FloorServer { data_dir } => rt.block_on(server::floor_server(data_dir)),
        Command::ScaleLoad {
            data_dir,
            in_flight,
            idle_seconds,
        } => rt.block_on(scale::scale_load(data_dir, in_flight, idle_seconds)),
    }
}
