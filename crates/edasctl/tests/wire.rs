//! Wire tests of the lifecycle commands (scale, restart, stop, start, delete, status) against a
//! tiny local HTTP server that checks what an EDAS server sees: method, path, query parameters,
//! `x-acs-action`, and a V1 signature that verifies with edas-pop's verifier. (The black-box
//! tests in `server.rs` run the other commands against the real edasd.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

const KEY_ID: &str = "LTAIwire";
const KEY_SECRET: &str = "wire-secret-0123456789";
/// An application id (a UUID: edasctl sends it as is; anything else is looked up as a name).
const APP: &str = "3616cdca-4f92-4413-a7c1-0123456789ab";

/// What the fake server saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    action: String,
    signature: Result<(), String>,
}

/// Serves one request with `answer` (status, body) and reports what it saw.
fn serve_once(status: u16, answer: Value) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap().to_owned();
        let target = parts.next().unwrap().to_owned();
        let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
        let mut request = edas_pop::Request::new(method.clone(), path)
            .with_raw_query(raw_query)
            .unwrap();
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
            request = request.with_header(name, value.trim());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request = request.with_body(body);
        let signature = edas_pop::parse(&request)
            .and_then(|parsed| {
                edas_pop::verify(
                    &parsed,
                    &request,
                    KEY_SECRET,
                    SystemTime::now(),
                    &mut edas_pop::NonceCache::new(16),
                )
            })
            .map_err(|e| e.to_string());
        let text = answer.to_string();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
        tx.send(Seen {
            method,
            path: path.to_owned(),
            query: request.query().to_vec(),
            action: request
                .header("x-acs-action")
                .unwrap_or_default()
                .to_owned(),
            signature,
        })
        .unwrap();
    });
    (base, rx)
}

fn edasctl(base: &str) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_edasctl"));
    let config = std::env::temp_dir().join("edasctl-wire-no-config");
    c.env_clear()
        .env("EDAS_ENDPOINT", base)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET)
        .env("EDASCTL_CONFIG_DIR", config)
        .timeout(Duration::from_secs(30));
    c
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Command-line arguments, then the action, method, path and query the server must see.
type Case = (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
    Vec<(String, String)>,
);

#[test]
fn lifecycle_commands_send_the_edas_operations() {
    let cases: [Case; 5] = [
        (
            &["app", "scale", APP, "--replicas", "4", "--timeout", "60"],
            "ScaleK8sApplication",
            "PUT",
            "/pop/v5/k8s/acs/k8s_apps",
            pairs(&[("AppId", APP), ("Timeout", "60"), ("Replicas", "4")]),
        ),
        (
            &["app", "restart", APP],
            "RestartK8sApplication",
            "POST",
            "/pop/v5/k8s/acs/restart_k8s_app",
            pairs(&[("AppId", APP)]),
        ),
        (
            &["app", "stop", APP],
            "StopK8sApplication",
            "POST",
            "/pop/v5/k8s/acs/stop_k8s_app",
            pairs(&[("AppId", APP)]),
        ),
        (
            &["app", "start", APP, "--replicas", "2"],
            "StartK8sApplication",
            "POST",
            "/pop/v5/k8s/acs/start_k8s_app",
            pairs(&[("AppId", APP), ("Replicas", "2")]),
        ),
        (
            &["app", "delete", APP, "--force"],
            "DeleteK8sApplication",
            "DELETE",
            "/pop/v5/k8s/acs/k8s_apps",
            pairs(&[("AppId", APP), ("Force", "true")]),
        ),
    ];
    for (args, action, method, path, query) in cases {
        let (base, seen) = serve_once(
            200,
            json!({"Code": 200, "Message": "success", "RequestId": "r1", "ChangeOrderId": "co-1"}),
        );
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = edasctl(&base).args(&all).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["ChangeOrderId"], "co-1");
        let seen = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(seen.action, action);
        assert_eq!((seen.method.as_str(), seen.path.as_str()), (method, path));
        assert_eq!(seen.query, query, "{args:?}");
        assert_eq!(seen.signature, Ok(()), "{args:?}");
    }
}

#[test]
fn status_reads_and_refusals_show_code_and_request_id() {
    let (base, seen) = serve_once(
        200,
        json!({"Code": 200, "RequestId": "r2", "InstanceList": [
            {"AppId": APP, "InstanceName": "web-1-abcde", "Revision": "3", "Version": "nginx:1",
             "Ready": true, "Restarts": 2, "LastExitReason": "OOMKilled", "Ip": "10.0.0.1"}]}),
    );
    let out = edasctl(&base)
        .args(["app", "status", APP])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for cell in ["web-1-abcde", "nginx:1", "OOMKilled", "10.0.0.1", "running"] {
        assert!(table.contains(cell), "{cell}: {table}");
    }
    let seen = seen.recv().unwrap();
    assert_eq!(seen.action, "DescribeAppInstanceList");
    assert_eq!(seen.signature, Ok(()));

    // A server without the operation answers with its own error, shown as it is.
    let (base, _seen) = serve_once(
        501,
        json!({"Code": "UnsupportedOperation", "Message": "StopK8sApplication is not implemented", "RequestId": "r3"}),
    );
    let out = edasctl(&base).args(["app", "stop", APP]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UnsupportedOperation"), "{err}");
    assert!(err.contains("not implemented"), "{err}");
    assert!(err.contains("RequestId r3"), "{err}");
}

#[test]
fn a_watch_retries_an_unreachable_server_then_gives_up() {
    // A port nothing listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = edasctl(&format!("http://127.0.0.1:{port}"))
        .args(["change-order", "watch", "co-1", "--interval", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("poll 5/5 failed, retrying"), "{err}");
    assert!(
        err.contains(&format!("cannot reach http://127.0.0.1:{port}")),
        "{err}"
    );
}

/// A name stands for the one application that has it; a name two applications share is refused,
/// listing their ids (and nothing else is sent).
#[test]
fn an_ambiguous_application_name_is_refused_with_the_ids() {
    let (base, seen) = serve_once(
        200,
        json!({"Code": 200, "RequestId": "r4", "ApplicationList": {"Application": [
            {"AppId": "id-1", "Name": "web", "NamespaceId": "cn-hangzhou"},
            {"AppId": "id-2", "Name": "web", "NamespaceId": "cn-hangzhou:test"},
            {"AppId": "id-3", "Name": "web-2", "NamespaceId": "cn-hangzhou"}]}}),
    );
    let out = edasctl(&base)
        .args(["app", "scale", "web", "--replicas", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`web` names 2 applications") && err.contains("id-1, id-2"),
        "{err}"
    );
    let seen = seen.recv().unwrap();
    assert_eq!(seen.action, "ListApplication");
    assert_eq!(seen.query, pairs(&[("AppName", "web")]));
}
