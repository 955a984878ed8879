//! The live view of a change order: one line (or progress bar) per batch, then the outcome.
//!
//! edasd pushes a change order's events (`crate::push`): the watch reads GetChangeOrderInfo
//! once per event, within milliseconds of the transition. The EDAS API itself has no push, so
//! against a server without the stream the watch *polls* (every `--interval` seconds, 2 by
//! default; up to [`MAX_UNREACHABLE_POLLS`] consecutive unreachable polls are retried).
//! The view is a pure function of each answer ([`view`]) and the plain
//! transcript a pure function of the sequence of answers ([`Transcript`]), so both are tested
//! from recorded answers; only [`run`] does I/O.
//!
//! Besides the batches the view shows the versions the release goes from and to (one
//! ListHistoryDeployVersion read at the start: it names each revision's image or package
//! version, where DescribeAppInstanceList would list every instance), the elapsed time since
//! the change order was created, and the traffic share (edasd's `Traffic` extension of
//! GetK8sServices). The share only moves while a gray batch splits requests or once a release
//! is aborted, so the services are read with an event's GetChangeOrderInfo only when the order
//! has a gray batch or was terminated: a plain batched release costs no extra read. In plain
//! mode (not a terminal) every line starts with the UTC time it was printed.

use std::io::IsTerminal as _;
use std::time::Duration;

use edas_wire::instances::HistoryBody;
use edas_wire::service::{ServicesBody, Traffic};
use edas_wire::{ChangeOrderInfo, Instance, PipelineInfo, TaskInfo};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize as _;
use serde_json::Value;

use crate::client::{CallError, Client, ops};

/// Change order and pipeline status codes (GetChangeOrderInfo).
pub mod status {
    /// Not started.
    pub const READY: i64 = 0;
    /// Running.
    pub const IN_PROGRESS: i64 = 1;
    /// Succeeded.
    pub const SUCCESS: i64 = 2;
    /// Failed.
    pub const FAILED: i64 = 3;
    /// Terminated (aborted).
    pub const TERMINATED: i64 = 6;
    /// Partially successful.
    pub const PARTIAL: i64 = 7;
    /// Waiting for manual confirmation (ContinuePipeline).
    pub const WAITING_CONFIRMATION: i64 = 8;
    /// Waiting for the automatic start of the next batch.
    pub const WAITING_NEXT_BATCH: i64 = 9;
    /// Failed on a system error.
    pub const SYSTEM_FAILURE: i64 = 10;

    /// The status in words, for tables.
    pub fn name(code: i64) -> &'static str {
        match code {
            READY => "ready",
            IN_PROGRESS => "in progress",
            SUCCESS => "succeeded",
            FAILED => "failed",
            TERMINATED => "terminated",
            PARTIAL => "partially succeeded",
            WAITING_CONFIRMATION => "waiting for confirmation",
            WAITING_NEXT_BATCH => "waiting for the next batch",
            SYSTEM_FAILURE => "system failure",
            _ => "unknown",
        }
    }
}

/// Consecutive polls that may fail to reach the server before the watch gives up.
pub const MAX_UNREACHABLE_POLLS: u32 = 5;

/// Exit code when the change order failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the change order was terminated (aborted).
pub const EXIT_TERMINATED: u8 = 3;
/// Exit code when the watch's `--timeout` ran out before the change order ended.
pub const EXIT_TIMED_OUT: u8 = 4;

/// What the view needs besides the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// Minutes an automatic release waits between batches, when the caller knows them (deploy
    /// with `--batch-wait`); GetChangeOrderInfo does not say.
    pub batch_wait_minutes: Option<u32>,
    /// Now, in milliseconds since the epoch (for the minutes left of a wait, the elapsed time
    /// and plain mode's timestamps); 0 when unknown.
    pub now_ms: u64,
}

/// One batch of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The PipelineId.
    pub id: String,
    /// The PipelineName ("Gray Batch Change", "Batch 1 Change", …).
    pub name: String,
    /// The PipelineStatus.
    pub status: i64,
    /// Instances of the new revision ready.
    pub ready: u64,
    /// Instances the batch brings up.
    pub total: u64,
    /// What is happening, in words.
    pub state: String,
}

/// How a change order ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Status 2.
    Succeeded,
    /// Status 3, 7 or 10, with the reason.
    Failed(String),
    /// Status 6.
    Terminated,
    /// Still running when the watch's timeout ran out (seconds watched).
    TimedOut(u64),
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed(_) => EXIT_FAILED,
            Outcome::Terminated => EXIT_TERMINATED,
            Outcome::TimedOut(_) => EXIT_TIMED_OUT,
        }
    }
}

