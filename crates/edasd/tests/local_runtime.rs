//! Black-box tests of whole releases on the built-in cluster `local`: the real `edasd` binary on a
//! loopback port with a temporary data directory, driven by signed requests, running real
//! instances of the test application (`edas-testapp`).
//!
//! The application's `Command` is this very test binary, re-executed with the filter
//! `testapp_entry` (see [`testapp_entry`]), so no separately built binary is needed and the tests
//! run the same under `cargo test` and `cargo nextest`. Every instance also carries a tag unique to
//! its test in its arguments (a second libtest filter that matches nothing), so a test can count and
//! kill exactly its own processes: instances outlive edasd by design, and each test kills edasd and
//! then every process with its tag when it ends, even when it fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Not a test: the entry point of the test application when edasd's local runtime runs this
/// binary as an instance (the variable tells it apart from a normal test run, where it does nothing).
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// Starts edasd with the quick restart settings (they keep the liveness test within seconds)
/// plus the `[local]` settings of the test added by `extra(dir, tag)`.
fn start_with(test: &str, extra: impl FnOnce(&Path, &str) -> String) -> Cluster {
    Cluster::launch(
        format!("edasd-local-test-{test}-{}", std::process::id()),
        |dir, tag| format!("{QUICK_RESTARTS}{}", extra(dir, tag)),
        true,
        Duration::from_millis(100),
    )
}

fn start(test: &str) -> Cluster {
    start_with(test, |_, _| String::new())
}

/// The instance names a pipeline (batch) lists: the new revision's instances after that batch.
fn pipeline_instances(pipeline: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for stage in pipeline["StageList"]["StageInfoDTO"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for inst in stage["StageResultDTO"]["InstanceDTOList"]["InstanceDTO"]
            .as_array()
            .into_iter()
            .flatten()
        {
            names.insert(inst["InstanceName"].as_str().unwrap_or_default().to_owned());
        }
    }
    names
}

fn ms(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time in ms: {v}"))
}

const READINESS: &str = r#"{"httpGet":{"path":"/ready","port":8080},"initialDelaySeconds":0,"periodSeconds":1,"timeoutSeconds":1,"successThreshold":1,"failureThreshold":3}"#;

