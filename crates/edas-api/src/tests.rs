//! In-process tests of the whole pipeline through the router (`tower::ServiceExt::oneshot`):
//! routing, signatures, authorization, the envelope, errors and the five operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use edas_engine::{Engine, EngineConfig, Runtimes};
use edas_pop::{encode_form, sign_v1, sign_v3};
use edas_runtime::fake::FakeRuntime;
use edas_store::{AccessKey, Cluster, Sensitive, Store, User};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Api, ApiConfig, router};

const ADMIN: (&str, &str) = ("testid", "testsecret");
const BOB: (&str, &str) = ("bobid", "bobsecret-0123456789");

static NONCE: AtomicU64 = AtomicU64::new(0);

fn nonce() -> String {
    format!("nonce-{}", NONCE.fetch_add(1, Ordering::Relaxed))
}

#[derive(Clone, Copy, PartialEq)]
enum Scheme {
    V1,
    V3,
}

struct Harness {
    router: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_with(false).await
}

/// A harness whose engine runs: change orders are driven on the fake runtime (instances ready
/// after 20 ms).
async fn running_harness() -> Harness {
    harness_with(true).await
}

async fn harness_with(run_engine: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let now = jiff::Timestamp::now();
    store
        .put_cluster(&Cluster {
            id: "local".into(),
            name: "local".into(),
            region_id: "cn-hangzhou".into(),
            cluster_type: "local".into(),
            config: json!({}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    for (name, admin, (id, secret)) in [("admin", true, ADMIN), ("bob", false, BOB)] {
        store
            .put_user(
                &User {
                    name: name.into(),
                    admin,
                    created_at: now,
                },
                setup_audit(),
                now,
            )
            .await
            .unwrap();
        store
            .create_access_key(
                &AccessKey {
                    id: id.into(),
                    secret: Sensitive::new(secret.into()),
                    user: name.into(),
                    enabled: true,
                    created_at: now,
                },
                setup_audit(),
                now,
            )
            .await
            .unwrap();
    }
    let runtimes = Runtimes::new().with(
        "local",
        Arc::new(FakeRuntime::new(Duration::from_millis(if run_engine {
            20
        } else {
            1
        }))),
    );
    let engine = Engine::new(Arc::new(store.clone()), runtimes, EngineConfig::default());
    if run_engine {
        engine.start();
    }
    let api = Api::new(
        edas_app::App::new(Arc::new(store.clone()), engine),
        ApiConfig {
            region_id: "cn-hangzhou".into(),
            account_id: "1234".into(),
            namespaces: vec!["cn-hangzhou:prod".into()],
        },
    );
    Harness {
        router: router(api),
        store,
        _dir: dir,
    }
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    action: Option<&'a str>,
    params: Vec<(String, String)>,
    key: (&'a str, &'a str),
    scheme: Scheme,
    at: SystemTime,
    nonce: Option<String>,
    extra_headers: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, path: &'a str, action: &'a str) -> Call<'a> {
        Call {
            method,
            path,
            action: Some(action),
            params: vec![("RegionId".into(), "cn-hangzhou".into())],
            key: ADMIN,
            scheme: Scheme::V1,
            at: SystemTime::now(),
            nonce: Some(nonce()),
            extra_headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    fn key(mut self, key: (&'a str, &'a str)) -> Self {
        self.key = key;
        self
    }

    fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    fn build(&self) -> Request<Body> {
        let query = encode_form(&self.params);
        let mut signed = edas_pop::Request::new(self.method, self.path)
            .with_raw_query(&query)
            .unwrap()
            .with_header("host", "127.0.0.1")
            .with_header("x-acs-version", "2017-08-01");
        if let Some(action) = self.action {
            signed = signed.with_header("x-acs-action", action);
        }
        for (name, value) in &self.extra_headers {
            signed = signed.with_header(name, *value);
        }
        signed = signed.with_body(self.body.clone());
        let added = match self.scheme {
            Scheme::V1 => sign_v1(
                &signed,
                self.key.0,
                self.key.1,
                self.at,
                self.nonce.as_deref(),
            ),
            Scheme::V3 => sign_v3(
                &signed,
                self.key.0,
                self.key.1,
                self.at,
                self.nonce.as_deref().unwrap_or("n"),
            ),
        }
        .unwrap();
        let mut builder = Request::builder()
            .method(self.method)
            .uri(format!("{}?{}", self.path, query));
        for (name, value) in signed.headers() {
            builder = builder.header(name, value);
        }
        for (name, value) in added {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(self.body.clone())).unwrap()
    }
}

async fn send(h: &Harness, request: Request<Body>) -> (StatusCode, Value) {
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let request_id_header = response
        .headers()
        .get("x-acs-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    if let Some(id) = body.get("RequestId").and_then(Value::as_str) {
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "RequestId {id} is a UUID"
        );
        assert_eq!(request_id_header.as_deref(), Some(id));
    }
    (status, body)
}

async fn call(h: &Harness, c: Call<'_>) -> (StatusCode, Value) {
    send(h, c.build()).await
}

fn assert_error(result: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(result.0.as_u16(), status, "{}", result.1);
    assert_eq!(result.1["Code"], code, "{}", result.1);
    assert!(result.1["Message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(result.1["RequestId"].is_string());
}

fn assert_success(result: &(StatusCode, Value)) {
    assert_eq!(result.0, StatusCode::OK, "{}", result.1);
    assert_eq!(result.1["Code"], 200, "integer Code 200: {}", result.1);
    assert!(result.1["Message"].is_string());
}

fn insert(name: &str) -> Call<'static> {
    Call::new(
        "POST",
        "/pop/v5/k8s/acs/create_k8s_app",
        "InsertK8sApplication",
    )
    .param("AppName", name)
    .param("ClusterId", "local")
    .param("ImageUrl", "nginx:1.25")
    .param("Replicas", "2")
}

async fn create_app(h: &Harness, name: &str) -> (String, String) {
    let result = call(h, insert(name)).await;
    assert_success(&result);
    let info = &result.1["ApplicationInfo"];
    (
        info["AppId"].as_str().unwrap().to_owned(),
        info["ChangeOrderId"].as_str().unwrap().to_owned(),
    )
}

fn get_app(app_id: &str) -> Call<'_> {
    Call::new(
        "GET",
        "/pop/v5/changeorder/co_application",
        "GetK8sApplication",
    )
    .param("AppId", app_id)
}

fn deploy(app_id: &str) -> Call<'_> {
    Call::new("POST", "/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication").param("AppId", app_id)
}

async fn attach_policy(h: &Harness, document: Value) {
    let now = jiff::Timestamp::now();
    h.store
        .put_policy(
            &edas_store::Policy {
                name: "p".into(),
                document,
                created_at: now,
                updated_at: now,
            },
            setup_audit(),
            now,
        )
        .await
        .unwrap();
    h.store
        .attach_policy("bob", "p", setup_audit(), now)
        .await
        .unwrap();
}

/// The audit record of a test's own set-up writes.
fn setup_audit() -> edas_store::AuditEntry {
    edas_store::AuditEntry {
        actor: "test".into(),
        action: "Setup".into(),
        resource: "test".into(),
        app_id: None,
        request_id: None,
        detail: Value::Null,
    }
}

#[tokio::test]
async fn unknown_paths_are_404_with_the_error_body() {
    let h = harness().await;
    let request = Request::builder()
        .method("POST")
        .uri("/pop/v5/nothing/here")
        .body(Body::empty())
        .unwrap();
    assert_error(&send(&h, request).await, 404, "InvalidApi.NotFound");
    // A known path with another method names the methods it takes.
    let result = send(
        &h,
        Request::builder()
            .method("GET")
            .uri("/pop/v5/k8s/acs/k8s_apps")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&result, 404, "InvalidApi.NotFound");
    assert!(
        result.1["Message"]
            .as_str()
            .unwrap()
            .contains("DeployK8sApplication")
    );
}

#[tokio::test]
async fn unimplemented_operations_name_the_action() {
    let h = harness().await;
    let result = call(
        &h,
        Call::new("POST", "/pop/v5/resource/cluster", "InsertCluster"),
    )
    .await;
    assert_error(&result, 501, "UnsupportedOperation");
    assert!(
        result.1["Message"]
            .as_str()
            .unwrap()
            .starts_with("InsertCluster is not supported")
    );
}

#[tokio::test]
async fn signature_failures_use_the_codes_clients_know() {
    let h = harness().await;
    let unsigned = Request::builder()
        .method("POST")
        .uri("/pop/v5/app/app_list")
        .body(Body::empty())
        .unwrap();
    assert_error(&send(&h, unsigned).await, 400, "IncompleteSignature");

    let list = || Call::new("POST", "/pop/v5/app/app_list", "ListApplication");
    let wrong_secret = call(&h, list().key(("testid", "wrong"))).await;
    assert_error(&wrong_secret, 400, "SignatureDoesNotMatch");
    assert!(wrong_secret.1["Message"].as_str().unwrap().contains(':'));
    assert_error(
        &call(&h, list().key(("nobody", "x"))).await,
        404,
        "InvalidAccessKeyId.NotFound",
    );
    let mut stale = list();
    stale.at = SystemTime::now() - Duration::from_secs(16 * 60);
    assert_error(&call(&h, stale).await, 400, "IllegalTimestamp");
    let mut future = list().scheme(Scheme::V3);
    future.at = SystemTime::now() + Duration::from_secs(16 * 60);
    assert_error(&call(&h, future).await, 400, "IllegalTimestamp");

    let replayed = list().build();
    let again = list();
    let mut same = again;
    same.nonce = Some("fixed-nonce".into());
    let first = same.build();
    assert_success(&send(&h, replayed).await);
    assert_success(&send(&h, first).await);
    let mut same_again = list();
    same_again.nonce = Some("fixed-nonce".into());
    assert_error(&call(&h, same_again).await, 400, "SignatureNonceUsed");

    let mut sts = list();
    sts.extra_headers.push(("x-acs-security-token", "token"));
    assert_error(
        &call(&h, sts).await,
        400,
        "InvalidSecurityToken.NotSupported",
    );

    h.store
        .set_access_key_enabled("bobid", false, setup_audit(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_error(
        &call(&h, list().key(BOB)).await,
        400,
        "InvalidAccessKeyId.Inactive",
    );
}

/// A signer is remembered between requests, but a change of its key counts at the very next
/// request, whether made through the admin API or on the store directly.
#[tokio::test]
async fn a_key_change_counts_at_the_next_request() {
    let h = harness().await;
    let list = || Call::new("POST", "/pop/v5/app/app_list", "ListApplication").key(BOB);
    let admin = |method: &'static str, path: &'static str, body: Value| {
        let mut c = Call::new(method, path, "");
        c.action = None;
        c.params.clear();
        if !body.is_null() {
            c.body = serde_json::to_vec(&body).unwrap();
            c.extra_headers.push(("content-type", "application/json"));
        }
        c
    };
    for _ in 0..3 {
        assert_success(&call(&h, list()).await);
        assert_success(&call(&h, list()).await);
        assert_success(
            &call(
                &h,
                admin("PUT", "/edasd/v1/keys/bobid", json!({"Enabled": false})),
            )
            .await,
        );
        assert_error(&call(&h, list()).await, 400, "InvalidAccessKeyId.Inactive");
        h.store
            .set_access_key_enabled("bobid", true, setup_audit(), jiff::Timestamp::now())
            .await
            .unwrap();
    }
    assert_success(&call(&h, list()).await);
    assert_success(&call(&h, admin("DELETE", "/edasd/v1/keys/bobid", Value::Null)).await);
    assert_error(&call(&h, list()).await, 404, "InvalidAccessKeyId.NotFound");
}

#[tokio::test]
async fn both_schemes_create_deploy_and_read_back() {
    let h = harness().await;
    for scheme in [Scheme::V1, Scheme::V3] {
        let name = if scheme == Scheme::V1 {
            "app-v1"
        } else {
            "app-v3"
        };
        let result = call(&h, insert(name).scheme(scheme)).await;
        assert_success(&result);
        let info = &result.1["ApplicationInfo"];
        assert_eq!(info["AppName"], name);
        assert_eq!(info["RegionId"], "cn-hangzhou");
        let app_id = info["AppId"].as_str().unwrap().to_owned();
        let first_order = info["ChangeOrderId"].as_str().unwrap().to_owned();

        let order = call(
            &h,
            Call::new(
                "POST",
                "/pop/v5/changeorder/change_order_info",
                "GetChangeOrderInfo",
            )
            .param("ChangeOrderId", &first_order)
            .scheme(scheme),
        )
        .await;
        assert_success(&order);
        let info = &order.1["changeOrderInfo"];
        assert_eq!(info["ChangeOrderId"], first_order.as_str());
        assert!(info["Status"].is_i64());
        assert!(info["PipelineInfoList"]["PipelineInfo"].is_array());
        assert_eq!(info["CoType"], "Create Application");
        assert!(info["CreateUserId"].as_str().unwrap().contains("admin"));

        let got = call(&h, get_app(&app_id).scheme(scheme)).await;
        assert_success(&got);
        assert_eq!(got.1["Applcation"]["App"]["ApplicationName"], name);
        assert_eq!(got.1["Applcation"]["ImageInfo"]["ImageUrl"], "nginx:1.25");
        assert_eq!(got.1["Applcation"]["ImageInfo"]["Tag"], "1.25");
        assert_eq!(got.1["Applcation"]["App"]["Instances"], 2);
    }
    let listed = call(
        &h,
        Call::new("POST", "/pop/v5/app/app_list", "ListApplication"),
    )
    .await;
    assert_success(&listed);
    let names: Vec<&str> = listed.1["ApplicationList"]["Application"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app-v1", "app-v3"]);
}

#[tokio::test]
async fn deploy_returns_a_change_order_and_a_second_one_conflicts() {
    let h = harness().await;
    let (app_id, first) = create_app(&h, "demo").await;
    // The creation's change order is still active (the engine is not running here).
    let conflict = call(
        &h,
        deploy(&app_id).param("Envs", r#"[{"name":"A","value":"1"}]"#),
    )
    .await;
    assert_error(&conflict, 409, "OperationConflict.ChangeOrderRunning");
    assert!(conflict.1["Message"].as_str().unwrap().contains(&first));
    let missing = call(&h, deploy("no-such-app")).await;
    assert_error(&missing, 404, "InvalidAppId.NotFound");
    let no_id = call(
        &h,
        Call::new("POST", "/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication"),
    )
    .await;
    assert_error(&no_id, 400, "MissingParameter");
    assert!(no_id.1["Message"].as_str().unwrap().contains("AppId"));
}

#[tokio::test]
async fn invalid_deploy_names_the_parameter_and_changes_nothing() {
    let h = harness().await;
    let (app_id, _) = create_app(&h, "demo").await;
    let before = call(&h, get_app(&app_id)).await;
    let result = call(&h, deploy(&app_id).param("Envs", "[{\"name\": 1}")).await;
    assert_error(&result, 400, "InvalidParameter");
    assert!(result.1["Message"].as_str().unwrap().contains("Envs"));
    let after = call(&h, get_app(&app_id)).await;
    assert_eq!(before.1["Applcation"], after.1["Applcation"]);
    let unknown = call(&h, deploy(&app_id).param("Bogus", "1")).await;
    assert_error(&unknown, 400, "InvalidParameter.Unknown");
}

#[tokio::test]
async fn insert_validates_cluster_namespace_region_and_name() {
    let h = harness().await;
    let bad_cluster = call(
        &h,
        Call::new(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
        )
        .param("AppName", "x")
        .param("ImageUrl", "nginx")
        .param("ClusterId", "nope"),
    )
    .await;
    assert_error(&bad_cluster, 400, "InvalidParameter");
    assert!(
        bad_cluster.1["Message"]
            .as_str()
            .unwrap()
            .contains("ClusterId")
    );
    let bad_ns = call(&h, insert("x").param("LogicalRegionId", "cn-hangzhou:nope")).await;
    assert_error(&bad_ns, 400, "InvalidParameter");
    assert!(
        bad_ns.1["Message"]
            .as_str()
            .unwrap()
            .contains("LogicalRegionId")
    );
    let mut other_region = insert("x");
    other_region.params[0].1 = "us-west-1".into();
    assert_error(&call(&h, other_region).await, 400, "InvalidParameter");
    let missing_name = call(
        &h,
        Call::new(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
        )
        .param("ClusterId", "local"),
    )
    .await;
    assert_error(&missing_name, 400, "MissingParameter");
    let in_prod = call(
        &h,
        insert("prod-app").param("LogicalRegionId", "cn-hangzhou:prod"),
    )
    .await;
    assert_success(&in_prod);
    let apps = h
        .store
        .list_applications(&Default::default(), Default::default())
        .await
        .unwrap();
    assert_eq!(apps.items.len(), 1, "only the valid insert stored anything");
    assert_eq!(apps.items[0].namespace_id, "cn-hangzhou:prod");
}

#[tokio::test]
async fn action_header_must_match_the_route() {
    let h = harness().await;
    let mut c = Call::new("POST", "/pop/v5/app/app_list", "ListApplication");
    c.action = Some("DeployK8sApplication");
    assert_error(&call(&h, c).await, 400, "InvalidParameter");
}

#[tokio::test]
async fn users_need_a_policy_and_deny_wins() {
    let h = harness().await;
    let (app_id, _) = create_app(&h, "demo").await;
    let refused = call(&h, get_app(&app_id).key(BOB)).await;
    assert_error(&refused, 401, "AUTH_ERROR");
    assert!(
        refused.1["Message"]
            .as_str()
            .unwrap()
            .contains("edas:ReadApplication")
    );
    let insert_refused = call(&h, insert("bobs").key(BOB)).await;
    assert_error(&insert_refused, 401, "AUTH_ERROR");
    // Nobody sees applications they may not read.
    let list = call(
        &h,
        Call::new("POST", "/pop/v5/app/app_list", "ListApplication").key(BOB),
    )
    .await;
    assert_success(&list);
    assert_eq!(list.1["ApplicationList"]["Application"], json!([]));

    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:*", "Resource": "acs:edas:cn-hangzhou:1234:namespace/cn-hangzhou/application/*"},
            {"Effect": "Deny", "Action": "edas:ManageApplication", "Resource": "*"}
        ]}),
    )
    .await;
    assert_success(&call(&h, get_app(&app_id).key(BOB)).await);
    let denied = call(&h, deploy(&app_id).key(BOB)).await;
    assert_error(&denied, 401, "AUTH_ERROR");
    assert!(denied.1["Message"].as_str().unwrap().contains("Deny"));
    let list = call(
        &h,
        Call::new("POST", "/pop/v5/app/app_list", "ListApplication").key(BOB),
    )
    .await;
    assert_eq!(
        list.1["ApplicationList"]["Application"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The Allow covers only the default namespace.
    assert_error(
        &call(
            &h,
            insert("bobs")
                .key(BOB)
                .param("LogicalRegionId", "cn-hangzhou:prod"),
        )
        .await,
        401,
        "AUTH_ERROR",
    );
    // Every application right, but not the right to run code on edasd's host.
    let local = call(&h, insert("bobs").key(BOB)).await;
    assert_error(&local, 401, "AUTH_ERROR");
    assert!(
        local.1["Message"]
            .as_str()
            .unwrap()
            .contains("edas:UseLocalCluster on acs:edas:cn-hangzhou:1234:cluster/local"),
        "{}",
        local.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_and_host_paths_need_their_own_grants() {
    let h = running_harness().await;
    let (app_id, created) = create_app(&h, "demo").await;
    wait_for_status(&h, &created, 2).await;
    let app_rights = json!({"Effect": "Allow", "Action": "edas:*",
        "Resource": "acs:edas:cn-hangzhou:1234:namespace/cn-hangzhou/application/*"});
    attach_policy(&h, json!({"Version": "1", "Statement": [app_rights]})).await;
    // ManageApplication alone: no change of an application on `local`.
    let scale = || {
        Call::new("PUT", "/pop/v5/k8s/acs/k8s_apps", "ScaleK8sApplication")
            .key(BOB)
            .param("AppId", &app_id)
            .param("Replicas", "1")
    };
    let refused = call(&h, scale()).await;
    assert_error(&refused, 401, "AUTH_ERROR");
    assert!(
        refused.1["Message"]
            .as_str()
            .unwrap()
            .contains("edas:UseLocalCluster")
    );

    // Granted the cluster: changes pass, but a new host path needs its own grant.
    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [app_rights,
            {"Effect": "Allow", "Action": "edas:UseLocalCluster",
             "Resource": "acs:edas:cn-hangzhou:1234:cluster/local"}]}),
    )
    .await;
    let scaled = call(&h, scale()).await;
    assert_success(&scaled);
    wait_for_status(&h, scaled.1["ChangeOrderId"].as_str().unwrap(), 2).await;
    let revision = h
        .store
        .get_application(&app_id)
        .await
        .unwrap()
        .current_revision;
    let volume = r#"[{"type":"Directory","nodePath":"/etc","mountPath":"/host-etc"}]"#;
    let refused = call(&h, deploy(&app_id).key(BOB).param("LocalVolume", volume)).await;
    assert_error(&refused, 401, "AUTH_ERROR");
    assert!(
        refused.1["Message"]
            .as_str()
            .unwrap()
            .contains("edas:UseLocalHostPath")
    );
    let package = call(
        &h,
        deploy(&app_id)
            .key(BOB)
            .param("PackageUrl", "file:///var/lib/edasd/store.key")
            .param("PackageVersion", "1"),
    )
    .await;
    assert_error(&package, 401, "AUTH_ERROR");
    assert!(
        package.1["Message"]
            .as_str()
            .unwrap()
            .contains("edas:UseLocalHostPath")
    );
    // Nothing refused was stored: the application is still at its last accepted revision.
    let app = h.store.get_application(&app_id).await.unwrap();
    assert_eq!(app.current_revision, revision);
}

#[tokio::test]
async fn list_application_filters_and_pages() {
    let h = harness().await;
    for name in ["alpha", "beta", "gamma"] {
        create_app(&h, name).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["ApplicationList"]["Application"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = || Call::new("POST", "/pop/v5/app/app_list", "ListApplication");
    let page = call(&h, list().param("PageSize", "2").param("CurrentPage", "2")).await;
    assert_eq!(names(&page.1), ["gamma"]);
    let by_name = call(&h, list().param("AppName", "et")).await;
    assert_eq!(names(&by_name.1), ["beta"]);
    assert_error(
        &call(&h, list().param("PageSize", "0")).await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &call(&h, list().param("AppIds", "not json")).await,
        400,
        "InvalidParameter",
    );
    assert_eq!(
        names(&call(&h, list().param("ClusterId", "other")).await.1),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn get_change_order_of_an_unknown_id_is_404() {
    let h = harness().await;
    let result = call(
        &h,
        Call::new(
            "POST",
            "/pop/v5/changeorder/change_order_info",
            "GetChangeOrderInfo",
        )
        .param("ChangeOrderId", "nope"),
    )
    .await;
    assert_error(&result, 404, "InvalidChangeOrderId.NotFound");
}

#[tokio::test]
async fn oversized_requests_are_refused_with_the_error_body() {
    let h = harness().await;
    let mut c = Call::new("POST", "/pop/v5/app/app_list", "ListApplication");
    c.body = vec![b'x'; crate::MAX_REQUEST_BYTES + 1];
    assert_error(&call(&h, c).await, 413, "RequestTooLarge");
    // A large query parameter (base64 YAML sized) passes the limits; the `http` crate caps a
    // URI at 64 KiB, below edasd's own limit.
    let (app_id, _) = create_app(&h, "demo").await;
    let big = "a".repeat(60 * 1024);
    let result = call(&h, get_app(&app_id).param("From", &big)).await;
    assert_error(&result, 400, "InvalidParameter");
}

#[tokio::test]
async fn admin_api_manages_users_keys_and_policies() {
    let h = harness().await;
    let admin = |method: &'static str, path: &'static str, body: Value| {
        let mut c = Call::new(method, path, "");
        c.action = None;
        c.params.clear();
        if !body.is_null() {
            c.body = serde_json::to_vec(&body).unwrap();
            c.extra_headers.push(("content-type", "application/json"));
        }
        c
    };
    assert_success(
        &call(
            &h,
            admin("POST", "/edasd/v1/users", json!({"Name": "carol"})),
        )
        .await,
    );
    assert_error(
        &call(
            &h,
            admin("POST", "/edasd/v1/users", json!({"Name": "carol"})),
        )
        .await,
        409,
        "EntityAlreadyExists",
    );
    let key = call(&h, admin("POST", "/edasd/v1/users/carol/keys", Value::Null)).await;
    assert_success(&key);
    assert!(
        key.1["AccessKey"]["AccessKeySecret"]
            .as_str()
            .unwrap()
            .len()
            >= 16
    );
    assert_error(
        &call(
            &h,
            admin(
                "PUT",
                "/edasd/v1/policies/bad",
                json!({"Document": {"Statement": []}}),
            ),
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_success(
        &call(
            &h,
            admin(
                "PUT",
                "/edasd/v1/policies/readers",
                json!({"Document": {"Statement": [{"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}}),
            ),
        )
        .await,
    );
    assert_success(
        &call(
            &h,
            admin("PUT", "/edasd/v1/users/carol/policies/readers", Value::Null),
        )
        .await,
    );
    let policies = call(
        &h,
        admin("GET", "/edasd/v1/users/carol/policies", Value::Null),
    )
    .await;
    assert_eq!(policies.1["Policies"][0]["Name"], "readers");
    let keys = call(&h, admin("GET", "/edasd/v1/users/carol/keys", Value::Null)).await;
    assert!(
        keys.1["AccessKeys"][0].get("AccessKeySecret").is_none(),
        "secrets are never listed"
    );
    // Non-administrators are refused.
    assert_error(
        &call(&h, admin("GET", "/edasd/v1/users", Value::Null).key(BOB)).await,
        401,
        "AUTH_ERROR",
    );
    assert_error(
        &call(
            &h,
            admin("GET", "/edasd/v1/users", Value::Null).param("Name", "x"),
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &call(&h, admin("GET", "/edasd/v1/nothing", Value::Null)).await,
        404,
        "InvalidApi.NotFound",
    );
    assert_error(
        &call(&h, admin("DELETE", "/edasd/v1/users/admin", Value::Null)).await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &call(
            &h,
            admin("PUT", "/edasd/v1/keys/testid", json!({"Enabled": false})),
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_success(
        &call(
            &h,
            admin("PUT", "/edasd/v1/keys/bobid", json!({"Enabled": false})),
        )
        .await,
    );
    assert_error(
        &call(
            &h,
            Call::new("POST", "/pop/v5/app/app_list", "ListApplication").key(BOB),
        )
        .await,
        400,
        "InvalidAccessKeyId.Inactive",
    );
    assert_success(&call(&h, admin("DELETE", "/edasd/v1/users/carol", Value::Null)).await);
    assert_error(
        &call(&h, admin("DELETE", "/edasd/v1/users/carol", Value::Null)).await,
        404,
        "EntityNotExist",
    );
}

#[tokio::test]
async fn health_is_plain_and_metrics_need_a_recorder() {
    let h = harness().await;
    let (status, body) = send(
        &h,
        Request::builder()
            .uri("/healthz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok\n");
}

fn change_order_info(id: &str) -> Call<'_> {
    Call::new(
        "POST",
        "/pop/v5/changeorder/change_order_info",
        "GetChangeOrderInfo",
    )
    .param("ChangeOrderId", id)
}

/// Polls GetChangeOrderInfo (as an SDK user would) until `changeOrderInfo.Status` is `status`.
async fn wait_for_status(h: &Harness, id: &str, status: i64) -> Value {
    for _ in 0..500 {
        let r = call(h, change_order_info(id)).await;
        assert_success(&r);
        if r.1["changeOrderInfo"]["Status"] == status {
            return r.1["changeOrderInfo"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("change order {id} never reached status {status}");
}

/// Issue 6's API-level test: a GrayBatchUpdate manual release through the wire shapes the SDK
/// models read: status 8 after the gray batch, ContinuePipeline with a PipelineId taken from
/// `changeOrderInfo.PipelineInfoList.PipelineInfo[]`, status 2 at the end; then the listing,
/// abort, abort-and-rollback, rollback and retry operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gray_manual_release_is_driven_through_the_change_order_operations() {
    let h = running_harness().await;
    let (app_id, created) = create_app(&h, "gray").await;
    wait_for_status(&h, &created, 2).await;
    let strategy = r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"},"grayUpdate":{"gray":1}}"#;
    let deployed = call(
        &h,
        deploy(&app_id)
            .param("ImageUrl", "")
            .param("Image", "nginx:1.27")
            .param("Replicas", "3")
            .param("UpdateStrategy", strategy),
    )
    .await;
    // `ImageUrl` is not a DeployK8sApplication parameter: refused, nothing stored.
    assert_error(&deployed, 400, "InvalidParameter.Unknown");
    let deployed = call(
        &h,
        deploy(&app_id)
            .param("Image", "nginx:1.27")
            .param("Replicas", "3")
            .param("UpdateStrategy", strategy),
    )
    .await;
    assert_success(&deployed);
    let co = deployed.1["ChangeOrderId"].as_str().unwrap().to_owned();
    let info = wait_for_status(&h, &co, 8).await;
    assert_eq!(info["BatchCount"], 3);
    assert_eq!(info["BatchType"], "Manual");
    let pipelines = info["PipelineInfoList"]["PipelineInfo"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(pipelines[0]["PipelineStatus"], 2, "{}", pipelines[0]);
    let ids: Vec<String> = pipelines
        .iter()
        .map(|p| p["PipelineId"].as_str().unwrap().to_owned())
        .collect();

    // Confirm=false keeps waiting; an unknown pipeline is 404.
    let held = call(
        &h,
        Call::new(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
        )
        .param("PipelineId", &ids[1])
        .param("Confirm", "false"),
    )
    .await;
    assert_success(&held);
    assert_eq!(wait_for_status(&h, &co, 8).await["Status"], 8);
    let unknown = call(
        &h,
        Call::new(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
        )
        .param("PipelineId", "no-such-pipeline")
        .param("Confirm", "true"),
    )
    .await;
    assert_error(&unknown, 404, "InvalidChangeOrderId.NotFound");
    // A user without the policy may not continue it.
    let denied = call(
        &h,
        Call::new(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
        )
        .param("PipelineId", &ids[1])
        .param("Confirm", "True")
        .key(BOB),
    )
    .await;
    assert_error(&denied, 401, "AUTH_ERROR");
    for id in &ids[1..] {
        let go = call(
            &h,
            Call::new(
                "GET",
                "/pop/v5/changeorder/pipeline_batch_confirm",
                "ContinuePipeline",
            )
            .param("PipelineId", id)
            .param("Confirm", "True"),
        )
        .await;
        assert_success(&go);
        if id != &ids[2] {
            wait_for_status(&h, &co, 8).await;
        }
    }
    let done = wait_for_status(&h, &co, 2).await;
    assert!(
        done["PipelineInfoList"]["PipelineInfo"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["PipelineStatus"] == 2)
    );

    // Continuing a finished release does not apply.
    let late = call(
        &h,
        Call::new(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
        )
        .param("PipelineId", &ids[2])
        .param("Confirm", "true"),
    )
    .await;
    assert_error(&late, 404, "InvalidChangeOrderId.NotFound");

    // ListRecentChangeOrder: newest first, with the SDK's wrapper object.
    let listed = call(
        &h,
        Call::new(
            "POST",
            "/pop/v5/changeorder/change_order_list",
            "ListRecentChangeOrder",
        )
        .param("AppId", &app_id),
    )
    .await;
    assert_success(&listed);
    let items = listed.1["ChangeOrderList"]["ChangeOrder"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["ChangeOrderId"], co.as_str());
    assert_eq!(items[0]["CoTypeCode"], "CoDeploy");
    assert_eq!(items[0]["Status"], 2);
    assert_eq!(items[1]["ChangeOrderId"], created.as_str());
    // The creator is who submitted the order, not the engine that moved it on last (the audit
    // trail's newest record naming the order is the engine's `system` transition).
    for creator in [
        &done["CreateUserId"],
        &items[0]["CreateUserId"],
        &items[0]["UserId"],
    ] {
        let creator = creator.as_str().unwrap();
        assert!(creator.contains("admin"), "{creator}");
    }

    // AbortAndRollbackChangeOrder on a waiting release answers the rollback order in Data.
    let next = call(
        &h,
        deploy(&app_id)
            .param("Image", "nginx:1.28")
            .param("UpdateStrategy", strategy),
    )
    .await;
    assert_success(&next);
    let next = next.1["ChangeOrderId"].as_str().unwrap().to_owned();
    wait_for_status(&h, &next, 8).await;
    let rolled = call(
        &h,
        Call::new(
            "PUT",
            "/pop/v5/changeorder/change_order_abort_and_rollback",
            "AbortAndRollbackChangeOrder",
        )
        .param("ChangeOrderId", &next),
    )
    .await;
    assert_success(&rolled);
    let rollback = rolled.1["Data"]["ChangeOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rollback, next);
    assert_eq!(wait_for_status(&h, &next, 6).await["Status"], 6);
    let rb = wait_for_status(&h, &rollback, 2).await;
    assert_eq!(rb["CoTypeCode"], "CoRollback");
    let got = call(&h, get_app(&app_id)).await;
    assert_eq!(got.1["Applcation"]["ImageInfo"]["ImageUrl"], "nginx:1.27");

    // AbortChangeOrder on a finished order does not apply; on a waiting one it terminates it.
    let again = call(
        &h,
        Call::new(
            "PUT",
            "/pop/v5/changeorder/change_order_abort",
            "AbortChangeOrder",
        )
        .param("ChangeOrderId", &co),
    )
    .await;
    assert_error(&again, 400, "InvalidChangeOrderStatus");
    let third = call(
        &h,
        deploy(&app_id)
            .param("Image", "nginx:1.29")
            .param("UpdateStrategy", strategy),
    )
    .await;
    let third = third.1["ChangeOrderId"].as_str().unwrap().to_owned();
    wait_for_status(&h, &third, 8).await;
    let aborted = call(
        &h,
        Call::new(
            "PUT",
            "/pop/v5/changeorder/change_order_abort",
            "AbortChangeOrder",
        )
        .param("ChangeOrderId", &third),
    )
    .await;
    assert_success(&aborted);
    assert_eq!(aborted.1["Data"]["ChangeOrderId"], third.as_str());
    wait_for_status(&h, &third, 6).await;

    // RollbackChangeOrder of the finished release goes back to the revision before it.
    let back = call(
        &h,
        Call::new(
            "PUT",
            "/pop/v5/oam/changeorder/rollback",
            "RollbackChangeOrder",
        )
        .param("ChangeOrderId", &co),
    )
    .await;
    assert_success(&back);
    let back = back.1["Data"]["ChangeOrderId"].as_str().unwrap().to_owned();
    wait_for_status(&h, &back, 2).await;
    let got = call(&h, get_app(&app_id)).await;
    assert_eq!(got.1["Applcation"]["ImageInfo"]["ImageUrl"], "nginx:1.25");

    // RetryChangeOrderTask of a task no open order has.
    let retry = call(
        &h,
        Call::new(
            "GET",
            "/pop/v5/changeorder/task_retry",
            "RetryChangeOrderTask",
        )
        .param("TaskId", "no-such-task"),
    )
    .await;
    assert_error(&retry, 404, "InvalidChangeOrderId.NotFound");
}

fn app_call<'a>(method: &'a str, path: &'a str, action: &'a str, app_id: &str) -> Call<'a> {
    Call::new(method, path, action).param("AppId", app_id)
}

/// Issue 9: scale, stop, start, restart, configure and delete are change orders that
/// GetChangeOrderInfo reports to the end; GetApplication and QueryApplicationStatus show the
/// instances the runtime reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_operations_are_change_orders_reported_to_the_end() {
    let h = running_harness().await;
    let (app_id, created) = create_app(&h, "life").await;
    wait_for_status(&h, &created, 2).await;

    let get = |id: &str| app_call("POST", "/pop/v5/app/app_info", "GetApplication", id);
    let status = |id: &str| {
        app_call(
            "GET",
            "/pop/v5/app/app_status",
            "QueryApplicationStatus",
            id,
        )
    };
    let got = call(&h, get(&app_id)).await;
    assert_success(&got);
    let a = &got.1["Application"];
    assert_eq!(a["AppId"], app_id.as_str());
    assert_eq!(a["Name"], "life");
    assert_eq!(a["InstanceCount"], 2);
    assert_eq!(a["RunningInstanceCount"], 2);
    assert_eq!(a["AppPhase"], "ready");
    let listed = call(
        &h,
        Call::new("POST", "/pop/v5/app/app_list", "ListApplication").param("AppName", "life"),
    )
    .await;
    assert_eq!(
        listed.1["ApplicationList"]["Application"][0]["RunningInstanceCount"],
        2
    );
    assert_eq!(a["ClusterType"], "5");

    let run = async |c: Call<'_>| -> String {
        let r = call(&h, c).await;
        assert_success(&r);
        let co = r.1["ChangeOrderId"]
            .as_str()
            .expect("ChangeOrderId")
            .to_owned();
        let info = wait_for_status(&h, &co, 2).await;
        assert_eq!(info["ChangeOrderId"], co.as_str());
        co
    };
    run(app_call(
        "PUT",
        "/pop/v5/k8s/acs/k8s_apps",
        "ScaleK8sApplication",
        &app_id,
    )
    .param("Replicas", "3")
    .param("Timeout", "60"))
    .await;
    let s = call(&h, status(&app_id)).await;
    assert_success(&s);
    let info = &s.1["AppInfo"];
    assert_eq!(info["Application"]["ApplicationId"], app_id.as_str());
    assert_eq!(info["Application"]["InstanceCount"], 3);
    assert_eq!(info["Application"]["RunningInstanceCount"], 3);
    let eccs = info["EccList"]["Ecc"].as_array().unwrap();
    assert_eq!(eccs.len(), 3);
    assert!(
        eccs.iter()
            .all(|e| e["AppState"] == 7 && e["TaskState"] == 2)
    );
    assert_eq!(info["GroupList"]["Group"][0]["GroupType"], 0);
    assert!(
        !info["DeployRecordList"]["DeployRecord"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    run(app_call(
        "POST",
        "/pop/v5/k8s/acs/stop_k8s_app",
        "StopK8sApplication",
        &app_id,
    ))
    .await;
    let s = call(&h, status(&app_id)).await;
    assert_eq!(
        s.1["AppInfo"]["EccList"]["Ecc"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        call(&h, get(&app_id)).await.1["Application"]["RunningInstanceCount"],
        0
    );
    run(app_call(
        "POST",
        "/pop/v5/k8s/acs/start_k8s_app",
        "StartK8sApplication",
        &app_id,
    ))
    .await;
    assert_eq!(
        call(&h, get(&app_id)).await.1["Application"]["RunningInstanceCount"],
        3
    );
    run(app_call(
        "POST",
        "/pop/v5/k8s/acs/restart_k8s_app",
        "RestartK8sApplication",
        &app_id,
    ))
    .await;
    run(app_call(
        "PUT",
        "/pop/v5/k8s/acs/k8s_app_configuration",
        "UpdateK8sApplicationConfig",
        &app_id,
    )
    .param("MemoryLimit", "512")
    .param("MemoryRequest", "256"))
    .await;
    assert_eq!(call(&h, get(&app_id)).await.1["Application"]["Memory"], 512);

    // Bad input names the parameter; nothing is submitted.
    let bad = call(
        &h,
        app_call(
            "PUT",
            "/pop/v5/k8s/acs/k8s_apps",
            "ScaleK8sApplication",
            &app_id,
        )
        .param("Replicas", "-1"),
    )
    .await;
    assert_error(&bad, 400, "InvalidParameter");
    assert!(bad.1["Message"].as_str().unwrap().contains("Replicas"));
    let missing = call(
        &h,
        Call::new("PUT", "/pop/v5/k8s/acs/k8s_apps", "ScaleK8sApplication").param("AppId", &app_id),
    )
    .await;
    assert_error(&missing, 400, "MissingParameter");
    let unknown = call(
        &h,
        app_call(
            "POST",
            "/pop/v5/k8s/acs/stop_k8s_app",
            "StopK8sApplication",
            &app_id,
        )
        .param("Replicas", "1"),
    )
    .await;
    assert_error(&unknown, 400, "InvalidParameter.Unknown");

    // Delete needs edas:DeleteApplication: managing is not enough.
    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": ["edas:ReadApplication", "edas:ManageApplication"], "Resource": "*"}]}),
    )
    .await;
    let delete = || {
        app_call(
            "DELETE",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeleteK8sApplication",
            &app_id,
        )
        .param("Force", "True")
    };
    assert_error(&call(&h, delete().key(BOB)).await, 401, "AUTH_ERROR");
    assert_success(&call(&h, get(&app_id).key(BOB)).await);
    let co = run(delete()).await;
    assert_error(&call(&h, get(&app_id)).await, 404, "InvalidAppId.NotFound");
    // The deleted application's change orders stay readable.
    assert_success(&call(&h, change_order_info(&co)).await);
}

#[tokio::test]
async fn reads_need_read_permission() {
    let h = harness().await;
    let (app_id, _) = create_app(&h, "private").await;
    for (method, path, action) in [
        ("POST", "/pop/v5/app/app_info", "GetApplication"),
        ("GET", "/pop/v5/app/app_status", "QueryApplicationStatus"),
    ] {
        let r = call(&h, app_call(method, path, action, &app_id).key(BOB)).await;
        assert_error(&r, 401, "AUTH_ERROR");
        let r = call(&h, app_call(method, path, action, "nope")).await;
        assert_error(&r, 404, "InvalidAppId.NotFound");
        let r = call(&h, app_call(method, path, action, &app_id).param("X", "1")).await;
        assert_error(&r, 400, "InvalidParameter.Unknown");
    }
}

impl Call<'_> {
    /// Sends the parameters given so far (but `RegionId`) as an
    /// `application/x-www-form-urlencoded` body, as both SDKs do for the form operations.
    fn form(mut self) -> Self {
        let (query, body): (Vec<_>, Vec<_>) =
            self.params.into_iter().partition(|(k, _)| k == "RegionId");
        self.params = query;
        self.body = encode_form(&body).into_bytes();
        self.extra_headers
            .push(("content-type", "application/x-www-form-urlencoded"));
        self
    }
}

const CM: &str = "/pop/v5/k8s/acs/k8s_config_map";
const SECRET: &str = "/pop/v5/k8s/acs/k8s_secret";

fn config_call<'a>(method: &'a str, path: &'a str, action: &'a str, name: &str) -> Call<'a> {
    Call::new(method, path, action)
        .param("ClusterId", "local")
        .param("Namespace", "default")
        .param("Name", name)
}

#[tokio::test]
async fn config_maps_are_created_updated_listed_and_deleted_through_form_bodies() {
    let h = harness().await;
    // Classic form: one JSON string; Tea form: flattened `Data.k=v`.
    let created = call(
        &h,
        config_call("POST", CM, "CreateK8sConfigMap", "web-config")
            .param(
                "Data",
                r#"[{"Key":"name","Value":"william"},{"Key":"age","Value":"12"}]"#,
            )
            .form(),
    )
    .await;
    assert_success(&created);
    let again = call(
        &h,
        config_call("POST", CM, "CreateK8sConfigMap", "web-config").form(),
    )
    .await;
    assert_error(&again, 409, "EntityAlreadyExists");
    assert_success(
        &call(
            &h,
            config_call("POST", CM, "CreateK8sConfigMap", "db-config")
                .param("Data.url", "postgres://db")
                .form()
                .scheme(Scheme::V3),
        )
        .await,
    );
    let updated = call(
        &h,
        config_call("PUT", CM, "UpdateK8sConfigMap", "web-config")
            .param("Data.name", "bob")
            .form()
            .scheme(Scheme::V3),
    )
    .await;
    assert_success(&updated);
    let stored = h
        .store
        .get_config_map("local", "default", "web-config")
        .await
        .unwrap();
    assert_eq!(stored.data, json!({"name": "bob"}));
    let missing = call(
        &h,
        config_call("PUT", CM, "UpdateK8sConfigMap", "nope").form(),
    )
    .await;
    assert_error(&missing, 404, "EntityNotExist");

    let list = |c: Call<'static>| async { call(&h, c).await };
    let all = list(Call::new("GET", CM, "ListK8sConfigMaps").param("ClusterId", "local")).await;
    assert_success(&all);
    assert_eq!(all.1["Result"]["Total"], 2);
    let items = all.1["Result"]["ConfigMaps"].as_array().unwrap();
    assert_eq!(items[0]["Name"], "db-config");
    assert_eq!(items[0]["ClusterName"], "local");
    assert_eq!(
        items[0]["Data"],
        json!([{"Key": "url", "Value": "postgres://db"}])
    );
    assert!(items[0]["CreationTime"].as_str().unwrap().ends_with('Z'));
    for condition in [
        Call::new("GET", CM, "ListK8sConfigMaps")
            .param("Condition", r#"{"field":"Name","pattern":"web"}"#),
        Call::new("GET", CM, "ListK8sConfigMaps")
            .param("Condition.field", "Name")
            .param("Condition.pattern", "web"),
    ] {
        let r = list(condition).await;
        assert_success(&r);
        assert_eq!(r.1["Result"]["Total"], 1);
        assert_eq!(r.1["Result"]["ConfigMaps"][0]["Name"], "web-config");
    }
    let paged = list(
        Call::new("GET", CM, "ListK8sConfigMaps")
            .param("PageNo", "2")
            .param("PageSize", "1"),
    )
    .await;
    assert_eq!(paged.1["Result"]["ConfigMaps"][0]["Name"], "web-config");
    assert_eq!(paged.1["Result"]["Total"], 2);

    // In use by an application: refused, naming it.
    let app = call(
        &h,
        insert("uses-cm").param(
            "Envs",
            r#"[{"name":"N","valueFrom":{"configMapKeyRef":{"name":"web-config","key":"name"}}}]"#,
        ),
    )
    .await;
    assert_success(&app);
    let refused = call(
        &h,
        config_call("DELETE", CM, "DeleteK8sConfigMap", "web-config"),
    )
    .await;
    assert_error(&refused, 409, "OperationDenied.ResourceInUse");
    assert!(refused.1["Message"].as_str().unwrap().contains("uses-cm"));
    let related = list(
        Call::new("GET", CM, "ListK8sConfigMaps")
            .param("ShowRelatedApps", "True")
            .param("Namespace", "default"),
    )
    .await;
    assert_eq!(
        related.1["Result"]["ConfigMaps"][1]["RelatedApps"][0]["AppName"],
        "uses-cm"
    );
    assert_success(
        &call(
            &h,
            config_call("DELETE", CM, "DeleteK8sConfigMap", "db-config"),
        )
        .await,
    );
    assert_error(
        &call(
            &h,
            config_call("DELETE", CM, "DeleteK8sConfigMap", "db-config"),
        )
        .await,
        404,
        "EntityNotExist",
    );

    // Bad input names the parameter.
    let bad = call(
        &h,
        config_call("POST", CM, "CreateK8sConfigMap", "Bad_Name").form(),
    )
    .await;
    assert_error(&bad, 400, "InvalidParameter");
    assert!(bad.1["Message"].as_str().unwrap().contains("Name"));
    let bad_cluster = call(
        &h,
        Call::new("POST", CM, "CreateK8sConfigMap")
            .param("ClusterId", "nope")
            .param("Namespace", "default")
            .param("Name", "x")
            .form(),
    )
    .await;
    assert_error(&bad_cluster, 400, "InvalidParameter");
    assert!(
        bad_cluster.1["Message"]
            .as_str()
            .unwrap()
            .contains("ClusterId")
    );
    // A body on a query operation, or a non-form body, is refused.
    let mut json_body = config_call("POST", CM, "CreateK8sConfigMap", "j");
    json_body.body = b"{}".to_vec();
    json_body
        .extra_headers
        .push(("content-type", "application/json"));
    assert_error(&call(&h, json_body).await, 400, "InvalidParameter");
    let body_on_delete = config_call("DELETE", CM, "DeleteK8sConfigMap", "x").form();
    assert_error(&call(&h, body_on_delete).await, 400, "InvalidParameter");

    // The audit trail records who changed what (keys only).
    let audit = h
        .store
        .list_audit(
            &edas_store::AuditQuery::default(),
            edas_store::PageRequest::new(1, 100),
        )
        .await
        .unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|r| r.entry.action == "UpdateK8sConfigMap"
                && r.entry.resource == "configmap/local/default/web-config"
                && r.entry.actor.contains("admin"))
    );
}

#[tokio::test]
async fn secrets_are_stored_decoded_listed_and_guarded() {
    let h = harness().await;
    let created = call(
        &h,
        config_call("POST", SECRET, "CreateK8sSecret", "db-pass")
            .param("Data", r#"[{"Key":"password","Value":"czNjcjN0"}]"#)
            .param("Base64Encoded", "True")
            .param("Type", "Opaque")
            .form(),
    )
    .await;
    assert_success(&created);
    let stored = h
        .store
        .get_secret("local", "default", "db-pass")
        .await
        .unwrap();
    assert_eq!(stored.data.expose(), &json!({"password": "s3cr3t"}));
    for (name, value, code) in [
        ("Type", "kubernetes.io/tls", "InvalidParameter.NotSupported"),
        ("CertId", "123", "InvalidParameter.NotSupported"),
        ("Base64Encoded", "maybe", "InvalidParameter"),
    ] {
        let r = call(
            &h,
            config_call("POST", SECRET, "CreateK8sSecret", "other")
                .param(name, value)
                .form(),
        )
        .await;
        assert_error(&r, 400, code);
        assert!(r.1["Message"].as_str().unwrap().contains(name));
    }
    assert_success(
        &call(
            &h,
            config_call("PUT", SECRET, "UpdateK8sSecret", "db-pass")
                .param("Data.password", "n3w")
                .form()
                .scheme(Scheme::V3),
        )
        .await,
    );
    let listed = call(&h, Call::new("GET", SECRET, "ListK8sSecrets")).await;
    assert_success(&listed);
    let s = &listed.1["Result"]["Secrets"][0];
    assert_eq!(s["Name"], "db-pass");
    assert_eq!(s["Type"], "Opaque");
    assert_eq!(s["Base64Encoded"], false);
    assert_eq!(s["Data"], json!([{"Key": "password", "Value": "n3w"}]));
    assert_eq!(listed.1["Result"]["Total"], 1);

    // Secret values never reach the audit trail.
    let audit = h
        .store
        .list_audit(
            &edas_store::AuditQuery::default(),
            edas_store::PageRequest::new(1, 100),
        )
        .await
        .unwrap();
    assert!(!format!("{:?}", audit.items).contains("n3w"));

    // Used through EnvFroms: refused, naming the application.
    assert_success(
        &call(
            &h,
            insert("uses-secret").param("EnvFroms", r#"[{"secretRef":{"name":"db-pass"}}]"#),
        )
        .await,
    );
    let refused = call(
        &h,
        config_call("DELETE", SECRET, "DeleteK8sSecret", "db-pass"),
    )
    .await;
    assert_error(&refused, 409, "OperationDenied.ResourceInUse");
    assert!(
        refused.1["Message"]
            .as_str()
            .unwrap()
            .contains("uses-secret")
    );

    // Authorization: reading needs edas:ReadConfiguration, changing edas:ManageConfiguration.
    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": "edas:ReadConfiguration",
            "Resource": "acs:edas:*:*:cluster/local/namespace/default/secret/db-*"}]}),
    )
    .await;
    let bob_list = call(&h, Call::new("GET", SECRET, "ListK8sSecrets").key(BOB)).await;
    assert_eq!(bob_list.1["Result"]["Total"], 1);
    let bob_cm = call(&h, Call::new("GET", CM, "ListK8sConfigMaps").key(BOB)).await;
    assert_eq!(bob_cm.1["Result"]["Total"], 0);
    let bob_update = call(
        &h,
        config_call("PUT", SECRET, "UpdateK8sSecret", "db-pass")
            .param("Data.password", "x")
            .key(BOB)
            .form(),
    )
    .await;
    assert_error(&bob_update, 401, "AUTH_ERROR");
}

#[tokio::test]
async fn clusters_namespaces_and_build_packs() {
    let h = harness().await;
    let now = jiff::Timestamp::now();
    h.store
        .put_cluster(&Cluster {
            id: "prod-k8s".into(),
            name: "prod".into(),
            region_id: "cn-hangzhou".into(),
            cluster_type: "kubernetes".into(),
            config: json!({}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let k8s = call(
        &h,
        Call::new("POST", "/pop/v5/k8s_clusters", "GetK8sCluster")
            .param("RegionTag", "cn-hangzhou"),
    )
    .await;
    assert_success(&k8s);
    let page = &k8s.1["ClusterPage"];
    assert_eq!(page["TotalSize"], 2);
    let clusters = page["ClusterList"]["Cluster"].as_array().unwrap();
    let ids: Vec<&str> = clusters
        .iter()
        .map(|c| c["ClusterId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["local", "prod-k8s"]);
    assert_eq!(clusters[0]["ClusterType"], 5);
    assert_eq!(clusters[0]["NodeNum"], 1);
    let missing_region = call(
        &h,
        Call::new("POST", "/pop/v5/k8s_clusters", "GetK8sCluster"),
    )
    .await;
    assert_error(&missing_region, 400, "MissingParameter");
    let ask = call(
        &h,
        Call::new("POST", "/pop/v5/k8s_clusters", "GetK8sCluster")
            .param("RegionTag", "cn-hangzhou")
            .param("SubClusterType", "Ask"),
    )
    .await;
    assert_eq!(ask.1["ClusterPage"]["TotalSize"], 0);

    let list = call(
        &h,
        Call::new("POST", "/pop/v5/resource/cluster_list", "ListCluster"),
    )
    .await;
    assert_success(&list);
    assert_eq!(
        list.1["ClusterList"]["Cluster"].as_array().unwrap().len(),
        2
    );
    assert_eq!(list.1["ClusterList"]["Cluster"][1]["ClusterName"], "prod");
    let bad_ns = call(
        &h,
        Call::new("POST", "/pop/v5/resource/cluster_list", "ListCluster")
            .param("LogicalRegionId", "cn-hangzhou:nope"),
    )
    .await;
    assert_error(&bad_ns, 400, "InvalidParameter");

    create_app(&h, "ns-app").await;
    let ns = call(
        &h,
        Call::new("GET", "/pop/v5/k8s/acs/k8s_namespace", "ListK8sNamespaces")
            .param("ClusterId", "local"),
    )
    .await;
    assert_success(&ns);
    assert_eq!(ns.1["Data"], json!([{"Namespace": "default"}]));
    let unknown = call(
        &h,
        Call::new("GET", "/pop/v5/k8s/acs/k8s_namespace", "ListK8sNamespaces")
            .param("ClusterId", "nope"),
    )
    .await;
    assert_error(&unknown, 400, "InvalidParameter");

    let packs = call(
        &h,
        Call::new("POST", "/pop/v5/app/build_pack_list", "ListBuildPack"),
    )
    .await;
    assert_success(&packs);
    assert_eq!(packs.1["BuildPackList"]["BuildPack"], json!([]));

    // Bob sees only the clusters his policy names.
    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": "edas:ReadCluster", "Resource": "acs:edas:*:*:cluster/prod-*"}]}),
    )
    .await;
    let bob = call(
        &h,
        Call::new("POST", "/pop/v5/resource/cluster_list", "ListCluster").key(BOB),
    )
    .await;
    assert_eq!(bob.1["ClusterList"]["Cluster"].as_array().unwrap().len(), 1);
    let bob_ns = call(
        &h,
        Call::new("GET", "/pop/v5/k8s/acs/k8s_namespace", "ListK8sNamespaces")
            .param("ClusterId", "local")
            .key(BOB),
    )
    .await;
    assert_error(&bob_ns, 401, "AUTH_ERROR");
}

fn audit_call() -> Call<'static> {
    let mut c = Call::new("GET", "/edasd/v1/audit", "");
    c.action = None;
    c.params.clear();
    c
}

#[tokio::test]
async fn audit_trail_is_read_by_application_and_time() {
    let h = harness().await;
    let before = jiff::Timestamp::now();
    let (app_id, change_order) = create_app(&h, "audited").await;
    let (other_id, _) = create_app(&h, "other").await;
    let r = call(&h, audit_call().param("AppId", &app_id)).await;
    assert_success(&r);
    let records = r.1["Records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert!(records.iter().all(|x| x["AppId"] == app_id.as_str()));
    let created = records
        .iter()
        .find(|x| x["Action"] == "InsertK8sApplication")
        .expect("the creation is audited");
    assert!(created["Actor"].as_str().unwrap().contains("admin"));
    assert!(created["RequestId"].is_string());
    assert!(created.to_string().contains(&change_order));
    assert_eq!(r.1["TotalCount"], records.len());

    // Admins read the whole trail; a time window in the future is empty; bounds are checked.
    let all = call(&h, audit_call()).await;
    assert!(
        all.1["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["AppId"] == other_id.as_str())
    );
    let future = call(&h, audit_call().param("From", "2999-01-01T00:00:00Z")).await;
    assert_eq!(future.1["TotalCount"], 0);
    let window = call(
        &h,
        audit_call()
            .param("AppId", &app_id)
            .param("From", &before.as_millisecond().to_string())
            .param(
                "To",
                &jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(1))
                    .unwrap()
                    .to_string(),
            ),
    )
    .await;
    assert_eq!(window.1["TotalCount"], r.1["TotalCount"]);
    let bad = call(&h, audit_call().param("From", "yesterday")).await;
    assert_error(&bad, 400, "InvalidParameter");
    assert!(bad.1["Message"].as_str().unwrap().contains("From"));
    assert_error(
        &call(&h, audit_call().param("Who", "x")).await,
        400,
        "InvalidParameter.Unknown",
    );
    assert_error(
        &call(&h, audit_call().param("AppId", "nope")).await,
        404,
        "InvalidAppId.NotFound",
    );

    // Other users: only an application they may read.
    assert_error(&call(&h, audit_call().key(BOB)).await, 401, "AUTH_ERROR");
    assert_error(
        &call(&h, audit_call().param("AppId", &app_id).key(BOB)).await,
        401,
        "AUTH_ERROR",
    );
    attach_policy(
        &h,
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": "edas:ReadApplication",
            "Resource": format!("acs:edas:*:*:namespace/*/application/{app_id}")}]}),
    )
    .await;
    assert_success(&call(&h, audit_call().param("AppId", &app_id).key(BOB)).await);
    assert_error(
        &call(&h, audit_call().param("AppId", &other_id).key(BOB)).await,
        401,
        "AUTH_ERROR",
    );
    let mut post = audit_call();
    post.method = "POST";
    assert_error(&call(&h, post).await, 404, "InvalidApi.NotFound");
}

#[tokio::test]
async fn a_panicking_handler_is_answered_in_the_envelope_with_its_request_id() {
    use tower::ServiceExt as _;
    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                "unreachable"
            }),
        )
        .layer(axum::middleware::from_fn(
            crate::server::request_id_and_panic_guard,
        ));
    let response = app
        .oneshot(
            axum::http::Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let header = response.headers().get("x-acs-request-id").cloned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["Code"], "InternalError", "{body}");
    let id = body["RequestId"].as_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(header.expect("x-acs-request-id").to_str().unwrap(), id);
}

#[tokio::test]
async fn every_answer_carries_the_request_id_its_log_lines_carry() {
    let h = harness().await;
    let result = call(&h, insert("ids")).await;
    assert_success(&result);
    let id = result.1["RequestId"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
}

/// An admin API call as edasctl sends it: no action header, no query, a JSON body when given.
fn admin_call<'a>(method: &'a str, path: &'a str, body: Value) -> Call<'a> {
    let mut c = Call::new(method, path, "");
    c.action = None;
    c.params.clear();
    if !body.is_null() {
        c.body = serde_json::to_vec(&body).unwrap();
        c.extra_headers.push(("content-type", "application/json"));
    }
    c
}

/// Pins how the admin API routes, in the order the checks run: signature, then the
/// administrator check (the audit trail excepted), then the query rule and the body, then the
/// route; unknown paths and methods answer `InvalidApi.NotFound` in the envelope.
#[tokio::test]
async fn admin_routing_answers_unknown_routes_refusals_and_names_as_pinned() {
    let h = harness().await;
    let not_found = |r: &(StatusCode, Value)| assert_error(r, 404, "InvalidApi.NotFound");
    // Unknown paths and methods, including the audit trail's.
    for (method, path) in [
        ("GET", "/edasd/v1/nothing"),
        ("GET", "/edasd/v1/users/"),
        ("GET", "/edasd/v1/users/carol"),
        ("GET", "/edasd/v1/users/carol/keys/x"),
        ("DELETE", "/edasd/v1/users"),
        ("PATCH", "/edasd/v1/users"),
        ("POST", "/edasd/v1/keys/testid"),
        ("GET", "/edasd/v1/keys"),
        ("POST", "/edasd/v1/audit"),
        ("DELETE", "/edasd/v1/audit"),
        ("GET", "/edasd/v1/audit/x"),
        ("OPTIONS", "/edasd/v1/policies"),
        ("HEAD", "/edasd/v1/users"),
        ("HEAD", "/edasd/v1/policies"),
        ("HEAD", "/edasd/v1/audit"),
    ] {
        let r = call(&h, admin_call(method, path, Value::Null)).await;
        assert_eq!(r.0.as_u16(), 404, "{method} {path}: {}", r.1);
        if method != "HEAD" || r.1.is_object() {
            not_found(&r);
        }
    }
    // A body is only checked once the route exists.
    not_found(
        &call(
            &h,
            admin_call("POST", "/edasd/v1/nothing", json!({"Name": "x"})),
        )
        .await,
    );
    // The query rule runs before the route: only RegionId is allowed, anywhere but the audit.
    assert_error(
        &call(
            &h,
            admin_call("GET", "/edasd/v1/nothing", Value::Null).param("Name", "x"),
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &call(
            &h,
            admin_call("GET", "/edasd/v1/policies", Value::Null).param("PageSize", "1"),
        )
        .await,
        400,
        "InvalidParameter",
    );
    let listed = call(
        &h,
        admin_call("GET", "/edasd/v1/users", Value::Null).param("RegionId", "cn-hangzhou"),
    )
    .await;
    assert_success(&listed);
    assert!(listed.1["RequestId"].is_string());
    assert!(listed.1["Users"].is_array());
    // A body on a route that takes none.
    for (method, path) in [
        ("GET", "/edasd/v1/users"),
        ("GET", "/edasd/v1/policies"),
        ("GET", "/edasd/v1/users/admin/keys"),
        ("GET", "/edasd/v1/users/admin/policies"),
        ("DELETE", "/edasd/v1/users/bob"),
        ("DELETE", "/edasd/v1/keys/bobid"),
        ("DELETE", "/edasd/v1/policies/none"),
        ("PUT", "/edasd/v1/users/bob/policies/none"),
        ("DELETE", "/edasd/v1/users/bob/policies/none"),
        ("GET", "/edasd/v1/audit"),
    ] {
        let r = call(&h, admin_call(method, path, json!({}))).await;
        assert_error(&r, 400, "InvalidParameter");
        assert!(
            r.1["Message"].as_str().unwrap().contains("no body"),
            "{method} {path}: {}",
            r.1
        );
    }
    // Non-administrators are refused before the route, the query and the body are looked at;
    // the audit trail is open to them.
    for (method, path, body) in [
        ("GET", "/edasd/v1/users", Value::Null),
        ("GET", "/edasd/v1/nothing", Value::Null),
        ("PATCH", "/edasd/v1/users", Value::Null),
        ("HEAD", "/edasd/v1/users", Value::Null),
        ("GET", "/edasd/v1/users", json!({})),
        (
            "POST",
            "/edasd/v1/users",
            json!({"Name": "eve", "Admin": true}),
        ),
    ] {
        let r = call(
            &h,
            admin_call(method, path, body).key(BOB).param("Name", "x"),
        )
        .await;
        assert_eq!(r.0.as_u16(), 401, "{method} {path}: {}", r.1);
        if r.1.is_object() {
            assert_error(&r, 401, "AUTH_ERROR");
        }
    }
    // (the audit handler answers bob itself, per application)
    let audit = call(
        &h,
        admin_call("GET", "/edasd/v1/audit", Value::Null).key(BOB),
    )
    .await;
    assert_error(&audit, 401, "AUTH_ERROR");
    assert!(
        audit.1["Message"]
            .as_str()
            .unwrap()
            .contains("whole audit trail"),
        "{}",
        audit.1
    );
    assert_success(&call(&h, admin_call("GET", "/edasd/v1/audit", Value::Null)).await);
    // An unsigned request is refused before anything else, on known and unknown routes.
    for path in ["/edasd/v1/users", "/edasd/v1/nothing"] {
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let r = send(&h, request).await;
        assert!(r.0.is_client_error(), "{path}: {}", r.1);
        assert!(r.1["RequestId"].is_string(), "{path}: {}", r.1);
        assert_ne!(r.1["Code"], "InvalidApi.NotFound", "{path}: {}", r.1);
    }
    // Names in paths: `@` and `.` as sent, and percent-encoded.
    assert_success(
        &call(
            &h,
            admin_call(
                "POST",
                "/edasd/v1/users",
                json!({"Name": "alice@example.com"}),
            ),
        )
        .await,
    );
    assert_success(
        &call(
            &h,
            admin_call(
                "PUT",
                "/edasd/v1/policies/read.only",
                json!({"Document": {"Statement": [{"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}}),
            ),
        )
        .await,
    );
    let policies = call(&h, admin_call("GET", "/edasd/v1/policies", Value::Null)).await;
    assert_eq!(policies.1["Policies"][0]["Name"], "read.only");
    assert_success(
        &call(
            &h,
            admin_call(
                "PUT",
                "/edasd/v1/users/alice@example.com/policies/read.only",
                Value::Null,
            ),
        )
        .await,
    );
    // Path segments reach the handler as sent: today percent-escapes are not decoded, so an
    // escaped name names another (invalid or absent) entity.
    let raw = |r: &(StatusCode, Value), status: u16, code: &str, name: &str| {
        assert_error(r, status, code);
        assert!(
            r.1["Message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{name}`")),
            "{}",
            r.1
        );
    };
    raw(
        &call(
            &h,
            admin_call(
                "GET",
                "/edasd/v1/users/alice%40example.com/policies",
                Value::Null,
            ),
        )
        .await,
        404,
        "EntityNotExist",
        "alice%40example.com",
    );
    raw(
        &call(
            &h,
            admin_call(
                "POST",
                "/edasd/v1/users/alice%40example.com/keys",
                Value::Null,
            ),
        )
        .await,
        404,
        "EntityNotExist",
        "alice%40example.com",
    );
    raw(
        &call(
            &h,
            admin_call(
                "PUT",
                "/edasd/v1/policies/read%2Eonly",
                json!({"Document": {"Statement": [{"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}}),
            ),
        )
        .await,
        400,
        "InvalidParameter",
        "read%2Eonly",
    );
    raw(
        &call(
            &h,
            admin_call("DELETE", "/edasd/v1/users/a%2Fb", Value::Null),
        )
        .await,
        404,
        "EntityNotExist",
        "a%2Fb",
    );
    let listed = call(
        &h,
        admin_call(
            "GET",
            "/edasd/v1/users/alice@example.com/policies",
            Value::Null,
        ),
    )
    .await;
    assert_eq!(listed.1["Policies"][0]["Name"], "read.only", "{}", listed.1);
    assert_success(
        &call(
            &h,
            admin_call("DELETE", "/edasd/v1/users/alice@example.com", Value::Null),
        )
        .await,
    );
}
