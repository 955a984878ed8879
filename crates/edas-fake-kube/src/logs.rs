//! The pod `log` subresource (`GET /api/v1/namespaces/{ns}/pods/{name}/log`) over simulated
//! container output.
//!
//! Fake containers run no program, so their output is what the simulation and the test write:
//! the kubelet simulation writes `<container> started (restart N)` when a container (re)starts
//! and `<container> exited: …` before a crash fault restarts it; a test adds lines with
//! [`crate::FakeCluster::write_log`] or `POST /_fake/logs/{namespace}/{pod}/{container}` (the
//! body is the text). Each restart retires the run's output as the `previous` one, as the
//! kubelet keeps the last terminated container's log.
//!
//! Served: `container` (required when the pod has several containers), `follow` (the stream
//! ends when the container restarts or the pod is deleted), `previous` (400 when the container
//! has not terminated before, worded like the kubelet), `tailLines`, `sinceSeconds`,
//! `timestamps` (RFC 3339 prefix) and `limitBytes`. Event-driven: a follower wakes on writes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::resources::by_kind;
use crate::server::AppState;

/// `(namespace, pod, container)`.
type Key = (String, String, String);

/// One line and when it was written.
#[derive(Clone)]
struct Line {
    at: SystemTime,
    text: String,
}

#[derive(Default)]
struct ContainerLog {
    /// The restart count the current run has.
    run: u64,
    current: Vec<Line>,
    previous: Option<Vec<Line>>,
}

/// The output of every simulated container.
pub struct Logs {
    logs: Mutex<HashMap<Key, ContainerLog>>,
    /// Bumped on every change, so followers look again.
    changed: watch::Sender<u64>,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            logs: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl Logs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, ContainerLog>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Appends `text` (split into lines) to the current run of a container.
    pub fn write(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        {
            let mut logs = self.lock();
            let log = logs
                .entry((namespace.to_owned(), pod.to_owned(), container.to_owned()))
                .or_default();
            let at = SystemTime::now();
            log.current.extend(text.lines().map(|l| Line {
                at,
                text: l.to_owned(),
            }));
        }
        self.bump();
    }

    /// A container started its run `restart` (0 for the first): the run before becomes the
    /// previous one.
    pub fn started(&self, namespace: &str, pod: &str, container: &str, restart: u64) {
        {
            let mut logs = self.lock();
            let log = logs
                .entry((namespace.to_owned(), pod.to_owned(), container.to_owned()))
                .or_default();
            if restart > log.run {
                log.previous = Some(std::mem::take(&mut log.current));
                log.run = restart;
            }
            log.current.push(Line {
                at: SystemTime::now(),
                text: format!("{container} started (restart {restart})"),
            });
        }
        self.bump();
    }

    /// Forgets the logs of pods that no longer exist (`(namespace, name)` of those that do).
    pub fn retain(&self, pods: &[(String, String)]) {
        let removed = {
            let mut logs = self.lock();
            let before = logs.len();
            logs.retain(|(ns, pod, _), _| pods.iter().any(|(n, p)| n == ns && p == pod));
            before != logs.len()
        };
        if removed {
            self.bump();
        }
    }

    /// `(lines, run)` of the current or previous run, `None` when there is none.
    fn read(&self, key: &Key, previous: bool) -> Option<(Vec<Line>, u64)> {
        let logs = self.lock();
        let log = logs.get(key)?;
        if previous {
            log.previous.clone().map(|p| (p, log.run))
        } else {
            Some((log.current.clone(), log.run))
        }
    }
}

/// The query of a log request.
struct LogQuery {
    container: Option<String>,
    follow: bool,
    previous: bool,
    tail_lines: Option<usize>,
    since: Option<SystemTime>,
    timestamps: bool,
    limit_bytes: Option<usize>,
}

