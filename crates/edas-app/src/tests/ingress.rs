//! Ingress rules through the layer: backends resolved to the application owning the Service
//! and port, every refusal named and nothing stored; a rule is stored before the runtime is
//! told, and one the runtime did not take is applied when it answers again or at start-up.

use std::collections::BTreeMap;
use std::sync::Mutex;

use edas_runtime::{
    AppRef, BoxFuture, IngressBackend, IngressHost, IngressPath, IngressSpec, PathType,
    RevisionState, Runtime, RuntimeError, RuntimeEvent, Target,
};
use tokio::sync::{broadcast, watch};

use super::*;
use crate::{BackendStatus, IngressRequest};

/// The fake runtime plus an ingress that records its rules and can be told to refuse.
struct Routed {
    inner: FakeRuntime,
    rules: Mutex<BTreeMap<(String, String), IngressSpec>>,
    refuse: Mutex<Option<RuntimeError>>,
    /// The cluster does not answer (availability refuses, set_ingress fails Unavailable).
    down: watch::Sender<bool>,
}

impl Runtime for Routed {
    fn check_ingress(&self, ingress: &IngressSpec) -> Result<(), RuntimeError> {
        match ingress.rules.iter().position(|r| r.secret_name.is_some()) {
            Some(i) => Err(RuntimeError::Unsupported(format!(
                "IngressConf.rules[{i}].secretName: no TLS here"
            ))),
            None => Ok(()),
        }
    }
    fn set_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let refused = if *self.down.borrow() {
            Some(RuntimeError::Unavailable("down".into()))
        } else {
            self.refuse.lock().unwrap().take()
        };
        if refused.is_none() {
            let key = (namespace.to_owned(), name.to_owned());
            let mut rules = self.rules.lock().unwrap();
            match ingress {
                Some(i) => rules.insert(key, i.clone()),
                None => rules.remove(&key),
            };
        }
        Box::pin(async move { refused.map_or(Ok(()), Err) })
    }
    fn availability(&self) -> Result<(), RuntimeError> {
        match *self.down.borrow() {
            true => Err(RuntimeError::Unavailable("down".into())),
            false => Ok(()),
        }
    }
    fn wait_available(&self) -> BoxFuture<'_, ()> {
        let mut down = self.down.subscribe();
        Box::pin(async move {
            let _ = down.wait_for(|d| !*d).await;
        })
    }
    fn set_replicas(&self, t: &Target, n: u32) -> BoxFuture<'_, Result<(), RuntimeError>> {
        self.inner.set_replicas(t, n)
    }
    fn recreate_failed(&self, a: &AppRef, r: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        self.inner.recreate_failed(a, r)
    }
    fn observe(&self, a: &AppRef, r: &str) -> BoxFuture<'_, Result<RevisionState, RuntimeError>> {
        self.inner.observe(a, r)
    }
    fn revisions(&self, a: &AppRef) -> BoxFuture<'_, Result<Vec<String>, RuntimeError>> {
        self.inner.revisions(a)
    }
    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.subscribe()
    }
}

struct Ingressed {
    app: App,
    runtime: Arc<Routed>,
    _dir: tempfile::TempDir,
}

async fn ingressed() -> Ingressed {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let runtime = Arc::new(Routed {
        inner: FakeRuntime::new(Duration::from_millis(1)),
        rules: Mutex::default(),
        refuse: Mutex::default(),
        down: watch::Sender::new(false),
    });
    let engine = Engine::new(
        store.clone(),
        Runtimes::new().with("local", runtime.clone()),
        EngineConfig::default(),
    );
    Ingressed {
        app: App::new(store, engine),
        runtime,
        _dir: dir,
    }
}

/// Application `id` with Service `service` on `port`.
async fn serving(w: &Ingressed, id: &str, service: &str, port: u16) {
    let configs = format!(
        r#"[{{"name":"{service}","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080}}}}]}}]"#
    );
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", id),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
            ("ServiceConfigs", &configs),
        ]),
    )
    .unwrap();
    w.app
        .engine()
        .create_application(CreateApplication {
            app_id: id.into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            namespace_stored: false,
            change,
            actor: "alice (AK1)".into(),
            request_id: "req-1".into(),
        })
        .await
        .unwrap();
}

fn path(path: &str, service: &str, port: u16) -> IngressPath {
    IngressPath {
        path: path.into(),
        path_type: PathType::Prefix,
        backend: IngressBackend {
            service_name: service.into(),
            service_port: port,
            ..IngressBackend::default()
        },
    }
}

fn request(name: &str, host: &str, paths: Vec<IngressPath>) -> IngressRequest {
    IngressRequest {
        cluster_id: "local".into(),
        namespace: "default".into(),
        name: name.into(),
        spec: IngressSpec {
            rules: vec![IngressHost {
                host: host.into(),
                secret_name: None,
                paths,
            }],
            ..IngressSpec::default()
        },
    }
}

