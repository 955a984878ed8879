//! Black-box tests of `edasctl render`: the real binary, the seed document's examples in, the
//! Kubernetes fields a Kubernetes user would look for out; invalid input exits 2 with the EDAS
//! error shape on stderr.

use assert_cmd::Command;
use edas_render::{Object, parse_yaml};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

fn edasctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edasctl"))
}

/// The base application's parameters plus `extra`, as the JSON object `--params` reads.
fn params(extra: &[(&str, &str)]) -> String {
    let mut m = Map::new();
    for (k, v) in [
        ("AppName", "demo"),
        ("ClusterId", "local"),
        ("ImageUrl", "registry.example.com/team/app:v1"),
        ("Replicas", "2"),
    ]
    .iter()
    .chain(extra)
    {
        m.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    Value::Object(m).to_string()
}

/// Runs `edasctl render --params -` and parses the YAML it prints.
fn render(extra: &[(&str, &str)]) -> (Deployment, Vec<Service>) {
    let out = edasctl()
        .args(["render", "--params", "-"])
        .write_stdin(params(extra))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{extra:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    let mut deployment = None;
    let mut services = Vec::new();
    for o in parse_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")) {
        match o {
            Object::Deployment(d) => deployment = Some(*d),
            Object::Service(s) => services.push(*s),
            Object::StatefulSet(s) => panic!("a StatefulSet was not asked for: {s:?}"),
        }
    }
    (deployment.expect("a Deployment"), services)
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn app(d: &Deployment) -> &Container {
    &pod(d).containers[0]
}

/// Runs with invalid input and returns the one JSON error object on stderr.
fn refused(input: &str) -> Value {
    let out = edasctl()
        .args(["render", "--params", "-"])
        .write_stdin(input.to_owned())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{input}");
    assert!(out.stdout.is_empty(), "nothing is printed on stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object: {stderr}");
    serde_json::from_str(lines[0]).unwrap()
}

const HTTP_PROBE: &str = r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"httpGet": {"path": "/consumer","port": 8080,"scheme": "HTTP","httpHeaders": [{"name": "test","value": "testvalue"}]}}"#;
const TCP_PROBE: &str = r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"tcpSocket":{"host":"", "port":8080}}"#;

#[test]
fn probes() {
    let (d, _) = render(&[
        ("Readiness", HTTP_PROBE),
        ("Liveness", TCP_PROBE),
        ("Startup", HTTP_PROBE),
    ]);
    let c = app(&d);
    let readiness = c.readiness_probe.as_ref().unwrap();
    let get = readiness.http_get.as_ref().unwrap();
    assert_eq!(get.path.as_deref(), Some("/consumer"));
    assert_eq!(get.port, IntOrString::Int(8080));
    assert_eq!(get.http_headers.as_ref().unwrap()[0].value, "testvalue");
    assert_eq!(
        (readiness.initial_delay_seconds, readiness.failure_threshold),
        (Some(5), Some(3))
    );
    let liveness = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        liveness.tcp_socket.as_ref().unwrap().port,
        IntOrString::Int(8080)
    );
    assert!(c.startup_probe.as_ref().unwrap().http_get.is_some());
}

#[test]
fn env() {
    let (d, _) = render(&[(
        "Envs",
        r#"[{"name":"x1","value":"y1"},{"name":"x2","valueFrom":{"configMapKeyRef":{"name":"my-config","key":"y2"}}},{"name":"x3","valueFrom":{"secretKeyRef":{"name":"my-secret","key":"y3"}}}]"#,
    )]);
    let env = app(&d).env.as_ref().unwrap();
    assert_eq!(env[0].value.as_deref(), Some("y1"));
    let cm = env[1]
        .value_from
        .as_ref()
        .unwrap()
        .config_map_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((cm.name.as_str(), cm.key.as_str()), ("my-config", "y2"));
    let secret = env[2]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("my-secret", "y3")
    );
}

