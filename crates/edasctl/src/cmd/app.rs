//! `edasctl app`: create, list, get, status, scale, restart, stop, start and delete applications
//! (InsertK8sApplication, ListApplication, GetK8sApplication, QueryApplicationStatus and the
//! lifecycle operations, each a change order that `--watch` follows).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use edas_wire::application::{
    ApplicationInfoBody, ApplicationListBody, ChangeOrderIdBody, K8sApplicationBody,
};

use crate::client::{Client, Operation, ops};
use crate::cmd::context::{Global, WatchFlags};
use crate::cmd::params::{ArgsStyle, ParamList, SpecFlags};
use crate::output::{self, table};

/// Applications.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an application (InsertK8sApplication) and its first change order.
    Create(CreateArgs),
    /// List applications (ListApplication).
    List(ListArgs),
    /// Show one application (GetK8sApplication).
    Get(GetArgs),
    /// Show an application's instances, one row each (DescribeAppInstanceList).
    Status(crate::cmd::instances::StatusArgs),
    /// Print an instance's output (edasd's logs API): `-f` follows, `--previous` reads the run
    /// before the last restart.
    Logs(crate::cmd::instances::LogsArgs),
    /// List the application's revisions (ListHistoryDeployVersion).
    History(crate::cmd::instances::HistoryArgs),
    /// Release an earlier revision again (DeployK8sApplication with RollbackToRevision).
    Rollback(crate::cmd::instances::RollbackArgs),
    /// Change the number of instances (ScaleK8sApplication).
    Scale(ScaleArgs),
    /// Restart every instance (RestartK8sApplication).
    Restart(LifecycleArgs),
    /// Stop every instance (StopK8sApplication).
    Stop(LifecycleArgs),
    /// Start a stopped application (StartK8sApplication).
    Start(StartArgs),
    /// Delete an application and its instances (DeleteK8sApplication).
    Delete(DeleteArgs),
    /// The application's release policy: the checks that judge its releases (edasd's admin
    /// API, `/edasd/v1/applications/{app}/policy`).
    #[command(subcommand)]
    Policy(crate::cmd::release_policy::PolicyCommand),
}

/// An application change: `AppId`, `Timeout` and `--watch`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
    /// `Timeout`: seconds the change may take.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `app scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub app: LifecycleArgs,
    /// `Replicas`: the new number of instances.
    #[arg(long)]
    pub replicas: u32,
}

/// `app start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub app: LifecycleArgs,
    /// `Replicas`: instances to start (default: as before the stop).
    #[arg(long)]
    pub replicas: Option<u32>,
}

/// `app delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
    /// `Force`: delete even when instances cannot be stopped cleanly.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// Calls an operation that answers with a `ChangeOrderId` (a change of an application or of
/// its Services), prints it and follows it.
pub(crate) fn change(
    global: &Global,
    client: &Client,
    op: Operation,
    list: ParamList,
    watch: &WatchFlags,
) -> anyhow::Result<ExitCode> {
    let answer = client.call(op, &list.into_pairs())?;
    let change_order = output::body::<ChangeOrderIdBody>(&answer).change_order_id;
    output::print(global.output, &answer, |_| {
        let mut t = table(&["Operation", "ChangeOrderId"]);
        t.add_row(vec![op.action.to_owned(), change_order.clone()]);
        t
    })?;
    crate::cmd::change_order::follow(global, client, &change_order, None, watch)
}

fn lifecycle(client: &Client, a: &LifecycleArgs) -> anyhow::Result<ParamList> {
    let mut list = crate::cmd::instances::app_params(client, &a.app_id)?;
    list.set_opt("Timeout", a.timeout.map(|t| t.to_string()), "--timeout")?;
    Ok(list)
}

/// `app create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// `AppName`.
    pub name: String,
    /// `ClusterId`: `local` runs instances as processes on the server's machine.
    #[arg(long, default_value = "local")]
    pub cluster: String,
    /// `LogicalRegionId`: the EDAS namespace (default: the region's own).
    #[arg(long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub spec: SpecFlags,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `app list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only applications whose name contains this (`AppName`).
    #[arg(long)]
    pub name: Option<String>,
    /// Only applications of this cluster (`ClusterId`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only applications of this namespace (`LogicalRegionId`).
    #[arg(long)]
    pub namespace: Option<String>,
}

