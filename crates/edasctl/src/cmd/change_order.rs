//! `edasctl change-order`: list, get, watch, continue, abort, rollback and retry change orders.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use edas_wire::envelope::Success;
use edas_wire::{ChangeOrderDataBody, ChangeOrderInfo, ChangeOrderInfoBody, ChangeOrderListBody};
use serde_json::Value;

use crate::client::{Client, Operation, ops};
use crate::cmd::context::{Global, WatchFlags};
use crate::output::{self, Format, cell, table};
use crate::watch::{self, Sink, status};

/// Change orders.
#[derive(Debug, Subcommand)]
pub enum ChangeOrderCommand {
    /// The recent change orders of an application (ListRecentChangeOrder).
    List(ListArgs),
    /// One change order with its batches (GetChangeOrderInfo).
    Get(IdArgs),
    /// Follow a change order until it ends, one progress bar per batch (polls GetChangeOrderInfo).
    Watch(WatchArgs),
    /// Start the batch waiting for confirmation (ContinuePipeline).
    Continue(ContinueArgs),
    /// Continue the batch waiting for confirmation; with --full every remaining batch as it
    /// comes to wait, so the release runs to its end without further confirmation.
    Promote(PromoteArgs),
    /// Stop a change order (AbortChangeOrder).
    Abort(ActArgs),
    /// Stop a change order and roll the application back (AbortAndRollbackChangeOrder; with
    /// `--using rollback`, RollbackChangeOrder).
    Rollback(RollbackArgs),
    /// Retry the failed task of a change order (RetryChangeOrderTask).
    Retry(RetryArgs),
}

/// `change-order list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
}

/// A change order id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// `ChangeOrderId`.
    pub change_order_id: String,
}

/// `change-order watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// `ChangeOrderId`.
    pub change_order_id: String,
    /// Minutes an automatic release waits between batches, to show the time left.
    #[arg(long, value_name = "MINUTES")]
    pub batch_wait: Option<u32>,
    /// Seconds between two polls.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub interval: u64,
    /// Stop watching after this many seconds (exit 4 while the change order still runs).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// A change order id and `--watch`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// `ChangeOrderId`.
    pub change_order_id: String,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `change-order continue`.
#[derive(Debug, Args)]
pub struct ContinueArgs {
    /// `ChangeOrderId`: its batch waiting for confirmation is started.
    pub change_order_id: String,
    /// The `PipelineId` to confirm, instead of looking up the waiting batch.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// While a batch still runs, wait until the next one waits for confirmation (polling every
    /// --interval seconds), then continue it.
    #[arg(long, conflicts_with = "pipeline")]
    pub wait: bool,
    /// Move on past the release analysis without its verdict (edasd's `SkipAnalysis=true`):
    /// needs the RAM action `edas:SkipReleaseAnalysis` on the application, and is audited.
    #[arg(long)]
    pub skip_analysis: bool,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `change-order promote`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edasctl change-order promote CO            # the waiting batch\n  edasctl change-order promote CO --full     # every remaining batch, as each comes to wait"
)]
pub struct PromoteArgs {
    /// `ChangeOrderId`.
    pub change_order_id: String,
    /// Every remaining batch, not only the next one.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// Which rollback operation to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollbackOperation {
    /// AbortAndRollbackChangeOrder (applications on Kubernetes clusters).
    AbortAndRollback,
    /// RollbackChangeOrder.
    Rollback,
}

