//! Each example of the seed document (DeployK8sApplication) and of the InsertK8sApplication
//! reference, applied alone through `edas_spec::apply` exactly as the API applies it, rendered
//! and snapshotted as YAML; every rendering must parse back into the same k8s-openapi objects.
//! Then the rules rendering itself decides, asserted directly.

use edas_spec::model::{Artifact, EmptyDirMount, LogCollection};
use edas_spec::{AppSpec, Operation, Params, apply};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{Object, RenderError, Rendered, parse_yaml, render};

const REVISION: &str = "2";

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

const BASE: [(&str, &str); 4] = [
    ("AppName", "demo"),
    ("ClusterId", "local"),
    ("ImageUrl", "registry.example.com/team/app:v1"),
    ("Replicas", "3"),
];

/// The application the examples are applied to: image-based, 3 replicas.
fn base() -> AppSpec {
    apply(Operation::InsertK8sApplication, None, &params(&BASE))
        .expect("base application")
        .spec
}

/// DeployK8sApplication with `pairs` on the base application.
fn deployed(pairs: &[(&str, &str)]) -> AppSpec {
    let mut all = vec![("AppId", "app-1")];
    all.extend_from_slice(pairs);
    match apply(
        Operation::DeployK8sApplication,
        Some(&base()),
        &params(&all),
    ) {
        Ok(c) => c.spec,
        Err(v) => panic!("{pairs:?} was refused: {v}"),
    }
}

/// InsertK8sApplication with the base parameters overridden by `pairs`.
fn inserted(pairs: &[(&str, &str)]) -> AppSpec {
    let mut all: Vec<(&str, &str)> = BASE
        .iter()
        .copied()
        .filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k))
        .collect();
    all.extend_from_slice(pairs);
    match apply(Operation::InsertK8sApplication, None, &params(&all)) {
        Ok(c) => c.spec,
        Err(v) => panic!("{pairs:?} was refused: {v}"),
    }
}

/// Renders with the application's own replica count and checks the YAML round trip.
fn rendered(spec: &AppSpec) -> (Rendered, String) {
    let r = render(spec, REVISION, spec.effective_replicas()).expect("renders");
    let yaml = r.to_yaml().expect("prints");
    let back = parse_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, r.objects(), "YAML does not parse back:\n{yaml}");
    (r, yaml)
}

fn snap_deploy(name: &str, pairs: &[(&str, &str)]) -> Rendered {
    let (r, yaml) = rendered(&deployed(pairs));
    insta::assert_snapshot!(name, yaml);
    r
}

fn snap_insert(name: &str, pairs: &[(&str, &str)]) -> Rendered {
    let (r, yaml) = rendered(&inserted(pairs));
    insta::assert_snapshot!(name, yaml);
    r
}

fn app_container(r: &Rendered) -> &Container {
    &pod(r).containers[0]
}

