//! What an application's traffic routing must be, derived from stored state alone (the current
//! revision document and the change order driving it), so the engine can re-apply it after any
//! restart without remembering what it applied before.

use edas_release::{BatchKind, ChangeKind, ChangeOrder, Status};
use edas_runtime::{GraySplit, Routing};
use edas_spec::AppSpec;
use edas_spec::release::TrafficControl;

use crate::RevisionDoc;

/// The routing of an application whose current revision document is `doc`, while `order` (if
/// any) drives it.
///
/// - Services, lossless start and empty-push protection come from the current revision: a
///   release's new Services take effect when it starts and select the instances of every
///   revision, as Kubernetes Services selecting the application label do.
/// - A deleted application (a Delete order) has no Services.
/// - The gray split exists only while a release with `TrafficControlStrategy` is in its gray
///   batch or waiting after it (status 8/9 before batch 2): that is when users verify the gray
///   instances. Once the next batch starts, or the order succeeds or fails, traffic goes to
///   every ready instance again.
/// - An aborted release (status 6) whose previous revision still has instances sends it all
///   the traffic at once: the new revision's instances stay (until a rollback or a new
///   release) but get 0 % (a split of 0 % to them), however far the release had come and
///   whether or not it had a `TrafficControlStrategy`.
///
/// Public so the application layer can answer what routing applies now (GetK8sServices'
/// `Traffic`) from the same function the engine applies.
pub fn routing(doc: &RevisionDoc, order: Option<&ChangeOrder>) -> Routing {
    build(doc, order, in_gray_phase)
}

/// The routing `order` will need during its gray batch (or at all, without one): what
/// [`edas_runtime::Runtime::check_routing`] must accept before the change is stored.
pub(crate) fn preview(
    spec: &AppSpec,
    traffic: Option<&TrafficControl>,
    order: &ChangeOrder,
) -> Routing {
    let doc = RevisionDoc {
        template_revision: order.to_revision().0.clone(),
        spec: spec.clone(),
        config_digest: String::new(),
        config_copies: Default::default(),
        traffic_control: traffic.cloned(),
    };
    build(&doc, Some(order), has_gray_batch)
}

fn build(
    doc: &RevisionDoc,
    order: Option<&ChangeOrder>,
    gray_now: fn(&ChangeOrder) -> bool,
) -> Routing {
    if order.is_some_and(|o| o.kind() == ChangeKind::Delete) {
        return Routing::default();
    }
    let aborted = order.and_then(aborted_split);
    let gray = aborted.or_else(|| {
        order.and_then(|o| {
            let traffic = doc.traffic_control.as_ref()?;
            if !gray_now(o) {
                return None;
            }
            Some(GraySplit {
                stable_revision: o.previous()?.revision.0.clone(),
                gray_revision: o.to_revision().0.clone(),
                traffic: traffic.clone(),
            })
        })
    });
    // A release onto the revision that already serves has nothing to split.
    let gray = gray.filter(|g| g.stable_revision != g.gray_revision);
    Routing {
        services: doc.spec.services.clone(),
        lossless: doc.spec.lossless.clone(),
        empty_push_reject: doc.spec.empty_push_reject,
        gray,
    }
}

/// The split of an aborted release: everything to the revision that served before it (while it
/// still has instances), 0 % to the new one.
fn aborted_split(order: &ChangeOrder) -> Option<GraySplit> {
    if order.status() != Status::Terminated || order.kind() == ChangeKind::Rollback {
        return None;
    }
    let new = order.to_revision();
    let (stable, _) = order
        .desired_replicas()
        .into_iter()
        .find(|(rev, n)| rev != new && *n > 0)?;
    Some(GraySplit {
        stable_revision: stable.0,
        gray_revision: new.0.clone(),
        traffic: TrafficControl {
            rules: vec![edas_spec::release::TrafficRule::Percent { percent: 0 }],
        },
    })
}

fn has_gray_batch(order: &ChangeOrder) -> bool {
    order
        .plan()
        .batches()
        .first()
        .is_some_and(|b| b.kind == BatchKind::Gray)
}