/// `app get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
}

/// Runs `edasctl app …`.
pub fn run(global: &Global, command: &AppCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        AppCommand::Create(args) => {
            let mut list = ParamList::default();
            list.set("AppName", args.name.clone(), "NAME")?;
            list.set("ClusterId", args.cluster.clone(), "--cluster")?;
            list.set_opt("LogicalRegionId", args.namespace.clone(), "--namespace")?;
            args.spec.add_to(&mut list, ArgsStyle::CommandArgs)?;
            let answer = client.call(ops::InsertK8sApplication, &list.into_pairs())?;
            let info = output::body::<ApplicationInfoBody>(&answer).application_info;
            output::print(global.output, &answer, |_| output::fields_table(&info))?;
            crate::cmd::change_order::follow(
                global,
                &client,
                &info.change_order_id,
                None,
                &args.watch,
            )
        }
        AppCommand::List(args) => {
            let mut list = ParamList::default();
            list.set_opt("AppName", args.name.clone(), "--name")?;
            list.set_opt("ClusterId", args.cluster.clone(), "--cluster")?;
            list.set_opt("LogicalRegionId", args.namespace.clone(), "--namespace")?;
            let answer = client.call(ops::ListApplication, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&[
                    "AppId",
                    "Name",
                    "Cluster",
                    "Namespace",
                    "Instances",
                    "State",
                ]);
                let list = output::body::<ApplicationListBody>(a).application_list;
                for app in list.application {
                    t.add_row([
                        app.app_id,
                        app.name,
                        app.cluster_id,
                        app.namespace_id,
                        app.instances.to_string(),
                        app.state,
                    ]);
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Policy(command) => crate::cmd::release_policy::run(global, &client, command),
        AppCommand::Status(args) => crate::cmd::instances::status(global, &client, args),
        AppCommand::Logs(args) => crate::cmd::instances::logs(&client, args),
        AppCommand::History(args) => crate::cmd::instances::history(global, &client, args),
        AppCommand::Rollback(args) => crate::cmd::instances::rollback(global, &client, args),
        AppCommand::Scale(args) => {
            let mut list = lifecycle(&client, &args.app)?;
            list.set("Replicas", args.replicas.to_string(), "--replicas")?;
            change(
                global,
                &client,
                ops::ScaleK8sApplication,
                list,
                &args.app.watch,
            )
        }
        AppCommand::Restart(args) => change(
            global,
            &client,
            ops::RestartK8sApplication,
            lifecycle(&client, args)?,
            &args.watch,
        ),
        AppCommand::Stop(args) => change(
            global,
            &client,
            ops::StopK8sApplication,
            lifecycle(&client, args)?,
            &args.watch,
        ),
        AppCommand::Start(args) => {
            let mut list = lifecycle(&client, &args.app)?;
            list.set_opt(
                "Replicas",
                args.replicas.map(|r| r.to_string()),
                "--replicas",
            )?;
            change(
                global,
                &client,
                ops::StartK8sApplication,
                list,
                &args.app.watch,
            )
        }
        AppCommand::Delete(args) => {
            let mut list = crate::cmd::instances::app_params(&client, &args.app_id)?;
            if args.force {
                list.set("Force", "true".to_owned(), "--force")?;
            }
            change(
                global,
                &client,
                ops::DeleteK8sApplication,
                list,
                &args.watch,
            )
        }
        AppCommand::Get(args) => {
            let answer = client.call(
                ops::GetK8sApplication,
                &[(
                    "AppId".to_owned(),
                    crate::cmd::instances::resolve_app(&client, &args.app_id)?,
                )],
            )?;
            output::print(global.output, &answer, |a| {
                output::summary_table(&output::body::<K8sApplicationBody>(a).applcation)
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