fn pod(r: &Rendered) -> &k8s_openapi::api::core::v1::PodSpec {
    r.deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

// === The seed document's examples (DeployK8sApplication), one parameter at a time ===

#[test]
fn base_application() {
    let r = snap_deploy("base", &[]);
    let d = r.deployment.spec.as_ref().unwrap();
    assert_eq!(r.deployment.metadata.name.as_deref(), Some("demo-r2"));
    assert_eq!(d.replicas, Some(3));
    assert_eq!(d.min_ready_seconds, None);
    let c = app_container(&r);
    assert_eq!(c.name, "demo");
    assert_eq!(c.resources, None, "unbounded: no limits or requests");
}

#[test]
fn seed_hooks() {
    let r = snap_deploy(
        "pre_stop_exec",
        &[("PreStop", r#"{ "exec":{ "command":[ "ls", "/" ] } }"#)],
    );
    let pre = app_container(&r)
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref();
    assert_eq!(
        pre.unwrap().exec.as_ref().unwrap().command.as_deref(),
        Some(&["ls".to_owned(), "/".to_owned()][..])
    );
    snap_deploy(
        "post_start_exec",
        &[("PostStart", r#"{"exec":{"command":["cat","/etc/group"]}}"#)],
    );
    snap_deploy(
        "post_start_exec_value",
        &[("PostStart", r#"{ "exec":{ "command":[ "ls", "/" ] } }"#)],
    );
}

#[test]
fn seed_envs() {
    let r = snap_deploy(
        "envs",
        &[(
            "Envs",
            r#"[{"name":"x1","value":"y1"},{"name":"x2","valueFrom":{"configMapKeyRef":{"name":"my-config","key":"y2"}}},{"name":"x3","valueFrom":{"secretKeyRef":{"name":"my-secret","key":"y3"}}}]"#,
        )],
    );
    assert_eq!(app_container(&r).env.as_ref().unwrap().len(), 3);
}

#[test]
fn seed_env_froms() {
    // The seed's own EnvFroms example is an EnvVar (edas-spec refuses it); this is its shape.
    let r = snap_deploy(
        "env_froms",
        &[(
            "EnvFroms",
            r#"[{"configMapRef":{"name":"appconf"}},{"secretRef":{"name":"appsecret"},"prefix":"S_"}]"#,
        )],
    );
    assert_eq!(app_container(&r).env_from.as_ref().unwrap().len(), 2);
}

#[test]
fn seed_image_and_tag() {
    let r = snap_deploy("image_tag", &[("ImageTag", "latest")]);
    assert_eq!(
        app_container(&r).image.as_deref(),
        Some("registry.example.com/team/app:latest")
    );
    snap_deploy(
        "image",
        &[("Image", "registry-vpc.cn-beijing.aliyuncs.com/t****/app:v1")],
    );
}

#[test]
fn seed_batch_wait_time_is_min_ready_seconds() {
    let r = snap_deploy("batch_wait_time_0", &[("BatchWaitTime", "0")]);
    assert_eq!(r.deployment.spec.as_ref().unwrap().min_ready_seconds, None);
    let r = snap_deploy("batch_wait_time_30", &[("BatchWaitTime", "30")]);
    assert_eq!(
        r.deployment.spec.as_ref().unwrap().min_ready_seconds,
        Some(30)
    );
}

#[test]
fn seed_command_and_args() {
    let r = snap_deploy("command", &[("Command", "ls")]);
    assert_eq!(
        app_container(&r).command.as_deref(),
        Some(&["ls".to_owned()][..])
    );
    let r = snap_deploy("args", &[("Args", r#"["args1","args2"]"#)]);
    assert_eq!(app_container(&r).args.as_ref().unwrap().len(), 2);
}

#[test]
fn seed_probes() {
    let http = r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"httpGet": {"path": "/consumer","port": 8080,"scheme": "HTTP","httpHeaders": [{"name": "test","value": "testvalue"}]}}"#;
    let tcp = r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"tcpSocket":{"host":"", "port":8080}}"#;
    let r = snap_deploy("readiness", &[("Readiness", http)]);
    let probe = app_container(&r).readiness_probe.as_ref().unwrap();
    assert_eq!(
        probe.http_get.as_ref().unwrap().port,
        IntOrString::Int(8080)
    );
    let r = snap_deploy("liveness", &[("Liveness", tcp)]);
    assert!(app_container(&r).liveness_probe.is_some());
    snap_deploy("startup_http", &[("Startup", http)]);
    let r = snap_deploy("startup_tcp", &[("Startup", tcp)]);
    assert!(app_container(&r).startup_probe.is_some());
}

#[test]
fn seed_replicas() {
    let r = snap_deploy("replicas", &[("Replicas", "1")]);
    assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(1));
}

#[test]
fn seed_resources() {
    let limits = |r: &Rendered| {
        app_container(r)
            .resources
            .as_ref()
            .and_then(|x| x.limits.clone())
    };
    let requests = |r: &Rendered| {
        app_container(r)
            .resources
            .as_ref()
            .and_then(|x| x.requests.clone())
    };
    let r = snap_deploy("cpu_limit", &[("CpuLimit", "1")]);
    assert_eq!(limits(&r).unwrap()["cpu"].0, "1000m");
    assert_eq!(requests(&r), None);
    for (name, value) in [
        ("MemoryLimit", "0"),
        ("CpuRequest", "0"),
        ("MemoryRequest", "0"),
        ("McpuLimit", "0"),
    ] {
        // 0 is "unbounded": no entry at all, never a bound of zero.
        let (r, _) = rendered(&deployed(&[(name, value)]));
        assert_eq!(app_container(&r).resources, None, "{name}={value}");
    }
    let r = snap_deploy("mcpu_request", &[("McpuRequest", "4")]);
    assert_eq!(requests(&r).unwrap()["cpu"].0, "4m");
    let r = snap_deploy("ephemeral_limit", &[("LimitEphemeralStorage", "4")]);
    assert_eq!(limits(&r).unwrap()["ephemeral-storage"].0, "4Gi");
    let r = snap_deploy("ephemeral_request", &[("RequestsEphemeralStorage", "2")]);
    assert_eq!(requests(&r).unwrap()["ephemeral-storage"].0, "2Gi");
    let r = snap_deploy(
        "memory_limit_and_request",
        &[("MemoryLimit", "1024"), ("MemoryRequest", "512")],
    );
    assert_eq!(limits(&r).unwrap()["memory"].0, "1024Mi");
    assert_eq!(requests(&r).unwrap()["memory"].0, "512Mi");
}

#[test]
fn seed_volumes() {
    let r = snap_deploy(
        "nfs",
        &[
            ("NasId", "nfs.example.com"),
            (
                "MountDescs",
                r#"[{"nasPath": "/k8s","mountPath": "/mnt"},{"nasPath": "/files","mountPath": "/app/files"}]"#,
            ),
        ],
    );
    let v = &pod(&r).volumes.as_ref().unwrap()[1];
    let nfs = v.nfs.as_ref().unwrap();
    assert_eq!(
        (nfs.server.as_str(), nfs.path.as_str()),
        ("nfs.example.com", "/files")
    );
    let r = snap_deploy(
        "local_volume",
        &[(
            "LocalVolume",
            r#"[{"type":"","nodePath":"/localfiles","mountPath":"/app/files"},{"type":"Directory","nodePath":"/mnt","mountPath":"/app/storage"}]"#,
        )],
    );
    let vols = pod(&r).volumes.as_ref().unwrap();
    assert_eq!(vols[0].host_path.as_ref().unwrap().type_, None);
    assert_eq!(
        vols[1].host_path.as_ref().unwrap().type_.as_deref(),
        Some("Directory")
    );
    let r = snap_deploy(
        "pvc_mounts",
        &[(
            "PvcMountDescs",
            r#"[{"pvcName":"nas-pvc-1","mountPaths":[{"mountPath":"/usr/share/nginx/data"},{"mountPath":"/usr/share/nginx/html","readOnly":true}]}]"#,
        )],
    );
    let mounts = app_container(&r).volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[0].name, mounts[1].name, "one volume, two mounts");
    assert_eq!(mounts[1].read_only, Some(true));
    let r = snap_deploy(
        "config_mounts",
        &[(
            "ConfigMountDescs",
            r#"[ { "name": "nginx-config", "type": "ConfigMap", "mountPath": "/etc/nginx" }, { "name": "tls-secret", "type": "Secret", "mountPath": "/etc/ssh" } ]"#,
        )],
    );
    let vols = pod(&r).volumes.as_ref().unwrap();
    assert_eq!(vols[0].config_map.as_ref().unwrap().name, "nginx-config");
    assert_eq!(
        vols[1].secret.as_ref().unwrap().secret_name.as_deref(),
        Some("tls-secret")
    );
    let r = snap_deploy(
        "empty_dirs",
        &[(
            "EmptyDirs",
            r#"[{"mountPath":"/app-log","subPathExpr":"$(POD_IP)"},{"readOnly":true,"mountPath":"/etc/nginx"}]"#,
        )],
    );
    let c = app_container(&r);
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0].sub_path_expr.as_deref(), Some("$(POD_IP)"));
    // `$(POD_IP)` expands from the container's environment: the downward API provides it.
    let pod_ip = c.env.as_ref().unwrap().iter().find(|e| e.name == "POD_IP");
    assert_eq!(
        pod_ip
            .unwrap()
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "status.podIP"
    );
}

#[test]
fn seed_package() {
    let url = "https://e***.oss-cn-beijing.aliyuncs.com/s***-1.0-SNAPSHOT-spring-boot.jar";
    let r = snap_deploy(
        "package_open_jdk_8",
        &[
            ("PackageUrl", url),
            ("PackageVersion", "20200720"),
            ("JDK", "Open JDK 8"),
        ],
    );
    let c = app_container(&r);
    assert_eq!(c.image.as_deref(), Some(crate::DEFAULT_JDK8_IMAGE));
    assert_eq!(c.command.as_deref(), Some(&["java".to_owned()][..]));
    assert_eq!(
        c.args.as_deref(),
        Some(&["-jar".to_owned(), crate::PACKAGE_FILE.to_owned()][..])
    );
    let init = &pod(&r).init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, crate::PACKAGE_FETCHER);
    assert_eq!(
        init.command.as_ref().unwrap().last().map(String::as_str),
        Some(url)
    );
    let r = snap_deploy(
        "package_open_jdk_7",
        &[
            ("PackageUrl", url),
            ("PackageVersion", "20200720"),
            ("JDK", "Open JDK 7"),
        ],
    );
    assert_eq!(
        app_container(&r).image.as_deref(),
        Some(crate::DEFAULT_JDK7_IMAGE)
    );
    let r = snap_deploy(
        "package_custom_jdk",
        &[
            ("PackageUrl", url),
            ("PackageVersion", "20200720"),
            ("JDK", "Custom OpenJDK"),
            ("UserBaseImageUrl", "openjdk:8u302"),
            (
                "JavaStartUpConfig",
                r#"{"InitialHeapSize":{"original":512,"startup":"-Xms512m"},"MaxHeapSize":{"original":1024,"startup":"-Xmx1024m"}}"#,
            ),
        ],
    );
    let c = app_container(&r);
    assert_eq!(c.image.as_deref(), Some("openjdk:8u302"));
    assert_eq!(
        c.args.as_ref().unwrap()[..3],
        [
            "-Xms512m".to_owned(),
            "-Xmx1024m".to_owned(),
            "-jar".to_owned()
        ]
    );
}

#[test]
fn seed_jvm_options_of_an_image_go_to_java_tool_options() {
    let java_tool_options = |r: &Rendered| {
        app_container(r)
            .env
            .as_ref()
            .and_then(|e| e.iter().find(|v| v.name == "JAVA_TOOL_OPTIONS"))
            .and_then(|v| v.value.clone())
    };
    let r = snap_deploy("uri_encoding", &[("UriEncoding", "GBK")]);
    assert_eq!(
        java_tool_options(&r).as_deref(),
        Some("-Dserver.tomcat.uri-encoding=GBK")
    );
    let r = snap_deploy(
        "java_startup_config",
        &[(
            "JavaStartUpConfig",
            r#"{"InitialHeapSize":{"original":512,"startup":"-Xms512m"},"MaxHeapSize":{"original":1024,"startup":"-Xmx1024m"}}"#,
        )],
    );
    assert_eq!(java_tool_options(&r).as_deref(), Some("-Xms512m -Xmx1024m"));
    // The seed's example with useBodyEncoding false (edas-spec refuses `true`).
    let r = snap_deploy(
        "web_container_config",
        &[(
            "WebContainerConfig",
            r#"{"useDefaultConfig":false,"contextInputType":"custom","contextPath":"hello","httpPort":8088,"maxThreads":400,"uriEncoding":"UTF-8","useBodyEncoding":false,"useAdvancedServerXml":false}"#,
        )],
    );
    assert!(
        java_tool_options(&r)
            .unwrap()
            .contains("-Dserver.port=8088")
    );
}

#[test]
fn seed_scheduling() {
    let r = snap_deploy("runtime_class", &[("RuntimeClassName", "runc")]);
    assert_eq!(pod(&r).runtime_class_name.as_deref(), Some("runc"));
    let r = snap_deploy("deploy_across_zones", &[("DeployAcrossZones", "true")]);
    let t = pod(&r).topology_spread_constraints.as_ref().unwrap();
    assert_eq!(t[0].topology_key, "topology.kubernetes.io/zone");
    let r = snap_deploy("deploy_across_nodes", &[("DeployAcrossNodes", "true")]);
    let t = pod(&r).topology_spread_constraints.as_ref().unwrap();
    assert_eq!(t[0].topology_key, "kubernetes.io/hostname");
    let r = snap_deploy(
        "custom_affinity",
        &[(
            "CustomAffinity",
            r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"beta.kubernetes.io/arch","operator":"NotIn","values":["arm64","arm32"]}]}]},"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":5,"preference":{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}}]},"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"namespaces":["default"],"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"NotIn","values":["edas-test-app"]}]}}]},"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"podAffinityTerm":{"namespaces":["default"],"topologyKey":"failure-domain.beta.kubernetes.io/zone","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"In","values":["edas-test-app-2"]}]}},"weight":15}]}}"#,
        )],
    );
    assert!(
        pod(&r)
            .affinity
            .as_ref()
            .unwrap()
            .pod_anti_affinity
            .is_some()
    );
    let r = snap_deploy(
        "custom_tolerations",
        &[(
            "CustomTolerations",
            r#"[{"key":"edas-taint-key2","operator":"Exists","effect":"NoExecute","tolerationSeconds":50},{"key":"edas-taint-key","operator":"Equal","value":"edas-taint-value","effect":"PreferNoSchedule"}]"#,
        )],
    );
    assert_eq!(pod(&r).tolerations.as_ref().unwrap().len(), 2);
    let r = snap_deploy(
        "image_platforms",
        &[("ImagePlatforms", "linux/arm64,linux/amd64")],
    );
    let node = pod(&r)
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let term = &node
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    let arch = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(arch.key, "kubernetes.io/arch");
    assert_eq!(
        arch.values.as_deref(),
        Some(&["arm64".to_owned(), "amd64".to_owned()][..])
    );
    let r = snap_deploy("terminate_grace_period", &[("TerminateGracePeriod", "120")]);
    assert_eq!(pod(&r).termination_grace_period_seconds, Some(120));
}