#[test]
fn hooks() {
    let (d, _) = render(&[
        ("PostStart", r#"{"exec":{"command":["cat","/etc/group"]}}"#),
        ("PreStop", r#"{ "exec":{ "command":[ "ls", "/" ] } }"#),
    ]);
    let lifecycle = app(&d).lifecycle.as_ref().unwrap();
    let post = lifecycle
        .post_start
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap();
    assert_eq!(
        post.command.as_deref(),
        Some(&["cat".to_owned(), "/etc/group".to_owned()][..])
    );
    let pre = lifecycle.pre_stop.as_ref().unwrap().exec.as_ref().unwrap();
    assert_eq!(
        pre.command.as_deref(),
        Some(&["ls".to_owned(), "/".to_owned()][..])
    );
}

#[test]
fn volumes() {
    let (d, _) = render(&[
        (
            "PvcMountDescs",
            r#"[{"pvcName":"nas-pvc-1","mountPaths":[{"mountPath":"/usr/share/nginx/data"},{"mountPath":"/usr/share/nginx/html","readOnly":true}]}]"#,
        ),
        (
            "ConfigMountDescs",
            r#"[ { "name": "nginx-config", "type": "ConfigMap", "mountPath": "/etc/nginx" }, { "name": "tls-secret", "type": "Secret", "mountPath": "/etc/ssh" } ]"#,
        ),
        (
            "EmptyDirs",
            r#"[{"mountPath":"/app-log","subPathExpr":"$(POD_IP)"},{"readOnly":true,"mountPath":"/etc/cache"}]"#,
        ),
        (
            "LocalVolume",
            r#"[{"type":"","nodePath":"/localfiles","mountPath":"/app/files"},{"type":"Directory","nodePath":"/mnt","mountPath":"/app/storage"}]"#,
        ),
        ("NasId", "nfs.example.com"),
        (
            "MountDescs",
            r#"[{"nasPath": "/k8s","mountPath": "/mnt"},{"nasPath": "/files","mountPath": "/app/nas"}]"#,
        ),
    ]);
    let volumes = pod(&d).volumes.as_ref().unwrap();
    let mounts = app(&d).volume_mounts.as_ref().unwrap();
    // Every mount names a volume of the pod, and the mount path leads to the volume the
    // parameter asked for.
    let volume_at = |path: &str| {
        let m = mounts
            .iter()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("no mount at {path}"));
        (m, volumes.iter().find(|v| v.name == m.name).unwrap())
    };
    let (m, v) = volume_at("/usr/share/nginx/html");
    assert_eq!(m.read_only, Some(true));
    assert_eq!(
        v.persistent_volume_claim.as_ref().unwrap().claim_name,
        "nas-pvc-1"
    );
    let (_, v) = volume_at("/etc/nginx");
    assert_eq!(v.config_map.as_ref().unwrap().name, "nginx-config");
    let (_, v) = volume_at("/etc/ssh");
    assert_eq!(
        v.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("tls-secret")
    );
    let (m, v) = volume_at("/app-log");
    assert_eq!(m.sub_path_expr.as_deref(), Some("$(POD_IP)"));
    assert!(v.empty_dir.is_some());
    let (_, v) = volume_at("/app/storage");
    let host = v.host_path.as_ref().unwrap();
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/mnt", Some("Directory"))
    );
    let (_, v) = volume_at("/app/nas");
    let nfs = v.nfs.as_ref().unwrap();
    assert_eq!(
        (nfs.server.as_str(), nfs.path.as_str()),
        ("nfs.example.com", "/files")
    );
}

