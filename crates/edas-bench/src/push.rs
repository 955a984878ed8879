//! `edas-bench push-latency`: how soon edasd's push stream shows a batch change. The real
//! edasd (release build) runs manual BatchUpdate releases of `batches` single-instance batches
//! of the real `edas-testapp` binary on the built-in `local` runtime; the benchmark follows
//! each change order on the signed push stream (`GET /edasd/v1/events?ChangeOrderId=…`,
//! server-sent events, read in a task of its own that stamps every chunk as it arrives) and,
//! each time the order waits for confirmation, sends ContinuePipeline (as
//! `edasctl change-order continue` does) and measures:
//!
//! - **(a) answer → event**: from ContinuePipeline's answer received to the next batch's
//!   `batch.started` event arriving on the stream (negative when the event arrived first);
//! - **(b) stored → event**: from the transition's stored time (the event's `Time`, epoch
//!   milliseconds, truncated) to the event's arrival on this machine's clock (so up to 1 ms
//!   high);
//! - **(c) event → shown**: from the event's arrival to a GetChangeOrderInfo answer that shows
//!   the new batch running or done — what `edasctl change-order watch` does on each event (one
//!   read; a read that does not show it yet is retried and counted).
//!
//! Also printed, end to end: from ContinuePipeline sent to the watch's view showing the batch
//! (the call, the push and the read).
//!
//! Floor for (c), same run: a GetChangeOrderInfo round trip of the same order while it waits.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::release::kill_instances;
use crate::server::{Operations, Server};
use crate::stats::{machine, percentile};

/// One server-sent event as it arrived: its type, its data, when (monotonic and wall clock).
struct Arrived {
    kind: String,
    data: Value,
    at: Instant,
    wall: SystemTime,
}