#[test]
fn seed_log_collection() {
    let r = snap_deploy(
        "sls_configs",
        &[(
            "SlsConfigs",
            r#"[{"logstore":"thisisanotherfilelog","type":"file","logDir":"/var/log/*"},{"logstore":"","type":"stdout","logDir":"stdout.log"},{"logstore":"thisisafilelog","type":"file","logDir":"/tmp/log/*"}]"#,
        )],
    );
    let c = app_container(&r);
    let env: Vec<(&str, &str)> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        env,
        [
            ("aliyun_logs_thisisanotherfilelog", "/var/log/*"),
            ("aliyun_logs_demo-stdout-1", "stdout"),
            ("aliyun_logs_thisisafilelog", "/tmp/log/*"),
        ]
    );
    let paths: Vec<&str> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(paths, ["/var/log", "/tmp/log"]);
}

#[test]
fn seed_labels_and_annotations() {
    let r = snap_deploy(
        "annotations",
        &[(
            "Annotations",
            r#"{"annotation-name-1":"annotation-value-1","annotation-name-2":"annotation-value-2"}"#,
        )],
    );
    let meta = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        meta.annotations.as_ref().unwrap()["annotation-name-2"],
        "annotation-value-2"
    );
    let r = snap_deploy(
        "labels",
        &[(
            "Labels",
            r#"{"label-name-1":"label-value-1","label-name-2":"label-value-2"}"#,
        )],
    );
    let meta = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["label-name-1"], "label-value-1");
    assert_eq!(labels["edas.oam.acname"], "demo");
    assert_eq!(labels["edas.oam.revision"], REVISION);
    assert_eq!(labels["app.kubernetes.io/version"], REVISION);
    assert_eq!(labels["app.kubernetes.io/managed-by"], "edasd");
}