#[test]
fn scheduling() {
    let (d, _) = render(&[
        (
            "CustomAffinity",
            r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"beta.kubernetes.io/arch","operator":"NotIn","values":["arm64","arm32"]}]}]},"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":5,"preference":{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}}]},"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"namespaces":["default"],"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"NotIn","values":["edas-test-app"]}]}}]},"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"podAffinityTerm":{"namespaces":["default"],"topologyKey":"failure-domain.beta.kubernetes.io/zone","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"In","values":["edas-test-app-2"]}]}},"weight":15}]}}"#,
        ),
        (
            "CustomTolerations",
            r#"[{"key":"edas-taint-key2","operator":"Exists","effect":"NoExecute","tolerationSeconds":50},{"key":"edas-taint-key","operator":"Equal","value":"edas-taint-value","effect":"PreferNoSchedule"}]"#,
        ),
        ("RuntimeClassName", "runc"),
        ("TerminateGracePeriod", "120"),
    ]);
    let p = pod(&d);
    let affinity = p.affinity.as_ref().unwrap();
    let anti = affinity
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(anti[0].weight, 15);
    assert!(affinity.pod_affinity.is_some() && affinity.node_affinity.is_some());
    let tolerations = p.tolerations.as_ref().unwrap();
    assert_eq!(tolerations[0].toleration_seconds, Some(50));
    assert_eq!(tolerations[1].value.as_deref(), Some("edas-taint-value"));
    assert_eq!(p.runtime_class_name.as_deref(), Some("runc"));
    assert_eq!(p.termination_grace_period_seconds, Some(120));

    let (d, _) = render(&[
        ("DeployAcrossZones", "true"),
        ("DeployAcrossNodes", "true"),
        ("ImagePlatforms", "linux/arm64,linux/amd64"),
    ]);
    let keys: Vec<String> = pod(&d)
        .topology_spread_constraints
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.topology_key.clone())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    let node = pod(&d)
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let expr = &node
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0]
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(expr.key, "kubernetes.io/arch");
}

#[test]
fn sidecars_and_init_containers() {
    let (d, _) = render(&[
        (
            "Sidecars",
            r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHRhaWwKICAtICctZicKICAtIC9kZXYvbnVsbAppbWFnZTogJ2J1c3lib3g6bGF0ZXN0JwpuYW1lOiBidXN5Ym94Cg==" } ]"#,
        ),
        (
            "InitContainers",
            r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHNsZWVwCiAgLSAnNjAnCmltYWdlOiAnYnVzeWJveDpsYXRlc3QnCm5hbWU6IGluaXQtYnVzeWJveAo=" } ]"#,
        ),
    ]);
    let p = pod(&d);
    assert_eq!(p.containers.len(), 2);
    assert_eq!(p.containers[1].name, "busybox");
    assert_eq!(p.containers[1].image.as_deref(), Some("busybox:latest"));
    let init = &p.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, "init-busybox");
    assert_eq!(
        init.command.as_deref(),
        Some(&["sleep".to_owned(), "60".to_owned()][..])
    );
}

#[test]
fn security_context() {
    let (d, _) = render(&[(
        "SecurityContext",
        r#"{"yamlEncoded":"cnVuQXNVc2VyOiAwCnJ1bkFzR3JvdXA6IDA="}"#,
    )]);
    let sc = app(&d).security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(0), Some(0)));
}

#[test]
fn services_resources_and_flags() {
    let out = edasctl()
        .args(["render", "--revision", "7", "--replicas", "1", "--params", "-"])
        .write_stdin(params(&[
            (
                "ServiceConfigs",
                r#"[{"name": "test-svc-create","serviceType":"ClusterIP","portMappings":[{"servicePort": {"targetPort":8080,"port":80,"protocol":"TCP"}}]}]"#,
            ),
            ("LimitmCpu", "1500"),
            ("RequestsmCpu", "250"),
            ("LimitMem", "512"),
        ]))
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("\n---\n"), "multi-document: {yaml}");
    let objects = parse_yaml(&yaml).unwrap();
    let Object::Deployment(d) = &objects[0] else {
        panic!("the Deployment comes first")
    };
    assert_eq!(d.metadata.name.as_deref(), Some("demo-r7"));
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    let r = app(d).resources.as_ref().unwrap();
    assert_eq!(r.limits.as_ref().unwrap()["cpu"].0, "1500m");
    assert_eq!(r.limits.as_ref().unwrap()["memory"].0, "512Mi");
    assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, "250m");
    assert!(!r.requests.as_ref().unwrap().contains_key("memory"));
    let Object::Service(s) = &objects[1] else {
        panic!("then the Service")
    };
    assert_eq!(s.metadata.name.as_deref(), Some("test-svc-create"));
    let spec = s.spec.as_ref().unwrap();
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
    assert_eq!(
        spec.selector.as_ref().unwrap().get("edas.oam.acname"),
        Some(&"demo".to_owned())
    );
}

