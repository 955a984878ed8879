//! `edasctl app status|logs|history|rollback`: an application's instances one row each
//! (DescribeAppInstanceList), an instance's output (edasd's signed `GET /edasd/v1/logs`), its
//! revisions (ListHistoryDeployVersion) and a rollback to one of them (DeployK8sApplication
//! with `RollbackToRevision`, batched like any release). Applications are named by id or by
//! name ([`resolve_app`]).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use edas_wire::application::ApplicationListBody;
use edas_wire::instances::{HistoryBody, InstanceListBody};

use crate::client::{Client, ops};
use crate::cmd::context::{Global, WatchFlags};
use crate::cmd::params::ParamList;
use crate::output::{self, table};

/// Whether `text` has the shape of an application id (a UUID).
fn looks_like_id(text: &str) -> bool {
    text.len() == 36
        && text.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The parameters of a call about application `app` (an id or a name, see [`resolve_app`]):
/// its `AppId`, more to be added.
pub fn app_params(client: &Client, app: &str) -> anyhow::Result<ParamList> {
    let mut list = ParamList::default();
    list.set("AppId", resolve_app(client, app)?, "APP")?;
    Ok(list)
}

/// The `AppId` of `app`: an id as given, or the one application with that exact name
/// (ListApplication); refused when no application or several have it.
pub fn resolve_app(client: &Client, app: &str) -> anyhow::Result<String> {
    if looks_like_id(app) {
        return Ok(app.to_owned());
    }
    let answer = client.call(
        ops::ListApplication,
        &[("AppName".to_owned(), app.to_owned())],
    )?;
    let list = output::body::<ApplicationListBody>(&answer).application_list;
    let matching: Vec<_> = list
        .application
        .into_iter()
        .filter(|a| a.name == app)
        .collect();
    match matching.as_slice() {
        [] => bail!("no application is named `{app}` (and it is not an application id)"),
        [one] => Ok(one.app_id.clone()),
        several => bail!(
            "`{app}` names {} applications (in namespaces {}); give the AppId: {}",
            several.len(),
            several
                .iter()
                .map(|a| a.namespace_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            several
                .iter()
                .map(|a| a.app_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Epoch milliseconds as `2026-12-06 07:35:12 UTC (3m ago)`.
pub fn human_time(ms: i64) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    if ms <= 0 {
        return String::new();
    }
    let ago = jiff::Timestamp::now().as_second() - at.as_second();
    let age = match ago {
        s if s < 0 => "in the future".to_owned(),
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    };
    format!("{} UTC ({age})", at.strftime("%Y-%m-%d %H:%M:%S"))
}

/// `app status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The application: its id or its name.
    pub app: String,
}

/// `app status`: one row per instance.
pub fn status(global: &Global, client: &Client, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let app_id = resolve_app(client, &args.app)?;
    let answer = client.call(
        ops::DescribeAppInstanceList,
        &[("AppId".to_owned(), app_id)],
    )?;
    output::print(global.output, &answer, |a| {
        let mut t = table(&[
            "Instance",
            "Revision",
            "Version",
            "Ready",
            "Restarts",
            "Last exit",
            "Address",
            "State",
        ]);
        for i in output::body::<InstanceListBody>(a).instance_list {
            let address = match (i.ip.as_str(), i.port) {
                ("", _) => String::new(),
                (ip, 0) => ip.to_owned(),
                (ip, port) => format!("{ip}:{port}"),
            };
            let state = if !i.failed.is_empty() {
                format!("failed: {}", i.failed)
            } else if i.ready {
                "running".to_owned()
            } else if i.restarts > 0 && !i.last_exit_reason.is_empty() {
                "restarting".to_owned()
            } else {
                "starting".to_owned()
            };
            t.add_row(vec![
                i.instance_name,
                i.revision,
                i.version,
                if i.ready { "yes" } else { "no" }.to_owned(),
                i.restarts.to_string(),
                i.last_exit_reason,
                address,
                state,
            ]);
        }
        t
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `app logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edasctl app logs hello                     # the first instance's output\n  edasctl app logs hello hello-1-7f2c -f     # follow one instance\n  edasctl app logs hello --previous --tail 50  # the run before its last restart"
)]
pub struct LogsArgs {
    /// The application: its id or its name.
    pub app: String,
    /// The instance (see `app status`); default: the application's first instance.
    pub instance: Option<String>,
    /// Keep printing what the instance writes until its run ends (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// The run before the last restart (the last terminated run).
    #[arg(short, long)]
    pub previous: bool,
    /// Only the last N lines (of stdout and of stderr on `local`).
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only what was written in the last SECONDS.
    #[arg(long, value_name = "SECONDS")]
    pub since: Option<u64>,
}

/// `app logs`: streams the output to stdout.
pub fn logs(client: &Client, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let app_id = resolve_app(client, &args.app)?;
    let instance = match &args.instance {
        Some(i) => i.clone(),
        None => {
            let answer = client.call(
                ops::DescribeAppInstanceList,
                &[("AppId".to_owned(), app_id.clone())],
            )?;
            let list = output::body::<InstanceListBody>(&answer).instance_list;
            let Some(first) = list.first() else {
                bail!("application `{}` has no instances", args.app);
            };
            if list.len() > 1 {
                eprintln!(
                    "{} instances, showing {} (name another: edasctl app logs {} INSTANCE)",
                    list.len(),
                    first.instance_name,
                    args.app
                );
            }
            first.instance_name.clone()
        }
    };
    let mut query = vec![
        ("AppId".to_owned(), app_id),
        ("InstanceName".to_owned(), instance),
    ];
    let flags = [
        ("Follow", args.follow.then(|| "true".to_owned())),
        ("Previous", args.previous.then(|| "true".to_owned())),
        ("TailLines", args.tail.map(|n| n.to_string())),
        ("SinceSeconds", args.since.map(|n| n.to_string())),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            query.push((name.to_owned(), v));
        }
    }
    let mut response = client.stream("logs", &query)?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut response, &mut buf).context("the output stream broke")?;
        if n == 0 {
            break;
        }
        match out.write_all(&buf[..n]).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e).context("cannot write to standard output"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `app history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The application: its id or its name.
    pub app: String,
}

/// `app history`: every revision, newest first.
pub fn history(global: &Global, client: &Client, args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let app_id = resolve_app(client, &args.app)?;
    let answer = client.call(
        ops::ListHistoryDeployVersion,
        &[("AppId".to_owned(), app_id)],
    )?;
    output::print(global.output, &answer, |a| {
        let mut t = table(&[
            "Revision",
            "Version",
            "Change",
            "Who",
            "When",
            "ChangeOrder",
            "Outcome",
        ]);
        let list = output::body::<HistoryBody>(a).package_version_list;
        for v in list.package_version {
            let revision = if v.current {
                format!("{} (current)", v.id)
            } else {
                v.id
            };
            t.add_row(vec![
                revision,
                v.package_version,
                v.description,
                v.creator,
                human_time(v.create_time),
                v.change_order_id,
                v.outcome,
            ]);
        }
        t
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `app rollback`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edasctl app history hello\n  edasctl app rollback hello --to-revision 2 --batches 2 --watch"
)]
pub struct RollbackArgs {
    /// The application: its id or its name.
    pub app: String,
    /// The revision to release again (see `app history`): its whole spec, as a new revision.
    #[arg(long, value_name = "N")]
    pub to_revision: u32,
    /// Batches (BatchUpdate `batch`).
    #[arg(long)]
    pub batches: Option<u32>,
    /// Wait for `change-order continue` before each next batch.
    #[arg(long)]
    pub manual: bool,
    /// `ChangeOrderDesc`.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `app rollback --to-revision N`.
pub fn rollback(global: &Global, client: &Client, args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let app_id = resolve_app(client, &args.app)?;
    let mut list = ParamList::default();
    list.set("AppId", app_id, "APP")?;
    list.set(
        "RollbackToRevision",
        args.to_revision.to_string(),
        "--to-revision",
    )?;
    list.set_opt(
        "UpdateStrategy",
        crate::cmd::deploy::strategy(None, args.batches, args.manual, None)?,
        "--batches/--manual",
    )?;
    list.set_opt("ChangeOrderDesc", args.description.clone(), "--description")?;
    crate::cmd::app::change(global, client, ops::DeployK8sApplication, list, &args.watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_from_names_and_times_read_as_people_write_them() {
        assert!(looks_like_id("3616cdca-4f92-4413-a7c1-0123456789ab"));
        assert!(!looks_like_id("hello"));
        assert!(!looks_like_id("3616cdca-4f92-4413-a7c1-0123456789aX"));
        let text = human_time(1_765_000_000_000);
        assert!(text.starts_with("2025-12-06 05:46:40 UTC ("), "{text}");
        assert_eq!(human_time(0), "");
    }
}