#[test]
fn seed_lossless_and_empty_push() {
    let r = snap_deploy(
        "lossless",
        &[
            ("EnableLosslessRule", "true"),
            ("LosslessRuleWarmupTime", "120"),
            ("LosslessRuleDelayTime", "0"),
            ("LosslessRuleFuncType", "2"),
            ("LosslessRuleAligned", "false"),
            ("LosslessRuleRelated", "false"),
        ],
    );
    let meta = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert!(
        meta.annotations
            .as_ref()
            .unwrap()
            .contains_key(crate::ANNOTATION_LOSSLESS)
    );
    let r = snap_deploy("empty_push_reject", &[("EnableEmptyPushReject", "true")]);
    let meta = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        meta.annotations.as_ref().unwrap()[crate::ANNOTATION_EMPTY_PUSH_REJECT],
        "true"
    );
}

#[test]
fn seed_containers_and_security_context() {
    let r = snap_deploy(
        "sidecars",
        &[(
            "Sidecars",
            r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHRhaWwKICAtICctZicKICAtIC9kZXYvbnVsbAppbWFnZTogJ2J1c3lib3g6bGF0ZXN0JwpuYW1lOiBidXN5Ym94Cg==" } ]"#,
        )],
    );
    assert_eq!(pod(&r).containers[1].name, "busybox");
    let r = snap_deploy(
        "init_containers",
        &[(
            "InitContainers",
            r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHNsZWVwCiAgLSAnNjAnCmltYWdlOiAnYnVzeWJveDpsYXRlc3QnCm5hbWU6IGluaXQtYnVzeWJveAo=" } ]"#,
        )],
    );
    assert_eq!(
        pod(&r).init_containers.as_ref().unwrap()[0].name,
        "init-busybox"
    );
    let r = snap_deploy(
        "security_context",
        &[(
            "SecurityContext",
            r#"{"yamlEncoded":"cnVuQXNVc2VyOiAwCnJ1bkFzR3JvdXA6IDA="}"#,
        )],
    );
    let sc = app_container(&r).security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(0), Some(0)));
}

