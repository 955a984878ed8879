//! The local runtime with real processes, probes and signals.
//!
//! The application under test is `edas-testapp`, run by re-executing this very test binary with
//! the filter `testapp_entry` (see [`testapp_entry`]): no separately built binary is needed, so
//! this works the same under `cargo test` and `cargo nextest`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edas_local::{LocalConfig, LocalRuntime};
use edas_runtime::{RevisionState, Runtime, RuntimeError, Target};
use edas_spec::AppSpec;
use edas_spec::model::{Artifact, ConfigMount, EmptyDirMount, Package};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ExecAction, LifecycleHandler,
    ObjectFieldSelector, Probe, SecretEnvSource,
};

/// Not a test: the entry point of the test application when this binary is re-executed by the
/// runtime (the environment variable tells it apart from a normal test run, where it does nothing).
#[test]
fn testapp_entry() {
    if std::env::var_os("EDAS_LOCAL_RUN_TESTAPP").is_some() {
        if let Err(e) = edas_testapp::run() {
            eprintln!("edas-testapp: {e}");
            std::process::exit(2);
        }
        std::process::exit(0);
    }
}

mod common;

use common::*;

#[tokio::test]
async fn a_revision_scaled_0_2_1_0_starts_and_stops_real_processes() {
    let mut h = Harness::new();
    let spec = Arc::new(AppSpec {
        readiness: Some(http_probe("/ready", 1, 3)),
        ..testapp("v1", &[])
    });
    assert_eq!(h.observe("1").await, RevisionState::default());
    h.set(&spec, "1", 2).await;
    h.set(&spec, "1", 2).await; // idempotent
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 2)
        .await;
    assert_eq!(state.total, 2);
    assert_eq!(
        h.rt().revisions(&app_ref(APP)).await.unwrap(),
        vec!["1".to_owned()]
    );
    let mut pids = Vec::new();
    for inst in &state.instances {
        let port = inst.port.unwrap();
        let (status, body) = get(port, "/").await;
        assert_eq!(
            (status, body),
            (200, format!("version=v1 instance={}\n", inst.name))
        );
        assert_eq!(get(port, "/env/PORT").await.1, port.to_string());
        pids.push(h.pid("1", &inst.name));
    }
    assert_ne!(state.instances[0].port, state.instances[1].port);
    assert!(pids.iter().all(|p| alive(*p)));

    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.total == 1)
        .await;
    assert_eq!(state.ready, 1);
    let kept = h.pid("1", &state.instances[0].name);
    assert_eq!(
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
        vec![&kept]
    );

    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
    assert!(!alive(kept));
    assert!(h.rt().revisions(&app_ref(APP)).await.unwrap().is_empty());
    assert!(
        !h.dir.path().join("instances").join(APP).join("1").exists(),
        "the revision directory is removed"
    );
}

