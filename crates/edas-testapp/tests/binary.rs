//! The built `edas-testapp` binary: it serves, and it stops gracefully on SIGTERM.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn serves_its_version_and_exits_gracefully_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edas-testapp"))
        .env("PORT", port.to_string())
        .env("APP_VERSION", "v9")
        .env("HOSTNAME", "demo-1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(a) = get(port, "/") {
            break a;
        }
        assert!(Instant::now() < deadline, "never answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("version=v9 instance=demo-1\n"), "{answer}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(exit.success(), "{exit}");
    assert!(out.contains("terminating"), "{out}");
}

#[test]
fn refuses_to_start_without_a_port() {
    let out = Command::new(env!("CARGO_BIN_EXE_edas-testapp"))
        .env_remove("PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT is not set"));
}

#[test]
fn error_percent_and_extra_latency_play_a_bad_version() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edas-testapp"))
        .env("PORT", port.to_string())
        .env("APP_VERSION", "v2")
        .env("ERROR_PERCENT", "20")
        .env("EXTRA_LATENCY_MS", "50")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port, "/ready").is_none() {
        assert!(Instant::now() < deadline, "never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The probes stay healthy: the version is judged on its traffic.
    assert!(get(port, "/ready").unwrap().starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    let codes: Vec<bool> = (0..10)
        .map(|_| get(port, "/").unwrap().starts_with("HTTP/1.1 500"))
        .collect();
    let took = start.elapsed();
    assert_eq!(
        codes,
        [
            false, false, false, false, true, false, false, false, false, true
        ]
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    let metrics = get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("edas_testapp_requests_total{version=\"v2\",code=\"200\"} 8\n")
            && metrics.contains("edas_testapp_requests_total{version=\"v2\",code=\"500\"} 2\n"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let bad = Command::new(env!("CARGO_BIN_EXE_edas-testapp"))
        .env("PORT", "1")
        .env("ERROR_PERCENT", "120")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("ERROR_PERCENT must be a whole number from 0 to 100, got `120`")
    );
}
