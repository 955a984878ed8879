//! A tiny HTTP/1.1 program that the project's tests deploy as an application.
//!
//! It listens on `127.0.0.1:$PORT` and answers (every answer closes the connection):
//!
//! | Path | Answer |
//! |---|---|
//! | `/` | `version=<APP_VERSION> instance=<HOSTNAME>` |
//! | `/healthz` | 200, or 500 once `LIVENESS_FAIL_AFTER_SECONDS` have passed since start |
//! | `/ready` | 200, or 503 while `READY_AFTER_SECONDS` have not passed, or always with `NEVER_READY=1` |
//! | `/env/<NAME>` | the value of environment variable `NAME`, or 404 |
//! | `/file?path=<P>` | the content of file `P` (percent-encoded), or 404 |
//! | `/log?line=<L>` | writes `L` (percent-encoded) to stdout, a line of the instance's output |
//! | `/slow?ms=<N>` | like `/`, after `N` milliseconds (at most 60,000): a request in flight |
//! | `/burn?ms=<N>` | like `/`, after spinning a CPU for `N` milliseconds (at most 60,000) |
//! | `/metrics` | Prometheus text: `edas_testapp_requests_total{version, code}` of `/` and `/slow` |
//! | anything else | 404 |
//!
//! Other environment variables: `EXIT_AFTER_SECONDS` makes it exit with status 1 after that many
//! seconds (0: at once, before listening), to play a crashing program; on SIGTERM it prints
//! `terminating`, waits `TERM_DELAY_SECONDS` (default 0) and exits with status 0, so tests can
//! see a graceful stop and a grace period running out.
//!
//! To play a bad version for release analysis, two switches act on `/` and `/slow` only (the
//! probes and the other endpoints stay healthy, so the instance is ready and judged on its
//! traffic): `ERROR_PERCENT=<0..100>` answers that share of them with 500, spread evenly and
//! deterministically (with 20, requests 5, 10, 15, … fail: exactly 20 of every 100 in a row),
//! and `EXTRA_LATENCY_MS=<N>` (at most 60,000) delays each of them by N milliseconds.
//!
//! It is a library too ([`run`]), so a test binary of another crate can re-execute itself as
//! the program without depending on a separately built binary.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the program was told through its environment.
#[derive(Clone, Debug)]
struct Settings {
    port: u16,
    version: String,
    instance: String,
    ready_after: Option<Duration>,
    never_ready: bool,
    liveness_fail_after: Option<Duration>,
    exit_after: Option<Duration>,
    term_delay: Duration,
    error_percent: u64,
    extra_latency: Duration,
}

/// What `/` and `/slow` answered so far (for the failure spread and `/metrics`).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Whether the `n`th application request (from 0) fails with `percent` % failing: request n
/// fails when the running count of failures due, ⌊(n+1)·p/100⌋, goes up.
fn fails(n: u64, percent: u64) -> bool {
    (n + 1) * percent / 100 > n * percent / 100
}

fn seconds(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| format!("{name} must be a non-negative number of seconds, got `{v}`")),
    }
}

fn whole(name: &str, max: u64) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a whole number from 0 to {max}, got `{v}`")),
    }
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let port =
            std::env::var("PORT").map_err(|_| "environment variable PORT is not set".to_owned())?;
        let port = port
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, got `{port}`"))?;
        Ok(Settings {
            port,
            version: std::env::var("APP_VERSION").unwrap_or_else(|_| "unknown".to_owned()),
            instance: std::env::var("HOSTNAME").unwrap_or_default(),
            ready_after: seconds("READY_AFTER_SECONDS")?,
            never_ready: std::env::var("NEVER_READY").is_ok_and(|v| v == "1"),
            liveness_fail_after: seconds("LIVENESS_FAIL_AFTER_SECONDS")?,
            exit_after: seconds("EXIT_AFTER_SECONDS")?,
            term_delay: seconds("TERM_DELAY_SECONDS")?.unwrap_or_default(),
            error_percent: whole("ERROR_PERCENT", 100)?.unwrap_or(0),
            extra_latency: Duration::from_millis(whole("EXTRA_LATENCY_MS", 60_000)?.unwrap_or(0)),
        })
    }
}

