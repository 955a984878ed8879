//! Hostile input through HTTP against the real `edasd`: megabyte parameters, deeply nested JSON
//! inside JSON-string parameters, invalid UTF-8 and broken percent-encoding, path tricks in mount
//! paths, oversized bodies, unknown methods and paths. Each one is answered with a non-2xx EDAS
//! error envelope (`Code`, `Message`, `RequestId`) that names the offending parameter where
//! there is one, nothing is stored, and edasd stays healthy and keeps serving.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::Cluster;

/// Not a test: the test application's entry point (unused here; every test file has one).
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

const CREATE: &str = "/pop/v5/k8s/acs/create_k8s_app";
const DEPLOY: &str = "/pop/v5/k8s/acs/k8s_apps";

/// Asserts an EDAS error envelope: non-2xx, string `Code`, non-empty `Message` and `RequestId`;
/// when `names` is given, the code or the message mentions it.
fn envelope(case: &str, status: u16, body: &Value, names: Option<&str>) {
    assert!(
        status >= 400,
        "{case}: answered {status}, not an error: {body}"
    );
    let code = body["Code"].as_str().unwrap_or_default();
    let message = body["Message"].as_str().unwrap_or_default();
    let request_id = body["RequestId"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && !message.is_empty() && !request_id.is_empty(),
        "{case}: {status} without an EDAS error envelope: {}",
        shorten(&body.to_string())
    );
    if let Some(name) = names {
        assert!(
            code.contains(name) || message.contains(name),
            "{case}: the error does not name `{name}`: {code}: {}",
            shorten(message)
        );
    }
    assert!(
        message.len() < 16 * 1024,
        "{case}: the message echoes the hostile input back ({} bytes)",
        message.len()
    );
}

fn shorten(s: &str) -> String {
    if s.len() > 400 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(400)], s.len())
    } else {
        s.to_owned()
    }
}

/// One raw HTTP/1.1 exchange on a fresh connection: (status, body as JSON or as a JSON string).
fn raw(base: &str, request: &[u8]) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Ask the server to close after its answer, so reading to the end returns at once.
    let line_end = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a request line")
        + 2;
    let mut bytes = request[..line_end].to_vec();
    bytes.extend_from_slice(b"connection: close\r\n");
    bytes.extend_from_slice(&request[line_end..]);
    // The server may answer and close before it has read everything (an oversized body).
    let _ = stream.write_all(&bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {}", shorten(&text)));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // A chunked body: take what lies between the first chunk-size line and the terminator.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map(|(_, rest)| rest.rsplit_once("\r\n0\r\n").map_or(rest, |(b, _)| b))
            .unwrap_or(body)
    } else {
        body
    };
    let value = serde_json::from_str(body.trim()).unwrap_or(Value::String(body.to_owned()));
    (status, value)
}

