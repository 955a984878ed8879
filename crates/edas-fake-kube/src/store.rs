//! The object store: one map of objects, one global resourceVersion counter (like etcd's revision),
//! a bounded history of watch events, and the write rules of the API server (uid, timestamps,
//! generation, status subresource, preconditions, defaulting, a little validation, owner-reference
//! cascading deletion).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast};

use crate::error::ApiError;
use crate::merge::{self, FieldPath};
use crate::resources::{RESOURCES, ResourceId, ResourceType, by_kind};
use crate::selector::{FieldSelector, LabelSelector};

/// What happened to an object, as a watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history window and broadcast to open watches.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: ResourceId,
    pub namespace: String,
    pub kind: EventType,
    /// The object after the change (for `Deleted`, the last state with the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change (`None` for `Added`), so watches with selectors can turn a
    /// `MODIFIED` that leaves or enters the selection into `DELETED` / `ADDED`.
    pub old: Option<Value>,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

/// The patch formats the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted too (both `Background` and `Foreground` do this, immediately).
    Cascade,
    /// Dependents stay; their owner reference is removed.
    Orphan,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager` query parameter, or the client's user agent.
    pub field_manager: String,
    /// `force` query parameter (server-side apply only).
    pub force: bool,
    /// `dryRun=All`: compute and validate, do not store.
    pub dry_run: bool,
}

type Key = (ResourceId, String, String);

struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    /// Events with `rv <= compacted` are no longer available to watches.
    compacted: u64,
    next_cluster_ip: u32,
    /// The next node port to try (30000–32767, wrapping).
    next_node_port: u16,
}

/// The in-memory cluster state shared by the HTTP layer and the controller simulation.
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
    history_limit: usize,
    /// Woken on every write to a Deployment, ReplicaSet or Pod.
    pub controller_wake: Notify,
}

/// What a watch starts with: the events to send first, then the live feed.
pub struct WatchStart {
    pub initial: Vec<Arc<Event>>,
    pub feed: broadcast::Receiver<Arc<Event>>,
    pub current_rv: u64,
}

/// The object's `metadata.name`.
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.namespace` of an object (empty for cluster-scoped ones).
fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// How the simulated controllers write (their field manager).
fn controller_options() -> WriteOptions {
    WriteOptions {
        field_manager: "kube-controller-manager".into(),
        ..Default::default()
    }
}