// === InsertK8sApplication-only parameters (edas-api.md examples) ===

#[test]
fn insert_examples() {
    let r = snap_insert(
        "service_configs",
        &[(
            "ServiceConfigs",
            r#"[{"name": "test-svc-create","serviceType":"ClusterIP","portMappings":[{"servicePort": {"targetPort":8080,"port":80,"protocol":"TCP"}}]}]"#,
        )],
    );
    let s = r.services[0].spec.as_ref().unwrap();
    assert_eq!(
        s.selector.as_ref().unwrap().len(),
        1,
        "a Service selects the application only, so it spans every revision"
    );
    assert_eq!(
        s.ports.as_ref().unwrap()[0].target_port,
        Some(IntOrString::Int(8080))
    );
    // Issue 18 (8): the container declares the Services' target ports.
    let ports = app_container(&r).ports.clone().unwrap();
    assert_eq!(
        ports
            .iter()
            .map(|p| (p.container_port, p.protocol.as_deref()))
            .collect::<Vec<_>>(),
        [(8080, Some("TCP"))]
    );
    let (r, _) = rendered(&inserted(&[(
        "ServiceConfigs",
        r#"[{"name":"a","serviceType":"ClusterIP","portMappings":[{"servicePort":{"targetPort":8080,"port":80}},{"servicePort":{"targetPort":9090,"port":90,"protocol":"UDP"}}]},
                {"name":"b","serviceType":"ClusterIP","portMappings":[{"servicePort":{"targetPort":8080,"port":8080,"protocol":"TCP"}}]}]"#,
    )]));
    let ports = app_container(&r).ports.clone().unwrap();
    assert_eq!(
        ports
            .iter()
            .map(|p| (p.container_port, p.protocol.as_deref()))
            .collect::<Vec<_>>(),
        [(8080, Some("TCP")), (9090, Some("UDP"))],
        "each port and protocol once"
    );
    assert_eq!(app_container(&rendered(&inserted(&[])).0).ports, None);
    // Issue 24: NodePort and LoadBalancer Services keep their type; a node port is rendered
    // only where given (the cluster allocates the others).
    let r = snap_insert(
        "service_types",
        &[(
            "ServiceConfigs",
            r#"[{"name":"np","serviceType":"NodePort","portMappings":[{"servicePort":{"targetPort":8080,"port":80,"nodePort":30080}}]},
                {"name":"lb","serviceType":"LoadBalancer","portMappings":[{"servicePort":{"targetPort":8080,"port":443,"protocol":"TCP"}}]}]"#,
        )],
    );
    let types: Vec<_> = r
        .services
        .iter()
        .map(|s| {
            let spec = s.spec.as_ref().unwrap();
            (
                spec.type_.clone().unwrap(),
                spec.ports.as_ref().unwrap()[0].node_port,
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("NodePort".to_owned(), Some(30080)),
            ("LoadBalancer".to_owned(), None)
        ]
    );
    let r = snap_insert("secret_name", &[("SecretName", "regcred")]);
    assert_eq!(
        pod(&r).image_pull_secrets.as_ref().unwrap()[0].name,
        "regcred"
    );
    let r = snap_insert(
        "command_args_namespace",
        &[
            ("Command", "ls"),
            ("CommandArgs", r#"[{"argument":"-lh"}]"#),
            ("Namespace", "prod"),
        ],
    );
    assert_eq!(r.deployment.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(
        app_container(&r).args.as_deref(),
        Some(&["-lh".to_owned()][..])
    );
}

// === Rules of rendering itself ===

#[test]
fn the_step_count_and_revision_name_the_deployment() {
    let spec = inserted(&[("AppName", "MyApp")]);
    let r = render(&spec, "17", 1).unwrap();
    assert_eq!(r.deployment.metadata.name.as_deref(), Some("myapp-r17"));
    assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(1));
    let labels = r.deployment.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["edas.oam.acname"], "MyApp",
        "label values keep the name"
    );
    assert_eq!(app_container(&r).name, "myapp");
    let selector = &r.deployment.spec.as_ref().unwrap().selector;
    assert_eq!(
        selector.match_labels.as_ref().unwrap()["edas.oam.revision"],
        "17"
    );
    // The engine paces batches: Kubernetes never surges above the step's count.
    let strategy = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .strategy
        .as_ref()
        .unwrap();
    assert_eq!(
        strategy.rolling_update.as_ref().unwrap().max_surge,
        Some(IntOrString::Int(0))
    );
    assert_eq!(
        render(&spec, "17", 0)
            .unwrap()
            .deployment
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
}

#[test]
fn names_that_cannot_name_objects_are_errors() {
    let spec = base();
    for bad in ["", "R1", "1_2", "-1", &"9".repeat(60)] {
        assert!(
            matches!(render(&spec, bad, 1), Err(RenderError::Revision { .. })),
            "{bad:?}"
        );
    }
    // A spec built in code (not through edas-spec's decoding) can still carry such a name.
    let mut spec = base();
    spec.name = "demo-".into();
    assert_eq!(
        render(&spec, "1", 1),
        Err(RenderError::AppName("demo-".into()))
    );
}

#[test]
fn a_command_only_application_does_not_render() {
    let spec = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "a"),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
        ]),
    )
    .unwrap()
    .spec;
    assert_eq!(spec.artifact, Artifact::None);
    assert_eq!(
        render(&spec, "1", 1),
        Err(RenderError::NoArtifact { app: "a".into() })
    );
}