/// The parameters of an InsertK8sApplication with `name: value` added.
fn insert_with<'a>(name: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("AppName", "hostile"),
        ("ClusterId", "local"),
        ("ImageUrl", "edas-testapp:v1"),
        ("Command", "/bin/true"),
        ("Replicas", "0"),
    ];
    p.retain(|(k, _)| *k != name);
    p.push((name, value));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors_and_edasd_stays_healthy() {
    let cluster = Cluster::start("hostile", "", false);
    // A valid application to deploy to, with no instances.
    let (status, body) = cluster
        .send(
            "POST",
            CREATE,
            "InsertK8sApplication",
            &insert_with("AppName", "target"),
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let app = body["ApplicationInfo"]["AppId"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1. Megabyte-size parameters. In a form body beyond the 1 MiB limit: RequestTooLarge.
    let huge = "A".repeat(2 * 1024 * 1024);
    let (status, body) = cluster
        .send(
            "POST",
            CREATE,
            "InsertK8sApplication",
            &insert_with("AppName", &huge),
            true,
        )
        .await;
    envelope("2 MiB parameter in a form body", status, &body, None);
    assert_eq!(status, 413, "{}", shorten(&body.to_string()));
    // Just under the limit, in the body of a form operation: the parameter is refused by name.
    let big = "a".repeat(900 * 1024);
    let (status, body) = cluster
        .send(
            "POST",
            "/pop/v5/k8s/acs/k8s_config_map",
            "CreateK8sConfigMap",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", &big),
                ("Data", "{}"),
            ],
            true,
        )
        .await;
    envelope("900 KiB Name in a form body", status, &body, Some("Name"));
    // In the query string, as large as the HTTP layer's request line allows (64 KiB).
    let long = "x".repeat(60 * 1024);
    for name in [
        "AppName",
        "Envs",
        "Liveness",
        "CommandArgs",
        "Labels",
        "ImageUrl",
    ] {
        let (status, body) = cluster
            .send(
                "POST",
                CREATE,
                "InsertK8sApplication",
                &insert_with(name, &long),
                false,
            )
            .await;
        envelope(&format!("60 KiB {name}"), status, &body, Some(name));
    }
    // Beyond the request line's limit: the HTTP layer refuses it (414), edasd lives on.
    let base = cluster.base.clone();
    let (status, _) = tokio::task::spawn_blocking(move || {
        let request = format!(
            "POST {CREATE}?AppName={} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
            "y".repeat(200 * 1024)
        );
        raw(&base, request.as_bytes())
    })
    .await
    .unwrap();
    assert!(status >= 400, "a 200 KiB request line answered {status}");

    // 2. Deeply nested JSON inside JSON-string parameters (query and form body).
    for depth in [200, 3000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        for (name, value) in [
            ("Envs", &arrays),
            ("Envs", &objects),
            ("Liveness", &objects),
            ("ConfigMountDescs", &arrays),
            ("UpdateStrategy", &objects),
            ("Labels", &objects),
            ("EnvFroms", &arrays),
            ("Tolerations", &arrays),
        ] {
            let (status, body) = cluster
                .send(
                    "POST",
                    CREATE,
                    "InsertK8sApplication",
                    &insert_with(name, value),
                    false,
                )
                .await;
            envelope(
                &format!("{name} nested {depth} deep"),
                status,
                &body,
                Some(name),
            );
        }
        let (status, body) = cluster
            .send(
                "POST",
                DEPLOY,
                "DeployK8sApplication",
                &[("AppId", &app), ("Envs", &arrays)],
                false,
            )
            .await;
        envelope(
            &format!("Deploy Envs nested {depth} deep"),
            status,
            &body,
            Some("Envs"),
        );
    }
    // 100,000 deep in the form body of a form operation.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = cluster
        .send(
            "POST",
            "/pop/v5/k8s/acs/k8s_config_map",
            "CreateK8sConfigMap",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "deep"),
                ("Data", &deep),
            ],
            true,
        )
        .await;
    envelope(
        "ConfigMap Data nested 100000 deep",
        status,
        &body,
        Some("Data"),
    );

    // 3. Invalid UTF-8 and broken percent-encoding, named by parameter.
    for (case, query) in [
        ("invalid UTF-8", "AppName=%FF%FE&ClusterId=local"),
        ("overlong UTF-8", "AppName=%C0%AF&ClusterId=local"),
        ("lone surrogate", "AppName=%ED%A0%80&ClusterId=local"),
    ] {
        let (status, body) = cluster
            .send_encoded("POST", CREATE, "InsertK8sApplication", query, false)
            .await;
        envelope(case, status, &body, Some("AppName"));
        let form = query.replace("AppName", "Name");
        let (status, body) = cluster
            .send_encoded(
                "POST",
                "/pop/v5/k8s/acs/k8s_config_map",
                "CreateK8sConfigMap",
                &form,
                true,
            )
            .await;
        envelope(
            &format!("{case} in a form body"),
            status,
            &body,
            Some("Name"),
        );
    }
    for (case, query) in [
        ("bad escape", "AppName=%G1&ClusterId=local"),
        ("truncated escape", "ClusterId=local&AppName=%4"),
        ("lone percent", "ClusterId=local&AppName=%"),
    ] {
        let (status, body) = cluster
            .send_encoded("POST", CREATE, "InsertK8sApplication", query, false)
            .await;
        // A stray `%` decodes literally (as the SDKs' servers do) or is refused; either way the
        // value is no valid application name.
        envelope(case, status, &body, Some("AppName"));
    }
    // Raw bytes that are not UTF-8 at all in the request target and in a header.
    let base = cluster.base.clone();
    let mut request =
        b"POST /pop/v5/k8s/acs/create_k8s_app?AppName=\xff\xfe HTTP/1.1\r\nhost: x\r\n\
                        x-acs-action: InsertK8sApplication\r\ncontent-length: 0\r\n\r\n"
            .to_vec();
    let (status, body) = tokio::task::spawn_blocking(move || raw(&base, &request))
        .await
        .unwrap();
    assert!(
        status >= 400,
        "raw non-UTF-8 request target answered {status}: {body}"
    );
    let base = cluster.base.clone();
    request = b"POST /pop/v5/k8s/acs/create_k8s_app?AppName=a HTTP/1.1\r\nhost: x\r\n\
                x-acs-action: InsertK8sApplication\r\nx-acs-version: 2017-08-01\r\n\
                authorization: acs \xff\xfe:\xc0\xaf\r\ncontent-length: 0\r\n\r\n"
        .to_vec();
    let (status, body) = tokio::task::spawn_blocking(move || raw(&base, &request))
        .await
        .unwrap();
    envelope("non-UTF-8 Authorization header", status, &body, None);

    // 4. Path tricks in mount paths and host paths.
    for (name, value) in [
        ("EmptyDirs", r#"[{"mountPath":"../../etc"}]"#),
        ("EmptyDirs", r#"[{"mountPath":"/data/../../etc/passwd"}]"#),
        ("EmptyDirs", r#"[{"mountPath":"/"}]"#),
        ("EmptyDirs", r#"[{"mountPath":"relative/dir"}]"#),
        (
            "EmptyDirs",
            r#"[{"mountPath":"/data","subPathExpr":"../../escape"}]"#,
        ),
        (
            "EmptyDirs",
            r#"[{"mountPath":"/data","subPathExpr":"/abs"}]"#,
        ),
        ("EmptyDirs", "[{\"mountPath\":\"/data/\\u0000/x\"}]"),
        (
            "ConfigMountDescs",
            r#"[{"name":"c","type":"ConfigMap","mountPath":"/app/../../../root"}]"#,
        ),
        (
            "ConfigMountDescs",
            r#"[{"name":"../../c","type":"ConfigMap","mountPath":"/app/conf"}]"#,
        ),
        (
            "LocalVolume",
            r#"[{"type":"Directory","nodePath":"../../etc","mountPath":"/data"}]"#,
        ),
        (
            "LocalVolume",
            r#"[{"type":"Directory","nodePath":"/var/../../etc","mountPath":"/data"}]"#,
        ),
        ("MountDescs", r#"[{"nasPath":"/../..","mountPath":"/mnt"}]"#),
        (
            "PvcMountDescs",
            r#"[{"pvcName":"../pvc","mountPaths":[{"mountPath":"/data"}]}]"#,
        ),
        (
            "PvcMountDescs",
            r#"[{"pvcName":"pvc","mountPaths":[{"mountPath":"/data/../../x"}]}]"#,
        ),
        ("WebContainer", "../../etc"),
        (
            "LocalVolume",
            r#"[{"type":"Directory","nodePath":"/etc","mountPath":"../x"}]"#,
        ),
    ] {
        let (status, body) = cluster
            .send(
                "POST",
                CREATE,
                "InsertK8sApplication",
                &insert_with(name, value),
                false,
            )
            .await;
        envelope(&format!("{name} = {value}"), status, &body, Some(name));
        let (status, body) = cluster
            .send(
                "POST",
                DEPLOY,
                "DeployK8sApplication",
                &[("AppId", &app), (name, value)],
                false,
            )
            .await;
        envelope(
            &format!("Deploy {name} = {value}"),
            status,
            &body,
            Some(name),
        );
    }
    // Path tricks in the ids that name directories.
    for app_id in ["../../etc", "/etc/passwd", "..", "a/../../b"] {
        let (status, body) = cluster
            .send(
                "POST",
                DEPLOY,
                "DeployK8sApplication",
                &[("AppId", app_id), ("Image", "edas-testapp:v2")],
                false,
            )
            .await;
        envelope(&format!("AppId {app_id}"), status, &body, None);
    }

    // 5. Oversized bodies, including one announced but never sent.
    let base = cluster.base.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        raw(
            &base,
            b"POST /pop/v5/k8s/acs/k8s_config_map HTTP/1.1\r\nhost: x\r\n\
              x-acs-action: CreateK8sConfigMap\r\ncontent-type: application/x-www-form-urlencoded\r\n\
              content-length: 10737418240\r\n\r\n",
        )
    })
    .await
    .unwrap();
    envelope("a 10 GiB Content-Length", status, &body, None);
    // A body that is really sent and larger than the limit, with no length announced (chunked):
    // one byte more than 1 MiB, then nothing (no final chunk), so the server has read all of it
    // when it answers and closes (a client still writing would only see a broken pipe).
    let base = cluster.base.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let over = 1024 * 1024 + 1;
        let mut request = format!(
            "POST {DEPLOY} HTTP/1.1\r\nhost: x\r\nx-acs-action: DeployK8sApplication\r\n\
             content-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n\
             {over:x}\r\n"
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'z', over));
        raw(&base, &request)
    })
    .await
    .unwrap();
    envelope("a chunked body over 1 MiB", status, &body, None);

    // 6. Unknown methods and paths, unsigned and garbage-signed requests.
    for method in ["BREW", "PATCH", "TRACE", "OPTIONS", "DELETE"] {
        let (status, body) = cluster
            .send(
                method,
                DEPLOY,
                "DeployK8sApplication",
                &[("AppId", &app)],
                false,
            )
            .await;
        envelope(&format!("method {method}"), status, &body, None);
    }
    for path in [
        "/pop/v5/nowhere",
        "/pop/v5/k8s/acs/../../../etc/passwd",
        "/%2e%2e/%2e%2e",
    ] {
        let base = cluster.base.clone();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
        let (status, body) = tokio::task::spawn_blocking(move || raw(&base, request.as_bytes()))
            .await
            .unwrap();
        envelope(&format!("path {path}"), status, &body, None);
    }
    for authorization in [
        "",
        "acs",
        "acs :",
        "acs LTAIresilience:",
        "ACS3-HMAC-SHA256 ,,,,",
    ] {
        let response = cluster
            .client
            .post(format!("{}{DEPLOY}?AppId={app}", cluster.base))
            .header("x-acs-action", "DeployK8sApplication")
            .header("x-acs-version", "2017-08-01")
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        envelope(
            &format!("authorization `{authorization}`"),
            status,
            &body,
            None,
        );
    }

    // 7. Many parameters, a parameter given twice, control characters.
    let many: Vec<(String, String)> = (0..5000).map(|i| (format!("P{i}"), "v".into())).collect();
    let mut params: Vec<(&str, &str)> = insert_with("Replicas", "0");
    params.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (status, body) = cluster
        .send("POST", CREATE, "InsertK8sApplication", &params, false)
        .await;
    envelope("5000 unknown parameters", status, &body, Some("P0"));
    let (status, body) = cluster
        .send_encoded(
            "POST",
            DEPLOY,
            "DeployK8sApplication",
            &format!("AppId={app}&Replicas=1&Replicas=2"),
            false,
        )
        .await;
    envelope("Replicas twice", status, &body, Some("Replicas"));
    for value in [
        "\u{0}",
        "a\u{0}b",
        "\u{202e}evil",
        "-1",
        "99999999999999999999",
        "1e3",
    ] {
        let (status, body) = cluster
            .send(
                "POST",
                CREATE,
                "InsertK8sApplication",
                &insert_with("Replicas", value),
                false,
            )
            .await;
        envelope(
            &format!("Replicas {value:?}"),
            status,
            &body,
            Some("Replicas"),
        );
    }

    // Nothing of all that was stored, and edasd still serves.
    assert!(
        cluster.healthy().await,
        "edasd is unhealthy after the hostile requests"
    );
    let body = cluster
        .call("POST", "/pop/v5/app/app_list", "ListApplication", &[])
        .await;
    let apps = body["ApplicationList"]["Application"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(apps.len(), 1, "only the valid application exists: {body}");
    let order = cluster.deploy(&app, "v2", &[], &[]).await;
    let info = cluster.finished(&order, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
}