/// The view of one GetChangeOrderInfo answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The ChangeOrderId.
    pub id: String,
    /// The change order's Status.
    pub status: i64,
    /// Its batches, in order.
    pub batches: Vec<Batch>,
    /// Set once the change order is over.
    pub outcome: Option<Outcome>,
    /// What to type next, on a line of its own (at most 80 columns): set while a batch waits
    /// for confirmation.
    pub hint: Option<String>,
    /// The AppId.
    pub app_id: String,
    /// Seconds since the change order was created (None when the clock or CreateTime is
    /// unknown).
    pub elapsed: Option<u64>,
    /// When the view was made (the context's clock), for plain mode's timestamps.
    pub now_ms: u64,
    /// The traffic share ([`traffic_line`]), when read.
    pub traffic: Option<String>,
    /// The release analysis (edasd, issue 21): one line per check of the batch being judged
    /// (or last judged), its last value against its condition.
    pub checks: Vec<String>,
}

/// The name of the stage edasd adds to every batch of a release judged by a release policy.
const ANALYSIS_STAGE: &str = "Release analysis";

/// The release analysis's lines: the checks of the batch being judged or held, else of the
/// last batch judged; each `check <name>: <last value> (condition …), N measured, …`.
fn analysis_checks(pipelines: &[PipelineInfo]) -> Vec<String> {
    fn stage_of(p: &PipelineInfo) -> Option<&TaskInfo> {
        p.stage_detail_list
            .stage_detail_dto
            .iter()
            .find(|s| s.stage_name == ANALYSIS_STAGE)
            .filter(|s| s.stage_status != status::READY)
            .and_then(|s| s.task_list.task_info_dto.first())
            .filter(|t| !t.task_message.is_empty())
    }
    let task = pipelines
        .iter()
        .filter_map(stage_of)
        .find(|t| t.status_code() != Some(status::SUCCESS))
        .or_else(|| pipelines.iter().rev().find_map(stage_of));
    let Some(task) = task else {
        return Vec::new();
    };
    let mut lines: Vec<String> = task
        .task_message
        .lines()
        .map(|l| format!("  check {l}"))
        .collect();
    if task.task_error_code == "AnalysisFailed" {
        lines.push(
            "  held by the release analysis: continue judges again, --skip-analysis passes it"
                .to_owned(),
        );
    }
    lines
}

/// The tasks of a pipeline's stages.
fn tasks(pipeline: &PipelineInfo) -> impl Iterator<Item = &TaskInfo> {
    pipeline
        .stage_detail_list
        .stage_detail_dto
        .iter()
        .flat_map(|s| &s.task_list.task_info_dto)
}

/// The instances listed by a pipeline's stages (an instance may be listed by several).
fn listed_instances(pipeline: &PipelineInfo) -> impl Iterator<Item = &Instance> {
    pipeline
        .stage_list
        .stage_info_dto
        .iter()
        .flat_map(|s| &s.stage_result_dto.instance_dto_list.instance_dto)
}

/// The reason a pipeline failed: its failed task's error, else its message, else an instance's.
fn failure_reason(pipeline: &PipelineInfo) -> String {
    for task in tasks(pipeline) {
        if matches!(
            task.status_code(),
            Some(status::FAILED | status::SYSTEM_FAILURE)
        ) {
            for text in [&task.task_error_message, &task.task_message] {
                if !text.is_empty() {
                    return text.clone();
                }
            }
        }
    }
    for instance in listed_instances(pipeline) {
        for s in &instance.instance_stage_dto_list.instance_stage_dto {
            if !s.stage_message.is_empty() {
                return format!("{}: {}", instance.instance_name, s.stage_message);
            }
        }
    }
    "no reason given".to_owned()
}