/// 1. A BatchUpdate in 3 automatic batches replaces the 3 instances one batch at a time, and a
///    batch starts only once the previous batch's instances are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_update_replaces_instances_batch_by_batch_gated_by_readiness() {
    let cluster = start("batch");
    let (app, order) = cluster
        .insert(
            "batch-app",
            3,
            &[("Readiness", READINESS)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    let info = cluster.finished(&order, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    let old = cluster.instances(&app);
    assert_eq!(old.len(), 3, "{old:#?}");
    for inst in &old {
        assert_eq!(version(inst.port).as_deref(), Some("v1"), "{inst:?}");
    }
    let old_pids: BTreeSet<i32> = old.iter().filter_map(|i| i.pid).collect();
    assert_eq!(old_pids.len(), 3);

    // New instances become ready 1.5 s after they start, at the earliest.
    const READY_AFTER_MS: u64 = 1500;
    let order = cluster
        .deploy(
            &app,
            "v2",
            &[(
                "UpdateStrategy",
                r#"{"type":"BatchUpdate","batchUpdate":{"batch":3,"releaseType":"auto","batchWaitTime":0}}"#,
            )],
            &[("APP_VERSION", "v2"), ("READY_AFTER_SECONDS", "1.5")],
        )
        .await;
    // Watch what the running instances answer while the release goes on.
    let mut mixes: BTreeSet<(usize, usize)> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let info = loop {
        let (mut v1, mut v2) = (0, 0);
        for inst in cluster.instances(&app) {
            match version(inst.port).as_deref() {
                Some("v1") => v1 += 1,
                Some("v2") => v2 += 1,
                _ => {}
            }
        }
        mixes.insert((v1, v2));
        let info = cluster.order(&order).await;
        if ![0, 1, 8, 9].contains(&info["Status"].as_i64().unwrap()) {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "release not finished in 60 s: {info:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info["Status"], 2, "{info:#}");
    assert_eq!(info["BatchCount"], 3, "{info:#}");
    // Batch by batch: a moment with one new instance and at least two old ones answering, and one
    // with two new ones and an old one (the engine may start a batch's instance while it stops
    // the previous batch's old one, so a moment can show one more instance than Replicas).
    assert!(
        mixes.iter().any(|&(v1, v2)| v2 == 1 && v1 >= 2)
            && mixes.iter().any(|&(v1, v2)| v2 == 2 && v1 >= 1),
        "(v1, v2) instances answering over the release: {mixes:?}"
    );
    assert!(
        mixes.iter().all(|&(v1, v2)| v1 + v2 <= 4),
        "never more than one extra instance: {mixes:?}"
    );

    let new = cluster.instances(&app);
    assert_eq!(
        new.len(),
        3,
        "every old instance is gone, 3 new ones: {new:#?}"
    );
    for inst in &new {
        assert_eq!(version(inst.port).as_deref(), Some("v2"), "{inst:?}");
        assert!(!old_pids.contains(&inst.pid.unwrap()));
    }
    assert!(old_pids.iter().all(|p| !alive(*p)), "old processes stopped");
    assert_eq!(
        cluster.tagged_processes().len(),
        3,
        "no other instance process"
    );

    // Batch k+1 started only after batch k's instances could be ready (and were: it succeeded).
    let created: BTreeMap<&str, u64> = new
        .iter()
        .map(|i| (i.name.as_str(), i.created_ms))
        .collect();
    let batches = pipelines(&info);
    assert_eq!(batches.len(), 3, "{info:#}");
    let mut previous_ready: Option<u64> = None;
    let mut seen = BTreeSet::new();
    for (k, batch) in batches.iter().enumerate() {
        assert_eq!(batch["PipelineStatus"], 2, "batch {k}: {batch:#}");
        // A batch lists every new instance so far: its own are those the previous one did not.
        let all = pipeline_instances(batch);
        let names: BTreeSet<String> = all.difference(&seen).cloned().collect();
        seen = all;
        assert_eq!(names.len(), 1, "batch {k} starts one instance: {batch:#}");
        let started = ms(&batch["StartTime"]);
        let first_created = names.iter().map(|n| created[n.as_str()]).min().unwrap();
        if let Some(ready) = previous_ready {
            assert!(
                started >= ready && first_created >= ready,
                "batch {k} started at {started} (its instance at {first_created}) before the previous batch could be ready at {ready}"
            );
        }
        previous_ready =
            Some(names.iter().map(|n| created[n.as_str()]).max().unwrap() + READY_AFTER_MS);
    }
}

/// 2. A version that never becomes ready fails on BatchTimeout; the old instances keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_never_becomes_ready_fails_on_batch_timeout() {
    let cluster = start("never-ready");
    let (app, order) = cluster
        .insert(
            "never-ready-app",
            2,
            &[("Readiness", READINESS)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        cluster.finished(&order, Duration::from_secs(30)).await["Status"],
        2
    );
    let old = cluster.instances(&app);
    assert_eq!(old.len(), 2);

    let started = Instant::now();
    let order = cluster
        .deploy(
            &app,
            "v2",
            &[
                ("BatchTimeout", "3"),
                (
                    "UpdateStrategy",
                    r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"auto","batchWaitTime":0}}"#,
                ),
            ],
            &[("APP_VERSION", "v2"), ("NEVER_READY", "1")],
        )
        .await;
    let info = cluster.finished(&order, Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert_eq!(info["Status"], 3, "failed: {info:#}");
    assert!(
        took >= Duration::from_secs(3),
        "not before the batch timeout: {took:?}"
    );
    let codes = task_error_codes(&info);
    assert_eq!(codes, ["BatchTimeout"], "failed on BatchTimeout: {info:#}");

    for inst in &old {
        assert!(
            alive(inst.pid.unwrap()),
            "old instance {} still runs",
            inst.name
        );
        assert_eq!(version(inst.port).as_deref(), Some("v1"), "{inst:?}");
        assert_eq!(get(inst.port, "/ready").map(|r| r.0), Some(200));
    }
    let new: Vec<Inst> = cluster
        .instances(&app)
        .into_iter()
        .filter(|i| old.iter().all(|o| o.revision != i.revision))
        .collect();
    for inst in &new {
        assert_eq!(
            get(inst.port, "/ready").map(|r| r.0),
            Some(503),
            "the new one never got ready: {inst:?}"
        );
    }
}

/// 3. An instance that stops answering its liveness probe is restarted (a new process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_failing_its_liveness_probe_is_restarted() {
    let cluster = start("liveness");
    let liveness = r#"{"httpGet":{"path":"/healthz","port":8080},"initialDelaySeconds":0,"periodSeconds":1,"timeoutSeconds":1,"successThreshold":1,"failureThreshold":2}"#;
    let (app, order) = cluster
        .insert(
            "liveness-app",
            1,
            &[("Liveness", liveness)],
            &[("APP_VERSION", "v1"), ("LIVENESS_FAIL_AFTER_SECONDS", "2")],
        )
        .await;
    assert_eq!(
        cluster.finished(&order, Duration::from_secs(30)).await["Status"],
        2
    );
    let first = cluster.instances(&app);
    assert_eq!(first.len(), 1);
    let (name, pid) = (first[0].name.clone(), first[0].pid.unwrap());
    // Without a readiness probe the instance counts as ready once started: give the program a
    // moment to listen.
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(first[0].port, "/healthz").is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(first[0].port, "/healthz").map(|r| r.0),
        Some(200),
        "healthy at first"
    );

    let after = cluster
        .wait_instances(
            &app,
            Duration::from_secs(20),
            "a restart with a new process",
            |insts| {
                insts.len() == 1
                    && insts[0].restarts >= 1
                    && insts[0].pid.is_some_and(|p| p != pid && alive(p))
            },
        )
        .await;
    let inst = &after[0];
    assert_eq!(inst.name, name, "the same instance, restarted");
    assert!(!alive(pid), "the unhealthy process was killed");
    // The restarted process serves (and is healthy again, for its first 2 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while version(inst.port).is_none() {
        assert!(
            Instant::now() < deadline,
            "the restarted instance does not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The run that ended is kept as the previous one (what `logs --previous` reads), the
    // current run has a log of its own.
    let logs = cluster
        .instances_dir()
        .join(&app)
        .join(&inst.revision)
        .join(&inst.name)
        .join("logs");
    let read = |file: &str| std::fs::read_to_string(logs.join(file)).unwrap();
    let (previous, current) = (read("previous/stdout.log"), read("stdout.log"));
    assert!(
        previous.contains("listening on") && current.contains("listening on"),
        "a run in each log: {previous} / {current}"
    );
}

/// 4. Stopping an instance runs its PreStop hook, then SIGTERM; an instance that takes longer than
///    TerminateGracePeriod is killed when it runs out, a quicker one exits on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prestop_runs_and_the_grace_period_is_respected() {
    let cluster = start("grace");
    let marks = cluster.dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    // The hooks run as the instances' user (`nobody` when the test runs as root).
    std::fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let prestop = |app: &str| {
        json!({"exec": {"command": ["sh", "-c", format!("date +%s%3N > {}/{app}-$HOSTNAME", marks.display())]}})
            .to_string()
    };
    // (name, TerminateGracePeriod, TERM_DELAY_SECONDS)
    let slow_hook = prestop("slow");
    let quick_hook = prestop("quick");
    let (slow, slow_order) = cluster
        .insert(
            "slow-app",
            1,
            &[("PreStop", &slow_hook), ("TerminateGracePeriod", "2")],
            &[("APP_VERSION", "v1"), ("TERM_DELAY_SECONDS", "30")],
        )
        .await;
    let (quick, quick_order) = cluster
        .insert(
            "quick-app",
            1,
            &[("PreStop", &quick_hook), ("TerminateGracePeriod", "20")],
            &[("APP_VERSION", "v1"), ("TERM_DELAY_SECONDS", "0.5")],
        )
        .await;
    for order in [&slow_order, &quick_order] {
        assert_eq!(
            cluster.finished(order, Duration::from_secs(30)).await["Status"],
            2
        );
    }
    let old_slow = cluster.instances(&slow).remove(0);
    let old_quick = cluster.instances(&quick).remove(0);

    // A new version replaces (and so stops) each instance.
    let slow_order = cluster
        .deploy(
            &slow,
            "v2",
            &[],
            &[("APP_VERSION", "v2"), ("TERM_DELAY_SECONDS", "30")],
        )
        .await;
    let quick_order = cluster
        .deploy(
            &quick,
            "v2",
            &[],
            &[("APP_VERSION", "v2"), ("TERM_DELAY_SECONDS", "0.5")],
        )
        .await;
    // Record when each old process ends.
    let mut ended: BTreeMap<&str, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while ended.len() < 2 {
        for (app, inst) in [("slow", &old_slow), ("quick", &old_quick)] {
            if !ended.contains_key(app) && !alive(inst.pid.unwrap()) {
                ended.insert(app, now_ms());
            }
        }
        assert!(
            Instant::now() < deadline,
            "old instances not stopped within 40 s: {ended:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for order in [&slow_order, &quick_order] {
        assert_eq!(
            cluster.finished(order, Duration::from_secs(30)).await["Status"],
            2
        );
    }

    for (app, app_id, inst, grace_ms) in [
        ("slow", &slow, &old_slow, 2000u64),
        ("quick", &quick, &old_quick, 20_000),
    ] {
        let mark = marks.join(format!("{app}-{}", inst.name));
        let prestop_at: u64 = std::fs::read_to_string(&mark)
            .unwrap_or_else(|e| panic!("{app}: PreStop did not run ({}): {e}", mark.display()))
            .trim()
            .parse()
            .unwrap();
        let took = ended[app].saturating_sub(prestop_at);
        let log_file = cluster
            .data_dir()
            .join("local/logs")
            .join(app_id)
            .join(&inst.name)
            .join("stdout.log");
        let log = std::fs::read_to_string(&log_file)
            .unwrap_or_else(|e| panic!("{}: {e}", log_file.display()));
        assert!(
            log.contains("terminating"),
            "{app}: SIGTERM was sent: {log}"
        );
        if app == "slow" {
            assert!(
                (grace_ms - 300..grace_ms + 3000).contains(&took),
                "slow: killed when the {grace_ms} ms grace period ran out, took {took} ms"
            );
            assert!(
                !log.contains("terminated"),
                "slow: SIGKILLed before it finished: {log}"
            );
        } else {
            assert!(
                took < 5000,
                "quick: exited on its own well within the grace period, took {took} ms"
            );
            assert!(
                log.contains("terminated"),
                "quick: finished its own shutdown: {log}"
            );
        }
    }
}

/// 5. SIGKILL of edasd in the middle of a release leaves the instances running; a new edasd on the
///    same data directory adopts them (same pids) and finishes the release without extra instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edasd_leaves_instances_running_and_a_new_one_finishes_the_release() {
    let mut cluster = start("adopt");
    let (app, order) = cluster
        .insert(
            "adopt-app",
            3,
            &[("Readiness", READINESS)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        cluster.finished(&order, Duration::from_secs(30)).await["Status"],
        2
    );
    let v1_revision = cluster.instances(&app)[0].revision.clone();

    let order = cluster
        .deploy(
            &app,
            "v2",
            &[(
                "UpdateStrategy",
                r#"{"type":"BatchUpdate","batchUpdate":{"batch":3,"releaseType":"auto","batchWaitTime":0}}"#,
            )],
            &[("APP_VERSION", "v2"), ("READY_AFTER_SECONDS", "2")],
        )
        .await;
    // Kill edasd once the first new instance is up, while the release is under way.
    cluster
        .wait_instances(
            &app,
            Duration::from_secs(30),
            "a v2 instance answering",
            |insts| {
                insts
                    .iter()
                    .any(|i| i.revision != v1_revision && version(i.port).as_deref() == Some("v2"))
            },
        )
        .await;
    let status = cluster.order(&order).await["Status"].as_i64().unwrap();
    assert!([1, 9].contains(&status), "mid-release: {status}");
    cluster.kill_edasd();

    let at_kill = cluster.instances(&app);
    let pids: BTreeMap<String, i32> = at_kill
        .iter()
        .filter_map(|i| Some((i.name.clone(), i.pid?)))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    for inst in &at_kill {
        let pid = pids[&inst.name];
        assert!(alive(pid), "{} survives edasd", inst.name);
        assert!(version(inst.port).is_some(), "{} still answers", inst.name);
    }

    cluster.spawn();
    let info = cluster.finished(&order, Duration::from_secs(60)).await;
    assert_eq!(
        info["Status"], 2,
        "the new edasd finished the release: {info:#}"
    );
    let done = cluster.instances(&app);
    assert_eq!(done.len(), 3, "no doubled instances: {done:#?}");
    for inst in &done {
        assert_eq!(version(inst.port).as_deref(), Some("v2"), "{inst:?}");
        if let Some(pid) = pids.get(&inst.name) {
            assert_eq!(
                inst.pid,
                Some(*pid),
                "{} was adopted, not restarted",
                inst.name
            );
            assert_eq!(inst.restarts, 0, "{inst:?}");
        }
    }
    assert!(
        done.iter().any(|i| pids.contains_key(&i.name)),
        "an instance of the killed edasd's release is among the final ones"
    );
    assert_eq!(
        cluster.tagged_processes(),
        done.iter().filter_map(|i| i.pid).collect(),
        "exactly the 3 instance processes run"
    );
}

/// `[local.jdk]`: a FatJar with a configured `JDK` runs that java binary (`java <options> -jar
/// <package>`); a `JDK` value the configuration does not map is refused, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jdk_value_runs_the_configured_java_and_an_unmapped_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = start_with("jdk", |dir, tag| {
        // A stand-in "java" that records its arguments and runs the test app.
        let java = dir.join("java8");
        let exe = std::env::current_exe().unwrap();
        std::fs::write(
            &java,
            format!(
                "#!/bin/sh\necho \"$@\" > \"$HOME/java-args\"\nexec '{}' testapp_entry '{tag}' --exact --nocapture\n",
                exe.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The package is a file:// URL under the test's directory.
        format!(
            "allowed_host_paths = [\"{}\"]\n[local.jdk]\n\"Open JDK 8\" = \"{}\"\n",
            dir.display(),
            java.display()
        )
    });
    let package = cluster.dir.path().join("app.jar");
    std::fs::write(&package, "not really a jar").unwrap();
    let url = format!("file://{}", package.display());
    let envs =
        json!([{"name": RUN_TESTAPP, "value": "1"}, {"name": "APP_VERSION", "value": "jar-1"}])
            .to_string();
    let insert = |name: &'static str, jdk: &'static str| {
        let (url, envs) = (url.clone(), envs.clone());
        let cluster = &cluster;
        async move {
            let body = cluster
                .call(
                    "POST",
                    "/pop/v5/k8s/acs/create_k8s_app",
                    "InsertK8sApplication",
                    &[
                        ("AppName", name),
                        ("ClusterId", "local"),
                        ("PackageType", "FatJar"),
                        ("PackageUrl", &url),
                        ("PackageVersion", "1"),
                        ("JDK", jdk),
                        (
                            "JavaStartUpConfig",
                            r#"{"InitialHeapSize":{"original":64,"startup":"-Xms64m"}}"#,
                        ),
                        ("Replicas", "1"),
                        ("Envs", &envs),
                    ],
                )
                .await;
            let info = &body["ApplicationInfo"];
            (
                info["AppId"].as_str().unwrap().to_owned(),
                info["ChangeOrderId"].as_str().unwrap().to_owned(),
            )
        }
    };

    let (app, order) = insert("jar-app", "Open JDK 8").await;
    let info = cluster.finished(&order, Duration::from_secs(30)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    let inst = cluster.instances(&app).remove(0);
    // Without a readiness probe the instance counts as ready once started: give the program a
    // moment to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while version(inst.port).is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version(inst.port).as_deref(), Some("jar-1"));
    let args = std::fs::read_to_string(
        cluster
            .instances_dir()
            .join(&app)
            .join(&inst.revision)
            .join(&inst.name)
            .join("work/java-args"),
    )
    .unwrap();
    assert!(
        args.contains("-Xms64m -jar ") && args.trim_end().ends_with("app.jar"),
        "java <JavaStartUpConfig> -jar <package>: {args}"
    );

    // A JDK value without a configured java is refused when the request arrives, naming it;
    // nothing is stored.
    let refused = cluster
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
            &[
                ("AppName", "jar-app-7"),
                ("ClusterId", "local"),
                ("PackageType", "FatJar"),
                ("PackageUrl", &url),
                ("PackageVersion", "1"),
                ("JDK", "Open JDK 7"),
                ("Replicas", "1"),
            ],
        )
        .await;
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(refused.1["Code"], "RuntimeRefused", "{}", refused.1);
    assert!(
        refused.1["Message"]
            .as_str()
            .unwrap()
            .contains("`JDK` `Open JDK 7` has no java binary configured"),
        "names the JDK value: {}",
        refused.1
    );
}

/// Issue 9: a release after a ConfigMap update, then a rollback: the instances of each revision
/// saw their own revision's contents (read through the running program).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_revision_runs_with_its_own_config_map_contents() {
    let cluster = start("config-copies");
    let config_map = |action: &'static str, value: &'static str| {
        let data = json!({ "greeting": value }).to_string();
        let cluster = &cluster;
        async move {
            let (method, path) = if action == "CreateK8sConfigMap" {
                ("POST", "/pop/v5/k8s/acs/k8s_config_map")
            } else {
                ("PUT", "/pop/v5/k8s/acs/k8s_config_map")
            };
            cluster
                .call_form(
                    method,
                    path,
                    action,
                    &[
                        ("ClusterId", "local"),
                        ("Namespace", "default"),
                        ("Name", "conf"),
                        ("Data", &data),
                    ],
                )
                .await;
        }
    };
    config_map("CreateK8sConfigMap", "hello-v1").await;
    let envs = json!([
        {"name": RUN_TESTAPP, "value": "1"},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "greeting"}}},
    ])
    .to_string();
    let mut params: Vec<(&str, String)> = cluster
        .app_params(&[])
        .into_iter()
        .filter(|(k, _)| *k != "Envs")
        .collect();
    params.push(("Envs", envs));
    let mut insert: Vec<(&str, &str)> = vec![
        ("AppName", "configured"),
        ("ClusterId", "local"),
        ("Replicas", "2"),
        (
            "Readiness",
            r#"{"httpGet":{"path":"/ready","port":8080},"periodSeconds":1}"#,
        ),
    ];
    insert.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
    let created = cluster
        .call(
            "POST",
            "/pop/v5/k8s/acs/create_k8s_app",
            "InsertK8sApplication",
            &insert,
        )
        .await;
    let app_id = created["ApplicationInfo"]["AppId"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = created["ApplicationInfo"]["ChangeOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cluster.finished(&order, Duration::from_secs(60)).await["Status"],
        2
    );

    let greetings = |cluster: &Cluster, revision: &str| -> Vec<String> {
        cluster
            .instances(&app_id)
            .iter()
            .filter(|i| i.revision == revision)
            .map(|i| {
                get(i.port, "/env/GREETING")
                    .map(|(_, body)| body)
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(greetings(&cluster, "1"), ["hello-v1", "hello-v1"]);

    // The ConfigMap changes; a deploy with no other change releases it (a new revision whose
    // instances read a copy of the new contents) and the old instances are replaced.
    config_map("UpdateK8sConfigMap", "hello-v2").await;
    let deployed = cluster
        .call(
            "POST",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeployK8sApplication",
            &[("AppId", &app_id), ("ChangeOrderDesc", "pick up conf")],
        )
        .await;
    let deploy_order = deployed["ChangeOrderId"].as_str().unwrap().to_owned();
    assert_eq!(
        cluster
            .finished(&deploy_order, Duration::from_secs(60))
            .await["Status"],
        2
    );
    cluster
        .wait_instances(
            &app_id,
            Duration::from_secs(30),
            "only revision 2 runs",
            |insts| !insts.is_empty() && insts.iter().all(|i| i.revision == "2"),
        )
        .await;
    assert_eq!(greetings(&cluster, "2"), ["hello-v2", "hello-v2"]);

    // Rolling the release back brings back the contents revision 1 was released with, although
    // the ConfigMap itself still says hello-v2.
    let rolled = cluster
        .call(
            "PUT",
            "/pop/v5/oam/changeorder/rollback",
            "RollbackChangeOrder",
            &[("ChangeOrderId", &deploy_order)],
        )
        .await;
    let rollback = rolled["Data"]["ChangeOrderId"].as_str().unwrap().to_owned();
    assert_eq!(
        cluster.finished(&rollback, Duration::from_secs(60)).await["Status"],
        2
    );
    cluster
        .wait_instances(
            &app_id,
            Duration::from_secs(30),
            "only revision 1 runs",
            |insts| insts.len() == 2 && insts.iter().all(|i| i.revision == "1"),
        )
        .await;
    assert_eq!(greetings(&cluster, "1"), ["hello-v1", "hello-v1"]);
}
