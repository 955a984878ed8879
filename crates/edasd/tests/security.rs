//! Issue 17's API-side attacks, against the real edasd binary: a nonce flood from one key, idle
//! and half-sent connections, admin changes left unaudited, and racing deploys.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::*;

#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// A signed ListApplication dated `ahead` into the future; (HTTP status, body).
async fn list_dated(api: &Endpoint, key: (&str, &str), ahead: Duration) -> (u16, Value) {
    let path = "/pop/v5/app/app_list";
    let request = edas_pop::Request::new("POST", path)
        .with_header("x-acs-action", "ListApplication")
        .with_header("x-acs-version", "2017-08-01");
    let headers = edas_pop::sign_v1(
        &request,
        key.0,
        key.1,
        SystemTime::now() + ahead,
        Some(&nonce()),
    )
    .unwrap();
    let mut builder = api.client.post(format!("{}{path}", api.base));
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.expect("edasd answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_flood_from_one_key_leaves_another_keys_calls_working() {
    // A small share per key, so the flood fills it quickly.
    let cluster = Cluster::start(
        "nonce-flood",
        "[server]\nnonce_capacity_per_key = 200\n",
        false,
    );
    // A key whose policy allows nothing that exists.
    let flood = user_with_policy(
        &cluster,
        "flooder",
        json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:ReadCluster", "Resource": "acs:edas:*:*:cluster/none"}]}),
    )
    .await;
    let victim = user_with_policy(
        &cluster,
        "victim",
        json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}),
    )
    .await;
    // That key sends cheap signed calls dated 4 minutes ahead, ten times its share: each lists
    // nothing, but its nonce had to be remembered.
    for _ in 0..2_000 {
        list_dated(&cluster, flood, Duration::from_secs(240)).await;
    }
    // The other key's nonce-signed calls keep working, also dated a little in the past.
    for _ in 0..50 {
        let (status, body) = list_dated(&cluster, victim, Duration::ZERO).await;
        assert_eq!(status, 200, "the victim's call was refused: {body}");
    }
    // The window for dates ahead of the server clock is 5 minutes.
    let (status, body) = list_dated(&cluster, victim, Duration::from_secs(400)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["Code"], "IllegalTimestamp", "{body}");
}

/// A raw connection to edasd's port.
fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://")).unwrap()
}

