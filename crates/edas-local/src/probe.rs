//! Probe and lifecycle-hook actions (httpGet, tcpSocket, exec, sleep) against one instance.
//!
//! Every action targets the instance's own loopback port: whatever port number or name the spec
//! gives, it is replaced by the instance's `PORT`, because all instances share 127.0.0.1 and a
//! spec written for a pod (every pod its own IP, so the same port) could not work otherwise.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, LifecycleHandler, Probe};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What an action needs to know about its instance.
#[derive(Clone, Debug)]
pub struct Target {
    /// The instance's `PORT`.
    pub port: u16,
    /// Its working directory (exec actions run there).
    pub workdir: PathBuf,
    /// Its environment (exec actions get it too, as in a container).
    pub env: Vec<(String, String)>,
    /// The user and group it runs as, if not edasd's.
    pub run_as: Option<(u32, u32)>,
    /// The launcher and the instance's sandbox: exec actions run inside it, with the instance's
    /// identity, cgroups and mount view (`None`: run directly, as `run_as`).
    pub sandbox: Option<Arc<(crate::sandbox::Launcher, crate::sandbox::Spec)>>,
}

/// The command that runs `argv` in `workdir` as the instance does: through the launcher with the
/// instance's sandbox, or directly.
pub fn command(
    argv: &[String],
    workdir: &std::path::Path,
    env: &[(String, String)],
    run_as: Option<(u32, u32)>,
    sandbox: Option<&(crate::sandbox::Launcher, crate::sandbox::Spec)>,
) -> Result<tokio::process::Command, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".to_owned());
    };
    let mut cmd;
    match sandbox {
        Some((launcher, base)) => {
            let spec = crate::sandbox::Spec {
                argv: argv.to_vec(),
                workdir: workdir.to_path_buf(),
                ..base.clone()
            };
            let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
            cmd = tokio::process::Command::new(&launcher.program);
            cmd.args(&launcher.args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env(crate::sandbox::SPEC_ENV, json);
        }
        None => {
            cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)));
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
        }
    }
    cmd.current_dir(workdir);
    Ok(cmd)
}

/// One action of a probe or a hook.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// `httpGet`: success is any status from 200 to 399.
    Http(&'a HTTPGetAction),
    /// `tcpSocket`: success is an accepted connection.
    Tcp,
    /// `exec`: success is exit status 0.
    Exec(&'a ExecAction),
    /// `sleep` (hooks only).
    Sleep(Duration),
}

impl<'a> Action<'a> {
    /// The action of a probe (the spec was checked to have exactly one supported handler).
    pub fn of_probe(p: &'a Probe) -> Option<Action<'a>> {
        if let Some(h) = &p.http_get {
            Some(Action::Http(h))
        } else if p.tcp_socket.is_some() {
            Some(Action::Tcp)
        } else {
            p.exec.as_ref().map(Action::Exec)
        }
    }

    /// The action of a lifecycle hook.
    pub fn of_handler(h: &'a LifecycleHandler) -> Option<Action<'a>> {
        if let Some(http) = &h.http_get {
            Some(Action::Http(http))
        } else if h.tcp_socket.is_some() {
            Some(Action::Tcp)
        } else if let Some(exec) = &h.exec {
            Some(Action::Exec(exec))
        } else {
            h.sleep
                .as_ref()
                .map(|s| Action::Sleep(Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0))))
        }
    }

    /// Runs the action once; `Err` says why it failed.
    pub async fn run(self, target: &Target, timeout: Duration) -> Result<(), String> {
        match self {
            Action::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Action::Exec(e) => exec(e, target, timeout).await,
            Action::Tcp => {
                tokio::time::timeout(timeout, TcpStream::connect(("127.0.0.1", target.port)))
                    .await
                    .map_err(|_| {
                        format!(
                            "tcp connect to 127.0.0.1:{} timed out after {timeout:?}",
                            target.port
                        )
                    })?
                    .map(drop)
                    .map_err(|e| format!("tcp connect to 127.0.0.1:{} failed: {e}", target.port))
            }
            Action::Http(h) => tokio::time::timeout(timeout, http_get(h, target.port))
                .await
                .map_err(|_| format!("http probe timed out after {timeout:?}"))?,
        }
    }
}

/// Probe timing with Kubernetes' defaults and minimums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn at_least(v: Option<i32>, default: i32, min: i32) -> u32 {
    u32::try_from(v.unwrap_or(default).max(min)).unwrap_or(1)
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(u64::from(at_least(p.initial_delay_seconds, 0, 0))),
            period: Duration::from_secs(u64::from(at_least(p.period_seconds, 10, 1))),
            timeout: Duration::from_secs(u64::from(at_least(p.timeout_seconds, 1, 1))),
            success_threshold: at_least(p.success_threshold, 1, 1),
            failure_threshold: at_least(p.failure_threshold, 3, 1),
        }
    }
}