/// Whether `order` is in its gray batch, or waiting for the batch after it.
fn in_gray_phase(order: &ChangeOrder) -> bool {
    if !has_gray_batch(order) || !order.is_active() {
        return false;
    }
    match order.current_batch() {
        Some(0) => true,
        Some(1) => matches!(
            order.status(),
            Status::WaitingForConfirmation | Status::WaitingForNextBatch
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use edas_release::{Input, Instances, NewOrder, Observation, ReleaseSettings, RevisionId};
    use edas_spec::release::TrafficRule;

    use super::*;

    fn doc(traffic: bool) -> RevisionDoc {
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "name": "demo", "cluster_id": "local", "replicas": 4,
            "services": [{"name": "web", "serviceType": "ClusterIP",
                "portMappings": [{"servicePort": {"port": 8080, "targetPort": 8080}}]}]
        }))
        .unwrap_or_default();
        RevisionDoc {
            template_revision: "2".into(),
            spec,
            config_digest: String::new(),
            config_copies: Default::default(),
            traffic_control: traffic.then(|| TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            }),
        }
    }

    fn order(kind: ChangeKind, gray: u32) -> ChangeOrder {
        let strategy = if gray > 0 {
            edas_release::Strategy::GrayBatch {
                gray,
                batches: 2,
                release: edas_release::Release::Manual,
            }
        } else {
            edas_release::Strategy::Single
        };
        let plan = edas_release::plan(4, &strategy).expect("plan");
        ChangeOrder::new(
            NewOrder {
                id: "co".into(),
                kind,
                description: String::new(),
                from: Some(Instances {
                    revision: RevisionId("1".into()),
                    replicas: 4,
                    ready: 4,
                }),
                to: Instances {
                    revision: RevisionId("2".into()),
                    replicas: 0,
                    ready: 0,
                },
                plan,
                settings: ReleaseSettings::default(),
            },
            edas_release::EpochMillis(0),
        )
        .expect("order")
    }

    fn observe(o: &mut ChangeOrder, revision: &str, ready: u32, at: u64) {
        let obs = Observation {
            revision: RevisionId(revision.into()),
            ready,
            total: ready,
            failed: None,
            instances: Vec::new(),
        };
        let _ = o.step(Input::Observed(obs), edas_release::EpochMillis(at));
    }

    #[test]
    fn services_come_from_the_current_revision_and_a_delete_removes_them() {
        let d = doc(false);
        assert_eq!(routing(&d, None).services.len(), 1);
        assert_eq!(routing(&d, None).gray, None);
        let del = order(ChangeKind::Delete, 0);
        assert_eq!(routing(&d, Some(&del)), Routing::default());
    }

    #[test]
    fn the_gray_split_lasts_from_the_gray_batch_until_the_next_batch_starts() {
        let d = doc(true);
        let mut o = order(ChangeKind::Deploy, 1);
        assert_eq!(routing(&d, Some(&o)).gray, None, "not started yet");
        o.step(Input::Start, edas_release::EpochMillis(1))
            .expect("start");
        let g = routing(&d, Some(&o)).gray.expect("split in the gray batch");
        assert_eq!(
            (g.stable_revision.as_str(), g.gray_revision.as_str()),
            ("1", "2")
        );
        // The gray instance becomes ready; the old revision shrinks; the order waits (8).
        observe(&mut o, "2", 1, 2);
        observe(&mut o, "1", 3, 3);
        assert_eq!(o.status(), Status::WaitingForConfirmation);
        assert!(routing(&d, Some(&o)).gray.is_some(), "split while waiting");
        let pipeline = o.pipelines()[1].id.clone();
        o.step(
            Input::Continue {
                pipeline_id: pipeline,
                confirm: true,
            },
            edas_release::EpochMillis(4),
        )
        .expect("continue");
        assert_eq!(routing(&d, Some(&o)).gray, None, "batch 2 started");
        // Without TrafficControlStrategy there is never a split.
        let mut plain = order(ChangeKind::Deploy, 1);
        plain
            .step(Input::Start, edas_release::EpochMillis(1))
            .expect("start");
        assert_eq!(routing(&doc(false), Some(&plain)).gray, None);
    }

    #[test]
    fn an_aborted_release_sends_everything_to_the_revision_before_it() {
        for traffic in [true, false] {
            let d = doc(traffic);
            let mut o = order(ChangeKind::Deploy, 1);
            o.step(Input::Start, edas_release::EpochMillis(1))
                .expect("start");
            observe(&mut o, "2", 1, 2);
            observe(&mut o, "1", 3, 3);
            o.step(Input::Abort, edas_release::EpochMillis(4))
                .expect("abort");
            assert_eq!(o.status(), Status::Terminated);
            let g = routing(&d, Some(&o)).gray.expect("a split after the abort");
            assert_eq!(
                (g.stable_revision.as_str(), g.gray_revision.as_str()),
                ("1", "2")
            );
            assert_eq!(
                g.traffic.rules,
                vec![edas_spec::release::TrafficRule::Percent { percent: 0 }]
            );
        }
        // Aborted before anything started: the old revision keeps its instances and the split
        // costs nothing; a rollback order that is aborted leaves the routing alone.
        let mut rb = order(ChangeKind::Rollback, 0);
        rb.step(Input::Start, edas_release::EpochMillis(1))
            .expect("start");
        rb.step(Input::Abort, edas_release::EpochMillis(2))
            .expect("abort");
        assert_eq!(routing(&doc(false), Some(&rb)).gray, None);
    }
}