fn actor() -> Actor {
    Actor {
        name: "alice (AK1)".into(),
        request_id: "req-ing".into(),
    }
}

fn named(result: Result<impl std::fmt::Debug, AppError>) -> Vec<String> {
    match result {
        Err(AppError::Invalid(v)) => v.0.into_iter().map(|v| v.parameter).collect(),
        other => panic!("not violations: {other:?}"),
    }
}

#[tokio::test]
async fn backends_are_resolved_to_their_applications_and_refusals_store_nothing() {
    let w = ingressed().await;
    serving(&w, "shop", "shop", 8081).await;
    serving(&w, "api", "api", 8082).await;
    let now = jiff::Timestamp::now();
    let front = request(
        "front",
        "a.test",
        vec![path("/", "shop", 8081), path("/api", "api", 8082)],
    );
    let stored = w
        .app
        .put_ingress_rule(&front, true, "CreateK8sIngressRule", &actor(), now)
        .await
        .unwrap();
    let apps: Vec<_> = stored
        .spec
        .backends()
        .map(|(_, b)| (b.app_id.clone(), b.app_name.clone()))
        .collect();
    assert_eq!(
        apps,
        [("shop".into(), "shop".into()), ("api".into(), "api".into())]
    );
    assert_eq!(
        w.runtime.rules.lock().unwrap()[&("default".into(), "front".into())],
        stored.spec,
        "the runtime has what the store has"
    );
    assert_eq!(
        w.app.ingress_backend_status(&stored).await.unwrap(),
        [BackendStatus::Normal, BackendStatus::Normal]
    );

    // Every refusal names its path, and nothing changes.
    let bad = request(
        "other",
        "a.test",
        vec![
            path("/", "none", 80),
            path("/x", "shop", 9999),
            path("/api", "api", 8082),
        ],
    );
    assert_eq!(
        named(
            w.app
                .put_ingress_rule(&bad, true, "CreateK8sIngressRule", &actor(), now)
                .await
        ),
        [
            "IngressConf.rules[0].paths[0].backend.serviceName",
            "IngressConf.rules[0].paths[1].backend.servicePort",
            "IngressConf.rules[0].paths[0].path",
            "IngressConf.rules[0].paths[2].path",
        ],
        "a host and path another rule routes is refused too"
    );
    assert!(matches!(
        w.app
            .put_ingress_rule(&front, true, "CreateK8sIngressRule", &actor(), now)
            .await,
        Err(AppError::AlreadyExists(_))
    ));
    assert!(matches!(
        w.app
            .put_ingress_rule(
                &request("none", "b.test", vec![path("/", "shop", 8081)]),
                false,
                "UpdateK8sIngressRule",
                &actor(),
                now
            )
            .await,
        Err(AppError::EntityNotFound(_))
    ));
    let mut tls = request("tls", "b.test", vec![path("/", "shop", 8081)]);
    tls.spec.rules[0].secret_name = Some("cert".into());
    let refused = w
        .app
        .put_ingress_rule(&tls, true, "CreateK8sIngressRule", &actor(), now)
        .await;
    assert!(
        matches!(&refused, Err(AppError::Invalid(v))
            if v.0[0].parameter == "IngressConf.rules[0].secretName"
                && v.0[0].kind == edas_spec::ViolationKind::NotSupported),
        "{refused:?}"
    );
    // A cluster known not to answer: refused at once, not stored.
    w.runtime.down.send_replace(true);
    let down = w
        .app
        .put_ingress_rule(
            &request("late", "c.test", vec![path("/", "shop", 8081)]),
            true,
            "CreateK8sIngressRule",
            &actor(),
            now,
        )
        .await;
    assert!(matches!(down, Err(AppError::Unavailable(_))), "{down:?}");
    let names: Vec<_> = w
        .app
        .ingress_rules(Some("local"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["front"]);
    w.runtime.down.send_replace(false);

    // An update replaces the routing; a restart's restore hands every rule over again.
    let moved = request("front", "a.test", vec![path("/", "api", 8082)]);
    w.app
        .put_ingress_rule(&moved, false, "UpdateK8sIngressRule", &actor(), now)
        .await
        .unwrap();
    w.runtime.rules.lock().unwrap().clear();
    assert_eq!(w.app.restore_ingress_rules().await.unwrap(), 1);
    let routed = w.runtime.rules.lock().unwrap().clone();
    assert_eq!(routed.len(), 1);
    assert_eq!(
        routed[&("default".into(), "front".into())].rules[0].paths[0]
            .backend
            .app_id,
        "api"
    );
    w.app
        .delete_ingress_rule("local", "default", "front", &actor(), now)
        .await
        .unwrap();
    assert!(w.runtime.rules.lock().unwrap().is_empty());
    assert!(matches!(
        w.app
            .delete_ingress_rule("local", "default", "front", &actor(), now)
            .await,
        Err(AppError::EntityNotFound(_))
    ));
    // Each stored change has its audit record; the refused ones have none.
    let trail = w
        .app
        .audit(&AuditQuery::default(), PageRequest::new(1, 50))
        .await
        .unwrap();
    let ingress: Vec<_> = trail
        .items
        .iter()
        .filter(|r| r.entry.resource.starts_with("ingress/"))
        .map(|r| (r.entry.action.as_str(), r.entry.resource.as_str()))
        .collect();
    assert_eq!(ingress.len(), 3, "create, update, delete: {ingress:?}");
    assert!(
        ingress
            .iter()
            .all(|(_, resource)| *resource == "ingress/local/default/front")
    );
}

/// Waits (up to 5 s) until the runtime routes rule `name` as `wanted` (`None`: not at all).
async fn routed(w: &Ingressed, name: &str, wanted: Option<&IngressSpec>) {
    let key = ("default".to_owned(), name.to_owned());
    for _ in 0..500 {
        if w.runtime.rules.lock().unwrap().get(&key) == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "rule {name} is routed as {:?}, not {wanted:?}",
        w.runtime.rules.lock().unwrap().get(&key)
    );
}

/// The store goes first: a rule whose apply fails because the cluster stopped answering is
/// stored (success), and applied in the background once the cluster answers again; a deleted
/// rule's removal the cluster missed is made too. A rule the cluster refuses outright is undone.
#[tokio::test]
async fn a_rule_the_cluster_did_not_take_is_stored_and_applied_when_it_answers() {
    let w = ingressed().await;
    serving(&w, "shop", "shop", 8081).await;
    let now = jiff::Timestamp::now();
    // The cluster answered the check, then failed the apply (it went away in between).
    *w.runtime.refuse.lock().unwrap() = Some(RuntimeError::Unavailable("gone".into()));
    w.runtime.rules.lock().unwrap().clear();
    let front = request("front", "a.test", vec![path("/", "shop", 8081)]);
    let stored = w
        .app
        .put_ingress_rule(&front, true, "CreateK8sIngressRule", &actor(), now)
        .await
        .unwrap();
    assert_eq!(
        w.app.ingress_rules(Some("local"), None).await.unwrap(),
        std::slice::from_ref(&stored)
    );
    routed(&w, "front", Some(&stored.spec)).await;

    // Deleted while the cluster is down: gone from the store at once, from the cluster when it
    // answers again.
    w.runtime.down.send_replace(true);
    w.app
        .delete_ingress_rule("local", "default", "front", &actor(), now)
        .await
        .unwrap();
    assert!(w.app.ingress_rules(None, None).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        w.runtime
            .rules
            .lock()
            .unwrap()
            .contains_key(&("default".into(), "front".into()))
    );
    w.runtime.down.send_replace(false);
    routed(&w, "front", None).await;

    // A rule the cluster refuses (an Ingress of that name it did not create): refused, and
    // the stored change undone.
    *w.runtime.refuse.lock().unwrap() = Some(RuntimeError::Unsupported("not ours".into()));
    let theirs = request("theirs", "b.test", vec![path("/", "shop", 8081)]);
    let refused = w
        .app
        .put_ingress_rule(&theirs, true, "CreateK8sIngressRule", &actor(), now)
        .await;
    assert!(matches!(refused, Err(AppError::Runtime(_))), "{refused:?}");
    assert!(w.app.ingress_rules(None, None).await.unwrap().is_empty());
    routed(&w, "theirs", None).await;
}

/// A crash between storing a rule and applying it: the next start applies the stored rule,
/// at once when the cluster answers, else once it does.
#[tokio::test]
async fn a_rule_stored_but_not_applied_is_applied_at_the_next_start() {
    let w = ingressed().await;
    serving(&w, "shop", "shop", 8081).await;
    let now = jiff::Timestamp::now();
    let stored = w
        .app
        .put_ingress_rule(
            &request("front", "a.test", vec![path("/", "shop", 8081)]),
            true,
            "CreateK8sIngressRule",
            &actor(),
            now,
        )
        .await
        .unwrap();
    // What the cluster has after the crash: nothing.
    w.runtime.rules.lock().unwrap().clear();
    w.runtime.down.send_replace(true);
    assert_eq!(w.app.restore_ingress_rules().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(w.runtime.rules.lock().unwrap().is_empty());
    w.runtime.down.send_replace(false);
    routed(&w, "front", Some(&stored.spec)).await;
    // And with the cluster answering, at once.
    w.runtime.rules.lock().unwrap().clear();
    assert_eq!(w.app.restore_ingress_rules().await.unwrap(), 1);
    routed(&w, "front", Some(&stored.spec)).await;
}
