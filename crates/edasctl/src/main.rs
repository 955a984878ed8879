//! `edasctl`: the edasd command-line tool. It speaks the signed EDAS API (and edasd's admin
//! API) like any SDK; one module per command group under `cmd`.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod client;
mod cmd;
mod edas_error;
mod output;
mod profile;
mod push;
mod watch;

use cmd::context::Global;

/// The edasd command-line tool.
///
/// Credentials: --endpoint / EDAS_ENDPOINT, ALIBABA_CLOUD_ACCESS_KEY_ID and
/// ALIBABA_CLOUD_ACCESS_KEY_SECRET, else the profile (--profile) of ~/.aliyun/config.json
/// (the aliyun CLI's file; `edasctl configure` writes one). Errors print the EDAS code and
/// the RequestId and exit 1; a watched change order exits 0 on success, 1 failed,
/// 3 terminated.
#[derive(Debug, Parser)]
#[command(
    name = "edasctl",
    version,
    about,
    verbatim_doc_comment,
    after_help = "Examples:\n  edasctl configure --endpoint http://127.0.0.1:8080 --access-key-id ID --access-key-secret SECRET\n  edasctl app create hello --cluster local --command \"$(command -v edas-testapp)\" --replicas 3 --watch\n  edasctl deploy hello --env APP_VERSION=v2 --gray 1 --batches 2 --manual --watch\n  edasctl app status hello; edasctl app logs hello -f; edasctl app history hello\n  edasctl change-order list hello -o json\nApplications are named by id or by name."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a profile (endpoint, access key, region).
    Configure(cmd::configure::ConfigureArgs),
    /// Applications: create, list, get, status, scale, restart, stop, start, delete.
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// Release a new revision of an application (DeployK8sApplication).
    Deploy(Box<cmd::deploy::DeployArgs>),
    /// Services of an application: list, create, update, delete.
    #[command(subcommand)]
    Service(cmd::service::ServiceCommand),
    /// Change orders: list, get, watch, continue, abort, rollback, retry.
    #[command(subcommand)]
    ChangeOrder(cmd::change_order::ChangeOrderCommand),
    /// Clusters and their Kubernetes namespaces.
    #[command(subcommand)]
    Cluster(cmd::configuration::ClusterCommand),
    /// ConfigMaps: list, create, update, delete.
    #[command(subcommand)]
    ConfigMap(cmd::configuration::ConfigCommand),
    /// Secrets: list, create, update, delete.
    #[command(subcommand)]
    Secret(cmd::configuration::ConfigCommand),
    /// Print offline the Kubernetes objects of an application.
    Render(cmd::render::RenderArgs),
    /// Users of edasd (administrators only).
    #[command(subcommand)]
    User(cmd::admin::UserCommand),
    /// Access keys of edasd users (administrators only).
    #[command(subcommand)]
    AccessKey(cmd::admin::AccessKeyCommand),
    /// RAM policies of edasd (administrators only).
    #[command(subcommand)]
    Policy(cmd::admin::PolicyCommand),
    /// The audit trail (edasd's own API: administrators, or readers of one application).
    Audit(cmd::admin::AuditArgs),
    /// Release notifications: subscribe webhooks, Slack, DingTalk (administrators only).
    #[command(subcommand)]
    Notify(cmd::notify::NotifyCommand),
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    let result = match &cli.command {
        Command::Configure(args) => cmd::configure::run(g, args),
        Command::App(c) => cmd::app::run(g, c),
        Command::Deploy(args) => cmd::deploy::run(g, args),
        Command::Service(c) => cmd::service::run(g, c),
        Command::ChangeOrder(c) => cmd::change_order::run(g, c),
        Command::Cluster(c) => cmd::configuration::cluster(g, c),
        Command::ConfigMap(c) => cmd::configuration::run(g, cmd::configuration::Kind::ConfigMap, c),
        Command::Secret(c) => cmd::configuration::run(g, cmd::configuration::Kind::Secret, c),
        Command::Render(args) => cmd::render::run(args),
        Command::User(c) => cmd::admin::user(g, c),
        Command::AccessKey(c) => cmd::admin::access_key(g, c),
        Command::Policy(c) => cmd::admin::policy(g, c),
        Command::Audit(args) => cmd::admin::audit(g, args),
        Command::Notify(c) => cmd::notify::notify(g, c),
        Command::Completion { shell } => completion(*shell),
    };
    match result {
        Ok(code) => code,
        // `edasctl … | head`: the reader is gone, which is how such a pipeline ends, not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edasctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the completion script (built first: clap's own writer panics on a closed pipe).
fn completion(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "edasctl", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether writing the output failed because its reader went away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
