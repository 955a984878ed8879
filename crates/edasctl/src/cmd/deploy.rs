//! `edasctl deploy APP_ID`: release a new revision (DeployK8sApplication), optionally in a gray
//! batch and several batches, and follow it with `--watch`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use edas_wire::application::ChangeOrderIdBody;
use serde_json::{Map, json};

use crate::client::ops;
use crate::cmd::context::{Global, WatchFlags};
use crate::cmd::params::{ArgsStyle, SpecFlags};
use crate::output;

/// `deploy`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edasctl deploy hello --env APP_VERSION=v2 --watch\n  edasctl deploy hello --param Image=registry/app:2 --gray 1 --batches 2 --manual\n  edasctl deploy hello --strategy '{\"type\":\"BatchUpdate\",\"batchUpdate\":{\"batch\":3,\"releaseType\":\"auto\"}}'"
)]
pub struct DeployArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
    #[command(flatten)]
    pub spec: SpecFlags,
    /// `UpdateStrategy` as its JSON text (instead of --gray/--batches/--manual/--batch-wait).
    #[arg(long, value_name = "JSON", conflicts_with_all = ["gray", "batches", "manual", "batch_wait"])]
    pub strategy: Option<String>,
    /// Instances in a first gray batch (GrayBatchUpdate).
    #[arg(long)]
    pub gray: Option<u32>,
    /// Batches after the gray batch (BatchUpdate `batch`).
    #[arg(long)]
    pub batches: Option<u32>,
    /// Wait for `change-order continue` before each next batch (releaseType manual).
    #[arg(long, conflicts_with = "batch_wait")]
    pub manual: bool,
    /// Minutes between automatic batches (batchWaitTime).
    #[arg(long, value_name = "MINUTES")]
    pub batch_wait: Option<u32>,
    /// `BatchTimeout`: seconds one batch may take before the change order fails.
    #[arg(long, value_name = "SECONDS")]
    pub batch_timeout: Option<u32>,
    /// `ChangeOrderDesc`.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// The `UpdateStrategy` JSON the release flags describe, or `None` for one batch.
pub fn strategy(
    gray: Option<u32>,
    batches: Option<u32>,
    manual: bool,
    batch_wait: Option<u32>,
) -> anyhow::Result<Option<String>> {
    if gray.is_none() && batches.is_none() && !manual && batch_wait.is_none() {
        return Ok(None);
    }
    let batch = batches.unwrap_or(1);
    if batch == 0 {
        bail!("--batches must be at least 1");
    }
    let mut batch_update = Map::new();
    batch_update.insert("batch".into(), batch.into());
    batch_update.insert(
        "releaseType".into(),
        if manual { "manual" } else { "auto" }.into(),
    );
    if let Some(w) = batch_wait {
        batch_update.insert("batchWaitTime".into(), w.into());
    }
    let mut s = json!({
        "type": if gray.is_some() { "GrayBatchUpdate" } else { "BatchUpdate" },
        "batchUpdate": batch_update,
    });
    if let Some(g) = gray {
        s["grayUpdate"] = json!({ "gray": g });
    }
    Ok(Some(s.to_string()))
}

/// Runs `edasctl deploy`.
pub fn run(global: &Global, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let mut list = crate::cmd::instances::app_params(&client, &args.app_id)?;
    args.spec.add_to(&mut list, ArgsStyle::Args)?;
    let built = strategy(args.gray, args.batches, args.manual, args.batch_wait)?;
    list.set_opt(
        "UpdateStrategy",
        args.strategy.clone().or(built),
        "--strategy/--gray/--batches/--manual/--batch-wait",
    )?;
    list.set_opt(
        "BatchTimeout",
        args.batch_timeout.map(|t| t.to_string()),
        "--batch-timeout",
    )?;
    list.set_opt("ChangeOrderDesc", args.description.clone(), "--description")?;
    let answer = client.call(ops::DeployK8sApplication, &list.into_pairs())?;
    let change_order = output::body::<ChangeOrderIdBody>(&answer).change_order_id;
    output::print(global.output, &answer, |_| {
        let mut t = output::table(&["ChangeOrderId"]);
        t.add_row(vec![change_order.clone()]);
        t
    })?;
    crate::cmd::change_order::follow(global, &client, &change_order, args.batch_wait, &args.watch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn release_flags_build_the_update_strategy() {
        assert_eq!(strategy(None, None, false, None).unwrap(), None);
        let s: Value =
            serde_json::from_str(&strategy(Some(1), Some(2), false, Some(3)).unwrap().unwrap())
                .unwrap();
        assert_eq!(
            s,
            json!({"type": "GrayBatchUpdate", "grayUpdate": {"gray": 1},
                   "batchUpdate": {"batch": 2, "releaseType": "auto", "batchWaitTime": 3}})
        );
        let s: Value =
            serde_json::from_str(&strategy(None, Some(2), true, None).unwrap().unwrap()).unwrap();
        assert_eq!(
            s,
            json!({"type": "BatchUpdate", "batchUpdate": {"batch": 2, "releaseType": "manual"}})
        );
        assert!(strategy(None, Some(0), false, None).is_err());
    }
}