/// How long until the server closes `stream` (reads EOF or an error), at most `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_neither_block_health_nor_stay_open() {
    let cluster = Cluster::start(
        "connections",
        "[server]\nmax_connections = 64\nheader_read_timeout_seconds = 4\n\
         body_read_timeout_seconds = 1\nidle_timeout_seconds = 6\n",
        false,
    );
    let base = cluster.base.clone();
    // Five times the cap of connections that never send a byte.
    let mut idle: Vec<TcpStream> = (0..320).map(|_| connect(&base)).collect();
    // /healthz and signed calls still get through, each on a new connection.
    for _ in 0..5 {
        let started = Instant::now();
        assert!(
            cluster.healthy().await,
            "/healthz did not answer under the flood"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let (status, body) = cluster
            .call_raw("POST", "/pop/v5/app/app_list", "ListApplication", &[])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // ... while edasd never holds more than its cap of connections.
    let metrics = cluster
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edasd_connections_open "))
        .expect("the edasd_connections_open gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(open <= 64.0, "{open} connections open, over the cap of 64");
    // A half-sent request line is closed after the head timeout, not left open.
    let mut half = connect(&base);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127")
        .unwrap();
    let closed = blocking(|| closed_within(&mut half, Duration::from_secs(10)));
    let closed = closed.expect("a half-sent request stayed open");
    assert!(closed < Duration::from_secs(6), "closed after {closed:?}");
    // A body that stops arriving is answered 408 after the body deadline.
    let mut slow = connect(&base);
    slow.write_all(
        b"POST /pop/v5/app/app_list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\r\nAppId=",
    )
    .unwrap();
    let answer = blocking(move || {
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        let _ = slow.read_to_string(&mut text);
        text
    });
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    // The idle flood itself was closed: by eviction or by the timeouts.
    let still_open = blocking(|| {
        idle.iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(8)))
            .filter(Option::is_none)
            .count()
    });
    assert_eq!(still_open, 0, "idle connections outlived their timeouts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_are_audited_with_actor_action_and_target() {
    let cluster = Cluster::start("admin-audit", "", false);
    user_with_policy(
        &cluster,
        "carol",
        json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "*"}]}),
    )
    .await;
    let (status, answer) = admin_call(&cluster, KEY, "DELETE", "users/carol", None).await;
    assert_eq!(status, 200, "{answer}");
    let (status, audit) = admin_call(&cluster, KEY, "GET", "audit", None).await;
    assert_eq!(status, 200, "{audit}");
    let records = audit.to_string();
    for (action, target) in [
        ("Admin.CreateUser", "user/carol"),
        ("Admin.CreateAccessKey", "access_key/LTAIcarol"),
        ("Admin.PutPolicy", "policy/carol-policy"),
        ("Admin.AttachPolicy", "user/carol"),
        ("Admin.DeleteUser", "user/carol"),
    ] {
        assert!(
            records.contains(action) && records.contains(target),
            "{action} on {target} missing from the audit trail: {audit}"
        );
    }
    assert!(records.contains(KEY.0), "the actor is missing: {audit}");
    // No secret is ever recorded.
    assert!(!records.contains("carol-secret"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deploys_get_only_200_or_409() {
    let cluster = Cluster::start("racing-deploys", "", false);
    let (app_id, created) = cluster.insert("racer", 1, &[], &[]).await;
    cluster.finished(&created, Duration::from_secs(60)).await;
    let deploys = (0..200).map(|i| {
        let api = &cluster.api;
        let app_id = app_id.clone();
        async move {
            let envs = envs(&[("RACE", &i.to_string())]);
            api.call_raw(
                "POST",
                "/pop/v5/k8s/acs/k8s_apps",
                "DeployK8sApplication",
                &[("AppId", &app_id), ("Envs", &envs)],
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(deploys).await;
    let mut accepted = 0;
    for (status, body) in &answers {
        match status {
            200 => accepted += 1,
            409 => {
                assert_eq!(
                    body["Code"], "OperationConflict.ChangeOrderRunning",
                    "{body}"
                );
                let message = body["Message"].as_str().unwrap_or_default();
                assert!(message.contains("change order"), "{body}");
            }
            other => panic!("a racing deploy was answered {other}: {body}"),
        }
    }
    assert!(accepted >= 1, "no deploy won");
}

/// One user's streams (`/edasd/v1/logs` with Follow, `/edasd/v1/events`) are capped: an idle
/// flood of them from one key is refused in the EDAS envelope past 32, another user's stream
/// still opens, and a closed stream gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_streams_are_capped_and_others_still_open() {
    let edasd = Cluster::start("stream-cap", "", false);
    let (app, co) = edasd.insert("streamed", 1, &[], &[]).await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let list = edasd.instance_list(&app).await;
    let instance = list[0]["InstanceName"].as_str().unwrap().to_owned();
    let follow = [
        ("AppId", app.as_str()),
        ("InstanceName", instance.as_str()),
        ("Follow", "true"),
    ];
    let mut open = Vec::new();
    for _ in 0..32 {
        let response = edasd.logs(&follow).await;
        assert_eq!(response.status().as_u16(), 200);
        open.push(response);
    }
    let refused = edasd.logs(&follow).await;
    assert_eq!(refused.status().as_u16(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["Code"], "Throttling.User", "{body}");
    // Another user is not held up by the first one's streams.
    let reader = user_with_policy(
        &edasd,
        "streamreader",
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": "edas:ReadApplication", "Resource": "*"}]}),
    )
    .await;
    let other = Endpoint {
        base: edasd.base.clone(),
        client: edasd.client.clone(),
        key: reader,
        poll: edasd.poll,
    };
    let theirs = other.logs(&follow).await;
    assert_eq!(theirs.status().as_u16(), 200);
    // Closing streams gives their places back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let again = edasd.logs(&follow).await;
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed streams kept their places"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