fn log(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the program until SIGTERM (or `EXIT_AFTER_SECONDS`); never returns on those paths.
pub fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<(), String> {
    let started = Instant::now();
    if settings.exit_after == Some(Duration::ZERO) {
        log("exiting at once (EXIT_AFTER_SECONDS=0)");
        std::process::exit(1);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let listener = TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", settings.port))?;
    log(&format!(
        "listening on 127.0.0.1:{} version={} instance={}",
        settings.port, settings.version, settings.instance
    ));
    let exit_at = async {
        match settings.exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_at);
    let counters = Arc::new(Counters::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let settings = settings.clone();
                    let counters = counters.clone();
                    tokio::spawn(async move { let _ = answer(stream, &settings, &counters, started).await; });
                }
            }
            _ = term.recv() => {
                log("terminating");
                tokio::time::sleep(settings.term_delay).await;
                log("terminated");
                std::process::exit(0);
            }
            _ = &mut exit_at => {
                log("exiting with status 1 (EXIT_AFTER_SECONDS)");
                std::process::exit(1);
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    s: &Settings,
    counters: &Counters,
    started: Instant,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if let Some(delay) = slow_delay(&target) {
        tokio::time::sleep(delay).await;
    }
    if let Some(spin) = burn(&target) {
        // CPU time, as real work would use it (off the async workers).
        let _ = tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < spin {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        })
        .await;
    }
    let (status, body) = if is_app_request(&target) {
        if !s.extra_latency.is_zero() {
            tokio::time::sleep(s.extra_latency).await;
        }
        let n = counters.requests.fetch_add(1, Ordering::SeqCst);
        if fails(n, s.error_percent) {
            counters.errors.fetch_add(1, Ordering::SeqCst);
            (500, "injected error (ERROR_PERCENT)\n".to_owned())
        } else {
            route(&target, s, started.elapsed())
        }
    } else if target == "/metrics" {
        (200, metrics(s, counters))
    } else {
        route(&target, s, started.elapsed())
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// `/` and `/slow`: the requests that stand for the application's traffic.
fn is_app_request(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    matches!(path, "/" | "/slow")
}

/// The Prometheus text exposition of [`Counters`].
fn metrics(s: &Settings, c: &Counters) -> String {
    let requests = c.requests.load(Ordering::SeqCst);
    let errors = c.errors.load(Ordering::SeqCst);
    let v = s.version.replace(['\\', '"', '\n'], "_");
    format!(
        "# HELP edas_testapp_requests_total Requests to / and /slow, by answer code.\n\
         # TYPE edas_testapp_requests_total counter\n\
         edas_testapp_requests_total{{version=\"{v}\",code=\"200\"}} {}\n\
         edas_testapp_requests_total{{version=\"{v}\",code=\"500\"}} {errors}\n",
        requests - errors
    )
}

/// How long `/burn?ms=N` spins a CPU before answering.
fn burn(target: &str) -> Option<Duration> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (path == "/burn").then(|| {
        let ms = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ms.min(60_000))
    })
}

/// How long `/slow?ms=N` waits before answering.
fn slow_delay(target: &str) -> Option<Duration> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (path == "/slow").then(|| {
        let ms = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ms.min(60_000))
    })
}