fn parse(query: Option<&str>) -> Result<LogQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    let mut q = LogQuery {
        container: None,
        follow: false,
        previous: false,
        tail_lines: None,
        since: None,
        timestamps: false,
        limit_bytes: None,
    };
    let number = |key: &str, value: &str| {
        value.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("{key}: `{value}` is not a non-negative integer"))
        })
    };
    let flag = |value: &str| !matches!(value, "" | "false" | "0");
    for (key, value) in pairs {
        match key.as_str() {
            "container" => q.container = Some(value),
            "follow" => q.follow = flag(&value),
            "previous" => q.previous = flag(&value),
            "timestamps" => q.timestamps = flag(&value),
            "pretty" => {}
            "tailLines" => {
                q.tail_lines = Some(usize::try_from(number(&key, &value)?).unwrap_or(usize::MAX))
            }
            "limitBytes" => {
                q.limit_bytes = Some(usize::try_from(number(&key, &value)?).unwrap_or(usize::MAX))
            }
            "sinceSeconds" => {
                let s = number(&key, &value)?;
                q.since = SystemTime::now().checked_sub(Duration::from_secs(s));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?} for pods/log (edas-fake-kube serves: container, follow, previous, tailLines, sinceSeconds, timestamps, limitBytes, pretty)"
                )));
            }
        }
    }
    Ok(q)
}

fn render(lines: &[Line], timestamps: bool) -> String {
    let mut out = String::new();
    for l in lines {
        if timestamps {
            let at = jiff::Timestamp::try_from(l.at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            out.push_str(&at.to_string());
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    out
}

/// The names of a pod's containers, in order.
pub(crate) fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// `GET /api/v1/namespaces/{namespace}/pods/{pod}/log`.
pub(crate) fn serve(
    app: &AppState,
    namespace: &str,
    pod_name: &str,
    query: Option<&str>,
) -> Response {
    match answer(app, namespace, pod_name, query) {
        Ok(response) => response,
        Err(error) => (
            StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json")],
            format!("{}\n", error.status()),
        )
            .into_response(),
    }
}

fn answer(
    app: &AppState,
    namespace: &str,
    pod_name: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let q = parse(query)?;
    let pod = app.store.get(by_kind("Pod"), namespace, pod_name)?;
    let containers = container_names(&pod);
    let container = match q.container.clone() {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let key = (namespace.to_owned(), pod_name.to_owned(), container.clone());
    let Some((mut lines, run)) = app.logs.read(&key, q.previous) else {
        if q.previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        return Ok(text_response(String::new()));
    };
    if let Some(since) = q.since {
        lines.retain(|l| l.at >= since);
    }
    if let Some(n) = q.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut first = render(&lines, q.timestamps);
    if let Some(limit) = q.limit_bytes {
        let mut cut = limit.min(first.len());
        while !first.is_char_boundary(cut) {
            cut -= 1;
        }
        first.truncate(cut);
        return Ok(text_response(first));
    }
    if !q.follow || q.previous {
        return Ok(text_response(first));
    }
    // Following: what the run gains, until it ends (a restart) or the pod's logs are gone.
    let sent = app.logs.read(&key, false).map_or(0, |(l, _)| l.len());
    let logs = app.logs.clone();
    let mut changed = app.logs.changed.subscribe();
    changed.mark_unchanged();
    let timestamps = q.timestamps;
    let state = (Some(first), sent, changed);
    let stream = futures_util::stream::unfold(state, move |(pending, mut sent, mut changed)| {
        let logs = logs.clone();
        let key = key.clone();
        async move {
            if let Some(text) = pending {
                return Some((Ok::<_, std::io::Error>(text), (None, sent, changed)));
            }
            loop {
                match logs.read(&key, false) {
                    Some((lines, r)) if r == run => {
                        if lines.len() > sent {
                            let text = render(&lines[sent..], timestamps);
                            sent = lines.len();
                            return Some((Ok(text), (None, sent, changed)));
                        }
                    }
                    _ => return None,
                }
                if changed.changed().await.is_err() {
                    return None;
                }
            }
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn text_response(text: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}
