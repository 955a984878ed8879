//! A real Prometheus server for the Prometheus tier (issue 21): Debian's `prometheus` binary
//! (`EDAS_PROMETHEUS`, exported by scripts/setup.d/50-prometheus.sh) started on 127.0.0.1 with a
//! generated configuration in a fresh temporary directory, scraping the given targets every
//! second, and killed (its directory removed) when dropped.
//!
//! The tests that use it are `#[ignore]`d and named `prometheus_*`; scripts/tiers.d/
//! 40-prometheus.sh runs them, or says SKIPPED with the reason when `EDAS_PROMETHEUS` is unset
//! (as the Kubernetes tier does). Std only, so any test crate can include it by path:
//! `#[path = "…/support/prometheus.rs"] mod prometheus;`.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, or why the Prometheus tier cannot run (a test run without the tier's setup).
pub fn binary() -> PathBuf {
    match std::env::var_os("EDAS_PROMETHEUS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "EDAS_PROMETHEUS is not set: these tests belong to the Prometheus tier; run \
             `source scripts/setup.d/50-prometheus.sh` (Debian's prometheus) or \
             scripts/tiers.d/40-prometheus.sh, which skips them visibly without it"
        ),
    }
}

/// What one scrape job reads.
pub struct Target {
    pub job: String,
    pub addr: SocketAddr,
    pub path: String,
}

impl Target {
    pub fn new(job: &str, addr: SocketAddr, path: &str) -> Target {
        Target {
            job: job.to_owned(),
            addr,
            path: path.to_owned(),
        }
    }
}

/// A running server; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The generated configuration: every target its own job, scraped every second, and the job
/// `files` whose targets are read from `<sd>/*.json` (Prometheus's file service discovery: see
/// [`Prometheus::set_file_targets`]), for targets that come and go, such as instances.
pub fn config(targets: &[Target], sd: &Path) -> String {
    let mut out = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for t in targets {
        out.push_str(&format!(
            "  - job_name: {:?}\n    metrics_path: {:?}\n    static_configs:\n      - targets: [\"{}\"]\n",
            t.job, t.path, t.addr
        ));
    }
    out.push_str(&format!(
        "  - job_name: files\n    file_sd_configs:\n      - files: [{:?}]\n        refresh_interval: 1s\n",
        sd.join("*.json").display().to_string()
    ));
    out
}

/// A raw HTTP/1.1 GET on loopback: the status and the body.
pub fn http_get(addr: SocketAddr, path_and_query: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query for a URL's query string.
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// A loopback address for [`Prometheus::start_at`], free now: edasd's configuration can
    /// name the server before it starts (it scrapes edasd, whose port is known only later).
    pub fn reserve() -> SocketAddr {
        free_addr()
    }

    /// Starts a server scraping `targets` and waits until it is ready (at most 30 s).
    pub fn start(targets: &[Target]) -> Prometheus {
        Prometheus::start_at(free_addr(), targets)
    }

    /// [`Prometheus::start`] on `addr`.
    pub fn start_at(addr: SocketAddr, targets: &[Target]) -> Prometheus {
        let bin = binary();
        let dir = std::env::temp_dir().join(format!(
            "edas-prometheus-{}-{}",
            std::process::id(),
            free_addr().port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("sd")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config(targets, &dir.join("sd"))).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut p = Prometheus { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http_get(addr, "/-/ready"), Some((200, _))) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`, what edasd's configuration and the checks name.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its own log (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Replaces the `files` job's targets: each address with its labels (written to a temporary
    /// file and renamed, so Prometheus never reads half of it).
    pub fn set_file_targets(&self, targets: &[(SocketAddr, Vec<(String, String)>)]) {
        let groups: Vec<String> = targets
            .iter()
            .map(|(addr, labels)| {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k:?}: {v:?}"))
                    .collect();
                format!(
                    "{{\"targets\": [\"{addr}\"], \"labels\": {{{}}}}}",
                    labels.join(", ")
                )
            })
            .collect();
        let tmp = self.dir.join("sd").join("targets.json.tmp");
        std::fs::write(&tmp, format!("[{}]", groups.join(", "))).unwrap();
        std::fs::rename(&tmp, self.dir.join("sd").join("targets.json")).unwrap();
    }

    /// The raw JSON answer of an instant query.
    pub fn query(&self, q: &str) -> String {
        http_get(self.addr, &format!("/api/v1/query?query={}", encode(q)))
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Waits until the instant query answers a non-empty result (the targets were scraped).
    pub fn wait_for(&self, q: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.query(q);
            if body.contains("\"status\":\"success\"") && !body.contains("\"result\":[]") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {q} still answers {body} after {timeout:?}; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
