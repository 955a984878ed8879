//! Black-box: the real edasd serves the web console at `/console/` to anyone (it holds no data),
//! with its content types and Content-Security-Policy, while every API call the console makes
//! still needs a signature.

mod support;

use std::time::Duration;

use support::{Cluster, edasd_command, now_ms, signed, spawn_edasd};

const KEY: (&str, &str) = ("LTAIconsoletest0001", "console-test-secret-0123456789");

#[test]
fn testapp_entry() {
    support::testapp_entry();
}

#[tokio::test]
async fn console_loads_without_a_key_but_every_api_call_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = edasd_command(&dir.path().join("data"));
    command
        .env("EDASD_ACCESS_KEY_ID", KEY.0)
        .env("EDASD_ACCESS_KEY_SECRET", KEY.1);
    let (mut child, base, _lines) = spawn_edasd(&mut command, Some("edasd".to_owned()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The console: no Authorization header at all.
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/js/main.js", "text/javascript; charset=utf-8"),
        ("/console/js/sign.js", "text/javascript; charset=utf-8"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(
            headers["content-security-policy"],
            edas_console::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let redirect = client.get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/console/");

    // What the console calls, unsigned: refused, in the EDAS error envelope.
    for (method, path) in [
        ("POST", "/pop/v5/app/app_list"),
        (
            "POST",
            "/pop/v5/changeorder/change_order_info?ChangeOrderId=x",
        ),
        (
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm?PipelineId=x",
        ),
        ("GET", "/edasd/v1/audit"),
        ("GET", "/edasd/v1/users"),
        ("GET", "/edasd/v1/events?AppId=x"),
        ("GET", "/edasd/v1/logs?AppId=x&InstanceName=y"),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{method} {path}: {status}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["Code"].as_str().is_some_and(|c| !c.is_empty()) && body["RequestId"].is_string(),
            "{method} {path}: {body}"
        );
    }

    // Signed, the same call answers: the console is just another client.
    let (status, body) = signed(
        &client,
        &base,
        "POST",
        "/pop/v5/app/app_list",
        "ListApplication",
        &[],
        KEY,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    child.kill().unwrap();
    child.wait().unwrap();
}

/// The console's countdown: while an automatic release waits between batches, its
/// GetChangeOrderInfo says when the next batch starts (edasd's `NextBatchTime`), and only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_release_says_when_its_next_batch_starts() {
    let edasd = Cluster::start("console-countdown", "", false);
    let (app, created) = edasd
        .insert("countdown", 2, &[], &[("APP_VERSION", "v1")])
        .await;
    let info = edasd.finished(&created, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 2);
    assert!(info.get("NextBatchTime").is_none(), "{info:#}");

    let before = now_ms();
    let strategy = r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":1}}"#;
    let order = edasd
        .deploy_app(&[
            ("AppId", &app),
            ("Envs", r#"[{"name":"APP_VERSION","value":"v2"}]"#),
            ("UpdateStrategy", strategy),
        ])
        .await;
    let info = edasd
        .wait_status(&order, &[9], Duration::from_secs(30))
        .await;
    let at: u64 = info["NextBatchTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no NextBatchTime while waiting: {info:#}"));
    assert!(
        at >= before + 60_000 && at <= now_ms() + 60_000,
        "the next batch at {at}, not a minute after the first batch ({before}..{})",
        now_ms()
    );

    let abort = [("ChangeOrderId", order.as_str())];
    let path = "/pop/v5/changeorder/change_order_abort";
    let (status, body) = edasd
        .send("PUT", path, "AbortChangeOrder", &abort, false)
        .await;
    assert_eq!(status, 200, "{body}");
    let info = edasd.finished(&order, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 6);
    assert!(info.get("NextBatchTime").is_none(), "{info:#}");
}