fn route(target: &str, s: &Settings, up: Duration) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" | "/slow" | "/burn" => (
            200,
            format!("version={} instance={}\n", s.version, s.instance),
        ),
        "/healthz" => match s.liveness_fail_after {
            Some(after) if up >= after => (500, "liveness failing\n".to_owned()),
            _ => (200, "ok\n".to_owned()),
        },
        "/ready" => {
            if s.never_ready || s.ready_after.is_some_and(|after| up < after) {
                (503, "not ready\n".to_owned())
            } else {
                (200, "ready\n".to_owned())
            }
        }
        "/file" => {
            let file = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("path="))
                .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned());
            match file.map(std::fs::read_to_string) {
                Some(Ok(content)) => (200, content),
                Some(Err(e)) => (404, format!("{e}\n")),
                None => (404, "query parameter `path` is missing\n".to_owned()),
            }
        }
        "/log" => {
            // Writes `line` to stdout, so tests can watch an instance's output grow.
            let line = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("line="))
                .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned())
                .unwrap_or_default();
            log(&line);
            (200, "logged\n".to_owned())
        }
        _ => match path.strip_prefix("/env/") {
            Some(name) => {
                match std::env::var(percent_decode_str(name).decode_utf8_lossy().as_ref()) {
                    Ok(v) => (200, v),
                    Err(_) => (404, format!("{name} is not set\n")),
                }
            }
            None => (404, "not found\n".to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            port: 1,
            version: "v2".into(),
            instance: "demo-1".into(),
            ready_after: Some(Duration::from_secs(2)),
            never_ready: false,
            liveness_fail_after: Some(Duration::from_secs(5)),
            exit_after: None,
            term_delay: Duration::ZERO,
            error_percent: 0,
            extra_latency: Duration::ZERO,
        }
    }

    #[test]
    fn error_percent_fails_exactly_that_share_spread_evenly() {
        for p in [0, 1, 5, 20, 33, 50, 99, 100] {
            let failed = (0..1000).filter(|n| fails(*n, p)).count() as u64;
            assert_eq!(failed, p * 10, "{p}%");
            // Every 100 requests in a row hold p failures, wherever they start.
            for start in [0, 7, 450] {
                let window = (start..start + 100).filter(|n| fails(*n, p)).count() as u64;
                assert!(window.abs_diff(p) <= 1, "{p}% from {start}: {window}");
            }
        }
        let twenty: Vec<u64> = (0..15).filter(|n| fails(*n, 20)).collect();
        assert_eq!(
            twenty,
            [4, 9, 14],
            "requests 5, 10, 15 (counted from 1) fail"
        );
    }

    #[test]
    fn metrics_count_application_requests_by_code() {
        let c = Counters::default();
        c.requests.store(10, Ordering::SeqCst);
        c.errors.store(3, Ordering::SeqCst);
        let text = metrics(&settings(), &c);
        assert!(text.contains("edas_testapp_requests_total{version=\"v2\",code=\"200\"} 7\n"));
        assert!(text.contains("edas_testapp_requests_total{version=\"v2\",code=\"500\"} 3\n"));
        assert!(is_app_request("/") && is_app_request("/slow?ms=3"));
        assert!(!is_app_request("/ready") && !is_app_request("/metrics"));
    }

    #[test]
    fn routes_answer_as_documented() {
        let s = settings();
        assert_eq!(
            route("/", &s, Duration::ZERO),
            (200, "version=v2 instance=demo-1\n".into())
        );
        assert_eq!(route("/ready", &s, Duration::from_secs(1)).0, 503);
        assert_eq!(route("/ready", &s, Duration::from_secs(3)).0, 200);
        assert_eq!(route("/healthz", &s, Duration::from_secs(4)).0, 200);
        assert_eq!(route("/healthz", &s, Duration::from_secs(6)).0, 500);
        assert_eq!(route("/nope", &s, Duration::ZERO).0, 404);
        assert_eq!(route("/slow?ms=5", &s, Duration::ZERO).0, 200);
        assert_eq!(slow_delay("/slow?ms=5"), Some(Duration::from_millis(5)));
        assert_eq!(route("/burn?ms=5", &s, Duration::ZERO).0, 200);
        assert_eq!(burn("/burn?ms=5"), Some(Duration::from_millis(5)));
        assert_eq!(burn("/slow?ms=5"), None);
        assert_eq!(slow_delay("/slow?ms=999999"), Some(Duration::from_secs(60)));
        assert_eq!(slow_delay("/"), None);
        assert_eq!(route("/file", &s, Duration::ZERO).0, 404);
        let never = Settings {
            never_ready: true,
            ..settings()
        };
        assert_eq!(route("/ready", &never, Duration::from_secs(60)).0, 503);
    }

    #[test]
    fn file_endpoint_reads_a_percent_encoded_path() {
        let dir = std::env::temp_dir().join(format!("edas-testapp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a b.txt");
        std::fs::write(&file, "hello").unwrap();
        let encoded = file.to_str().unwrap().replace(' ', "%20");
        let got = route(
            &format!("/file?path={encoded}"),
            &settings(),
            Duration::ZERO,
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, (200, "hello".into()));
    }
}