#[test]
fn params_from_a_file() {
    let dir = std::env::temp_dir().join(format!("edasctl-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("params.json");
    std::fs::write(&file, params(&[])).unwrap();
    let out = edasctl()
        .args(["render", "--params"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("kind: Deployment")
    );
    // A file that cannot be read is an I/O failure (1), not invalid parameters (2).
    let out = edasctl()
        .args(["render", "--params", "/nonexistent/params.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/params.json"));
}

#[test]
fn invalid_parameters_exit_2_with_every_violation() {
    let e = refused(r#"{"AppName":"1demo","Replicas":"x","UpdateStrategy":"{}"}"#);
    assert_eq!(e["Code"], "MissingParameter");
    let named: Vec<&str> = e["Violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Parameter"].as_str().unwrap())
        .collect();
    for p in [
        "AppName",
        "ClusterId",
        "Replicas",
        "UpdateStrategy",
        "ImageUrl",
    ] {
        assert!(named.contains(&p), "{p} missing from {e}");
        assert!(e["Message"].as_str().unwrap().contains(p), "{e}");
    }
    let unknown = e["Violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["Parameter"] == "UpdateStrategy")
        .unwrap();
    assert_eq!(unknown["Code"], "InvalidParameter.Unknown");
}

#[test]
fn malformed_input_exits_2_naming_the_problem() {
    let e = refused(r#"{"AppName":"demo","ClusterId":"local","Replicas":2}"#);
    assert_eq!(e["Code"], "InvalidParameter");
    assert_eq!(e["Violations"][0]["Parameter"], "Replicas");
    let e = refused("not json");
    assert_eq!(e["Code"], "InvalidParameter");
    let e = refused(r#"{"AppName":"a","AppName":"b","ClusterId":"local"}"#);
    assert!(
        e["Message"].as_str().unwrap().contains("more than once"),
        "{e}"
    );
}

#[test]
fn what_kubernetes_cannot_run_exits_2() {
    // A command alone runs only on the local runtime.
    let e = refused(&json!({"AppName":"a","ClusterId":"local","Command":"/bin/app"}).to_string());
    assert_eq!(e["Code"], "InvalidParameter");
    assert_eq!(e["Violations"][0]["Parameter"], "ImageUrl");
    let out = edasctl()
        .args(["render", "--revision", "R1", "--params", "-"])
        .write_stdin(params(&[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["Violations"][0]["Parameter"], "--revision");
}

/// `edasctl completion zsh | head` and `edasctl render … | head`: a reader that goes away ends
/// the command quietly (no panic, no backtrace, no error line).
#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::process::{Command as Std, Stdio};
    for args in [vec!["completion", "zsh"], vec!["render", "--params", "-"]] {
        let mut child = Std::new(env!("CARGO_BIN_EXE_edasctl"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader closes before edasctl writes a byte.
        drop(child.stdout.take());
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(params(&[]).as_bytes());
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: {:?}, stderr: {stderr}",
            out.status
        );
    }
}

/// `WorkloadType=StatefulSet` renders the headless Service and one StatefulSet (partition 0)
/// instead of a Deployment.
#[test]
fn a_statefulset_application_renders_its_statefulset_and_headless_service() {
    let out = edasctl()
        .args(["render", "--params", "-"])
        .write_stdin(params(&[("WorkloadType", "StatefulSet")]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let objects = parse_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let Object::Service(headless) = &objects[0] else {
        panic!("the headless Service first: {yaml}")
    };
    assert_eq!(headless.metadata.name.as_deref(), Some("demo-headless"));
    assert_eq!(
        headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let Object::StatefulSet(set) = &objects[1] else {
        panic!("then the StatefulSet: {yaml}")
    };
    let spec = set.spec.as_ref().unwrap();
    assert_eq!(set.metadata.name.as_deref(), Some("demo"));
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.service_name.as_deref(), Some("demo-headless"));
    assert!(!objects.iter().any(|o| matches!(o, Object::Deployment(_))));
}
