//! Where an application's requests go now: the routing the engine applies, derived from stored
//! state alone (the current revision document and the change order that decides it), answered
//! as a [`Traffic`] so the API can show the live split without knowing the engine's internals.

use edas_release::{ChangeOrder, Status};
use edas_spec::release::TrafficRule;
use edas_store::{Application, PageRequest};

use crate::{App, AppError};

/// How requests reach an application's instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// No split: the Services spread requests over the ready instances of every revision.
    AllReady,
    /// A release's gray batch with a `TrafficControlStrategy`: requests matching `rules` go to
    /// the instances of `gray_revision`, the others to those of `stable_revision`.
    GraySplit {
        /// The revision that served before the release.
        stable_revision: String,
        /// The revision being released.
        gray_revision: String,
        /// The release's rules, as stored (percent or content conditions).
        rules: Vec<TrafficRule>,
    },
    /// An aborted release: every request goes to `stable_revision`, none to the instances of
    /// `aborted_revision`, which stay until a rollback or a newer release.
    Aborted {
        /// The revision that served before the aborted release, and serves again.
        stable_revision: String,
        /// The aborted release's revision (0 % of the requests).
        aborted_revision: String,
    },
}

impl App {
    /// The traffic routing the engine applies to `app` now. The order that decides it is the
    /// application's active change order, or else its newest one when that was aborted (its
    /// new revision keeps 0 % until something newer happens), as the engine picks it when it
    /// restores an idle application's routing.
    pub async fn traffic(&self, app: &Application) -> Result<Traffic, AppError> {
        let order = match self.store.active_change_order(&app.id).await {
            Ok(Some(active)) => Some(active.state),
            Ok(None) => self
                .store
                .list_change_orders(&app.id, PageRequest::new(1, 1))
                .await
                .map_err(|e| AppError::internal("listing change orders", e))?
                .items
                .into_iter()
                .next()
                .map(|stored| stored.state)
                .filter(|state| state.status() == Status::Terminated),
            Err(e) => return Err(AppError::internal("reading the active change order", e)),
        };
        Ok(traffic_of(&app.spec, order.as_ref()))
    }
}

/// The [`Traffic`] of the routing the engine derives from `doc` while `order` decides it.
fn traffic_of(doc: &crate::RevisionDoc, order: Option<&ChangeOrder>) -> Traffic {
    let Some(split) = edas_engine::routing(doc, order).gray else {
        return Traffic::AllReady;
    };
    // An ended order only splits when it was aborted (the engine's 0 % to its revision).
    if order.is_some_and(|o| o.status() == Status::Terminated) {
        Traffic::Aborted {
            stable_revision: split.stable_revision,
            aborted_revision: split.gray_revision,
        }
    } else {
        Traffic::GraySplit {
            stable_revision: split.stable_revision,
            gray_revision: split.gray_revision,
            rules: split.traffic.rules,
        }
    }
}