async fn exec(e: &ExecAction, target: &Target, timeout: Duration) -> Result<(), String> {
    let argv = e.command.as_deref().unwrap_or_default();
    let Some(program) = argv.first() else {
        return Err("exec action has an empty command".to_owned());
    };
    let mut cmd = command(
        argv,
        &target.workdir,
        &target.env,
        target.run_as,
        target.sandbox.as_deref(),
    )?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("exec `{program}` failed to start: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("exec `{program}` timed out after {timeout:?}"))
        }
        Ok(Err(e)) => Err(format!("exec `{program}`: {e}")),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exec `{program}` {status}")),
    }
}

/// A minimal HTTP/1.1 GET to the instance; only the status line matters.
async fn http_get(h: &HTTPGetAction, port: u16) -> Result<(), String> {
    let path = match h.path.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    };
    let headers = h.http_headers.as_deref().unwrap_or_default();
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|hd| hd.name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    if !headers
        .iter()
        .any(|hd| hd.name.eq_ignore_ascii_case("user-agent"))
    {
        request.push_str("User-Agent: kube-probe/edas-local\r\n");
    }
    for hd in headers {
        request.push_str(&format!("{}: {}\r\n", hd.name, hd.value));
    }
    request.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("http GET 127.0.0.1:{port}{path}: connect failed: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("http GET 127.0.0.1:{port}{path}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("http GET 127.0.0.1:{port}{path}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            format!("http GET 127.0.0.1:{port}{path}: no HTTP status line in the answer")
        })?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "http GET 127.0.0.1:{port}{path} answered status {status}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use tokio::net::TcpListener;

    fn target(port: u16) -> Target {
        Target {
            port,
            workdir: std::env::temp_dir(),
            env: vec![],
            run_as: None,
            sandbox: None,
        }
    }

    async fn answer_once(listener: TcpListener, status_line: &'static str) -> String {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(format!("{status_line}\r\ncontent-length: 0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn http_action_counts_2xx_and_3xx_as_success_and_sends_headers() {
        let action = HTTPGetAction {
            path: Some("ready".into()),
            port: IntOrString::Int(8080),
            http_headers: Some(vec![k8s_openapi::api::core::v1::HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        };
        for (line, ok) in [
            ("HTTP/1.1 204 No Content", true),
            ("HTTP/1.1 302 Found", true),
            ("HTTP/1.1 503 Busy", false),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(answer_once(listener, line));
            let got = Action::Http(&action)
                .run(&target(port), Duration::from_secs(2))
                .await;
            assert_eq!(got.is_ok(), ok, "{line}: {got:?}");
            let request = server.await.unwrap();
            assert!(request.starts_with("GET /ready HTTP/1.1\r\n"), "{request}");
            assert!(request.contains("X-Probe: yes\r\n"), "{request}");
        }
    }

    #[tokio::test]
    async fn http_and_tcp_actions_fail_on_a_closed_port_and_time_out_on_a_silent_one() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let http = HTTPGetAction {
            port: IntOrString::Int(1),
            ..Default::default()
        };
        assert!(
            Action::Tcp
                .run(&target(port), Duration::from_secs(1))
                .await
                .is_err()
        );
        assert!(
            Action::Http(&http)
                .run(&target(port), Duration::from_secs(1))
                .await
                .is_err()
        );
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let err = Action::Http(&http)
            .run(&target(port), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(
            Action::Tcp
                .run(&target(port), Duration::from_secs(1))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn exec_action_uses_the_exit_status_and_the_timeout() {
        let exec = |argv: &[&str]| ExecAction {
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
        };
        let t = Target {
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            ..target(1)
        };
        assert!(
            Action::Exec(&exec(&["true"]))
                .run(&t, Duration::from_secs(2))
                .await
                .is_ok()
        );
        assert!(
            Action::Exec(&exec(&["false"]))
                .run(&t, Duration::from_secs(2))
                .await
                .is_err()
        );
        let err = Action::Exec(&exec(&["sleep", "5"]))
            .run(&t, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(
            Action::Exec(&exec(&[]))
                .run(&t, Duration::from_secs(1))
                .await
                .is_err()
        );
    }

    #[test]
    fn timing_applies_kubernetes_defaults_and_minimums() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = Timing::of(&Probe {
            period_seconds: Some(0),
            failure_threshold: Some(-2),
            ..Default::default()
        });
        assert_eq!(t.period, Duration::from_secs(1));
        assert_eq!(t.failure_threshold, 1);
    }
}