/// `change-order rollback`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edasctl change-order rollback CO --watch   # stops a running release and rolls it back, or rolls a finished one back\n  edasctl app rollback APP --to-revision 2     # any earlier revision (see edasctl app history APP)"
)]
pub struct RollbackArgs {
    /// `ChangeOrderId`.
    pub change_order_id: String,
    /// The operation to call (default: AbortAndRollbackChangeOrder while the order runs,
    /// RollbackChangeOrder once it ended).
    #[arg(long = "using", value_enum)]
    pub operation: Option<RollbackOperation>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `change-order retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// `ChangeOrderId`: its failed task is retried.
    pub change_order_id: String,
    /// The `TaskId` to retry, instead of looking up the failed task.
    #[arg(long)]
    pub task: Option<String>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

fn id_param(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_owned(), value.to_owned())]
}

fn info_answer(client: &Client, id: &str) -> anyhow::Result<Value> {
    Ok(client.call(ops::GetChangeOrderInfo, &id_param("ChangeOrderId", id))?)
}

fn info(client: &Client, id: &str) -> anyhow::Result<ChangeOrderInfo> {
    let answer = info_answer(client, id)?;
    Ok(output::body::<ChangeOrderInfoBody>(&answer).change_order_info)
}

/// The batch waiting to start (status 8 or 9).
pub fn waiting_pipeline(info: &ChangeOrderInfo) -> Option<String> {
    info.pipeline_info_list
        .pipeline_info
        .iter()
        .find(|p| {
            matches!(
                p.pipeline_status,
                status::WAITING_CONFIRMATION | status::WAITING_NEXT_BATCH
            )
        })
        .map(|p| p.pipeline_id.clone())
}

/// The batch in progress whose release analysis runs (its analysis stage is in progress).
fn judged_pipeline(info: &ChangeOrderInfo) -> Option<String> {
    info.pipeline_info_list
        .pipeline_info
        .iter()
        .find(|p| {
            p.stage_detail_list.stage_detail_dto.iter().any(|s| {
                s.stage_name == "Release analysis" && s.stage_status == status::IN_PROGRESS
            })
        })
        .map(|p| p.pipeline_id.clone())
}

/// The failed task to retry.
pub fn failed_task(info: &ChangeOrderInfo) -> Option<String> {
    info.pipeline_info_list
        .pipeline_info
        .iter()
        .flat_map(|p| &p.stage_detail_list.stage_detail_dto)
        .flat_map(|s| &s.task_list.task_info_dto)
        .find(|t| {
            matches!(
                t.status_code(),
                Some(status::FAILED | status::SYSTEM_FAILURE)
            )
        })
        .map(|t| t.task_id.clone())
}

/// The live view's sink for an output format.
pub fn sink(format: Format) -> Sink {
    match format {
        Format::Table => Sink::Stdout,
        Format::Json | Format::Yaml | Format::JsonPath(_) => Sink::Stderr,
    }
}

/// After a command that started or changed `change_order`: watch it when asked.
pub fn follow(
    global: &Global,
    client: &Client,
    change_order: &str,
    batch_wait: Option<u32>,
    flags: &WatchFlags,
) -> anyhow::Result<ExitCode> {
    if !flags.watch {
        return Ok(ExitCode::SUCCESS);
    }
    if change_order.is_empty() {
        bail!("the server answered without a ChangeOrderId to watch");
    }
    let (outcome, _) = watch::run(
        client,
        change_order,
        batch_wait,
        flags.interval(),
        flags.watch_timeout.map(std::time::Duration::from_secs),
        sink(global.output),
    )?;
    Ok(ExitCode::from(outcome.exit_code()))
}

fn act(
    global: &Global,
    client: &Client,
    op: Operation,
    params: Vec<(String, String)>,
    change_order: &str,
    flags: &WatchFlags,
) -> anyhow::Result<ExitCode> {
    let answer = client.call(op, &params)?;
    // The rollback operations answer with the change order they started.
    let started = output::body::<ChangeOrderDataBody>(&answer)
        .data
        .change_order_id;
    let followed = if started.is_empty() {
        change_order.to_owned()
    } else {
        started
    };
    output::print(global.output, &answer, |a| {
        let mut t = table(&["Operation", "ChangeOrderId", "RequestId"]);
        t.add_row(vec![
            op.action.to_owned(),
            followed.clone(),
            output::body::<Success>(a).request_id,
        ]);
        // An abort says where the traffic went and what stays.
        let traffic = output::body::<ChangeOrderDataBody>(a).data.traffic;
        if !traffic.is_empty() {
            t.add_row(vec!["Traffic".to_owned(), traffic, String::new()]);
        }
        t
    })?;
    follow(global, client, &followed, None, flags)
}

/// The batch of `args`' change order waiting for confirmation; with `--wait`, once one waits.
fn waiting_batch(client: &Client, args: &ContinueArgs) -> anyhow::Result<String> {
    loop {
        let order = info(client, &args.change_order_id)?;
        if let Some(p) = waiting_pipeline(&order) {
            return Ok(p);
        }
        let status = order.head.status;
        let active = matches!(status, 0 | 1 | 8 | 9);
        if !active {
            bail!(
                "change order {} has ended ({}): no batch waiting to start, nor will one",
                args.change_order_id,
                status::name(status)
            );
        }
        if !args.wait {
            bail!(
                "change order {} has no batch waiting to start ({}); add --wait to continue the next batch once it waits",
                args.change_order_id,
                status::name(status)
            );
        }
        std::thread::sleep(args.watch.interval());
    }
}

/// Runs `edasctl change-order …`.
pub fn run(global: &Global, command: &ChangeOrderCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        ChangeOrderCommand::List(args) => {
            let answer = client.call(
                ops::ListRecentChangeOrder,
                &id_param(
                    "AppId",
                    &crate::cmd::instances::resolve_app(&client, &args.app_id)?,
                ),
            )?;
            output::print(global.output, &answer, |a| {
                let keys = [
                    "ChangeOrderId",
                    "CoType",
                    "Status",
                    "BatchCount",
                    "BatchType",
                    "CreateTime",
                    "CreateUserId",
                ];
                let mut t = table(&keys);
                let list = output::body::<ChangeOrderListBody>(a);
                for co in list.change_order_list.change_order {
                    let co = co.head;
                    t.add_row([
                        co.change_order_id,
                        co.co_type,
                        format!("{} ({})", status::name(co.status), co.status),
                        co.batch_count.to_string(),
                        co.batch_type,
                        co.create_time,
                        co.create_user_id,
                    ]);
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ChangeOrderCommand::Get(args) => {
            let answer = info_answer(&client, &args.change_order_id)?;
            output::print(global.output, &answer, |a| {
                // The change order's own fields, then one row per batch.
                let mut t = output::table(&["Field", "Value"]);
                let info = output::body::<ChangeOrderInfoBody>(a).change_order_info;
                if let Ok(Value::Object(m)) = serde_json::to_value(&info) {
                    for (k, v) in m.iter().filter(|(_, v)| !v.is_object() && !v.is_array()) {
                        let text = match (k.as_str(), v.as_i64()) {
                            ("Status", Some(code)) => format!("{} ({code})", status::name(code)),
                            // Epoch milliseconds (as text on the wire) read as times.
                            ("CreateTime" | "FinishTime", _) => match cell(v).parse::<i64>() {
                                Ok(ms) => crate::cmd::instances::human_time(ms),
                                Err(_) => cell(v),
                            },
                            _ => cell(v),
                        };
                        t.add_row(vec![k.clone(), text]);
                    }
                }
                if let Ok(view) = watch::view(a, watch::Context::default()) {
                    for b in &view.batches {
                        t.add_row(vec![
                            b.name.clone(),
                            format!(
                                "{}/{} ready, {} (PipelineId {})",
                                b.ready, b.total, b.state, b.id
                            ),
                        ]);
                    }
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ChangeOrderCommand::Watch(args) => {
            let (outcome, last) = watch::run(
                &client,
                &args.change_order_id,
                args.batch_wait,
                std::time::Duration::from_secs(args.interval),
                args.timeout.map(std::time::Duration::from_secs),
                sink(global.output),
            )?;
            if global.output != Format::Table {
                output::print(global.output, &last, |_| output::table(&[]))?;
            }
            Ok(ExitCode::from(outcome.exit_code()))
        }
        ChangeOrderCommand::Continue(args) => {
            let pipeline = match &args.pipeline {
                Some(p) => p.clone(),
                // The batch being judged is in progress, not waiting: skip that one.
                None if args.skip_analysis => {
                    let order = info(&client, &args.change_order_id)?;
                    match waiting_pipeline(&order).or_else(|| judged_pipeline(&order)) {
                        Some(p) => p,
                        None => bail!(
                            "change order {} has no batch waiting for its release analysis",
                            args.change_order_id
                        ),
                    }
                }
                None => waiting_batch(&client, args)?,
            };
            let mut params = vec![
                ("PipelineId".to_owned(), pipeline),
                ("Confirm".to_owned(), "true".to_owned()),
            ];
            if args.skip_analysis {
                params.push(("SkipAnalysis".to_owned(), "true".to_owned()));
            }
            act(
                global,
                &client,
                ops::ContinuePipeline,
                params,
                &args.change_order_id,
                &args.watch,
            )
        }
        ChangeOrderCommand::Promote(args) => {
            let next = ContinueArgs {
                change_order_id: args.change_order_id.clone(),
                pipeline: None,
                wait: args.full,
                skip_analysis: false,
                watch: args.watch.clone(),
            };
            loop {
                let pipeline = match waiting_batch(&client, &next) {
                    Ok(p) => p,
                    // With --full, the order ending (after the last confirmation, or with no
                    // batch left to confirm) is the end; its outcome is reported below.
                    Err(_) if args.full => break,
                    Err(e) => return Err(e),
                };
                client.call(
                    ops::ContinuePipeline,
                    &[
                        ("PipelineId".to_owned(), pipeline.clone()),
                        ("Confirm".to_owned(), "true".to_owned()),
                    ],
                )?;
                eprintln!("continued batch {pipeline}");
                if !args.full {
                    break;
                }
            }
            if args.full && !args.watch.watch {
                let order = info(&client, &args.change_order_id)?;
                println!(
                    "change order {}: {}",
                    args.change_order_id,
                    status::name(order.head.status)
                );
                return Ok(ExitCode::from(match order.head.status {
                    2 => 0,
                    6 => watch::EXIT_TERMINATED,
                    _ => watch::EXIT_FAILED,
                }));
            }
            follow(global, &client, &args.change_order_id, None, &args.watch)
        }
        ChangeOrderCommand::Abort(args) => act(
            global,
            &client,
            ops::AbortChangeOrder,
            id_param("ChangeOrderId", &args.change_order_id),
            &args.change_order_id,
            &args.watch,
        ),
        ChangeOrderCommand::Rollback(args) => {
            let operation = match args.operation {
                Some(o) => o,
                None => {
                    let order = info(&client, &args.change_order_id)?;
                    if !order.support_rollback {
                        anyhow::bail!(
                            "change order {} cannot be rolled back (it has no revision before it, or was rolled back already); to go back to any revision: edasctl app history {app}, then edasctl app rollback {app} --to-revision N",
                            args.change_order_id,
                            app = order.head.app_id
                        );
                    }
                    // Active (0 ready, 1 running, 8/9 waiting): stop it and roll back.
                    if matches!(order.head.status, 0 | 1 | 8 | 9) {
                        RollbackOperation::AbortAndRollback
                    } else {
                        RollbackOperation::Rollback
                    }
                }
            };
            let op = match operation {
                RollbackOperation::AbortAndRollback => ops::AbortAndRollbackChangeOrder,
                RollbackOperation::Rollback => ops::RollbackChangeOrder,
            };
            act(
                global,
                &client,
                op,
                id_param("ChangeOrderId", &args.change_order_id),
                &args.change_order_id,
                &args.watch,
            )
        }
        ChangeOrderCommand::Retry(args) => {
            let task = match &args.task {
                Some(t) => t.clone(),
                None => failed_task(&info(&client, &args.change_order_id)?).ok_or_else(|| {
                    anyhow::anyhow!("change order {} has no failed task", args.change_order_id)
                })?,
            };
            let params = vec![
                ("TaskId".to_owned(), task),
                ("RetryStatus".to_owned(), "true".to_owned()),
            ];
            act(
                global,
                &client,
                ops::RetryChangeOrderTask,
                params,
                &args.change_order_id,
                &args.watch,
            )
        }
    }
}