#[tokio::test]
async fn readiness_gates_ready_and_a_never_ready_instance_stays_unready() {
    let mut h = Harness::new();
    let slow = Arc::new(AppSpec {
        readiness: Some(http_probe("/ready", 1, 1)),
        ..testapp("v1", &[("READY_AFTER_SECONDS", "1.5")])
    });
    let never = Arc::new(AppSpec {
        readiness: Some(http_probe("/ready", 1, 1)),
        ..testapp("v2", &[("NEVER_READY", "1")])
    });
    let started = Instant::now();
    h.set(&slow, "1", 1).await;
    h.set(&never, "2", 1).await;
    let first = h.observe("1").await;
    assert_eq!((first.ready, first.total), (0, 1));
    h.wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ready before READY_AFTER_SECONDS"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let never_state = h.observe("2").await;
    assert_eq!(
        (never_state.ready, never_state.total, never_state.failed),
        (0, 1, None)
    );
    assert_eq!(
        never_state.instances[0].restarts, 0,
        "readiness failures do not restart"
    );
    h.set(&slow, "1", 0).await;
    h.set(&never, "2", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
    h.wait_for("2", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn an_instance_that_stops_answering_liveness_is_restarted() {
    let mut h = Harness::new();
    let spec = Arc::new(AppSpec {
        liveness: Some(http_probe("/healthz", 1, 2)),
        ..testapp("v1", &[("LIVENESS_FAIL_AFTER_SECONDS", "1")])
    });
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let name = state.instances[0].name.clone();
    let first_pid = h.pid("1", &name);
    let state = h
        .wait_for("1", Duration::from_secs(15), |s| {
            s.instances.first().is_some_and(|i| i.restarts >= 1)
        })
        .await;
    assert_eq!(
        state.instances[0].name, name,
        "the same instance is restarted"
    );
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    assert!(state.instances[0].restarts >= 1);
    assert!(!alive(first_pid), "the old process was killed");
    assert_ne!(h.pid("1", &name), first_pid);
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn an_instance_that_keeps_crashing_is_reported_failed_and_can_be_recreated() {
    let mut h = Harness::new();
    let spec = Arc::new(testapp("v1", &[("EXIT_AFTER_SECONDS", "0")]));
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(15), |s| s.failed.is_some())
        .await;
    let reason = state.failed.clone().unwrap();
    assert!(reason.contains("exited with status 1"), "{reason}");
    assert!(reason.contains("gave up"), "{reason}");
    assert_eq!((state.ready, state.total), (0, 1));
    assert_eq!(
        state.instances[0].restarts, 2,
        "crash_loop_limit 3: two restarts, then failed"
    );
    let old = state.instances[0].name.clone();

    h.rt().recreate_failed(&app_ref(APP), "1").await.unwrap();
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| {
            s.total == 1 && s.instances[0].name != old
        })
        .await;
    assert_eq!(state.failed, None);
    assert_eq!(state.instances[0].restarts, 0);
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn prestop_runs_then_sigterm_then_sigkill_after_the_grace_period() {
    let mut h = Harness::new();
    let marker = h.dir.path().join("prestop-marker");
    let pre_stop = LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("echo prestop >> '{}'; sleep 1", marker.display()),
            ]),
        }),
        ..Default::default()
    };
    // The program waits 30 s after SIGTERM: only SIGKILL ends it within the grace period.
    let stubborn = Arc::new(AppSpec {
        pre_stop: Some(pre_stop),
        termination_grace_period_seconds: Some(3),
        ..testapp("v1", &[("TERM_DELAY_SECONDS", "30")])
    });
    h.set(&stubborn, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let name = state.instances[0].name.clone();
    let pid = h.pid("1", &name);
    let stdout = h.rt().instance_dir(APP, "1", &name).join("logs/stdout.log");

    let stopping = Instant::now();
    h.set(&stubborn, "1", 0).await;
    let (mut term_seen, mut prestop_seen) = (None, None);
    while term_seen.is_none() && stopping.elapsed() < Duration::from_secs(5) {
        if prestop_seen.is_none() && marker.exists() {
            prestop_seen = Some(stopping.elapsed());
        }
        if std::fs::read_to_string(&stdout).is_ok_and(|s| s.contains("terminating")) {
            term_seen = Some(stopping.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term_seen = term_seen.expect("the program saw SIGTERM");
    assert!(
        prestop_seen.expect("PreStop ran") < term_seen,
        "PreStop runs before SIGTERM"
    );
    assert!(
        term_seen >= Duration::from_millis(900),
        "SIGTERM only after PreStop finished: {term_seen:?}"
    );
    assert!(
        alive(pid),
        "still running after SIGTERM, within the grace period"
    );
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
    let gone = stopping.elapsed();
    assert!(!alive(pid));
    assert!(
        gone >= Duration::from_millis(2800) && gone < Duration::from_millis(5500),
        "SIGKILL when the 3 s grace period (counted from PreStop) ends, not before: {gone:?}"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "prestop\n");
    let kept = h.rt().stopped_instance_logs(APP, &name).join("stdout.log");
    let log = std::fs::read_to_string(&kept).expect("the logs of a stopped instance are kept");
    assert!(
        log.contains("terminating") && !log.contains("terminated"),
        "killed before finishing: {log}"
    );

    // A program that exits on SIGTERM is not kept for the whole grace period.
    let polite = Arc::new(AppSpec {
        termination_grace_period_seconds: Some(30),
        ..testapp("v2", &[])
    });
    h.set(&polite, "2", 1).await;
    h.wait_for("2", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let stopping = Instant::now();
    h.set(&polite, "2", 0).await;
    h.wait_for("2", Duration::from_secs(10), |s| s.total == 0)
        .await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_new_runtime_adopts_running_instances_and_replaces_vanished_ones() {
    let mut h = Harness::new();
    h.source.put_secret(
        "default",
        "app-secret",
        BTreeMap::from([("PASSWORD".to_owned(), "s3cret".to_owned())]),
    );
    let mut spec = AppSpec {
        readiness: Some(http_probe("/ready", 1, 3)),
        ..testapp("v1", &[])
    };
    spec.env_froms.push(EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: "app-secret".into(),
            optional: None,
        }),
        ..Default::default()
    });
    let spec = Arc::new(spec);
    h.set(&spec, "1", 2).await;
    // The revision's snapshot is kept beside its spec, readable by edasd's user only.
    let config_file = h.dir.path().join("instances/app-1/1/config.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&config_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", config_file.display());
    let before = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 2)
        .await;
    let names: Vec<String> = before.instances.iter().map(|i| i.name.clone()).collect();
    let pids: Vec<i32> = names.iter().map(|n| h.pid("1", n)).collect();

    // edasd goes away: the instances keep running; one of them then dies while nobody watches.
    drop(h.rt.take());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pids.iter().all(|p| alive(*p)),
        "instances survive the runtime"
    );
    kill_if_testapp(pids[1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.restart_runtime();

    let after = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 2)
        .await;
    assert_eq!(after.total, 2, "no doubled instances");
    let adopted = after
        .instances
        .iter()
        .find(|i| i.name == names[0])
        .expect("first instance adopted");
    assert_eq!(adopted.restarts, 0);
    assert_eq!(
        h.pid("1", &names[0]),
        pids[0],
        "the same process, not a new one"
    );
    let replaced = after
        .instances
        .iter()
        .find(|i| i.name == names[1])
        .expect("second instance kept its name");
    assert_eq!(
        replaced.restarts, 1,
        "a vanished process is started again as a restart"
    );
    assert_ne!(h.pid("1", &names[1]), pids[1]);
    let (_, body) = get(adopted.port.unwrap(), "/").await;
    assert!(body.contains(&names[0]), "{body}");
    // The new runtime restarted it with the revision's Secret, which only the snapshot holds.
    assert_eq!(
        get(replaced.port.unwrap(), "/env/PASSWORD").await,
        (200, "s3cret".into())
    );

    // The adopted instance is supervised: stopping it works although it is not our child.
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
    assert!(!alive(pids[0]));
}

#[tokio::test]
async fn environment_and_mounts_come_from_the_spec_and_the_config_source() {
    let mut h = Harness::new();
    h.source.put_config_map(
        "default",
        "app-config",
        BTreeMap::from([
            ("GREETING".to_owned(), "hello".to_owned()),
            ("app.properties".to_owned(), "a=1\n".to_owned()),
        ]),
    );
    h.source.put_secret(
        "default",
        "app-secret",
        BTreeMap::from([("PASSWORD".to_owned(), "s3cret".to_owned())]),
    );
    let mut spec = testapp("v1", &[("BASE_URL", "http://127.0.0.1:$(PORT)/x")]);
    spec.readiness = Some(http_probe("/ready", 1, 3));
    spec.envs.push(EnvVar {
        name: "GREETING".into(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                key: "GREETING".into(),
                name: "app-config".into(),
                optional: None,
            }),
            ..Default::default()
        }),
    });
    spec.envs.push(EnvVar {
        name: "MY_NAME".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                api_version: None,
            }),
            ..Default::default()
        }),
    });
    spec.env_froms.push(EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: "app-secret".into(),
            optional: None,
        }),
        prefix: Some("S_".into()),
        ..Default::default()
    });
    spec.config_mounts.push(ConfigMount {
        name: "app-config".into(),
        kind: "ConfigMap".into(),
        mount_path: "/etc/app".into(),
    });
    spec.empty_dirs.push(EmptyDirMount {
        mount_path: "/data".into(),
        read_only: false,
        sub_path_expr: None,
    });
    let spec = Arc::new(spec);
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let inst = &state.instances[0];
    let port = inst.port.unwrap();
    assert_eq!(get(port, "/env/GREETING").await, (200, "hello".into()));
    assert_eq!(get(port, "/env/S_PASSWORD").await, (200, "s3cret".into()));
    assert_eq!(get(port, "/env/MY_NAME").await, (200, inst.name.clone()));
    assert_eq!(get(port, "/env/HOSTNAME").await, (200, inst.name.clone()));
    assert_eq!(
        get(port, "/env/BASE_URL").await,
        (200, format!("http://127.0.0.1:{port}/x"))
    );
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        assert_eq!(
            get(port, "/env/CARGO_MANIFEST_DIR").await.0,
            404,
            "edasd's own environment is not inherited"
        );
    }
    let (status, config_dir) = get(port, "/env/EDAS_MOUNT_ETC_APP").await;
    assert_eq!(status, 200);
    assert_eq!(
        get(port, &format!("/file?path={config_dir}/app.properties")).await,
        (200, "a=1\n".into())
    );
    let (_, data_dir) = get(port, "/env/EDAS_MOUNT_DATA").await;
    assert!(Path::new(&data_dir).is_dir(), "{data_dir}");
    let (_, mounts) = get(port, "/env/EDAS_MOUNTS").await;
    assert!(
        mounts.contains(&format!("/etc/app={config_dir}\n")),
        "{mounts}"
    );
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;

    // A ConfigMap that does not exist fails the start, retried, then reported with its name.
    let mut missing = testapp("v2", &[]);
    missing.config_mounts.push(ConfigMount {
        name: "nope".into(),
        kind: "ConfigMap".into(),
        mount_path: "/etc/nope".into(),
    });
    let missing = Arc::new(missing);
    h.set(&missing, "2", 1).await;
    let state = h
        .wait_for("2", Duration::from_secs(10), |s| s.failed.is_some())
        .await;
    assert!(state.failed.unwrap().contains("ConfigMap `nope` not found"));
    h.set(&missing, "2", 0).await;
    h.wait_for("2", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn what_cannot_run_here_is_refused_clearly() {
    let h = Harness::new();
    let image = Arc::new(AppSpec {
        name: "web".into(),
        artifact: Artifact::Image {
            url: "nginx:1.27".into(),
            repo_id: None,
        },
        ..Default::default()
    });
    let target = Target {
        app: app_ref(APP),
        revision: "1".into(),
        spec: image,
        config: Default::default(),
    };
    match h.rt().set_replicas(&target, 1).await {
        Err(RuntimeError::Unsupported(m)) => assert!(
            m.contains("container engine") && m.contains("nginx:1.27"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let jar = Arc::new(AppSpec {
        name: "jar".into(),
        artifact: Artifact::Package(Package {
            url: "file:///tmp/app.jar".into(),
            version: "1".into(),
            jdk: Some("Open JDK 7".into()),
            base_image: None,
        }),
        ..Default::default()
    });
    let target = Target {
        app: app_ref(APP),
        revision: "1".into(),
        spec: jar,
        config: Default::default(),
    };
    match h.rt().set_replicas(&target, 1).await {
        Err(RuntimeError::Unsupported(m)) => assert!(m.contains("`JDK` `Open JDK 7`"), "{m}"),
        other => panic!("{other:?}"),
    }
    let bad_id = Target {
        app: app_ref("../x"),
        revision: "1".into(),
        spec: Arc::new(testapp("v1", &[])),
        config: Default::default(),
    };
    assert!(
        matches!(h.rt().set_replicas(&bad_id, 1).await, Err(RuntimeError::Unsupported(m)) if m.contains("`../x`"))
    );
    assert_eq!(h.observe("1").await, RevisionState::default());
}

#[tokio::test]
async fn a_package_runs_with_the_mapped_java_and_its_options() {
    // A fake `java` (a shell script) shows the command line the runtime builds.
    let mut h = Harness::new();
    let bin = h.dir.path().join("fake-java");
    std::fs::write(&bin, "#!/bin/sh\necho \"java $*\"\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let jar = h.dir.path().join("app.jar");
    std::fs::write(&jar, "jar").unwrap();
    let mut cfg = config(h.dir.path());
    cfg.java_binaries.insert("Open JDK 8".into(), bin);
    drop(h.rt.take());
    let rt = LocalRuntime::new(cfg).unwrap();
    h.events = rt.subscribe();
    h.rt = Some(rt);
    let mut spec = AppSpec {
        name: "jar".into(),
        artifact: Artifact::Package(Package {
            url: format!("file://{}", jar.display()),
            version: "1.0".into(),
            jdk: Some("Open JDK 8".into()),
            base_image: None,
        }),
        termination_grace_period_seconds: Some(1),
        ..Default::default()
    };
    spec.java_startup.insert(
        "Xmx".into(),
        edas_spec::model::JavaStartupOption {
            original: serde_json::Value::Null,
            startup: "-Xmx64m".into(),
        },
    );
    let spec = Arc::new(spec);
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let stdout = h
        .rt()
        .instance_dir(APP, "1", &state.instances[0].name)
        .join("logs/stdout.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut line = String::new();
    while Instant::now() < deadline && line.is_empty() {
        line = std::fs::read_to_string(&stdout).unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(line.starts_with("java -Xmx64m -jar "), "{line}");
    assert!(
        line.contains("/.packages/") && line.trim_end().ends_with("/app.jar"),
        "{line}"
    );
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn a_failing_startup_probe_kills_and_restarts_until_the_instance_is_failed() {
    let mut h = Harness::new();
    let never = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["false".into()]),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Default::default()
    };
    let spec = Arc::new(AppSpec {
        startup: Some(never),
        readiness: Some(http_probe("/ready", 1, 3)),
        ..testapp("v1", &[])
    });
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(15), |s| s.failed.is_some())
        .await;
    let reason = state.failed.unwrap();
    assert!(reason.contains("Startup probe failed 1 times"), "{reason}");
    assert_eq!(
        state.ready, 0,
        "never ready: the startup probe gates readiness"
    );
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn post_start_runs_before_the_instance_is_ready() {
    let mut h = Harness::new();
    let marker = h.dir.path().join("post-start-marker");
    let post_start = LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("sleep 0.5; echo \"$HOSTNAME\" > '{}'", marker.display()),
            ]),
        }),
        ..Default::default()
    };
    let spec = Arc::new(AppSpec {
        post_start: Some(post_start),
        ..testapp("v1", &[])
    });
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let written = std::fs::read_to_string(&marker).expect("PostStart ran before ready");
    assert_eq!(
        written.trim(),
        state.instances[0].name,
        "hooks get the instance's environment"
    );
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn an_instance_over_its_memory_limit_is_killed_as_oom() {
    let mut h = Harness::new();
    let mut spec = testapp("v1", &[]);
    spec.resources.memory_limit_mib = Some(1);
    let spec = Arc::new(spec);
    h.set(&spec, "1", 1).await;
    let state = h
        .wait_for("1", Duration::from_secs(20), |s| s.failed.is_some())
        .await;
    let reason = state.failed.unwrap();
    assert!(
        reason.contains("OOMKilled") && reason.contains("limit of 1 MiB"),
        "{reason}"
    );
    h.set(&spec, "1", 0).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn the_run_as_user_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LocalConfig {
        run_as_user: Some("no-such-user-for-edas".into()),
        ..config(dir.path())
    };
    let err = LocalRuntime::new(cfg).err().expect("refused");
    assert_eq!(
        err.to_string(),
        "run-as user `no-such-user-for-edas` does not exist"
    );
    // Our own uid is always a valid run-as user, and instances then run as it.
    let me = std::fs::metadata("/proc/self").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&me);
    let cfg = LocalConfig {
        run_as_user: Some(uid.to_string()),
        ..config(dir.path())
    };
    let rt = LocalRuntime::new(cfg).unwrap();
    let mut events = rt.subscribe();
    let spec = Arc::new(AppSpec {
        readiness: Some(http_probe("/ready", 1, 3)),
        ..testapp("v1", &[])
    });
    let target = Target {
        app: app_ref(APP),
        revision: "1".into(),
        spec,
        config: Default::default(),
    };
    rt.set_replicas(&target, 1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rt.observe(&app_ref(APP), "1").await.unwrap().ready < 1 {
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("ready in time")
            .unwrap();
    }
    rt.set_replicas(&target, 0).await.unwrap();
    while rt.observe(&app_ref(APP), "1").await.unwrap().total > 0 {
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("stopped in time")
            .unwrap();
    }
}

#[tokio::test]
async fn one_runtime_at_a_time_uses_a_data_directory() {
    let mut h = Harness::new();
    let second = LocalRuntime::new(config(h.dir.path()));
    let err = second.err().expect("the directory is locked");
    assert!(
        err.to_string().contains("is in use by another edasd"),
        "{err}"
    );
    h.restart_runtime(); // the lock is released with the runtime
}