#[test]
fn a_file_package_does_not_render() {
    let spec = deployed(&[
        ("PackageUrl", "file:///srv/app.jar"),
        ("PackageVersion", "1"),
    ]);
    assert!(matches!(
        render(&spec, "1", 1),
        Err(RenderError::PackageNotReachable { .. })
    ));
}

#[test]
fn conflicting_names_are_errors_not_silent_overrides() {
    let mut spec = base();
    spec.sidecars.push(Container {
        name: "demo".into(),
        image: Some("busybox".into()),
        ..Container::default()
    });
    assert_eq!(
        render(&spec, "1", 1),
        Err(RenderError::DuplicateContainer("demo".into()))
    );
    let mut spec = base();
    spec.envs.push(EnvVar {
        name: "JAVA_TOOL_OPTIONS".into(),
        value: Some("-Xmx1g".into()),
        value_from: None,
    });
    spec.uri_encoding = Some("GBK".into());
    assert!(matches!(
        render(&spec, "1", 1),
        Err(RenderError::DuplicateEnv { .. })
    ));
}

#[test]
fn spreading_replaces_custom_scheduling_and_platforms_always_apply() {
    let mut spec = deployed(&[(
        "CustomTolerations",
        r#"[{"key":"k","operator":"Exists","effect":"NoSchedule"}]"#,
    )]);
    spec.custom_affinity = deployed(&[(
        "CustomAffinity",
        r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]},{"matchFields":[{"key":"metadata.name","operator":"In","values":["n1"]}]}]}}}"#,
    )])
    .custom_affinity;
    spec.image_platforms = vec!["linux/amd64".into()];
    let r = render(&spec, "1", 1).unwrap();
    let terms = &pod(&r)
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    // The architecture holds in every alternative term.
    assert_eq!(terms.len(), 2);
    for t in terms {
        assert!(
            t.match_expressions
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.key == "kubernetes.io/arch")
        );
    }
    assert!(pod(&r).tolerations.is_some());
    spec.deploy_across_nodes = true;
    let r = render(&spec, "1", 1).unwrap();
    let affinity = pod(&r).affinity.as_ref().unwrap();
    assert!(affinity.pod_affinity.is_none());
    let terms = &affinity
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1, "only the platform term remains");
    assert!(pod(&r).tolerations.is_none());
}

