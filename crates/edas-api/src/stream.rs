//! The push stream: `GET /edasd/v1/events?AppId=…` or `?ChangeOrderId=…`, signed like every
//! request, answered as server-sent events (`text/event-stream`) with the release events of
//! that application or change order, oldest first, as they are stored. Each message is
//! `id: <sequence>`, `event: <type>`, `data: <the event as JSON>` (edas-wire's `notify::Event`);
//! a client that reconnects with `Last-Event-ID: <sequence>` (or `LastEventId=`) resumes after
//! it, so nothing is missed. Authorization: `edas:ReadApplication` on the application.
//!
//! No polling: the stream waits on the store's commit signal (on PostgreSQL also woken by the
//! commits of other edasd processes, through LISTEN/NOTIFY), with a keep-alive comment every
//! 15 s.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use edas_app::{EventScope, StoredEvent};
use edas_spec::Params;
use tracing::Instrument as _;

use crate::Api;
use crate::admin::notify_event;
use crate::apps::arn;
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, only};
use crate::server::{RequestId, authenticate, receive, respond};

/// The parameters of `GET /edasd/v1/events`.
pub const EVENT_PARAMETERS: &[&str] = &["AppId", "ChangeOrderId", "LastEventId", "RegionId"];

/// Events read from the store at a time.
const BATCH: u32 = 100;

/// Streams one user may have open at once (events and logs together): each holds a
/// connection, and an event stream reads the store at every commit, so one key's flood of
/// idle streams must not cost everyone else.
pub(crate) const MAX_STREAMS_PER_USER: usize = 32;

/// The streams open per user.
pub(crate) type OpenStreams = std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>;

/// One open stream of a user, counted until dropped (with the stream's body).
pub(crate) struct Permit {
    open: OpenStreams,
    user: String,
}

impl Permit {
    pub(crate) fn take(open: &OpenStreams, user: &str) -> Result<Permit, ApiError> {
        let mut map = open.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(user.to_owned()).or_insert(0);
        if *n >= MAX_STREAMS_PER_USER {
            return Err(ApiError::new(
                codes::THROTTLING_USER,
                format!(
                    "user `{user}` has {MAX_STREAMS_PER_USER} streams open already (events and logs together); close one and retry"
                ),
            ));
        }
        *n += 1;
        Ok(Permit {
            open: open.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

pub(crate) async fn events(State(api): State<Api>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = RequestId::of(&parts);
    let span = tracing::info_span!("events", request_id = %request_id, path = %parts.uri.path());
    async move {
        let started = Instant::now();
        match open(&api, parts, body).await {
            Ok((scope, after, permit)) => {
                tracing::debug!(status = 200, ?scope, after, "streaming release events");
                metrics::counter!("edasd_requests_total", "action" => "edasd.events", "code" => "200")
                    .increment(1);
                let mut response = Sse::new(stream(api, scope, after, permit))
                    .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
                    .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-acs-request-id", v);
                }
                response
            }
            Err(e) => respond(Err(e), &request_id, "edasd.events", started),
        }
    }
    .instrument(span)
    .await
}

/// Checks the request: signature, GET without a body, one of AppId or ChangeOrderId, the
/// caller's right to read the application. Answers the scope and the sequence to resume after.
async fn open(
    api: &Api,
    parts: axum::http::request::Parts,
    body: axum::body::Body,
) -> Result<(EventScope, i64, Permit), ApiError> {
    if parts.method != axum::http::Method::GET {
        return Err(ApiError::new(
            codes::API_NOT_FOUND,
            format!(
                "{} /edasd/v1/events: the stream is read with GET",
                parts.method
            ),
        ));
    }
    let last_header = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let received = receive(parts, body).await?;
    let caller = authenticate(api, &received.signed).await?;
    if !received.signed.body().is_empty() {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            "GET /edasd/v1/events takes its parameters in the query string; the body must be empty",
        ));
    }
    let params = Params::from_pairs(received.signed.query().to_vec())?;
    only(&params, "edasd events", EVENT_PARAMETERS)?;
    let after = match last_header.as_deref().or(params.get("LastEventId")) {
        None | Some("") => 0,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                invalid(
                    "LastEventId",
                    "must be the id (a sequence number) of an event received",
                )
            })?,
    };
    let (scope, app) = match (params.get("AppId"), params.get("ChangeOrderId")) {
        (Some(app_id), None) => {
            let app = api.app().application(app_id).await?;
            (EventScope::Application(app.id.clone()), app)
        }
        (None, Some(order)) => {
            let view = api.app().change_order(order).await?;
            (EventScope::ChangeOrder(view.stored.id.clone()), view.app)
        }
        _ => {
            return Err(ApiError::new(
                codes::MISSING_PARAMETER,
                "give exactly one of AppId and ChangeOrderId",
            ));
        }
    };
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let permit = api.open_stream(&caller.user.name)?;
    Ok((scope, after, permit))
}

struct Cursor {
    api: Api,
    scope: EventScope,
    after: i64,
    queue: VecDeque<StoredEvent>,
    signal: tokio::sync::watch::Receiver<u64>,
    _permit: Permit,
}

fn stream(
    api: Api,
    scope: EventScope,
    after: i64,
    permit: Permit,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    let signal = api.app().events_signal();
    let cursor = Cursor {
        api,
        scope,
        after,
        queue: VecDeque::new(),
        signal,
        _permit: permit,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.queue.pop_front() {
                c.after = e.seq;
                return Some((Ok(message(&e)), c));
            }
            // Read after marking the signal seen: a commit in between wakes the wait below.
            c.signal.borrow_and_update();
            match c.api.app().events_after(&c.scope, c.after, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    c.queue.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading release events failed; ending the stream");
                    return None;
                }
            }
            c.signal.changed().await.ok()?;
        }
    })
}

fn message(e: &StoredEvent) -> Event {
    let data = serde_json::to_string(&notify_event(e)).unwrap_or_default();
    Event::default()
        .id(e.seq.to_string())
        .event(e.kind.clone())
        .data(data)
}