/// The object's `metadata.uid`.
pub fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion` as a number (0 when absent).
pub fn rv_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The current time as the API server writes it (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A random lowercase alphanumeric suffix (what `generateName` and pod names use).
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(8192);
        let store = Self {
            state: Mutex::new(State {
                rv: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                next_cluster_ip: 1,
                next_node_port: 30000,
            }),
            events,
            history_limit: history_limit.max(1),
            controller_wake: Notify::new(),
        };
        let namespace = by_kind("Namespace");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            store
                .create(
                    namespace,
                    "",
                    object,
                    &WriteOptions {
                        field_manager: "edas-fake-kube".into(),
                        ..Default::default()
                    },
                )
                .expect("built-in namespaces are valid");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this crate; keep serving regardless.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Forgets the whole event history: every watch resuming from an older resourceVersion gets
    /// 410 Gone, as after an etcd compaction.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.compacted = state.rv;
        state.history.clear();
    }

    fn commit(
        &self,
        state: &mut State,
        resource: ResourceId,
        kind: EventType,
        mut object: Value,
        old: Option<Value>,
    ) -> Value {
        state.rv += 1;
        let rv = state.rv;
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
        let namespace = namespace_of(&object).to_owned();
        let key = (resource, namespace.clone(), name_of(&object).to_owned());
        match kind {
            EventType::Deleted => {
                state.objects.remove(&key);
            }
            _ => {
                state.objects.insert(key, object.clone());
            }
        }
        let event = Arc::new(Event {
            rv,
            resource,
            namespace,
            kind,
            object: object.clone(),
            old,
        });
        state.history.push_back(event.clone());
        while state.history.len() > self.history_limit {
            if let Some(evicted) = state.history.pop_front() {
                state.compacted = evicted.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        if matches!(
            RESOURCES[resource].kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "Pod" | "HTTPRoute" | "Gateway"
        ) {
            self.controller_wake.notify_one();
        }
        object
    }

    /// `GET` one object.
    pub fn get(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let state = self.lock();
        state
            .objects
            .get(&(resource, namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&RESOURCES[resource].qualified(), name))
    }

    /// Lists objects of a type (optionally in one namespace) that match the selectors, with the
    /// resourceVersion the list is consistent with.
    pub fn list(
        &self,
        resource: ResourceId,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .iter()
            .filter(|((r, ns, _), object)| {
                *r == resource
                    && namespace.is_none_or(|n| n == ns)
                    && labels.matches(object)
                    && fields.matches(object)
            })
            .map(|(_, object)| object.clone())
            .collect();
        (items, state.rv)
    }

    /// All objects of a type in a namespace (for the controller).
    pub fn all(&self, resource: ResourceId) -> Vec<Value> {
        self.list(
            resource,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .0
    }

    /// Opens a watch: with `from = Some(rv)`, replays history after `rv` (410 if compacted away);
    /// with `None`, starts with a synthetic `ADDED` for every current object of the type.
    pub fn watch(&self, resource: ResourceId, from: Option<u64>) -> Result<WatchStart, ApiError> {
        let state = self.lock();
        let initial = match from {
            Some(rv) => {
                if rv < state.compacted {
                    return Err(ApiError::expired(rv, state.compacted + 1));
                }
                state
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.resource == resource)
                    .cloned()
                    .collect()
            }
            None => state
                .objects
                .iter()
                .filter(|((r, _, _), _)| *r == resource)
                .map(|((_, ns, _), object)| {
                    Arc::new(Event {
                        rv: rv_of(object),
                        resource,
                        namespace: ns.clone(),
                        kind: EventType::Added,
                        object: object.clone(),
                        old: None,
                    })
                })
                .collect(),
        };
        Ok(WatchStart {
            initial,
            feed: self.events.subscribe(),
            current_rv: state.rv,
        })
    }

    /// Whether a resourceVersion is older than the kept history (a list at an exact old revision
    /// cannot be served).
    pub fn is_compacted(&self, rv: u64) -> Option<ApiError> {
        let state = self.lock();
        (rv < state.compacted).then(|| ApiError::expired(rv, state.compacted + 1))
    }

    /// `POST`: creates an object.
    pub fn create(
        &self,
        resource: ResourceId,
        namespace: &str,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        self.create_locked(&mut state, resource, namespace, body, options, "Update")
    }

    fn create_locked(
        &self,
        state: &mut State,
        resource: ResourceId,
        namespace: &str,
        mut object: Value,
        options: &WriteOptions,
        operation: &str,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        check_type(rt, &object)?;
        check_namespace(rt, namespace, &object)?;
        // The creator owns what it sent, not what defaulting adds.
        let fields = merge::leaf_paths(&object);
        let metadata = metadata_mut(&mut object);
        let mut name = metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            let prefix = metadata
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", random_suffix(5));
        }
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                rt.kind,
                &name,
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if rt.namespaced {
            let namespace_key = (by_kind("Namespace"), String::new(), namespace.to_owned());
            if !state.objects.contains_key(&namespace_key) {
                return Err(ApiError::not_found("namespaces", namespace));
            }
        }
        let key = (
            resource,
            if rt.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name.clone(),
        );
        if state.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.qualified(), &name));
        }
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        let metadata = metadata_mut(&mut object);
        metadata.insert("name".into(), json!(name));
        if rt.namespaced {
            metadata.insert("namespace".into(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
        metadata.remove("resourceVersion");
        metadata.remove("deletionTimestamp");
        metadata.remove("managedFields");
        if rt.tracks_generation {
            metadata.insert("generation".into(), json!(1));
        } else {
            metadata.remove("generation");
        }
        if rt.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        self.apply_defaults(state, rt, &mut object);
        validate(rt, &object, None)?;
        let mut managed = Vec::new();
        if !options.field_manager.is_empty() {
            managed.push(ManagedEntry::new(
                &options.field_manager,
                operation,
                rt,
                fields,
            ));
        }
        write_managed(&mut object, &managed);
        if options.dry_run {
            return Ok(object);
        }
        Ok(self.commit(state, resource, EventType::Added, object, None))
    }

    /// `PUT`: replaces an object (or its status).
    pub fn replace(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        body: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        check_type(rt, &body)?;
        check_namespace(rt, namespace, &body)?;
        check_name(rt, name, &body)?;
        let mut state = self.lock();
        let old = lookup(&state, resource, namespace, name)?;
        self.update_locked(&mut state, resource, old, body, subresource, options, None)
    }

    /// `PATCH`: merge, strategic merge or server-side apply (which creates when missing).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        patch: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        if !patch.is_object() && kind != PatchKind::Json {
            return Err(ApiError::bad_request(
                "the patch body must be a JSON object",
            ));
        }
        let mut state = self.lock();
        let existing = state
            .objects
            .get(&(resource, scope(rt, namespace), name.to_owned()))
            .cloned();
        match kind {
            PatchKind::Apply => {
                check_type(rt, &patch)?;
                check_namespace(rt, namespace, &patch)?;
                check_name(rt, name, &patch)?;
                if options.field_manager.is_empty() {
                    return Err(ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                }
                match existing {
                    None if subresource == Subresource::Main => {
                        self.create_locked(&mut state, resource, namespace, patch, options, "Apply")
                    }
                    None => Err(ApiError::not_found(&rt.qualified(), name)),
                    Some(old) => {
                        let mut merged = old.clone();
                        let managed = if subresource == Subresource::Main {
                            Some(server_side_apply(rt, &mut merged, &patch, options)?)
                        } else {
                            if let Some(status) = patch.get("status") {
                                merge::apply_merge(
                                    merged
                                        .as_object_mut()
                                        .expect("stored objects are objects")
                                        .entry("status")
                                        .or_insert(json!({})),
                                    status,
                                    "status",
                                );
                            }
                            None
                        };
                        if let Some(rv) = patch
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                        {
                            metadata_mut(&mut merged).insert("resourceVersion".into(), json!(rv));
                        } else {
                            metadata_mut(&mut merged).remove("resourceVersion");
                        }
                        self.update_locked(
                            &mut state,
                            resource,
                            old,
                            merged,
                            subresource,
                            options,
                            managed,
                        )
                    }
                }
            }
            PatchKind::Json | PatchKind::Merge | PatchKind::Strategic => {
                let old = existing.ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
                let mut patched = old.clone();
                metadata_mut(&mut patched).remove("resourceVersion");
                match kind {
                    PatchKind::Merge => merge::merge_patch(&mut patched, &patch),
                    PatchKind::Json => {
                        // JSON patch sees the stored resourceVersion (a `test` on it is a precondition).
                        metadata_mut(&mut patched)
                            .insert("resourceVersion".into(), json!(rv_of(&old).to_string()));
                        merge::json_patch(&mut patched, &patch).map_err(ApiError::bad_request)?;
                    }
                    _ => merge::strategic_merge_patch(&mut patched, &patch)
                        .map_err(ApiError::bad_request)?,
                }
                check_name(rt, name, &patched)?;
                self.update_locked(
                    &mut state,
                    resource,
                    old,
                    patched,
                    subresource,
                    options,
                    None,
                )
            }
        }
    }

    /// The shared update rules. `managed` is the managed-fields list an apply computed; `None`
    /// means "an Update by `options.field_manager`".
    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        state: &mut State,
        resource: ResourceId,
        old: Value,
        body: Value,
        subresource: Subresource,
        options: &WriteOptions,
        managed: Option<Vec<ManagedEntry>>,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let name = name_of(&old).to_owned();
        if let Some(rv) = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            && rv
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
        {
            return Err(ApiError::conflict(&rt.qualified(), &name));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let mut new = match subresource {
            Subresource::Status => {
                let mut new = old.clone();
                match body.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                new
            }
            Subresource::Main => {
                let mut new = body;
                if rt.status_subresource {
                    match old.get("status") {
                        Some(status) => new["status"] = status.clone(),
                        None => {
                            if let Some(map) = new.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        {
            let old_metadata = old.get("metadata").cloned().unwrap_or_default();
            let metadata = metadata_mut(&mut new);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                match old_metadata.get(field) {
                    Some(value) => metadata.insert(field.into(), value.clone()),
                    None => metadata.remove(field),
                };
            }
            metadata.insert(
                "resourceVersion".into(),
                old_metadata
                    .get("resourceVersion")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        if rt.kind == "Service" {
            keep_node_ports(&old, &mut new);
        }
        self.apply_defaults(state, rt, &mut new);
        validate(rt, &new, Some(&old))?;
        if rt.tracks_generation && spec_of(&new) != spec_of(&old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        let sent_managed = new
            .pointer("/metadata/managedFields")
            .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()));
        // A client that rewrites managedFields (kubectl's client-side → server-side apply
        // migration) replaces them, as on a real server.
        let rewrites_managed = managed.is_none()
            && subresource == Subresource::Main
            && sent_managed.is_some()
            && sent_managed != old.pointer("/metadata/managedFields");
        let managed = match managed {
            Some(managed) => managed,
            None if subresource == Subresource::Status => read_managed(&old),
            None if rewrites_managed => read_managed(&new),
            None => track_update(rt, &old, &new, &options.field_manager),
        };
        write_managed(&mut new, &managed);
        if !rewrites_managed && without_managed_fields(&new) == without_managed_fields(&old) {
            // A no-op write does not bump the resourceVersion (and sends no watch event).
            return Ok(old);
        }
        if options.dry_run {
            return Ok(new);
        }
        Ok(self.commit(state, resource, EventType::Modified, new, Some(old)))
    }

    /// `DELETE`: removes an object and (unless orphaning) every object it owns, recursively.
    pub fn delete(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let mut state = self.lock();
        let old = lookup(&state, resource, namespace, name)?;
        if let Some(uid) = preconditions.get("uid").and_then(Value::as_str)
            && uid != uid_of(&old)
        {
            return Err(ApiError::conflict(&rt.qualified(), name));
        }
        if let Some(rv) = preconditions.get("resourceVersion").and_then(Value::as_str)
            && rv
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
        {
            return Err(ApiError::conflict(&rt.qualified(), name));
        }
        if dry_run {
            return Ok(old);
        }
        Ok(self.delete_locked(&mut state, resource, old, propagation))
    }

    fn delete_locked(
        &self,
        state: &mut State,
        resource: ResourceId,
        object: Value,
        propagation: Propagation,
    ) -> Value {
        let uid = uid_of(&object).to_owned();
        let is_namespace = RESOURCES[resource].kind == "Namespace";
        let name = name_of(&object).to_owned();
        let deleted = self.commit(
            state,
            resource,
            EventType::Deleted,
            object.clone(),
            Some(object),
        );
        if is_namespace {
            let contained: Vec<(ResourceId, Value)> = state
                .objects
                .iter()
                .filter(|((_, ns, _), _)| *ns == name)
                .map(|((r, _, _), o)| (*r, o.clone()))
                .collect();
            for (r, o) in contained {
                if lookup(state, r, &name, name_of(&o)).is_ok() {
                    self.delete_locked(state, r, o, Propagation::Cascade);
                }
            }
        }
        let dependents: Vec<(ResourceId, Value)> = state
            .objects
            .iter()
            .filter(|(_, o)| owner_uids(o).any(|owner| owner == uid))
            .map(|((r, _, _), o)| (*r, o.clone()))
            .collect();
        for (r, dependent) in dependents {
            match propagation {
                Propagation::Cascade => {
                    let ns = namespace_of(&dependent).to_owned();
                    if lookup(state, r, &ns, name_of(&dependent)).is_ok() {
                        self.delete_locked(state, r, dependent, Propagation::Cascade);
                    }
                }
                Propagation::Orphan => {
                    let mut orphan = dependent.clone();
                    if let Some(Value::Array(owners)) =
                        orphan.pointer_mut("/metadata/ownerReferences")
                    {
                        owners
                            .retain(|o| o.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                    self.commit(state, r, EventType::Modified, orphan, Some(dependent));
                }
            }
        }
        deleted
    }

    /// A write made by the simulated controllers: replaces the stored object if it still has the
    /// given resourceVersion (the controllers' optimistic concurrency, like a real controller's).
    pub fn controller_write(
        &self,
        resource: ResourceId,
        object: Value,
        status_only: bool,
    ) -> Option<Value> {
        let rt = &RESOURCES[resource];
        let namespace = namespace_of(&object).to_owned();
        let options = controller_options();
        let mut state = self.lock();
        let old = lookup(&state, resource, &namespace, name_of(&object)).ok()?;
        let subresource = if status_only && rt.status_subresource {
            Subresource::Status
        } else {
            Subresource::Main
        };
        self.update_locked(
            &mut state,
            resource,
            old,
            object,
            subresource,
            &options,
            None,
        )
        .ok()
    }

    /// A create made by the simulated controllers.
    pub fn controller_create(&self, resource: ResourceId, object: Value) -> Option<Value> {
        let namespace = namespace_of(&object).to_owned();
        let options = controller_options();
        let mut state = self.lock();
        // The controllers work from a snapshot: an owner deleted since (a Deployment deleted with
        // its ReplicaSets) must not get new dependents, which a real garbage collector would
        // delete at once as orphans of a missing owner.
        let owners: Vec<String> = owner_uids(&object).map(str::to_owned).collect();
        if owners
            .iter()
            .any(|owner| !state.objects.values().any(|o| uid_of(o) == owner))
        {
            return None;
        }
        self.create_locked(&mut state, resource, &namespace, object, &options, "Update")
            .ok()
    }

    /// A delete made by the simulated controllers; a no-op if the object was replaced meanwhile.
    pub fn controller_delete(&self, resource: ResourceId, object: &Value) {
        let namespace = namespace_of(object).to_owned();
        let mut state = self.lock();
        if let Ok(current) = lookup(&state, resource, &namespace, name_of(object))
            && uid_of(&current) == uid_of(object)
        {
            self.delete_locked(&mut state, resource, current, Propagation::Cascade);
        }
    }

    fn apply_defaults(&self, state: &mut State, rt: &ResourceType, object: &mut Value) {
        match rt.kind {
            "Deployment" => {
                let spec = ensure_object(object, "spec");
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(pod_spec);
                }
                let strategy = spec.entry("strategy").or_insert(json!({}));
                if let Some(strategy) = strategy.as_object_mut() {
                    let kind = strategy
                        .entry("type")
                        .or_insert(json!("RollingUpdate"))
                        .clone();
                    if kind == "RollingUpdate" {
                        let rolling = strategy.entry("rollingUpdate").or_insert(json!({}));
                        if let Some(rolling) = rolling.as_object_mut() {
                            rolling.entry("maxSurge").or_insert(json!("25%"));
                            rolling.entry("maxUnavailable").or_insert(json!("25%"));
                        }
                    }
                }
            }
            "StatefulSet" => {
                let spec = ensure_object(object, "spec");
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("podManagementPolicy")
                    .or_insert(json!("OrderedReady"));
                let strategy = spec
                    .entry("updateStrategy")
                    .or_insert(json!({"type": "RollingUpdate"}));
                if let Some(strategy) = strategy.as_object_mut()
                    && strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                {
                    let rolling = strategy.entry("rollingUpdate").or_insert(json!({}));
                    if let Some(rolling) = rolling.as_object_mut() {
                        rolling.entry("partition").or_insert(json!(0));
                    }
                }
                if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(pod_spec);
                }
            }
            "ReplicaSet" => {
                let spec = ensure_object(object, "spec");
                spec.entry("replicas").or_insert(json!(1));
                if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(pod_spec);
                }
            }
            "Namespace" => {
                let name = name_of(object).to_owned();
                let metadata = metadata_mut(object);
                let labels = metadata.entry("labels").or_insert(json!({}));
                if let Some(labels) = labels.as_object_mut() {
                    labels
                        .entry("kubernetes.io/metadata.name")
                        .or_insert(json!(name));
                }
                if object.get("status").is_none() {
                    object["status"] = json!({"phase": "Active"});
                }
            }
            "Pod" => {
                if let Some(pod_spec) = object.get_mut("spec") {
                    default_pod_spec(pod_spec);
                }
                if object.get("status").is_none() {
                    object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
                }
            }
            "Secret" => {
                let map = object.as_object_mut().expect("objects are objects");
                map.entry("type").or_insert(json!("Opaque"));
                if let Some(Value::Object(string_data)) = map.remove("stringData") {
                    let data = map.entry("data").or_insert(json!({}));
                    for (key, value) in string_data {
                        let text = value.as_str().unwrap_or_default();
                        data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
            }
            "Service" => {
                let spec = ensure_object(object, "spec");
                let service_type = spec.entry("type").or_insert(json!("ClusterIP")).clone();
                spec.entry("sessionAffinity").or_insert(json!("None"));
                if service_type != "ExternalName" && !spec.contains_key("clusterIP") {
                    let n = state.next_cluster_ip;
                    state.next_cluster_ip += 1;
                    let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                let node_ports = matches!(service_type.as_str(), Some("NodePort" | "LoadBalancer"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert(json!("TCP"));
                        if let Some(number) = port.get("port").cloned() {
                            port.entry("targetPort").or_insert(number);
                        }
                        // As the API server: a node port is allocated where none was asked
                        // for, and dropped when the type no longer has node ports.
                        if !node_ports {
                            port.remove("nodePort");
                        } else if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                            let n = state.next_node_port;
                            state.next_node_port = if n >= 32767 { 30000 } else { n + 1 };
                            port.insert("nodePort".into(), json!(n));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A Service update keeps the node ports allocated to ports it still has (same `port` and
/// `protocol`), as the API server does when a client (a server-side apply) leaves them out.
fn keep_node_ports(old: &Value, new: &mut Value) {
    let key = |p: &Value| {
        (
            p.get("port").and_then(Value::as_i64),
            p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_owned(),
        )
    };
    let Some(old_ports) = old.pointer("/spec/ports").and_then(Value::as_array) else {
        return;
    };
    let allocated: Vec<_> = old_ports
        .iter()
        .filter_map(|p| Some((key(p), p.get("nodePort")?.clone())))
        .collect();
    if let Some(Value::Array(ports)) = new.pointer_mut("/spec/ports") {
        for port in ports.iter_mut() {
            let wanted = key(port);
            if let (Some(map), Some((_, n))) = (
                port.as_object_mut(),
                allocated.iter().find(|(k, _)| *k == wanted),
            ) {
                map.entry("nodePort").or_insert(n.clone());
            }
        }
    }
}

/// The API server's pod-spec defaults, so stored objects look like a cluster's (and clients
/// comparing desired with live state meet the same server-filled fields).
fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("securityContext").or_insert(json!({}));
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let last = image.rsplit('/').next().unwrap_or_default();
            let latest = (!last.contains(':') && !image.contains('@')) || last.ends_with(":latest");
            container
                .entry("imagePullPolicy")
                .or_insert(json!(if latest { "Always" } else { "IfNotPresent" }));
            container
                .entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            container
                .entry("terminationMessagePolicy")
                .or_insert(json!("File"));
            container.entry("resources").or_insert(json!({}));
            if let Some(Value::Array(ports)) = container.get_mut("ports") {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    port.entry("protocol").or_insert(json!("TCP"));
                }
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(probe) = container.get_mut(probe).and_then(Value::as_object_mut) {
                    probe.entry("timeoutSeconds").or_insert(json!(1));
                    probe.entry("periodSeconds").or_insert(json!(10));
                    probe.entry("successThreshold").or_insert(json!(1));
                    probe.entry("failureThreshold").or_insert(json!(3));
                }
            }
        }
    }
}

fn ensure_object<'a>(object: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !object.get(field).is_some_and(Value::is_object) {
        object[field] = json!({});
    }
    object[field]
        .as_object_mut()
        .expect("just made it an object")
}

fn scope(rt: &ResourceType, namespace: &str) -> String {
    if rt.namespaced {
        namespace.to_owned()
    } else {
        String::new()
    }
}

fn lookup(
    state: &State,
    resource: ResourceId,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let rt = &RESOURCES[resource];
    state
        .objects
        .get(&(resource, scope(rt, namespace), name.to_owned()))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))
}

/// The owner uids in `metadata.ownerReferences`.
pub fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uid").and_then(Value::as_str))
}

fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    copy
}

fn check_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a {} object",
            rt.kind
        )));
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str)
        && api_version != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

fn check_namespace(rt: &ResourceType, namespace: &str, body: &Value) -> Result<(), ApiError> {
    let given = namespace_of(body);
    if rt.namespaced && !given.is_empty() && given != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn check_name(rt: &ResourceType, name: &str, body: &Value) -> Result<(), ApiError> {
    let given = name_of(body);
    if !given.is_empty() && given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name}) for {}",
            rt.qualified()
        )));
    }
    Ok(())
}

/// The validation subset: what a client of Deployments is most likely to get wrong.
fn validate(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = name_of(object);
    let invalid =
        |field: &str, problem: &str| Err(ApiError::invalid(rt.kind, name, field, problem));
    if !object.get("metadata").is_some_and(Value::is_object) {
        return invalid("metadata", "Invalid value: must be an object");
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = object.pointer(&format!("/metadata/{field}")) {
            let Some(map) = map.as_object() else {
                return invalid(
                    &format!("metadata.{field}"),
                    "Invalid value: must be a map of strings",
                );
            };
            if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return invalid(
                    &format!("metadata.{field}.{key}"),
                    "Invalid value: must be a string",
                );
            }
        }
    }
    for field in ["spec", "status"] {
        if object.get(field).is_some_and(|v| !v.is_object()) {
            return invalid(field, "Invalid value: must be an object");
        }
    }
    match rt.kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" => {
            let Some(selector) = object.pointer("/spec/selector") else {
                return invalid("spec.selector", "Required value");
            };
            let parsed = match LabelSelector::from_object(selector) {
                Ok(parsed) => parsed,
                Err(problem) => {
                    return invalid("spec.selector", &format!("Invalid value: {problem}"));
                }
            };
            if parsed.is_empty() {
                return invalid(
                    "spec.selector",
                    "Invalid value: empty selector is invalid for deployment",
                );
            }
            let template = object
                .pointer("/spec/template")
                .cloned()
                .unwrap_or_default();
            if !parsed.matches(&template) {
                return invalid(
                    "spec.template.metadata.labels",
                    "Invalid value: `selector` does not match template `labels`",
                );
            }
            let containers = template
                .pointer("/spec/containers")
                .and_then(Value::as_array);
            if containers.is_none_or(Vec::is_empty) {
                return invalid("spec.template.spec.containers", "Required value");
            }
            for (index, container) in containers.into_iter().flatten().enumerate() {
                for field in ["name", "image"] {
                    if container
                        .get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return invalid(
                            &format!("spec.template.spec.containers[{index}].{field}"),
                            "Required value",
                        );
                    }
                }
            }
            match object.pointer("/spec/replicas").map(Value::as_i64) {
                Some(Some(n)) if n >= 0 && n <= i64::from(i32::MAX) => {}
                _ => {
                    return invalid(
                        "spec.replicas",
                        "Invalid value: must be a non-negative integer",
                    );
                }
            }
            if let Some(min_ready) = object.pointer("/spec/minReadySeconds")
                && min_ready.as_i64().is_none_or(|n| n < 0)
            {
                return invalid(
                    "spec.minReadySeconds",
                    "Invalid value: must be a non-negative integer",
                );
            }
            if rt.kind == "Deployment" {
                let strategy = object
                    .pointer("/spec/strategy")
                    .cloned()
                    .unwrap_or_default();
                match strategy.get("type").and_then(Value::as_str) {
                    Some("RollingUpdate") => {
                        let rolling = strategy.get("rollingUpdate").cloned().unwrap_or_default();
                        for field in ["maxSurge", "maxUnavailable"] {
                            if let Some(value) = rolling.get(field)
                                && crate::controller::int_or_percent(value, 100, false).is_none()
                            {
                                return invalid(
                                    &format!("spec.strategy.rollingUpdate.{field}"),
                                    "Invalid value: must be a non-negative integer or a percentage like \"25%\"",
                                );
                            }
                        }
                        let surge = rolling
                            .get("maxSurge")
                            .and_then(|v| crate::controller::int_or_percent(v, 100, true));
                        let unavailable = rolling
                            .get("maxUnavailable")
                            .and_then(|v| crate::controller::int_or_percent(v, 100, false));
                        if surge == Some(0) && unavailable == Some(0) {
                            return invalid(
                                "spec.strategy.rollingUpdate.maxUnavailable",
                                "Invalid value: may not be 0 when `maxSurge` is 0",
                            );
                        }
                    }
                    Some("Recreate") => {
                        if strategy.get("rollingUpdate").is_some() {
                            return invalid(
                                "spec.strategy.rollingUpdate",
                                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                            );
                        }
                    }
                    other => {
                        return invalid(
                            "spec.strategy.type",
                            &format!(
                                "Unsupported value: {other:?}: supported values: \"Recreate\", \"RollingUpdate\""
                            ),
                        );
                    }
                }
            }
            if rt.kind == "StatefulSet" {
                if let Some(partition) =
                    object.pointer("/spec/updateStrategy/rollingUpdate/partition")
                    && partition.as_i64().is_none_or(|n| n < 0)
                {
                    return invalid(
                        "spec.updateStrategy.rollingUpdate.partition",
                        "Invalid value: must be greater than or equal to 0",
                    );
                }
                // As the real API server: only replicas, template, updateStrategy,
                // minReadySeconds and a few others may change.
                if let Some(old) = old {
                    for field in ["serviceName", "podManagementPolicy"] {
                        let pointer = format!("/spec/{field}");
                        if old.pointer(&pointer) != object.pointer(&pointer) {
                            return invalid(
                                "spec",
                                &format!(
                                    "Forbidden: updates to statefulset spec for field `{field}` are forbidden"
                                ),
                            );
                        }
                    }
                }
            }
            if let Some(old) = old
                && old.pointer("/spec/selector") != object.pointer("/spec/selector")
            {
                return invalid("spec.selector", "Invalid value: field is immutable");
            }
        }
        "Pod" => {
            let containers = object.pointer("/spec/containers").and_then(Value::as_array);
            if containers.is_none_or(Vec::is_empty) {
                return invalid("spec.containers", "Required value");
            }
        }
        "ConfigMap" | "Secret" => {
            if let Some(data) = object.get("data")
                && !data
                    .as_object()
                    .is_some_and(|d| d.values().all(Value::is_string))
            {
                return invalid("data", "Invalid value: must be a map of strings");
            }
            // `immutable: true` freezes the data and itself (metadata may still change).
            if let Some(old) = old
                && old.get("immutable") == Some(&Value::Bool(true))
            {
                if object.get("immutable") != Some(&Value::Bool(true)) {
                    return invalid(
                        "immutable",
                        "Forbidden: field is immutable when `immutable` is set",
                    );
                }
                for field in ["data", "binaryData"] {
                    if old.get(field) != object.get(field) {
                        return invalid(
                            field,
                            "Forbidden: field is immutable when `immutable` is set",
                        );
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// One `metadata.managedFields` entry, with its field set parsed.
#[derive(Debug, Clone)]
pub struct ManagedEntry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<FieldPath>,
}

impl ManagedEntry {
    fn new(manager: &str, operation: &str, rt: &ResourceType, fields: BTreeSet<FieldPath>) -> Self {
        Self {
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            api_version: rt.api_version(),
            time: now_rfc3339(),
            fields,
        }
    }
}

fn read_managed(object: &Value) -> Vec<ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| ManagedEntry {
            manager: entry
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            operation: entry
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .to_owned(),
            api_version: entry
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            time: entry
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields: entry
                .get("fieldsV1")
                .map(merge::parse_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

fn write_managed(object: &mut Value, managed: &[ManagedEntry]) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|entry| !entry.fields.is_empty())
        .map(|entry| {
            json!({
                "manager": entry.manager,
                "operation": entry.operation,
                "apiVersion": entry.api_version,
                "time": entry.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": merge::fields_v1(&entry.fields),
            })
        })
        .collect();
    let metadata = metadata_mut(object);
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Ownership after a non-apply write: the writer takes the leaves it changed; removed leaves
/// disappear from every manager.
fn track_update(rt: &ResourceType, old: &Value, new: &Value, manager: &str) -> Vec<ManagedEntry> {
    let mut managed = read_managed(old);
    let old_paths = merge::leaf_paths(old);
    let new_paths = merge::leaf_paths(new);
    let changed: BTreeSet<FieldPath> = new_paths
        .iter()
        .filter(|p| !old_paths.contains(*p) || merge::value_at(old, p) != merge::value_at(new, p))
        .cloned()
        .collect();
    for entry in &mut managed {
        entry
            .fields
            .retain(|p| new_paths.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() && !manager.is_empty() {
        match managed
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now_rfc3339();
            }
            None => managed.push(ManagedEntry::new(manager, "Update", rt, changed)),
        }
    }
    managed
}

/// Server-side apply onto `live` (see [`crate::merge`]); returns the new managed-fields list.
fn server_side_apply(
    rt: &ResourceType,
    live: &mut Value,
    applied: &Value,
    options: &WriteOptions,
) -> Result<Vec<ManagedEntry>, ApiError> {
    let mut managed = read_managed(live);
    let applied_paths = merge::leaf_paths(applied);
    let mut conflicts = Vec::new();
    let is_self = |e: &ManagedEntry| e.manager == options.field_manager && e.operation == "Apply";
    // Like the API server's last-applied manager: `kubectl apply --server-side` may take over the
    // fields recorded in the client-side apply annotation without a conflict.
    let last_applied: BTreeSet<FieldPath> = (options.field_manager == "kubectl")
        .then(|| {
            live.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        })
        .flatten()
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|config| merge::leaf_paths(&config))
        .unwrap_or_default();
    let mut forced = options.force;
    for entry in managed.iter().filter(|e| !is_self(e)) {
        for path in entry.fields.intersection(&applied_paths) {
            let is_item = matches!(path.last(), Some(merge::PathElem::Key(..)));
            if !is_item && merge::value_at(live, path) != merge::value_at(applied, path) {
                if last_applied.contains(path) {
                    forced = true;
                } else {
                    conflicts.push((
                        format!("{}\" using {}", entry.manager, entry.api_version),
                        merge::display_path(path),
                    ));
                }
            }
        }
    }
    if !conflicts.is_empty() && !options.force {
        return Err(ApiError::apply_conflict(&conflicts));
    }
    if forced {
        for entry in managed.iter_mut().filter(|e| !is_self(e)) {
            entry.fields.retain(|p| {
                let is_item = matches!(p.last(), Some(merge::PathElem::Key(..)));
                is_item
                    || !applied_paths.contains(p)
                    || merge::value_at(live, p) == merge::value_at(applied, p)
            });
        }
    }
    let previous: BTreeSet<FieldPath> = managed
        .iter()
        .filter(|e| e.manager == options.field_manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let owned_by_others: BTreeSet<FieldPath> = managed
        .iter()
        .filter(|e| !(e.manager == options.field_manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Remove what this manager applied before and no longer applies, deepest paths first. As
    // the API server (whose managed fields record the maps an applier set, `.`), a map the
    // configuration no longer has at all goes whole, its defaulted fields with it, unless
    // another manager owns something in it.
    let mut dropped: Vec<FieldPath> = previous
        .iter()
        .filter(|p| !applied_paths.contains(*p))
        .filter(|p| !owned_by_others.iter().any(|o| o.starts_with(p)))
        .map(|p| {
            let outermost = (1..=p.len())
                .map(|n| &p[..n])
                .find(|q| merge::value_at(applied, q).is_none())
                .unwrap_or(p);
            if owned_by_others.iter().any(|o| o.starts_with(outermost)) {
                p.clone()
            } else {
                outermost.to_vec()
            }
        })
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in &dropped {
        merge::remove_at(live, path);
    }
    let mut body = applied.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "resourceVersion",
                "managedFields",
                "uid",
                "creationTimestamp",
                "generation",
            ] {
                metadata.remove(field);
            }
        }
    }
    merge::apply_merge(live, &body, "");
    managed.retain(|e| !(e.manager == options.field_manager && e.operation == "Apply"));
    managed.push(ManagedEntry::new(
        &options.field_manager,
        "Apply",
        rt,
        applied_paths,
    ));
    Ok(managed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}
        })
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            field_manager: manager.into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_sets_server_fields_and_defaults() {
        let store = Store::new(100);
        let deploy = by_kind("Deployment");
        let created = store
            .create(
                deploy,
                "default",
                deployment("web", "nginx:1"),
                &opts("test"),
            )
            .unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(!uid_of(&created).is_empty());
        assert!(rv_of(&created) > 0);
        assert_eq!(created["spec"]["replicas"], 1);
        assert_eq!(
            created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        let pod_spec = &created["spec"]["template"]["spec"];
        assert_eq!(pod_spec["restartPolicy"], "Always");
        assert_eq!(pod_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            pod_spec["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        let fields = &created["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(
            fields.pointer("/f:spec/f:replicas").is_none(),
            "defaulted fields are owned by nobody"
        );
        let again = store
            .create(
                deploy,
                "default",
                deployment("web", "nginx:1"),
                &opts("test"),
            )
            .unwrap_err();
        assert_eq!((again.code, again.reason), (409, "AlreadyExists"));
        let missing_ns = store
            .create(deploy, "nope", deployment("web", "nginx:1"), &opts("test"))
            .unwrap_err();
        assert_eq!(missing_ns.code, 404);
    }

    #[test]
    fn invalid_deployments_name_the_field() {
        let store = Store::new(100);
        let deploy = by_kind("Deployment");
        let mut bad = deployment("web", "nginx:1");
        bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        let error = store
            .create(deploy, "default", bad, &opts("t"))
            .unwrap_err();
        assert_eq!(error.code, 422);
        assert!(
            error.message.contains("spec.template.metadata.labels"),
            "{}",
            error.message
        );
        let mut bad = deployment("web", "");
        bad["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        let error = store
            .create(deploy, "default", bad, &opts("t"))
            .unwrap_err();
        assert!(
            error.message.contains("containers[0].image"),
            "{}",
            error.message
        );
    }

    #[test]
    fn stale_update_is_a_conflict_and_spec_change_bumps_generation() {
        let store = Store::new(100);
        let deploy = by_kind("Deployment");
        let created = store
            .create(deploy, "default", deployment("web", "nginx:1"), &opts("t"))
            .unwrap();
        let mut changed = created.clone();
        changed["spec"]["replicas"] = json!(3);
        let updated = store
            .replace(
                deploy,
                "default",
                "web",
                changed.clone(),
                Subresource::Main,
                &opts("t"),
            )
            .unwrap();
        assert_eq!(updated["metadata"]["generation"], 2);
        let stale = store
            .replace(
                deploy,
                "default",
                "web",
                changed,
                Subresource::Main,
                &opts("t"),
            )
            .unwrap_err();
        assert_eq!((stale.code, stale.reason), (409, "Conflict"));
        let mut status = updated.clone();
        status["status"] = json!({"observedGeneration": 2});
        let with_status = store
            .replace(
                deploy,
                "default",
                "web",
                status,
                Subresource::Status,
                &opts("t"),
            )
            .unwrap();
        assert_eq!(with_status["metadata"]["generation"], 2);
        assert_eq!(with_status["status"]["observedGeneration"], 2);
        let noop = store
            .replace(
                deploy,
                "default",
                "web",
                with_status.clone(),
                Subresource::Main,
                &opts("t"),
            )
            .unwrap();
        assert_eq!(
            rv_of(&noop),
            rv_of(&with_status),
            "a no-op update keeps the resourceVersion"
        );
    }

    #[test]
    fn server_side_apply_removes_a_map_no_longer_applied_with_its_defaults() {
        let store = Store::new(100);
        let deploy = by_kind("Deployment");
        let apply = |config: Value| {
            store
                .patch(
                    deploy,
                    "default",
                    "web",
                    PatchKind::Apply,
                    config,
                    Subresource::Main,
                    &opts("edas"),
                )
                .unwrap()
        };
        let mut probed = deployment("web", "nginx:1");
        probed["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
            json!({"tcpSocket": {"port": 8080}});
        let live = apply(probed);
        let probe = "/spec/template/spec/containers/0/readinessProbe";
        assert_eq!(
            live.pointer(&format!("{probe}/periodSeconds")),
            Some(&json!(10))
        );
        let live = apply(deployment("web", "nginx:1"));
        assert_eq!(
            live.pointer(probe),
            None,
            "the probe goes whole, defaults included"
        );
        assert_eq!(
            live.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("nginx:1"))
        );
    }

    #[test]
    fn server_side_apply_creates_merges_removes_and_detects_conflicts() {
        let store = Store::new(100);
        let deploy = by_kind("Deployment");
        let mut config = deployment("web", "nginx:1");
        config["metadata"]["labels"]["extra"] = json!("yes");
        let created = store
            .patch(
                deploy,
                "default",
                "web",
                PatchKind::Apply,
                config,
                Subresource::Main,
                &opts("edas"),
            )
            .unwrap();
        assert_eq!(
            created["metadata"]["managedFields"][0]["operation"],
            "Apply"
        );
        // Another manager scales it with a merge patch: it takes ownership of spec.replicas.
        store
            .patch(
                deploy,
                "default",
                "web",
                PatchKind::Merge,
                json!({"spec": {"replicas": 5}}),
                Subresource::Main,
                &opts("kubectl-scale"),
            )
            .unwrap();
        let mut conflicting = deployment("web", "nginx:2");
        conflicting["spec"]["replicas"] = json!(2);
        let error = store
            .patch(
                deploy,
                "default",
                "web",
                PatchKind::Apply,
                conflicting.clone(),
                Subresource::Main,
                &opts("edas"),
            )
            .unwrap_err();
        assert_eq!(error.code, 409);
        assert!(
            error.message.contains("kubectl-scale") && error.message.contains(".spec.replicas"),
            "{}",
            error.message
        );
        let forced = store
            .patch(
                deploy,
                "default",
                "web",
                PatchKind::Apply,
                conflicting,
                Subresource::Main,
                &WriteOptions {
                    force: true,
                    ..opts("edas")
                },
            )
            .unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
        assert!(
            forced["metadata"]["labels"].get("extra").is_none(),
            "a field no longer applied is removed"
        );
        assert_eq!(forced["metadata"]["generation"], 3);
    }

    #[test]
    fn cascading_and_orphaning_deletes() {
        let store = Store::new(100);
        let cm = by_kind("ConfigMap");
        // A ConfigMap `owner` and a ConfigMap `child` it owns; then `owner` deleted.
        let family = |propagation| {
            let owner = store
                .create(
                    cm,
                    "default",
                    json!({"metadata": {"name": "owner"}}),
                    &opts("t"),
                )
                .unwrap();
            let reference = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid_of(&owner)}]);
            store
                .create(
                    cm,
                    "default",
                    json!({"metadata": {"name": "child", "ownerReferences": reference}}),
                    &opts("t"),
                )
                .unwrap();
            store
                .delete(cm, "default", "owner", propagation, &json!({}), false)
                .unwrap();
        };
        family(Propagation::Cascade);
        assert_eq!(store.get(cm, "default", "child").unwrap_err().code, 404);

        family(Propagation::Orphan);
        let child = store.get(cm, "default", "child").unwrap();
        assert_eq!(child["metadata"]["ownerReferences"], json!([]));
    }

    #[test]
    fn watch_history_is_bounded_and_compaction_expires_old_versions() {
        let store = Store::new(3);
        let cm = by_kind("ConfigMap");
        let first = store
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "a"}}),
                &opts("t"),
            )
            .unwrap();
        for name in ["b", "c", "d", "e"] {
            store
                .create(
                    cm,
                    "default",
                    json!({"metadata": {"name": name}}),
                    &opts("t"),
                )
                .unwrap();
        }
        let error = store.watch(cm, Some(rv_of(&first))).err().unwrap();
        assert_eq!(error.code, 410);
        let recent = store.watch(cm, Some(store.current_rv() - 1)).unwrap();
        assert_eq!(recent.initial.len(), 1);
        store.compact();
        assert_eq!(
            store
                .watch(cm, Some(store.current_rv() - 1))
                .err()
                .unwrap()
                .code,
            410
        );
        assert!(store.watch(cm, Some(store.current_rv())).is_ok());
        assert_eq!(store.watch(cm, None).unwrap().initial.len(), 5);
    }

    #[test]
    fn secrets_fold_string_data_into_data() {
        let store = Store::new(10);
        let secret = store
            .create(
                by_kind("Secret"),
                "default",
                json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
                &opts("t"),
            )
            .unwrap();
        assert_eq!(secret["data"]["k"], "dg==");
        assert_eq!(secret["type"], "Opaque");
    }
}