/// The target of "Wait for N ready instance(s) …" task names, when the server names one.
fn target_of(pipeline: &PipelineInfo) -> Option<u64> {
    tasks(pipeline).find_map(|t| {
        let rest = t.task_name.strip_prefix("Wait for ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Ready and total instances of a pipeline, from the instances of its stages.
fn instances(pipeline: &PipelineInfo) -> (u64, u64) {
    let mut names = Vec::new();
    let mut ready = 0;
    for i in listed_instances(pipeline) {
        if names.contains(&i.instance_name.as_str()) {
            continue;
        }
        names.push(i.instance_name.as_str());
        if i.pod_status == "Running" {
            ready += 1;
        }
    }
    let listed = names.len() as u64;
    (ready, target_of(pipeline).unwrap_or(listed).max(listed))
}

/// The message of the stage running now, for "in progress".
fn running_message(pipeline: &PipelineInfo) -> Option<String> {
    pipeline
        .stage_detail_list
        .stage_detail_dto
        .iter()
        .find(|s| s.stage_status == status::IN_PROGRESS)
        .and_then(|s| {
            // The analysis's checks get lines of their own.
            if s.stage_name == ANALYSIS_STAGE {
                return Some("judged by the release policy".to_owned());
            }
            s.task_list
                .task_info_dto
                .first()
                .map(|t| t.task_message.clone())
        })
        .filter(|m| !m.is_empty())
}

/// Seconds as `45 s` or `2 min 05 s`.
fn countdown(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{} min {:02} s", seconds / 60, seconds % 60)
    }
}

fn batch(pipeline: &PipelineInfo, order_status: i64, ctx: Context) -> Batch {
    let status = pipeline.pipeline_status;
    let (ready, total) = instances(pipeline);
    let ended = matches!(
        order_status,
        status::SUCCESS
            | status::FAILED
            | status::TERMINATED
            | status::PARTIAL
            | status::SYSTEM_FAILURE
    );
    let state = match status {
        // A batch of an order that ended will not start: it stays where it stood.
        status::READY if ended => "not started".to_owned(),
        status::READY => "pending".to_owned(),
        status::IN_PROGRESS => match running_message(pipeline) {
            Some(m) => format!("in progress: {m}"),
            None => "in progress".to_owned(),
        },
        status::SUCCESS => "done".to_owned(),
        status::FAILED | status::SYSTEM_FAILURE => format!("failed: {}", failure_reason(pipeline)),
        status::TERMINATED => "terminated".to_owned(),
        status::WAITING_CONFIRMATION => "waiting for confirmation".to_owned(),
        status::WAITING_NEXT_BATCH => match ctx.batch_wait_minutes {
            Some(minutes) => {
                let since = pipeline.update_time.trim().parse::<u64>().unwrap_or(0);
                let end = since + u64::from(minutes) * 60_000;
                let left = end.saturating_sub(ctx.now_ms).div_ceil(1000);
                format!("waiting {} before starting", countdown(left))
            }
            None => "waiting to start automatically".to_owned(),
        },
        other => format!("status {other}"),
    };
    Batch {
        id: pipeline.pipeline_id.clone(),
        name: pipeline.pipeline_name.clone(),
        status,
        ready,
        total,
        state,
    }
}

/// The view of a GetChangeOrderInfo answer (the whole body or its `changeOrderInfo`).
pub fn view(answer: &Value, ctx: Context) -> Result<View, String> {
    let raw = answer.get("changeOrderInfo").unwrap_or(answer);
    if raw.get("Status").is_none_or(Value::is_null) {
        return Err("the answer has no changeOrderInfo.Status".to_owned());
    }
    let info = ChangeOrderInfo::deserialize(raw)
        .map_err(|e| format!("the answer's changeOrderInfo cannot be read: {e}"))?;
    if info.head.change_order_id.is_empty() {
        return Err("the answer has no changeOrderInfo.ChangeOrderId".to_owned());
    }
    let id = info.head.change_order_id;
    let status = info.head.status;
    let pipelines = &info.pipeline_info_list.pipeline_info;
    let batches: Vec<Batch> = pipelines.iter().map(|p| batch(p, status, ctx)).collect();
    let hint = batches
        .iter()
        .any(|b| b.status == status::WAITING_CONFIRMATION)
        .then(|| format!("next: edasctl change-order continue {id}"));
    let outcome = match status {
        status::SUCCESS => Some(Outcome::Succeeded),
        status::TERMINATED => Some(Outcome::Terminated),
        status::FAILED | status::PARTIAL | status::SYSTEM_FAILURE => {
            let reason = pipelines
                .iter()
                .find(|p| matches!(p.pipeline_status, status::FAILED | status::SYSTEM_FAILURE))
                .map(failure_reason)
                .unwrap_or_else(|| match info.desc.as_str() {
                    "" => "no reason given".to_owned(),
                    d => d.to_owned(),
                });
            Some(Outcome::Failed(reason))
        }
        _ => None,
    };
    let created = info.head.create_time.trim().parse::<u64>().unwrap_or(0);
    let elapsed = (created > 0 && ctx.now_ms >= created).then(|| (ctx.now_ms - created) / 1000);
    Ok(View {
        id,
        status,
        batches,
        outcome,
        hint,
        app_id: info.head.app_id,
        elapsed,
        now_ms: ctx.now_ms,
        traffic: None,
        checks: analysis_checks(pipelines),
    })
}

/// Whether the traffic share is worth reading for this view: the order has a gray batch (a
/// split) or was aborted (everything back to the stable revision).
pub fn needs_traffic(view: &View) -> bool {
    !view.app_id.is_empty()
        && (view.status == status::TERMINATED
            || view.batches.iter().any(|b| b.name.starts_with("Gray")))
}

/// `text` cut to `max` characters (an ellipsis marks the cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// `text` cut to its last `max` characters (an image's tag says more than its registry).
fn cut_front(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        text.to_owned()
    } else {
        let tail: String = text.chars().skip(count + 1 - max).collect();
        format!("…{tail}")
    }
}

/// Room for a line's text once plain mode's timestamp prefix (21 columns) is in front.
const LINE: usize = 80 - 21;

/// `r2`, or `r2 (?)` when the server did not name the revision.
fn rev(revision: Option<&str>) -> String {
    format!("r{}", revision.unwrap_or("?"))
}

/// The traffic share as one line of at most 59 columns: `traffic: 20% to r2 (gray), 80% to
/// r1`, `traffic: header x-user == a to r2 (gray), the rest to r1`, `traffic: 100% to r1,
/// 0% to r2 (aborted)` or `traffic: every ready instance (no split)`.
pub fn traffic_line(traffic: &Traffic) -> String {
    let stable = rev(traffic.stable_revision.as_deref());
    let gray = rev(traffic.gray_revision.as_deref());
    let text = match traffic.mode.as_str() {
        Traffic::ALL_READY => "traffic: every ready instance (no split)".to_owned(),
        Traffic::ABORTED => format!("traffic: 100% to {stable}, 0% to {gray} (aborted)"),
        Traffic::GRAY_SPLIT => {
            let percent: Option<i64> = traffic
                .rules
                .iter()
                .filter(|r| r.condition_type == "percent")
                .filter_map(|r| r.percent)
                .max();
            let content: Vec<String> = traffic
                .rules
                .iter()
                .filter(|r| r.condition_type != "percent")
                .map(|r| {
                    r.conditions
                        .iter()
                        .map(|c| format!("{} {} {} {}", c.r#type, c.name, c.operator, c.value))
                        .collect::<Vec<_>>()
                        .join(" and ")
                })
                .collect();
            match (percent, content.is_empty()) {
                (Some(p), true) => {
                    let p = p.clamp(0, 100);
                    format!("traffic: {p}% to {gray} (gray), {}% to {stable}", 100 - p)
                }
                (None, true) => format!("traffic: 100% to {stable}, 0% to {gray} (gray)"),
                (p, false) => {
                    // A request matching any rule goes to the gray revision.
                    let sample = p.map(|p| format!(" or {}%", p.clamp(0, 100)));
                    let tail = format!(
                        "{} to {gray} (gray), the rest to {stable}",
                        sample.unwrap_or_default()
                    );
                    let room = LINE.saturating_sub("traffic: ".len() + tail.chars().count());
                    format!("traffic: {}{tail}", cut(&content.join(" or "), room))
                }
            }
        }
        other => format!("traffic: {other}"),
    };
    cut(&text, LINE)
}

/// The versions header from a ListHistoryDeployVersion answer: `version: r1 demo:1 -> r2
/// demo:2` (at most 59 columns), or None when no revision names this change order (a server
/// that does not say).
pub fn versions_line(history: &Value, change_order_id: &str) -> Option<String> {
    let body: HistoryBody = crate::output::body(history);
    let list = body.package_version_list.package_version;
    let at = list
        .iter()
        .position(|v| v.change_order_id == change_order_id)?;
    let name = |v: &edas_wire::instances::PackageVersion| {
        let label = format!("r{}", v.id);
        if v.package_version.is_empty() || v.package_version == label {
            label
        } else {
            format!("{label} {}", cut_front(&v.package_version, 24))
        }
    };
    let new = name(&list[at]);
    let old = list.get(at + 1).map_or_else(|| "(none)".to_owned(), name);
    Some(cut(&format!("version: {old} -> {new}"), LINE))
}

/// Epoch milliseconds as `2026-12-06T09:12:03Z`.
pub fn timestamp(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

impl Batch {
    /// The batch as one plain line: `Gray Batch Change  1/1 ready  done`.
    pub fn line(&self) -> String {
        format!(
            "{}: {}/{} ready, {}",
            self.name, self.ready, self.total, self.state
        )
    }
}

impl View {
    /// `elapsed: 1 min 05 s`, when known.
    pub fn elapsed_line(&self) -> Option<String> {
        self.elapsed.map(|s| format!("elapsed: {}", countdown(s)))
    }

    /// The closing line.
    pub fn outcome_line(&self) -> Option<String> {
        self.outcome.as_ref().map(|o| match o {
            Outcome::Succeeded => format!("change order {} succeeded", self.id),
            Outcome::Failed(reason) => format!("change order {} failed: {reason}", self.id),
            Outcome::Terminated => format!("change order {} was terminated", self.id),
            Outcome::TimedOut(seconds) => format!(
                "change order {} still runs after {seconds} s; follow it with edasctl change-order watch {}",
                self.id, self.id
            ),
        })
    }
}

/// The plain-text form of a watch: each batch's line when it changes, the traffic share when
/// it changes, then the outcome and the elapsed time; with [`Transcript::stamped`], each line
/// starts with the UTC time of the view.
#[derive(Debug, Default)]
pub struct Transcript {
    last: Vec<String>,
    checks: Vec<String>,
    hint: Option<String>,
    traffic: Option<String>,
    stamped: bool,
}

impl Transcript {
    /// A transcript whose lines start with the view's UTC time (plain mode).
    pub fn stamped() -> Transcript {
        Transcript {
            stamped: true,
            ..Transcript::default()
        }
    }

    /// `line` as printed at `now_ms`.
    pub fn line(&self, now_ms: u64, line: &str) -> String {
        if self.stamped {
            format!("{} {line}", timestamp(now_ms))
        } else {
            line.to_owned()
        }
    }

    /// The lines to print for a new view (none when nothing changed).
    pub fn update(&mut self, view: &View) -> Vec<String> {
        let plain = self.plain(view);
        plain.iter().map(|l| self.line(view.now_ms, l)).collect()
    }

    fn plain(&mut self, view: &View) -> Vec<String> {
        let mut out = Vec::new();
        for (i, b) in view.batches.iter().enumerate() {
            let line = b.line();
            if self.last.get(i) != Some(&line) {
                out.push(line.clone());
                if i < self.last.len() {
                    self.last[i] = line;
                } else {
                    self.last.push(line);
                }
            }
        }
        if view.traffic.is_some() && view.traffic != self.traffic {
            out.extend(view.traffic.clone());
            self.traffic.clone_from(&view.traffic);
        }
        if view.checks != self.checks {
            out.extend(view.checks.iter().cloned());
            self.checks.clone_from(&view.checks);
        }
        if view.hint != self.hint {
            out.extend(view.hint.clone());
            self.hint.clone_from(&view.hint);
        }
        out.extend(view.outcome_line());
        if view.outcome.is_some() {
            out.extend(view.elapsed_line());
        }
        out
    }
}

/// Where the live view goes: stdout for human output; stderr when stdout carries JSON or YAML
/// (which then gets the final GetChangeOrderInfo answer), so it stays parseable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Watches a change order until it ends; returns its outcome and the last answer. Progress
/// bars when the sink is a terminal, plain lines otherwise.
pub fn run(
    client: &Client,
    change_order_id: &str,
    batch_wait_minutes: Option<u32>,
    interval: Duration,
    timeout: Option<Duration>,
    sink: Sink,
) -> Result<(Outcome, Value), CallError> {
    let started = std::time::Instant::now();
    let (tty, target) = match sink {
        Sink::Stdout => (
            std::io::stdout().is_terminal(),
            ProgressDrawTarget::stdout(),
        ),
        Sink::Stderr => (
            std::io::stderr().is_terminal(),
            ProgressDrawTarget::stderr(),
        ),
    };
    let say = |line: &str| match sink {
        Sink::Stdout => println!("{line}"),
        Sink::Stderr => eprintln!("{line}"),
    };
    let mut transcript = if tty {
        Transcript::default()
    } else {
        Transcript::stamped()
    };
    let mut versions_read = false;
    let mut status_bar: Option<ProgressBar> = None;
    let multi = MultiProgress::with_draw_target(target);
    let mut bars: Vec<ProgressBar> = Vec::new();
    let style = ProgressStyle::with_template("{prefix:>18} [{bar:20}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let params = [("ChangeOrderId".to_owned(), change_order_id.to_owned())];
    let mut unreachable = 0;
    // Subscribed before the first read, so no transition falls between the two.
    let mut push = crate::push::Push::subscribe(client, change_order_id);
    loop {
        // A server that is briefly unreachable (restarting) does not end the watch; a refusal
        // (an EDAS error answer) does.
        let answer = match client.call(ops::GetChangeOrderInfo, &params) {
            Ok(answer) => {
                unreachable = 0;
                answer
            }
            Err(CallError::Transport(message)) if unreachable < MAX_UNREACHABLE_POLLS => {
                unreachable += 1;
                eprintln!(
                    "edasctl: poll {unreachable}/{MAX_UNREACHABLE_POLLS} failed, retrying: {message}"
                );
                std::thread::sleep(interval);
                continue;
            }
            Err(e) => return Err(e),
        };
        let ctx = Context {
            batch_wait_minutes,
            now_ms: now_ms(),
        };
        let mut view = view(&answer, ctx).map_err(CallError::Transport)?;
        let app = [("AppId".to_owned(), view.app_id.clone())];
        if !versions_read && !view.app_id.is_empty() {
            // Once: the revisions do not change during the watch. A server that cannot say
            // (no history, a refusal) leaves the header out.
            versions_read = true;
            let header = client
                .call(ops::ListHistoryDeployVersion, &app)
                .ok()
                .and_then(|history| versions_line(&history, change_order_id));
            if let Some(header) = header {
                if tty {
                    let _ = multi.println(&header);
                } else {
                    say(&transcript.line(view.now_ms, &header));
                }
            }
        }
        if needs_traffic(&view) {
            view.traffic = client
                .call(ops::GetK8sServices, &app)
                .ok()
                .and_then(|a| crate::output::body::<ServicesBody>(&a).traffic)
                .map(|t| traffic_line(&t));
        }
        if tty {
            let status_bar = status_bar.get_or_insert_with(|| {
                let bar = multi.add(
                    ProgressBar::new_spinner()
                        .with_elapsed(Duration::from_secs(view.elapsed.unwrap_or(0))),
                );
                bar.set_style(
                    ProgressStyle::with_template("elapsed {elapsed_precise}  {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_secs(1));
                bar
            });
            if let Some(traffic) = &view.traffic {
                status_bar.set_message(traffic.clone());
            }
            for (i, b) in view.batches.iter().enumerate() {
                if i == bars.len() {
                    let bar = multi.add(ProgressBar::new(b.total));
                    bar.set_style(style.clone());
                    bar.set_prefix(b.name.clone());
                    bars.push(bar);
                }
                bars[i].set_length(b.total);
                bars[i].set_position(b.ready);
                bars[i].set_message(b.state.clone());
            }
            if view.checks != transcript.checks {
                for line in &view.checks {
                    let _ = multi.println(line);
                }
                transcript.checks.clone_from(&view.checks);
            }
            if view.hint != transcript.hint {
                if let Some(hint) = &view.hint {
                    let _ = multi.println(hint);
                }
                transcript.hint.clone_from(&view.hint);
            }
            if let Some(line) = view.outcome_line() {
                // Only a success fills the bars; a failure or an abort leaves them where
                // they stood.
                for bar in &bars {
                    if view.outcome == Some(Outcome::Succeeded) {
                        bar.finish();
                    } else {
                        bar.abandon();
                    }
                }
                status_bar.abandon();
                say(&line);
            }
        } else {
            for line in transcript.update(&view) {
                say(&line);
            }
        }
        if let Some(outcome) = view.outcome {
            return Ok((outcome, answer));
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let outcome = Outcome::TimedOut(limit.as_secs());
            let line = View {
                outcome: Some(outcome.clone()),
                ..view
            }
            .outcome_line()
            .unwrap_or_default();
            for bar in bars.iter().chain(&status_bar) {
                bar.abandon();
            }
            say(&transcript.line(now_ms(), &line));
            return Ok((outcome, answer));
        }
        // A quiet stream wakes the watch every 15 s; a --timeout that runs out first ends it.
        match timeout {
            Some(limit) => push.wait_at_most(interval, limit.saturating_sub(started.elapsed())),
            None => push.wait(interval),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gray + 2-batch automatic release (`--gray 1 --batches 2 --batch-wait 1`, 3 replicas
    /// with a 3-second readiness delay) as the real edasd answered GetChangeOrderInfo while it
    /// ran, each distinct answer once (RequestIds removed).
    const FIXTURE: &str = include_str!("../tests/fixtures/gray_two_batches.json");

    /// When the server answered: its latest pipeline update (so the minutes left are exact).
    fn answered_at(answer: &Value) -> u64 {
        answer["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["UpdateTime"].as_str()?.parse::<i64>().ok())
            .max()
            .unwrap() as u64
    }

    #[test]
    fn gray_and_two_batches_plain_view() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let mut t = Transcript::default();
        let mut out = Vec::new();
        for a in &answers {
            let ctx = Context {
                batch_wait_minutes: Some(1),
                now_ms: answered_at(a) + 20_000,
            };
            out.extend(t.update(&view(a, ctx).unwrap()));
        }
        insta::assert_snapshot!(out.join("\n"));
        // Unchanged answers print nothing more.
        let again = view(answers.last().unwrap(), Context::default()).unwrap();
        assert_eq!(t.update(&again), vec![again.outcome_line().unwrap()]);
    }

    /// The lines of one answer, as a fresh watch prints them.
    fn lines(answer: &Value) -> String {
        Transcript::default()
            .update(&view(answer, Context::default()).unwrap())
            .join("\n")
    }

    #[test]
    fn a_failure_and_an_abort_leave_the_batches_where_they_stood() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let mut failed = answers[2].clone();
        let info = &mut failed["changeOrderInfo"];
        info["Status"] = 3.into();
        // Batch 1 was running: it fails where it stood.
        let p = &mut info["PipelineInfoList"]["PipelineInfo"][1];
        p["PipelineStatus"] = 3.into();
        let task = &mut p["StageDetailList"]["StageDetailDTO"][1]["TaskList"]["TaskInfoDTO"][0];
        task["TaskStatus"] = "3".into();
        task["TaskErrorMessage"] = "instance demo-2-1: CrashLoopBackOff (restarts: 3)".into();
        insta::assert_snapshot!("failure", lines(&failed));
        let mut aborted = answers[2].clone();
        let info = &mut aborted["changeOrderInfo"];
        info["Status"] = 6.into();
        info["PipelineInfoList"]["PipelineInfo"][1]["PipelineStatus"] = 6.into();
        insta::assert_snapshot!("abort", lines(&aborted));
    }

    /// `answer` with an analysis stage (as edasd adds it to a judged release's batches) on
    /// the gray batch, in `stage_status`, its task saying `message`.
    fn judged(answer: &Value, stage_status: i64, message: &str, error: &str) -> Value {
        let mut a = answer.clone();
        let p = &mut a["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"][0];
        let stages = p["StageDetailList"]["StageDetailDTO"]
            .as_array_mut()
            .unwrap();
        stages.push(serde_json::json!({
            "StageId": "s-analysis",
            "StageName": "Release analysis",
            "StageStatus": stage_status,
            "TaskList": {"TaskInfoDTO": [{
                "TaskId": "t-analysis",
                "TaskName": "Judge the batch with the release policy",
                "TaskMessage": message,
                "TaskStatus": stage_status.to_string(),
                "TaskErrorCode": error,
                "TaskErrorMessage": "",
            }]},
        }));
        a
    }

    #[test]
    fn the_release_analysis_shows_each_check_against_its_condition() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        // The gray batch is judged: in progress, its checks on lines of their own.
        let mut running = answers[0].clone();
        running["changeOrderInfo"]["Status"] = 1.into();
        running["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"][0]["PipelineStatus"] =
            1.into();
        let running = judged(
            &running,
            1,
            "errors: result=0.01 (condition result < 0.05), 2 measured, 0 failed, 0 inconclusive — running\n\
             p99: result=41.5 (condition result < 250), 2 measured, 0 failed, 0 inconclusive — running",
            "",
        );
        let mut t = Transcript::default();
        let mut out = t.update(&view(&running, Context::default()).unwrap());
        // Held at status 8 by a failed check.
        let held = judged(
            &answers[0],
            3,
            "errors: result=0.3 (condition result < 0.05), 1 measured, 1 failed, 0 inconclusive — failed",
            "AnalysisFailed",
        );
        let mut held = held;
        held["changeOrderInfo"]["Status"] = 8.into();
        held["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"][0]["PipelineStatus"] = 8.into();
        out.extend(t.update(&view(&held, Context::default()).unwrap()));
        insta::assert_snapshot!("analysis", out.join("\n"));
    }

    #[test]
    fn the_confirmation_hint_fits_80_columns_and_the_wait_counts_seconds() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let waiting = answers
            .iter()
            .find(|a| {
                a["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["PipelineStatus"] == 9)
            })
            .unwrap();
        let mut confirm = waiting.clone();
        let info = &mut confirm["changeOrderInfo"];
        info["Status"] = 8.into();
        for p in info["PipelineInfoList"]["PipelineInfo"]
            .as_array_mut()
            .unwrap()
        {
            if p["PipelineStatus"] == 9 {
                p["PipelineStatus"] = 8.into();
            }
        }
        let text = lines(&confirm);
        insta::assert_snapshot!("confirmation", text);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
        }
        let at = answered_at(waiting);
        let ctx = |seconds_in: u64| Context {
            batch_wait_minutes: Some(2),
            now_ms: at + seconds_in * 1000,
        };
        let state = |c| {
            view(waiting, c)
                .unwrap()
                .batches
                .into_iter()
                .find(|b| b.status == 9)
                .unwrap()
                .state
        };
        assert_eq!(state(ctx(55)), "waiting 1 min 05 s before starting");
        assert_eq!(state(ctx(100)), "waiting 20 s before starting");
    }

    #[test]
    fn outcomes_and_exit_codes() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let last = view(answers.last().unwrap(), Context::default()).unwrap();
        assert_eq!(last.outcome, Some(Outcome::Succeeded));
        assert_eq!(last.outcome.unwrap().exit_code(), 0);
        let mut failed = answers[2].clone();
        let info = &mut failed["changeOrderInfo"];
        info["Status"] = 3.into();
        let p = &mut info["PipelineInfoList"]["PipelineInfo"][0];
        p["PipelineStatus"] = 3.into();
        let task = &mut p["StageDetailList"]["StageDetailDTO"][1]["TaskList"]["TaskInfoDTO"][0];
        task["TaskStatus"] = "3".into();
        task["TaskErrorMessage"] = "instance exited with status 1".into();
        let v = view(&failed, Context::default()).unwrap();
        assert_eq!(
            v.outcome,
            Some(Outcome::Failed("instance exited with status 1".into()))
        );
        assert_eq!(v.outcome.unwrap().exit_code(), EXIT_FAILED);
        assert_eq!(Outcome::TimedOut(30).exit_code(), EXIT_TIMED_OUT);
        assert!(view(&serde_json::json!({"Code": 200}), Context::default()).is_err());
    }

    /// The traffic shares edasd answers, as the watch shows them.
    #[test]
    fn the_traffic_share_line() {
        let lines: Vec<String> = [
            serde_json::json!({"Mode": "AllReady"}),
            serde_json::json!({"Mode": "GraySplit", "StableRevision": "1", "GrayRevision": "2",
                "Rules": [{"ConditionType": "percent", "Percent": 20}]}),
            serde_json::json!({"Mode": "GraySplit", "StableRevision": 1, "GrayRevision": 2,
                "Rules": [{"ConditionType": "content", "Conditions": [
                    {"Type": "header", "Name": "x-user", "Operator": "==", "Value": "beta"}]}]}),
            serde_json::json!({"Mode": "GraySplit", "StableRevision": "7", "GrayRevision": "8",
                "Rules": [{"ConditionType": "content", "Conditions": [
                    {"Type": "cookie", "Name": "a-rather-long-cookie-name", "Operator": "regex",
                     "Value": "^(alpha|beta|gamma|delta)-[0-9]+$"}]},
                    {"ConditionType": "percent", "Percent": 5}]}),
            serde_json::json!({"Mode": "Aborted", "StableRevision": "1", "GrayRevision": "2"}),
        ]
        .iter()
        .map(|t| traffic_line(&Traffic::deserialize(t).unwrap()))
        .collect();
        for line in &lines {
            assert!(line.chars().count() <= LINE, "{line}");
        }
        insta::assert_snapshot!("traffic", lines.join("\n"));
    }

    /// ListHistoryDeployVersion as edasd answers it, newest first.
    fn history(order: &str) -> Value {
        serde_json::json!({"Code": 200, "PackageVersionList": {"PackageVersion": [
            {"Id": "3", "PackageVersion": "registry.example.com/team/demo-service:2026.12.06-rc1",
             "ChangeOrderId": order, "Revision": 3, "Current": true},
            {"Id": "2", "PackageVersion": "r2", "ChangeOrderId": "older", "Revision": 2},
            {"Id": "1", "PackageVersion": "demo:1", "ChangeOrderId": "", "Revision": 1},
        ]}})
    }

    #[test]
    fn the_versions_header() {
        let first = serde_json::json!({"Code": 200, "PackageVersionList": {"PackageVersion": [
            {"Id": "1", "PackageVersion": "demo:1", "ChangeOrderId": "co-1"}]}});
        let lines = [
            versions_line(&history("co-3"), "co-3").unwrap(),
            versions_line(&history("co-3"), "older").unwrap(),
            versions_line(&first, "co-1").unwrap(),
        ];
        for line in &lines {
            assert!(line.chars().count() <= LINE, "{line}");
        }
        insta::assert_snapshot!("versions", lines.join("\n"));
        assert_eq!(
            versions_line(&serde_json::json!({"Code": 200}), "co-3"),
            None
        );
    }

    /// Plain mode: each line starts with the UTC time of its answer (a fixed clock), the
    /// traffic share shows while the gray batch splits requests, and the elapsed time closes.
    #[test]
    fn plain_mode_timestamps_traffic_and_elapsed() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let id = answers[0]["changeOrderInfo"]["ChangeOrderId"]
            .as_str()
            .unwrap();
        let mut t = Transcript::stamped();
        let created: u64 = answers[0]["changeOrderInfo"]["CreateTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut out = vec![t.line(created, &versions_line(&history(id), id).unwrap())];
        let split = Traffic::deserialize(serde_json::json!({"Mode": "GraySplit",
            "StableRevision": "1", "GrayRevision": "2",
            "Rules": [{"ConditionType": "percent", "Percent": 20}]}))
        .unwrap();
        let all = Traffic::deserialize(serde_json::json!({"Mode": "AllReady"})).unwrap();
        for a in &answers {
            let ctx = Context {
                batch_wait_minutes: Some(1),
                now_ms: answered_at(a) + 1_000,
            };
            let mut v = view(a, ctx).unwrap();
            assert!(needs_traffic(&v), "a release with a gray batch");
            let gray_done = v.batches[0].status == status::SUCCESS;
            let batch_1_started =
                matches!(v.batches[1].status, status::IN_PROGRESS | status::SUCCESS);
            v.traffic = Some(traffic_line(if gray_done && batch_1_started {
                &all
            } else {
                &split
            }));
            out.extend(t.update(&v));
        }
        let text = out.join("\n");
        insta::assert_snapshot!("plain_mode", text);
        for line in text.lines() {
            let (stamp, rest) = line.split_at(21);
            assert!(stamp.ends_with("Z "), "{line}");
            assert!(!rest.starts_with(' '), "{line}");
            // The lines this view adds fit 80 columns with the timestamp; a batch's line
            // carries the server's message whole (plain mode goes to logs, not a terminal).
            if ["version:", "traffic:", "elapsed:"]
                .iter()
                .any(|p| rest.starts_with(p))
            {
                assert!(line.chars().count() <= 80, "{line}");
            }
        }
        assert!(text.contains("elapsed: "), "{text}");
    }

    #[test]
    fn the_elapsed_time_counts_from_the_change_orders_creation() {
        let answers: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
        let a = answers.last().unwrap();
        let created: u64 = a["changeOrderInfo"]["CreateTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let at = |ms| {
            view(
                a,
                Context {
                    batch_wait_minutes: None,
                    now_ms: ms,
                },
            )
            .unwrap()
        };
        assert_eq!(
            at(created + 65_400).elapsed_line().unwrap(),
            "elapsed: 1 min 05 s"
        );
        assert_eq!(at(created + 9_000).elapsed, Some(9));
        assert_eq!(at(0).elapsed, None, "no clock, no elapsed time");
        assert_eq!(timestamp(1_796_548_323_000), "2026-12-06T09:12:03Z");
    }
}