pub(crate) async fn push_latency(
    batches: u32,
    runs: u32,
    edasd: PathBuf,
    testapp: PathBuf,
) -> anyhow::Result<()> {
    if batches < 2 {
        bail!("--batches {batches}: a manual release needs at least 2 batches to continue");
    }
    if !testapp.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p edas-testapp` or pass --testapp",
            testapp.display()
        );
    }
    println!("machine: {}", machine());
    println!("load average at start: {}", loadavg());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("edasd");
    let result = measure(&edasd, &testapp, &data, batches, runs).await;
    // The instances outlive edasd by design: stop them (each leads its own process group).
    // edasd keeps them outside its data directory: `<data-dir>.instances` by default.
    let mut instances = data.as_os_str().to_owned();
    instances.push(".instances");
    kill_instances(&PathBuf::from(instances));
    let samples = result?;
    println!("load average at end: {}", loadavg());
    println!(
        "push-latency (local runtime, edas-testapp, {batches} single-instance batches, manual, \
         {runs} releases: {} ContinuePipeline calls)",
        samples.answered.len()
    );
    let before = samples.answer_to_event.iter().filter(|v| **v < 0.0).count();
    summary(
        "ContinuePipeline sent → answered",
        samples.answered.clone(),
        "",
    );
    summary(
        "(a) answer → batch.started arrived",
        samples.answer_to_event,
        &format!(" ({before} arrived before the answer)"),
    );
    summary(
        "(b) stored time → arrived (ms clock)",
        samples.stored_to_event,
        "",
    );
    summary(
        "(c) arrived → GetChangeOrderInfo shows the batch",
        samples.event_to_shown,
        &format!(
            " ({} reads did not show it yet and were repeated)",
            samples.repeated_reads
        ),
    );
    summary(
        "end to end: ContinuePipeline sent → GetChangeOrderInfo shows the batch",
        samples.sent_to_shown,
        "",
    );
    summary(
        "floor of (c): one GetChangeOrderInfo while waiting",
        samples.read_floor,
        "",
    );
    Ok(())
}

/// The figures, in milliseconds.
#[derive(Default)]
struct Samples {
    answered: Vec<f64>,
    answer_to_event: Vec<f64>,
    stored_to_event: Vec<f64>,
    event_to_shown: Vec<f64>,
    sent_to_shown: Vec<f64>,
    read_floor: Vec<f64>,
    repeated_reads: u32,
}

async fn measure(
    edasd: &std::path::Path,
    testapp: &std::path::Path,
    data: &std::path::Path,
    batches: u32,
    runs: u32,
) -> anyhow::Result<Samples> {
    let server = Server::edasd(edasd, data, None)?;
    let api = Operations::new(&server);
    let envs = |v: &str| json!([{"name": "APP_VERSION", "value": v}]).to_string();
    let app = api
        .insert(vec![
            ("AppName", "push-latency".into()),
            ("ClusterId", "local".into()),
            ("ImageUrl", "edas-testapp:v0".into()),
            ("Command", testapp.display().to_string()),
            ("Replicas", batches.to_string()),
            ("Envs", envs("v0")),
        ])
        .await?;
    let strategy = format!(
        r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{batches},"releaseType":"manual","batchWaitTime":0}}}}"#
    );
    let mut samples = Samples::default();
    for run in 1..=runs {
        let v = format!("v{run}");
        let body = api
            .call(
                "/pop/v5/k8s/acs/k8s_apps",
                "DeployK8sApplication",
                vec![
                    ("AppId", app.clone()),
                    ("Image", format!("edas-testapp:{v}")),
                    ("Envs", envs(&v)),
                    ("UpdateStrategy", strategy.clone()),
                ],
            )
            .await?;
        let order = body["ChangeOrderId"]
            .as_str()
            .context("ChangeOrderId")?
            .to_owned();
        let mut events = follow(api.events(&[("ChangeOrderId", &order)]).await?);
        for batch in 2..=batches {
            // Batch `batch - 1` done, the order waits for confirmation.
            until(&mut events, "change_order.waiting").await?;
            let read = Instant::now();
            let info = api.order(&order).await?;
            samples.read_floor.push(millis(read.elapsed()));
            let pipeline = pipelines(&info)
                .into_iter()
                .find(|p| p["PipelineStatus"] != 2)
                .with_context(|| format!("no pipeline left to continue: {info}"))?;
            let pipeline_id = text(&pipeline["PipelineId"]).context("PipelineId")?;
            let sent = Instant::now();
            api.call_with(
                "GET",
                "/pop/v5/changeorder/pipeline_batch_confirm",
                "ContinuePipeline",
                vec![("PipelineId", pipeline_id), ("Confirm", "true".into())],
            )
            .await?;
            let answered = Instant::now();
            let started = until(&mut events, "batch.started").await?;
            if started.data["Data"]["batch"] != batch {
                bail!("batch.started of batch {batch} expected: {}", started.data);
            }
            samples.answered.push(millis(answered - sent));
            samples
                .answer_to_event
                .push(signed_millis(started.at, answered));
            let stored = started.data["Time"].as_i64().context("the event's Time")?;
            samples
                .stored_to_event
                .push(epoch_millis(started.wall) - stored as f64);
            // What `edasctl change-order watch` does on an event: read GetChangeOrderInfo.
            loop {
                let info = api.order(&order).await?;
                let shown = pipelines(&info)
                    .get(batch as usize - 1)
                    .is_some_and(|p| p["PipelineStatus"] == 1 || p["PipelineStatus"] == 2);
                if shown {
                    samples.event_to_shown.push(millis(started.at.elapsed()));
                    samples.sent_to_shown.push(millis(sent.elapsed()));
                    break;
                }
                samples.repeated_reads += 1;
                if started.at.elapsed() > Duration::from_secs(60) {
                    bail!("batch {batch} of {order} not shown running after 60 s: {info}");
                }
            }
        }
        api.finished(&order).await?;
    }
    drop(server);
    Ok(samples)
}

/// Reads the push stream `response` in a task of its own, stamping each chunk when it
/// arrives; its events (keep-alive comments left out), in order, until the receiver is
/// dropped.
fn follow(mut response: reqwest::Response) -> mpsc::UnboundedReceiver<anyhow::Result<Arrived>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            // Closed when the receiver is dropped (the release measured), even while the
            // stream idles: edasd counts a user's open streams.
            let read = tokio::select! {
                read = response.chunk() => read,
                () = tx.closed() => return,
            };
            let chunk = match read {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    let _ = tx.send(Err(anyhow::anyhow!("the push stream ended")));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            };
            let (at, wall) = (Instant::now(), SystemTime::now());
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                let (mut kind, mut data) = (String::new(), String::new());
                for line in String::from_utf8_lossy(&block).lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        v.trim().clone_into(&mut kind);
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if kind.is_empty() {
                    continue; // a keep-alive comment
                }
                let event = serde_json::from_str(&data)
                    .map(|data| Arrived {
                        kind,
                        data,
                        at,
                        wall,
                    })
                    .map_err(anyhow::Error::from);
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The next event of type `kind` (others skipped), within 60 s.
async fn until(
    events: &mut mpsc::UnboundedReceiver<anyhow::Result<Arrived>>,
    kind: &str,
) -> anyhow::Result<Arrived> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("no {kind} event within 60 s"))?
            .context("the push stream's reader stopped")??;
        if event.kind == kind {
            return Ok(event);
        }
    }
}

fn pipelines(info: &Value) -> Vec<Value> {
    info["PipelineInfoList"]["PipelineInfo"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A string or number the API answers, as text.
fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_owned)
        .or_else(|| v.as_i64().map(|n| n.to_string()))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `later − earlier` in milliseconds, negative when `later` came first.
fn signed_millis(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => millis(d),
        None => -millis(earlier - later),
    }
}

fn epoch_millis(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `/proc/loadavg`'s three load averages (the machine is shared).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Prints n, p50, p90, p99 and max of `values` (milliseconds).
fn summary(name: &str, mut values: Vec<f64>, note: &str) {
    values.sort_by(f64::total_cmp);
    println!(
        "  {name}: n {} p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms max {:.2} ms{note}",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.9),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or_default()
    );
}
