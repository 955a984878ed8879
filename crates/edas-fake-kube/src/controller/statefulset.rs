//! The StatefulSet controller stand-in: pods `<name>-<ordinal>` with stable names, `hostname`
//! and `subdomain` (the `serviceName`), `OrderedReady` management and the `RollingUpdate`
//! strategy with its `partition`, as the real controller runs them:
//!
//! - one action per pass, each waiting for the one before: the missing ordinal below
//!   `replicas` is created (lowest first) only once every lower pod is Ready; then the highest
//!   condemned pod (ordinal ≥ `replicas`) is deleted; then the highest pod at or above
//!   `partition` not running the update revision is deleted, to be re-created from the
//!   template. A pod that is not Ready blocks everything after it (as on a real cluster, a
//!   rollback must delete a broken pod itself: "forced rollback");
//! - a pod created below the partition gets the *current* revision's template, one at or
//!   above it the update revision's;
//! - revisions are `<name>-<hash of the template>` (the `controller-revision-hash` pod label);
//!   a template that returns to an earlier content gets its earlier revision back.
//!
//! Divergences: no ControllerRevision objects (the templates of a StatefulSet's revisions are
//! kept in memory), no `volumeClaimTemplates`, no `Parallel` policy, no `maxUnavailable`,
//! `OnDelete` never replaces a pod; deletion is immediate, as everywhere in this server.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Controller, controller_owner, int, is_ready, template_hash};
use crate::resources::by_kind;
use crate::store::{name_of, uid_of};

/// The pod label naming the StatefulSet revision a pod runs.
pub const REVISION_LABEL: &str = "controller-revision-hash";

impl Controller {
    /// One pass of the StatefulSet controller over `set` (see the module docs).
    pub(super) fn sync_stateful_set(
        &self,
        set: &Value,
        now: Instant,
        due: &mut impl FnMut(Instant),
    ) {
        let pod_kind = by_kind("Pod");
        let uid = uid_of(set).to_owned();
        let name = name_of(set).to_owned();
        let replicas = int(set, "/spec/replicas");
        let on_delete = set
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
            == Some("OnDelete");
        let partition = if on_delete {
            i64::MAX
        } else {
            int(set, "/spec/updateStrategy/rollingUpdate/partition").max(0)
        };
        let template = set.pointer("/spec/template").cloned().unwrap_or_default();
        let update = format!("{name}-{}", template_hash(&template));
        let templates = {
            let mut history = self.set_revisions.lock().unwrap_or_else(|p| p.into_inner());
            let known = history.entry(uid.clone()).or_default();
            known.insert(update.clone(), template.clone());
            known.clone()
        };
        let current = set
            .pointer("/status/currentRevision")
            .and_then(Value::as_str)
            .filter(|r| templates.contains_key(*r))
            .unwrap_or(&update)
            .to_owned();
        let pods = self.ordinals(&uid, &name);
        let revision_of = |p: &Value| {
            p.pointer(&format!("/metadata/labels/{REVISION_LABEL}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        'act: {
            for ordinal in 0..replicas {
                match pods.get(&ordinal) {
                    None => {
                        let revision = if ordinal >= partition {
                            &update
                        } else {
                            &current
                        };
                        let from = templates.get(revision).unwrap_or(&template);
                        self.store.controller_create(
                            pod_kind,
                            stateful_pod(set, ordinal, revision, from),
                        );
                        break 'act;
                    }
                    // OrderedReady: nothing further until this pod is Ready.
                    Some(pod) if !is_ready(pod) => break 'act,
                    Some(_) => {}
                }
            }
            if let Some((_, condemned)) = pods.range(replicas.max(0)..).next_back() {
                self.store.controller_delete(pod_kind, condemned);
                break 'act;
            }
            for ordinal in (partition.min(replicas)..replicas).rev() {
                if let Some(pod) = pods.get(&ordinal)
                    && revision_of(pod).as_deref() != Some(update.as_str())
                {
                    self.store.controller_delete(pod_kind, pod);
                    break 'act;
                }
            }
        }
        // Status, from the pods as they are now.
        let set = match self.store.get(
            by_kind("StatefulSet"),
            set.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            &name,
        ) {
            Ok(fresh) if uid_of(&fresh) == uid => fresh,
            _ => return,
        };
        let pods = self.ordinals(&uid, &name);
        let count = |f: &dyn Fn(&Value) -> bool| pods.values().filter(|p| f(p)).count() as i64;
        let total = pods.len() as i64;
        let ready = count(&|p| is_ready(p));
        let min_ready = int(&set, "/spec/minReadySeconds");
        let available = pods
            .values()
            .filter(|p| self.available(p, min_ready, now, due))
            .count();
        let updated = count(&|p| revision_of(p).as_deref() == Some(update.as_str()));
        // The rollout is complete once every pod runs the update revision and is Ready.
        let current = if updated == replicas && total == replicas && ready == replicas {
            update.clone()
        } else {
            current
        };
        let current_replicas = count(&|p| revision_of(p).as_deref() == Some(current.as_str()));
        let status = json!({
            "observedGeneration": int(&set, "/metadata/generation"),
            "replicas": total,
            "readyReplicas": ready,
            "availableReplicas": available,
            "currentReplicas": current_replicas,
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": update,
            "collisionCount": 0,
        });
        if set.get("status") != Some(&status) {
            let mut written = set.clone();
            written["status"] = status;
            self.store
                .controller_write(by_kind("StatefulSet"), written, true);
        }
    }

    /// The pods StatefulSet `uid` (named `name`) owns, by ordinal.
    fn ordinals(&self, uid: &str, name: &str) -> BTreeMap<i64, Value> {
        self.store
            .all(by_kind("Pod"))
            .into_iter()
            .filter(|p| controller_owner(p) == Some(uid))
            .filter_map(|p| {
                let ordinal = name_of(&p)
                    .strip_prefix(name)?
                    .strip_prefix('-')?
                    .parse()
                    .ok()?;
                Some((ordinal, p))
            })
            .collect()
    }
}

/// Pod `<set>-<ordinal>` of revision `revision`, from `template`.
fn stateful_pod(set: &Value, ordinal: i64, revision: &str, template: &Value) -> Value {
    let set_name = name_of(set);
    let pod_name = format!("{set_name}-{ordinal}");
    let mut metadata = template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    metadata["name"] = json!(pod_name);
    metadata["namespace"] = set
        .pointer("/metadata/namespace")
        .cloned()
        .unwrap_or_default();
    if !metadata.get("labels").is_some_and(Value::is_object) {
        metadata["labels"] = json!({});
    }
    metadata["labels"][REVISION_LABEL] = json!(revision);
    metadata["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    metadata["labels"]["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
    metadata["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": set_name, "uid": uid_of(set),
        "controller": true, "blockOwnerDeletion": true,
    }]);
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["nodeName"] = json!("edas-fake-node");
    spec["hostname"] = json!(pod_name);
    if let Some(service) = set.pointer("/spec/serviceName").and_then(Value::as_str) {
        spec["subdomain"] = json!(service);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}