#[test]
fn log_directories_already_on_a_volume_get_none_of_their_own() {
    let mut spec = base();
    spec.empty_dirs.push(EmptyDirMount {
        mount_path: "/var/log".into(),
        read_only: false,
        sub_path_expr: None,
    });
    spec.log_collection.push(LogCollection {
        logstore: "app-logs".into(),
        kind: "file".into(),
        log_dir: "/var/log/app/*.log".into(),
    });
    let r = render(&spec, "1", 1).unwrap();
    assert_eq!(pod(&r).volumes.as_ref().unwrap().len(), 1);
    spec.log_collection[0].log_dir = "/app.log".into();
    assert_eq!(
        render(&spec, "1", 1),
        Err(RenderError::LogDir("/app.log".into()))
    );
}

#[test]
fn restart_generation_changes_the_pod_template() {
    let spec = base();
    let restarted = apply(
        Operation::RestartK8sApplication,
        Some(&spec),
        &params(&[("AppId", "app-1")]),
    )
    .unwrap()
    .spec;
    let before = render(&spec, "1", 1).unwrap();
    let after = render(&restarted, "2", 1).unwrap();
    let generation = |r: &Rendered| {
        r.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[crate::ANNOTATION_RESTART]
            .clone()
    };
    assert_eq!(
        (generation(&before).as_str(), generation(&after).as_str()),
        ("0", "1")
    );
}

