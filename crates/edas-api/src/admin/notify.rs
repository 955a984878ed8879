//! The notification routes of the admin API: subscriptions and their deliveries.
//!
//! | Method and path | Body | Does |
//! |---|---|---|
//! | `GET /edasd/v1/subscriptions` | | lists subscriptions (never their URL or secret) |
//! | `POST /edasd/v1/subscriptions` | `{"Sink", "Url", "Secret"?, "AppId"?, "EventTypes"?}` | subscribes |
//! | `DELETE /edasd/v1/subscriptions/{id}` | | unsubscribes (its deliveries go too) |
//! | `GET /edasd/v1/subscriptions/{id}/deliveries` | | its latest 100 deliveries, newest first |
//! | `GET /edasd/v1/subscriptions/{id}/deliveries/{state}` | | of one state: `pending`, `delivered`, `dead` |

use axum::extract::Path;
use edas_app::SubscriptionRequest;
use edas_app::{Delivery, DeliveryState, NotifyError, Sensitive, StoredEvent, Subscription};
use edas_wire::notify as wire;
use serde_json::json;

use super::{Admin, Reply, body_json, no_body, not_found, now, ok, removed};
use crate::caller::internal;
use crate::error::{ApiError, codes};

/// Deliveries one answer lists.
const DELIVERIES_LIMIT: u32 = 100;

pub(super) async fn list(admin: Admin) -> Reply {
    no_body(&admin.body)?;
    let subs = admin.app().subscriptions().await.map_err(notify_error)?;
    ok(wire::SubscriptionsBody {
        subscriptions: subs.iter().map(subscription).collect(),
    })
}

pub(super) async fn create(admin: Admin) -> Reply {
    let new: wire::NewSubscription = body_json(&admin.body)?;
    let detail = json!({"Sink": new.sink, "AppId": new.app_id, "EventTypes": new.event_types});
    let req = SubscriptionRequest {
        app_id: new.app_id.filter(|a| !a.is_empty()),
        kinds: new.event_types,
        sink: new.sink,
        url: Sensitive::new(new.url),
        secret: new.secret.map(Sensitive::new),
    };
    let created = admin
        .app()
        .create_subscription(
            req,
            |id| admin.audit("CreateSubscription", format!("subscription/{id}"), detail),
            now(),
        )
        .await
        .map_err(notify_error)?;
    ok(wire::SubscriptionBody {
        subscription: subscription(&created),
    })
}

pub(super) async fn delete(admin: Admin, Path(id): Path<String>) -> Reply {
    no_body(&admin.body)?;
    let deleted = admin
        .app()
        .delete_subscription(
            &id,
            admin.audit(
                "DeleteSubscription",
                format!("subscription/{id}"),
                serde_json::Value::Null,
            ),
            now(),
        )
        .await
        .map_err(notify_error)?;
    removed(deleted, "subscription", &id)
}

pub(super) async fn deliveries(admin: Admin, Path(id): Path<String>) -> Reply {
    list_deliveries(admin, id, None).await
}

pub(super) async fn deliveries_in(
    admin: Admin,
    Path((id, state)): Path<(String, String)>,
) -> Reply {
    let state = DeliveryState::parse(&state).ok_or_else(|| {
        ApiError::new(
            codes::INVALID_PARAMETER,
            format!("State: {state:?} is not a delivery state; use pending, delivered or dead"),
        )
    })?;
    list_deliveries(admin, id, Some(state)).await
}

async fn list_deliveries(admin: Admin, id: String, state: Option<DeliveryState>) -> Reply {
    no_body(&admin.body)?;
    let list = admin
        .app()
        .deliveries(&id, state, DELIVERIES_LIMIT)
        .await
        .map_err(notify_error)?;
    ok(wire::DeliveriesBody {
        deliveries: list.iter().map(delivery).collect(),
    })
}

fn notify_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::Invalid { parameter, reason } => {
            ApiError::new(codes::INVALID_PARAMETER, format!("{parameter}: {reason}"))
        }
        NotifyError::NotFound { entity, id } => not_found(entity, &id),
        other => internal("the subscription request", other),
    }
}

fn subscription(s: &Subscription) -> wire::Subscription {
    wire::Subscription {
        subscription_id: s.id.clone(),
        sink: s.sink.clone(),
        app_id: s.app_id.clone().unwrap_or_default(),
        event_types: s.kinds.clone(),
        creator: s.creator.clone(),
        create_time: s.created_at.as_millisecond(),
    }
}

/// The wire shape of a stored release event (the admin API's and the push stream's).
pub(crate) fn event(e: &StoredEvent) -> wire::Event {
    wire::Event {
        sequence: e.seq,
        event_id: e.id.clone(),
        event_type: e.kind.clone(),
        app_id: e.app_id.clone(),
        change_order_id: e.change_order_id.clone(),
        time: e.at.as_millisecond(),
        data: serde_json::to_value(&e.data).unwrap_or_default(),
    }
}

fn delivery(d: &Delivery) -> wire::Delivery {
    wire::Delivery {
        event: event(&d.event),
        state: d.state.as_str().to_owned(),
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        update_time: d.updated_at.as_millisecond(),
    }
}