#[test]
fn yaml_keeps_string_values_that_look_like_other_types() {
    let mut spec = base();
    spec.annotations.insert("a".into(), "true".into());
    spec.labels.insert("b".into(), "123".into());
    for (name, value) in [
        ("N", "null"),
        ("ML", "line one\n  line two\n\n"),
        ("SP", "  leading and trailing  "),
        ("LONG", &"-Dopt=value ".repeat(20)),
        ("HASH", "# not a comment: {x}"),
    ] {
        spec.envs.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        });
    }
    let r = render(&spec, "1", 1).unwrap();
    let yaml = r.to_yaml().unwrap();
    let back = parse_yaml(&yaml).unwrap();
    assert_eq!(back, r.objects());
    assert!(matches!(back[0], Object::Deployment(_)));
    assert!(!yaml.contains(": >"), "no folded strings:\n{yaml}");
}

#[test]
fn a_replica_count_beyond_kubernetes_is_an_error() {
    assert_eq!(
        render(&base(), "1", u32::MAX),
        Err(RenderError::Replicas(u32::MAX))
    );
}

proptest::proptest! {
    /// Any revision id and replica count renders or is refused; never a panic, and whatever
    /// renders has a Deployment name Kubernetes accepts and YAML that parses back.
    #[test]
    fn any_revision_and_count_renders_or_is_refused(
        revision in "[a-zA-Z0-9_.-]{0,70}",
        replicas in proptest::prelude::any::<u32>(),
    ) {
        let spec = base();
        if let Ok(r) = render(&spec, &revision, replicas) {
            let name = r.deployment.metadata.name.clone().unwrap();
            proptest::prop_assert!(edas_spec::k8s::is_dns_label(&name), "{}", name);
            proptest::prop_assert_eq!(parse_yaml(&r.to_yaml().unwrap()).unwrap(), r.objects());
        }
    }
}
