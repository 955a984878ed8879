//! Table tests: every example value of the seed document and of edas-api.md, applied alone to a
//! base application, gives its expected outcome; plus the tri-state, unit and cross-parameter
//! rules, and a property test that no input panics.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use crate::catalog::Operation;
use crate::model::{AppSpec, Artifact, Package};
use crate::release::{ReleaseType, StrategyKind, TrafficRule};
use crate::{Change, Params, ViolationKind, Violations, apply};

use Operation::*;

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// The base application the examples are applied to: image-based, 3 replicas.
fn base() -> AppSpec {
    let c = apply(
        InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "demo"),
            ("ClusterId", "local"),
            ("ImageUrl", "registry.example.com/team/app:v1"),
            ("Replicas", "3"),
        ]),
    )
    .expect("base application");
    c.spec
}

fn run(op: Operation, pairs: &[(&str, &str)]) -> Result<Change, Violations> {
    let mut all = vec![("AppId", "app-1")];
    if op == InsertK8sApplication {
        all = vec![
            ("AppName", "demo"),
            ("ClusterId", "local"),
            ("ImageUrl", "registry.example.com/team/app:v1"),
        ];
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
    }
    all.extend_from_slice(pairs);
    let current = base();
    apply(
        op,
        if op == InsertK8sApplication {
            None
        } else {
            Some(&current)
        },
        &params(&all),
    )
}

fn deploy(name: &str, value: &str) -> Change {
    match run(DeployK8sApplication, &[(name, value)]) {
        Ok(c) => c,
        Err(v) => panic!("{name}={value} was refused: {v}"),
    }
}

fn refused(op: Operation, pairs: &[(&str, &str)], param: &str, kind: ViolationKind) -> Violations {
    match run(op, pairs) {
        Ok(_) => panic!("{pairs:?} was accepted"),
        Err(v) => {
            assert!(
                v.0.iter().any(|x| x.parameter == param && x.kind == kind),
                "expected {kind:?} naming {param}, got: {v}"
            );
            v
        }
    }
}

// === The seed's examples, DeployK8sApplication ===

#[test]
fn seed_prestop_and_poststart() {
    let c = deploy("PreStop", r#"{ "exec":{ "command":[ "ls", "/" ] } }"#);
    assert_eq!(
        c.spec.pre_stop.unwrap().exec.unwrap().command.unwrap(),
        vec!["ls", "/"]
    );
    // The seed's tcpSocket example: Kubernetes never runs tcpSocket hooks, so it is refused.
    refused(
        DeployK8sApplication,
        &[("PreStop", r#"{"tcpSocket":{"host":"", "port":8080}}"#)],
        "PreStop",
        ViolationKind::NotSupported,
    );
    let c = deploy("PreStop", r#"{"httpGet":{"path":"/drain","port":8080}}"#);
    assert_eq!(
        c.spec.pre_stop.unwrap().http_get.unwrap().port,
        IntOrString::Int(8080)
    );
    let c = deploy("PostStart", r#"{"exec":{"command":["cat","/etc/group"]}}"#);
    assert_eq!(
        c.spec.post_start.unwrap().exec.unwrap().command.unwrap(),
        vec!["cat", "/etc/group"]
    );
    let c = deploy("PostStart", r#"{ "exec":{ "command":[ "ls", "/" ] } }"#);
    assert!(c.spec.post_start.is_some());
}

#[test]
fn seed_envs() {
    let c = deploy(
        "Envs",
        r#"[{"name":"x1","value":"y1"},{"name":"x2","valueFrom":{"configMapKeyRef":{"name":"my-config","key":"y2"}}},{"name":"x3","valueFrom":{"secretKeyRef":{"name":"my-secret","key":"y3"}}}]"#,
    );
    let e = &c.spec.envs;
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].value.as_deref(), Some("y1"));
    assert_eq!(
        e[1].value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref()
            .unwrap()
            .key,
        "y2"
    );
    assert_eq!(
        e[2].value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "my-secret"
    );
    let c = deploy(
        "Envs",
        r#"{"name":"x", "value": "y"}"#.replace('{', "[{").replace("\"y\"}", "\"y\"}]").as_str(),
    );
    assert_eq!(c.spec.envs[0].name, "x");
}

#[test]
fn seed_image_tag_and_image() {
    assert_eq!(
        deploy("ImageTag", "latest").spec.artifact.image(),
        Some("registry.example.com/team/app:latest")
    );
    let img = "registry-vpc.cn-beijing.aliyuncs.com/t****/app:v1";
    assert_eq!(deploy("Image", img).spec.artifact.image(), Some(img));
    // Image overrides ImageTag.
    let c = run(
        DeployK8sApplication,
        &[("Image", "nginx:1.27"), ("ImageTag", "latest")],
    )
    .unwrap();
    assert_eq!(c.spec.artifact.image(), Some("nginx:1.27"));
}

#[test]
fn seed_scalars() {
    assert_eq!(deploy("BatchWaitTime", "0").spec.min_ready_seconds, 0);
    assert_eq!(deploy("BatchWaitTime", "30").spec.min_ready_seconds, 30);
    assert_eq!(deploy("Command", "ls").spec.command.as_deref(), Some("ls"));
    assert_eq!(
        deploy("Args", r#"["args1","args2"]"#).spec.args,
        vec!["args1", "args2"]
    );
    assert_eq!(deploy("Replicas", "1").spec.replicas, 1);
    assert_eq!(
        deploy("TerminateGracePeriod", "120")
            .spec
            .termination_grace_period_seconds,
        Some(120)
    );
    assert_eq!(
        deploy("RuntimeClassName", "runc")
            .spec
            .runtime_class_name
            .as_deref(),
        Some("runc")
    );
    assert!(deploy("DeployAcrossZones", "true").spec.deploy_across_zones);
    assert!(deploy("DeployAcrossNodes", "true").spec.deploy_across_nodes);
    assert!(!deploy("DeployAcrossNodes", "yes").spec.deploy_across_nodes);
    assert_eq!(
        deploy("UriEncoding", "GBK").spec.uri_encoding.as_deref(),
        Some("GBK")
    );
    assert_eq!(deploy("UseBodyEncoding", "false").spec, base());
    assert_eq!(deploy("EnableAhas", "false").spec, base());
    assert!(
        !deploy("EnableEmptyPushReject", "false")
            .spec
            .empty_push_reject
    );
    assert!(
        deploy("EnableEmptyPushReject", "True")
            .spec
            .empty_push_reject
    );
    assert_eq!(
        deploy("ImagePlatforms", "linux/arm64,linux/amd64")
            .spec
            .image_platforms,
        vec!["linux/arm64", "linux/amd64"]
    );
}

#[test]
fn seed_probes() {
    let c = deploy(
        "Readiness",
        r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"httpGet": {"path": "/consumer","port": 8080,"scheme": "HTTP","httpHeaders": [{"name": "test","value": "testvalue"}]}}"#,
    );
    let p = c.spec.readiness.unwrap();
    let h = p.http_get.unwrap();
    assert_eq!(h.path.as_deref(), Some("/consumer"));
    assert_eq!(h.http_headers.unwrap()[0].value, "testvalue");
    assert_eq!(p.initial_delay_seconds, Some(5));
    let live = r#"{"failureThreshold": 3,"initialDelaySeconds": 5,"successThreshold": 1,"timeoutSeconds": 1,"tcpSocket":{"host":"", "port":8080}}"#;
    assert!(
        deploy("Liveness", live)
            .spec
            .liveness
            .unwrap()
            .tcp_socket
            .is_some()
    );
    assert!(
        deploy("Startup", live)
            .spec
            .startup
            .unwrap()
            .tcp_socket
            .is_some()
    );
}

#[test]
fn seed_resources_units() {
    let c = deploy("CpuLimit", "1");
    assert_eq!(c.spec.resources.cpu_limit_millis, Some(1000));
    assert_eq!(
        deploy("MemoryLimit", "0").spec.resources.memory_limit_mib,
        None
    );
    assert_eq!(
        deploy("CpuRequest", "0").spec.resources.cpu_request_millis,
        None
    );
    assert_eq!(
        deploy("MemoryRequest", "0")
            .spec
            .resources
            .memory_request_mib,
        None
    );
    assert_eq!(
        deploy("McpuRequest", "4").spec.resources.cpu_request_millis,
        Some(4)
    );
    assert_eq!(
        deploy("McpuLimit", "0").spec.resources.cpu_limit_millis,
        None
    );
    assert_eq!(
        deploy("LimitEphemeralStorage", "4")
            .spec
            .resources
            .ephemeral_limit_gib,
        Some(4)
    );
    assert_eq!(
        deploy("RequestsEphemeralStorage", "2")
            .spec
            .resources
            .ephemeral_request_gib,
        Some(2)
    );
    // Millicores override cores when both are given.
    let c = run(
        DeployK8sApplication,
        &[("CpuLimit", "2"), ("McpuLimit", "500")],
    )
    .unwrap();
    assert_eq!(c.spec.resources.cpu_limit_millis, Some(500));
}

#[test]
fn seed_volumes() {
    let c = deploy(
        "LocalVolume",
        r#"[{"type":"","nodePath":"/localfiles","mountPath":"/app/files"},{"type":"Directory","nodePath":"/mnt","mountPath":"/app/storage"}]"#,
    );
    assert_eq!(c.spec.local_volumes.len(), 2);
    assert_eq!(c.spec.local_volumes[1].kind, "Directory");
    let c = deploy(
        "PvcMountDescs",
        r#"[{"pvcName":"nas-pvc-1","mountPaths":[{"mountPath":"/usr/share/nginx/data"},{"mountPath":"/usr/share/nginx/html","readOnly":true}]}]"#,
    );
    assert!(c.spec.pvc_mounts[0].mount_paths[1].read_only);
    let c = deploy(
        "ConfigMountDescs",
        r#"[ { "name": "nginx-config", "type": "ConfigMap", "mountPath": "/etc/nginx" }, { "name": "tls-secret", "type": "Secret", "mountPath": "/etc/ssh" } ]"#,
    );
    assert_eq!(c.spec.config_mounts[1].kind, "Secret");
    let c = deploy(
        "EmptyDirs",
        r#"[{"mountPath":"/app-log","subPathExpr":"$(POD_IP)"},{"readOnly":true,"mountPath":"/etc/nginx"}]"#,
    );
    assert_eq!(
        c.spec.empty_dirs[0].sub_path_expr.as_deref(),
        Some("$(POD_IP)")
    );
    assert!(c.spec.empty_dirs[1].read_only);
    assert_eq!(
        deploy("StorageType", "Performance")
            .spec
            .nfs
            .storage_type
            .as_deref(),
        Some("Performance")
    );
    // MountDescs alone has no NFS server to mount from.
    refused(
        DeployK8sApplication,
        &[(
            "MountDescs",
            r#"[{"nasPath": "/k8s","mountPath": "/mnt"},{"nasPath": "/files","mountPath": "/app/files"}]"#,
        )],
        "NasId",
        ViolationKind::Missing,
    );
    let c = run(DeployK8sApplication, &[("NasId", "nfs.example.com"), ("MountDescs", r#"[{"nasPath": "/k8s","mountPath": "/mnt"},{"nasPath": "/files","mountPath": "/app/files"}]"#)]).unwrap();
    assert_eq!(c.spec.nfs.mounts.len(), 2);
    // The seed's masked NasId is not a host name.
    refused(
        DeployK8sApplication,
        &[("NasId", "dfs23****")],
        "NasId",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("VolumesStr", "test")],
        "VolumesStr",
        ViolationKind::NotSupported,
    );
}

#[test]
fn seed_package_parameters_on_an_image_application() {
    refused(
        DeployK8sApplication,
        &[(
            "PackageUrl",
            "https://e***.oss-cn-beijing.aliyuncs.com/s***-1.0-SNAPSHOT-spring-boot.jar",
        )],
        "PackageVersion",
        ViolationKind::Missing,
    );
    refused(
        DeployK8sApplication,
        &[("PackageVersion", "20200720")],
        "PackageVersion",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("JDK", "Open JDK 8")],
        "JDK",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("UserBaseImageUrl", "openjdk:8u302")],
        "UserBaseImageUrl",
        ViolationKind::Invalid,
    );
    let c = run(
        DeployK8sApplication,
        &[
            (
                "PackageUrl",
                "https://e***.oss-cn-beijing.aliyuncs.com/s***-1.0-SNAPSHOT-spring-boot.jar",
            ),
            ("PackageVersion", "20200720"),
            ("JDK", "Open JDK 8"),
        ],
    )
    .unwrap();
    match c.spec.artifact {
        Artifact::Package(Package { version, jdk, .. }) => {
            assert_eq!(version, "20200720");
            assert_eq!(jdk.as_deref(), Some("Open JDK 8"));
        }
        other => panic!("{other:?}"),
    }
    refused(
        DeployK8sApplication,
        &[("PackageVersionId", "2bcc********")],
        "PackageVersionId",
        ViolationKind::NotSupported,
    );
}

#[test]
fn seed_alibaba_only_parameters_are_refused_clearly() {
    for (name, value) in [
        ("WebContainer", "apache-tomcat-7.0.91"),
        ("EdasContainerVersion", "3.5.9"),
        ("BuildPackId", "59"),
        ("CustomAgentVersion", "3.1.4"),
        ("CanaryRuleId", "a8daf22e-****-968c7ff2ea34"),
        ("EnableAhas", "true"),
        ("UseBodyEncoding", "true"),
    ] {
        let v = refused(
            DeployK8sApplication,
            &[(name, value)],
            name,
            ViolationKind::NotSupported,
        );
        assert_eq!(v.code(), "InvalidParameter.NotSupported");
    }
}

#[test]
fn seed_update_strategy_examples() {
    let c = deploy(
        "UpdateStrategy",
        r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":1},"grayUpdate":{"gray":1}}"#,
    );
    let s = c.release.strategy.unwrap();
    assert_eq!(
        (
            s.kind,
            s.gray,
            s.batches,
            s.release_type,
            s.batch_wait_minutes
        ),
        (StrategyKind::GrayBatchUpdate, 1, 2, ReleaseType::Auto, 1)
    );
    let s = deploy("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"},"grayUpdate":{"gray":1}}"#).release.strategy.unwrap();
    assert_eq!(s.release_type, ReleaseType::Manual);
    let s = deploy("UpdateStrategy", r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#).release.strategy.unwrap();
    assert_eq!(
        (s.kind, s.batches, s.gray),
        (StrategyKind::BatchUpdate, 2, 0)
    );
    // The strategy is a release setting, not part of the revision.
    assert_eq!(c.spec, base());
}

#[test]
fn seed_release_settings() {
    assert_eq!(
        deploy("ChangeOrderDesc", "Upgrade")
            .release
            .description
            .as_deref(),
        Some("Upgrade")
    );
    let c = deploy("BatchTimeout", "60");
    assert_eq!(c.release.effective_batch_timeout_seconds(), 60);
    assert_eq!(
        deploy("Replicas", "3")
            .release
            .effective_batch_timeout_seconds(),
        600
    );
    // The seed's traffic example needs a gray batch to apply to.
    refused(
        DeployK8sApplication,
        &[(
            "TrafficControlStrategy",
            r#"{"http":{"rules":[{"conditionType":"percent","percent":10}]}}"#,
        )],
        "TrafficControlStrategy",
        ViolationKind::Invalid,
    );
    let c = run(
        DeployK8sApplication,
        &[
            ("TrafficControlStrategy", r#"{"http":{"rules":[{"conditionType":"percent","percent":10}]}}"#),
            ("UpdateStrategy", r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"},"grayUpdate":{"gray":1}}"#),
        ],
    )
    .unwrap();
    assert_eq!(
        c.release.traffic_control.unwrap().rules,
        vec![TrafficRule::Percent { percent: 10 }]
    );
}

#[test]
fn seed_java_and_web_container() {
    let c = deploy(
        "JavaStartUpConfig",
        r#"{"InitialHeapSize":{"original":512,"startup":"-Xms512m"},"MaxHeapSize":{"original":1024,"startup":"-Xmx1024m"}}"#,
    );
    assert_eq!(c.spec.java_options(), vec!["-Xms512m", "-Xmx1024m"]);
    // The seed's WebContainerConfig example turns on useBodyEncoding, a standalone-Tomcat setting.
    refused(
        DeployK8sApplication,
        &[(
            "WebContainerConfig",
            r#"{"useDefaultConfig":false,"contextInputType":"custom","contextPath":"hello","httpPort":8088,"maxThreads":400,"uriEncoding":"UTF-8","useBodyEncoding":true,"useAdvancedServerXml":false}"#,
        )],
        "WebContainerConfig",
        ViolationKind::NotSupported,
    );
    let c = deploy(
        "WebContainerConfig",
        r#"{"useDefaultConfig":false,"contextInputType":"custom","contextPath":"hello","httpPort":8088,"maxThreads":400,"uriEncoding":"UTF-8","useBodyEncoding":false,"useAdvancedServerXml":false}"#,
    );
    assert_eq!(
        c.spec.java_options(),
        vec![
            "-Dserver.port=8088",
            "-Dserver.servlet.context-path=/hello",
            "-Dserver.tomcat.threads.max=400",
            "-Dserver.tomcat.uri-encoding=UTF-8"
        ]
    );
}

#[test]
fn seed_log_collection() {
    let c = deploy(
        "SlsConfigs",
        r#"[{"logstore":"thisisanotherfilelog","type":"file","logDir":"/var/log/*"},{"logstore":"","type":"stdout","logDir":"stdout.log"},{"logstore":"thisisafilelog","type":"file","logDir":"/tmp/log/*"}]"#,
    );
    assert_eq!(c.spec.log_collection.len(), 3);
    refused(
        DeployK8sApplication,
        &[(
            "SlsConfigs",
            r#"[{"logstore":"Bad_Name","type":"file","logDir":"/var/log/*"}]"#,
        )],
        "SlsConfigs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "SlsConfigs",
            r#"[{"logstore":"ok-name","type":"file","logDir":"var/log"}]"#,
        )],
        "SlsConfigs",
        ViolationKind::Invalid,
    );
}

#[test]
fn seed_env_froms_example_decodes_to_nothing_and_is_refused() {
    // The seed's EnvFroms example is an EnvVar, not an EnvFromSource.
    refused(
        DeployK8sApplication,
        &[(
            "EnvFroms",
            r#"[{"name":"appname","valueFrom":{"configMapKeyRef":{"name":"appconf","key":"name"}}}]"#,
        )],
        "EnvFroms",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("EnvFroms", r#"[{"prefix":"X_"}]"#)],
        "EnvFroms",
        ViolationKind::Invalid,
    );
    let c = deploy(
        "EnvFroms",
        r#"[{"configMapRef":{"name":"appconf"}},{"secretRef":{"name":"creds"},"prefix":"S_"}]"#,
    );
    assert_eq!(c.spec.env_froms.len(), 2);
}

#[test]
fn seed_scheduling() {
    let aff = r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"beta.kubernetes.io/arch","operator":"NotIn","values":["arm64","arm32"]}]}]},"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":5,"preference":{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}}]},"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"namespaces":["default"],"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"NotIn","values":["edas-test-app"]}]}}]},"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"podAffinityTerm":{"namespaces":["default"],"topologyKey":"failure-domain.beta.kubernetes.io/zone","labelSelector":{"matchExpressions":[{"key":"edas.oam.acname","operator":"In","values":["edas-test-app-2"]}]}},"weight":15}]}}"#;
    let a = deploy("CustomAffinity", aff).spec.custom_affinity.unwrap();
    assert_eq!(
        a.pod_anti_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap()[0]
            .weight,
        15
    );
    let t = deploy("CustomTolerations", r#"[{"key":"edas-taint-key2","operator":"Exists","effect":"NoExecute","tolerationSeconds":50},{"key":"edas-taint-key","operator":"Equal","value":"edas-taint-value","effect":"PreferNoSchedule"}]"#).spec.custom_tolerations;
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].toleration_seconds, Some(50));
    // Affinity with a spread switch on in the same request would be ignored: refused instead.
    refused(
        DeployK8sApplication,
        &[("CustomAffinity", aff), ("DeployAcrossNodes", "true")],
        "CustomAffinity",
        ViolationKind::Invalid,
    );
}

#[test]
fn seed_labels_annotations() {
    let c = deploy(
        "Annotations",
        r#"{"annotation-name-1":"annotation-value-1","annotation-name-2":"annotation-value-2"}"#,
    );
    assert_eq!(c.spec.annotations.len(), 2);
    let c = deploy(
        "Labels",
        r#"{"label-name-1":"label-value-1","label-name-2":"label-value-2"}"#,
    );
    assert_eq!(c.spec.labels["label-name-2"], "label-value-2");
    refused(
        DeployK8sApplication,
        &[("Labels", r#"{"edas.oam.acname":"x"}"#)],
        "Labels",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Labels", r#"{"a":"not valid value!"}"#)],
        "Labels",
        ViolationKind::Invalid,
    );
}

#[test]
fn seed_lossless() {
    let c = run(
        DeployK8sApplication,
        &[
            ("EnableLosslessRule", "true"),
            ("LosslessRuleWarmupTime", "120"),
            ("LosslessRuleDelayTime", "0"),
            ("LosslessRuleFuncType", "2"),
            ("LosslessRuleAligned", "false"),
            ("LosslessRuleRelated", "false"),
        ],
    )
    .unwrap();
    let l = c.spec.lossless;
    assert!(l.enabled && !l.aligned && !l.related);
    assert_eq!(
        (l.warmup_seconds, l.delay_seconds, l.func_type),
        (120, 0, 2)
    );
    refused(
        DeployK8sApplication,
        &[("LosslessRuleWarmupTime", "86401")],
        "LosslessRuleWarmupTime",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("LosslessRuleDelayTime", "-1")],
        "LosslessRuleDelayTime",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("LosslessRuleFuncType", "21")],
        "LosslessRuleFuncType",
        ViolationKind::Invalid,
    );
}

#[test]
fn seed_containers_and_security_context() {
    let c = deploy(
        "Sidecars",
        r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHRhaWwKICAtICctZicKICAtIC9kZXYvbnVsbAppbWFnZTogJ2J1c3lib3g6bGF0ZXN0JwpuYW1lOiBidXN5Ym94Cg==" } ]"#,
    );
    assert_eq!(c.spec.sidecars[0].name, "busybox");
    assert_eq!(
        c.spec.sidecars[0].command.as_ref().unwrap(),
        &vec!["tail", "-f", "/dev/null"]
    );
    let c = deploy(
        "InitContainers",
        r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHNsZWVwCiAgLSAnNjAnCmltYWdlOiAnYnVzeWJveDpsYXRlc3QnCm5hbWU6IGluaXQtYnVzeWJveAo=" } ]"#,
    );
    assert_eq!(c.spec.init_containers[0].name, "init-busybox");
    let sc = deploy(
        "SecurityContext",
        r#"{"yamlEncoded":"cnVuQXNVc2VyOiAwCnJ1bkFzR3JvdXA6IDA="}"#,
    )
    .spec
    .security_context
    .unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(0), Some(0)));
    refused(
        DeployK8sApplication,
        &[("Sidecars", r#"[{"yamlEncoded":"not base64!"}]"#)],
        "Sidecars",
        ViolationKind::Invalid,
    );
}

// === edas-api.md examples, InsertK8sApplication ===

#[test]
fn insert_examples() {
    let c = run(
        InsertK8sApplication,
        &[
            ("CommandArgs", r#"[{"argument":"-lh"}]"#),
            ("Command", "ls"),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.args, vec!["-lh"]);
    let c = run(InsertK8sApplication, &[("ConfigMountDescs", r#"[{"name":"nginx-config","type":"ConfigMap","mountPath":"/etc/nginx"},{"name":"tls-secret","type":"secret","mountPath":"/etc/ssh"}]"#)]).unwrap();
    assert_eq!(c.spec.config_mounts[1].kind, "Secret");
    let c = run(InsertK8sApplication, &[("ServiceConfigs", r#"[{"name": "test-svc-create","serviceType":"ClusterIP","portMappings":[{"servicePort": {"targetPort":8080,"port":80,"protocol":"TCP"}}]}]"#)]).unwrap();
    assert_eq!(
        c.spec.services[0].port_mappings[0].service_port.target_port,
        8080
    );
    assert!(run(InsertK8sApplication, &[("AppConfig", "{}")]).is_ok());
    // The doc's escaped PostStart example is not JSON.
    refused(
        InsertK8sApplication,
        &[("PostStart", r#"{\"exec\":{\"command\":[\"ls\",\"/\"]}}""#)],
        "PostStart",
        ViolationKind::Invalid,
    );
    refused(
        InsertK8sApplication,
        &[("PackageType", "WAR"), ("PackageUrl", "https://x/app.war")],
        "PackageType",
        ViolationKind::NotSupported,
    );
    refused(
        InsertK8sApplication,
        &[("AppName", "1abc")],
        "AppName",
        ViolationKind::Invalid,
    );
    refused(
        InsertK8sApplication,
        &[("AppName", "demo-")],
        "AppName",
        ViolationKind::Invalid,
    );
    // A sidecar may not take the application container's name.
    let sidecar_named_demo = format!(
        r#"[{{"yamlEncoded":"{}"}}]"#,
        base64_of("name: demo\nimage: busybox\n")
    );
    refused(
        InsertK8sApplication,
        &[("Sidecars", &sidecar_named_demo)],
        "Sidecars",
        ViolationKind::Invalid,
    );
    refused(
        InsertK8sApplication,
        &[("InternetSlbPort", "80")],
        "InternetSlbPort",
        ViolationKind::NotSupported,
    );
    refused(
        InsertK8sApplication,
        &[("WorkloadType", "ReplicaSet")],
        "WorkloadType",
        ViolationKind::Invalid,
    );
    let c = run(InsertK8sApplication, &[("WorkloadType", "statefulset")]).unwrap();
    assert_eq!(c.spec.workload, crate::model::Workload::StatefulSet);
    let c = run(InsertK8sApplication, &[]).unwrap();
    assert_eq!(c.spec.workload, crate::model::Workload::Deployment);
    let c = run(
        InsertK8sApplication,
        &[
            ("LimitCpu", "2"),
            ("LimitmCpu", "1500"),
            ("RequestsmCpu", "250"),
            ("LimitMem", "512"),
            ("RequestsMem", "256"),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.resources.cpu_limit_millis, Some(1500));
    assert_eq!(c.spec.resources.cpu_request_millis, Some(250));
    assert_eq!(c.spec.resources.memory_limit_mib, Some(512));
    let c = run(
        InsertK8sApplication,
        &[
            ("Namespace", "prod"),
            ("LogicalRegionId", "cn-hangzhou:dev"),
            ("Timeout", "900"),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.k8s_namespace, "prod");
    assert_eq!(c.spec.edas_namespace.as_deref(), Some("cn-hangzhou:dev"));
    assert_eq!(c.release.timeout_seconds, 900);
    refused(
        InsertK8sApplication,
        &[("Timeout", "1801")],
        "Timeout",
        ViolationKind::Invalid,
    );
}

#[test]
fn insert_requires_name_cluster_and_something_to_run() {
    let v = apply(InsertK8sApplication, None, &params(&[])).unwrap_err();
    assert!(v.names("AppName") && v.names("ClusterId"));
    assert_eq!(v.code(), "MissingParameter");
    let v = apply(
        InsertK8sApplication,
        None,
        &params(&[("AppName", "a"), ("ClusterId", "local")]),
    )
    .unwrap_err();
    assert!(v.names("ImageUrl"), "{v}");
    // A command alone is enough for the local runtime.
    let c = apply(
        InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "a"),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
        ]),
    )
    .unwrap();
    assert_eq!(c.spec.artifact, Artifact::None);
    assert_eq!(c.spec.k8s_namespace, "default");
}

// === Tri-state, validation across parameters ===

#[test]
fn absent_keeps_empty_clears_value_replaces() {
    let with = run(
        DeployK8sApplication,
        &[
            ("Envs", r#"[{"name":"A","value":"1"}]"#),
            ("Command", "run"),
            ("Readiness", r#"{"tcpSocket":{"port":8080}}"#),
        ],
    )
    .unwrap()
    .spec;
    // Absent: kept.
    let kept = apply(
        DeployK8sApplication,
        Some(&with),
        &params(&[("AppId", "a"), ("Replicas", "2")]),
    )
    .unwrap()
    .spec;
    assert_eq!(kept.envs, with.envs);
    assert_eq!(kept.command, with.command);
    assert!(kept.readiness.is_some());
    // Empty forms: cleared.
    let cleared = apply(
        DeployK8sApplication,
        Some(&with),
        &params(&[
            ("AppId", "a"),
            ("Envs", "[]"),
            ("Command", ""),
            ("Readiness", "{}"),
        ]),
    )
    .unwrap()
    .spec;
    assert!(cleared.envs.is_empty() && cleared.command.is_none() && cleared.readiness.is_none());
    let cleared = apply(
        DeployK8sApplication,
        Some(&with),
        &params(&[("AppId", "a"), ("Readiness", "")]),
    )
    .unwrap()
    .spec;
    assert!(cleared.readiness.is_none());
}

#[test]
fn request_must_not_exceed_limit_after_units() {
    refused(
        DeployK8sApplication,
        &[("CpuLimit", "1"), ("McpuRequest", "1500")],
        "McpuRequest",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("MemoryLimit", "256"), ("MemoryRequest", "512")],
        "MemoryRequest",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[
            ("LimitEphemeralStorage", "1"),
            ("RequestsEphemeralStorage", "2"),
        ],
        "RequestsEphemeralStorage",
        ViolationKind::Invalid,
    );
    // An unbounded limit (0) admits any request.
    assert!(
        run(
            DeployK8sApplication,
            &[("CpuLimit", "0"), ("CpuRequest", "8")]
        )
        .is_ok()
    );
    // The current limit counts when only the request changes.
    let limited = run(DeployK8sApplication, &[("MemoryLimit", "128")])
        .unwrap()
        .spec;
    let v = apply(
        DeployK8sApplication,
        Some(&limited),
        &params(&[("AppId", "a"), ("MemoryRequest", "256")]),
    )
    .unwrap_err();
    assert!(v.names("MemoryRequest"));
}

#[test]
fn update_config_takes_strings_and_checks_cluster() {
    let c = run(
        UpdateK8sApplicationConfig,
        &[
            ("CpuLimit", "2"),
            ("McpuRequest", "500"),
            ("MemoryLimit", "1024"),
            ("EphemeralStorageLimit", "10"),
            ("EphemeralStorageRequest", "5"),
            ("Timeout", "300"),
        ],
    )
    .unwrap();
    let r = &c.spec.resources;
    assert_eq!(
        (
            r.cpu_limit_millis,
            r.cpu_request_millis,
            r.memory_limit_mib,
            r.ephemeral_limit_gib,
            r.ephemeral_request_gib
        ),
        (Some(2000), Some(500), Some(1024), Some(10), Some(5))
    );
    assert_eq!(c.release.timeout_seconds, 300);
    refused(
        UpdateK8sApplicationConfig,
        &[("ClusterId", "other")],
        "ClusterId",
        ViolationKind::Invalid,
    );
    refused(
        UpdateK8sApplicationConfig,
        &[("CpuLimit", "1.5")],
        "CpuLimit",
        ViolationKind::Invalid,
    );
}

#[test]
fn lifecycle_operations() {
    let c = run(ScaleK8sApplication, &[("Replicas", "5")]).unwrap();
    assert_eq!(c.spec.effective_replicas(), 5);
    refused(ScaleK8sApplication, &[], "Replicas", ViolationKind::Missing);
    refused(
        ScaleK8sApplication,
        &[("Replicas", "-1")],
        "Replicas",
        ViolationKind::Invalid,
    );
    let stopped = run(StopK8sApplication, &[]).unwrap().spec;
    assert_eq!((stopped.effective_replicas(), stopped.replicas), (0, 3));
    let started = apply(
        StartK8sApplication,
        Some(&stopped),
        &params(&[("AppId", "a")]),
    )
    .unwrap()
    .spec;
    assert_eq!(started.effective_replicas(), 3);
    let started = apply(
        StartK8sApplication,
        Some(&stopped),
        &params(&[("AppId", "a"), ("Replicas", "2")]),
    )
    .unwrap()
    .spec;
    assert_eq!(started.effective_replicas(), 2);
    let restarted = run(RestartK8sApplication, &[("Timeout", "60")]).unwrap();
    assert_eq!(restarted.spec.restart_generation, 1);
    assert_ne!(restarted.spec, base());
    assert!(
        apply(
            RestartK8sApplication,
            Some(&stopped),
            &params(&[("AppId", "a")])
        )
        .is_err()
    );
    let d = run(DeleteK8sApplication, &[("Force", "True")]).unwrap();
    assert!(d.force);
}

#[test]
fn strategy_must_fit_the_replica_count() {
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":4}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":1},"grayUpdate":{"gray":3}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"GrayBatchUpdate","batchUpdate":{"batch":3},"grayUpdate":{"gray":1}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":0}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"Rolling","batchUpdate":{"batch":1}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"releaseType":"sometimes"}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "UpdateStrategy",
            r#"{"type":"BatchUpdate","batchUpdate":{"batch":1,"batchWaitTim":1}}"#,
        )],
        "UpdateStrategy",
        ViolationKind::Invalid,
    );
    // Scaling up in the same request makes room for the batches.
    assert!(
        run(
            DeployK8sApplication,
            &[
                ("Replicas", "4"),
                (
                    "UpdateStrategy",
                    r#"{"type":"BatchUpdate","batchUpdate":{"batch":4}}"#
                )
            ]
        )
        .is_ok()
    );
    // An empty strategy means one batch.
    assert!(deploy("UpdateStrategy", "").release.strategy.is_none());
}

#[test]
fn mount_paths_are_absolute_and_unique() {
    refused(
        DeployK8sApplication,
        &[("EmptyDirs", r#"[{"mountPath":"relative"}]"#)],
        "EmptyDirs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("EmptyDirs", r#"[{"mountPath":"/a/../etc"}]"#)],
        "EmptyDirs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[
            ("EmptyDirs", r#"[{"mountPath":"/data"}]"#),
            (
                "ConfigMountDescs",
                r#"[{"name":"c","type":"ConfigMap","mountPath":"/data/"}]"#,
            ),
        ],
        "EmptyDirs",
        ViolationKind::Invalid,
    );
}

#[test]
fn strict_decoding_and_k8s_rules() {
    refused(
        DeployK8sApplication,
        &[(
            "Readiness",
            r#"{"tcpSocket":{"port":8080},"initialDelaySecond":5}"#,
        )],
        "Readiness",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Readiness", r#"{"tcpSocket":{"port":70000}}"#)],
        "Readiness",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Readiness", r#"{"periodSeconds":5}"#)],
        "Readiness",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[(
            "Envs",
            r#"[{"name":"A","value":"1"},{"name":"A","value":"2"}]"#,
        )],
        "Envs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Envs", r#"[{"name":"A""#)],
        "Envs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Envs", r#"{"name":"A"}"#)],
        "Envs",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("CustomTolerations", r#"[{"key":"k","operator":"Maybe"}]"#)],
        "CustomTolerations",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("Replicas", "ten")],
        "Replicas",
        ViolationKind::Invalid,
    );
    refused(
        DeployK8sApplication,
        &[("EnableLosslessRule", "yes")],
        "EnableLosslessRule",
        ViolationKind::Invalid,
    );
}

#[test]
fn unknown_and_duplicate_parameters_are_refused() {
    refused(
        DeployK8sApplication,
        &[("CommandArgs", "[]")],
        "CommandArgs",
        ViolationKind::Unknown,
    );
    refused(
        DeployK8sApplication,
        &[("Replica", "3")],
        "Replica",
        ViolationKind::Unknown,
    );
    assert!(Params::from_pairs([("A", "1"), ("A", "2")]).is_err());
    // RegionId is common to every request.
    assert_eq!(
        run(DeployK8sApplication, &[("RegionId", "cn-hangzhou")])
            .unwrap()
            .region_id
            .as_deref(),
        Some("cn-hangzhou")
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    let v = run(
        DeployK8sApplication,
        &[
            ("Replicas", "-3"),
            ("Envs", "nope"),
            ("RuntimeClassName", "kata"),
            ("WebContainer", "tomcat"),
        ],
    )
    .unwrap_err();
    for p in ["Replicas", "Envs", "RuntimeClassName", "WebContainer"] {
        assert!(v.names(p), "{p} missing from {v}");
    }
}

#[test]
fn revisions_round_trip_through_storage() {
    let c = run(
        DeployK8sApplication,
        &[("Envs", r#"[{"name":"A","value":"1"}]"#), ("Sidecars", r#"[ { "yamlEncoded": "Y29tbWFuZDoKICAtIHRhaWwKICAtICctZicKICAtIC9kZXYvbnVsbAppbWFnZTogJ2J1c3lib3g6bGF0ZXN0JwpuYW1lOiBidXN5Ym94Cg==" } ]"#), ("Labels", r#"{"a":"b"}"#)],
    )
    .unwrap();
    let json = serde_json::to_string(&c.spec).unwrap();
    let back: AppSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c.spec);
    let json = serde_json::to_string(&c.release).unwrap();
    assert_eq!(
        serde_json::from_str::<crate::ReleaseSettings>(&json).unwrap(),
        c.release
    );
    // Re-applying a revision as the current state with no parameters changes nothing.
    let again = apply(
        DeployK8sApplication,
        Some(&back),
        &params(&[("AppId", "a")]),
    )
    .unwrap();
    assert_eq!(again.spec, back);
    let _unused: BTreeMap<(), ()> = BTreeMap::new();
}

fn arbitrary_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just("[{}]".to_owned()),
        Just("[{\"yamlEncoded\":\"\"}]".to_owned()),
        "-?[0-9]{1,20}",
        "[\\[\\]{}\":,a-zA-Z0-9 ]{0,40}",
        Just("True".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Arbitrary strings in every parameter of every operation: errors, never panics.
    #[test]
    fn arbitrary_strings_never_panic(value in arbitrary_value(), op_index in 0usize..Operation::ALL.len()) {
        let op = Operation::ALL[op_index];
        let current = base();
        for (name, _) in op.parameters() {
            let p = Params::default().with("AppId", "a").with("AppName", "n").with("ClusterId", "local").with(name, &value);
            let _ = apply(op, Some(&current), &p);
            let _ = apply(op, None, &p);
        }
    }

    /// Arbitrary YAML-in-base64 for the container parameters.
    #[test]
    fn arbitrary_yaml_never_panics(yaml in "[a-z: \\-\\n\\[\\]{}'0-9]{0,80}") {
        use base64::Engine as _;
        let enc = base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes());
        let current = base();
        for name in ["Sidecars", "InitContainers"] {
            let p = Params::default().with("AppId", "a").with(name, &format!("[{{\"yamlEncoded\":\"{enc}\"}}]"));
            let _ = apply(DeployK8sApplication, Some(&current), &p);
        }
        let p = Params::default().with("AppId", "a").with("SecurityContext", &format!("{{\"yamlEncoded\":\"{enc}\"}}"));
        let _ = apply(DeployK8sApplication, Some(&current), &p);
    }
}

/// Every parameter of every operation is read by the decoder: a garbage value never passes as
/// "no such parameter", and each documented parameter is accepted in at least its clear form or
/// refused with a violation that names it.
#[test]
fn every_catalog_parameter_is_decoded() {
    let current = base();
    for op in Operation::ALL {
        for (name, _) in op.parameters() {
            let p = Params::default()
                .with("AppId", "a")
                .with("AppName", "n")
                .with("ClusterId", "local")
                .with(name, "\u{1}garbage");
            let cur = if op == InsertK8sApplication {
                None
            } else {
                Some(&current)
            };
            if let Err(v) = apply(op, cur, &p) {
                assert!(
                    !v.0.iter()
                        .any(|x| x.parameter == *name && x.kind == ViolationKind::Unknown),
                    "{name} unknown to {op:?}"
                );
            }
        }
    }
}

// === CreateK8sService, UpdateK8sService, DeleteK8sService ===

#[test]
fn services_are_created_updated_and_deleted_one_by_one() {
    let ports = r#"[{"protocol":"TCP","port":80,"targetPort":8080}]"#;
    let c = run(
        CreateK8sService,
        &[
            ("Name", "web"),
            ("Type", "ClusterIP"),
            ("ServicePorts", ports),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.services.len(), 1);
    let svc = &c.spec.services[0];
    assert_eq!(
        (svc.name.as_str(), svc.service_type.as_str()),
        ("web", "ClusterIP")
    );
    assert_eq!(svc.port_mappings[0].service_port.port, 80);
    assert_eq!(svc.port_mappings[0].service_port.target_port, 8080);
    let with_web = c.spec;

    let apply_to = |op, pairs: &[(&str, &str)]| {
        let mut all = vec![("AppId", "app-1")];
        all.extend_from_slice(pairs);
        apply(op, Some(&with_web), &params(&all))
    };
    // A second service named the same is refused; another name is added.
    let v = apply_to(
        CreateK8sService,
        &[
            ("Name", "web"),
            ("Type", "ClusterIP"),
            ("ServicePorts", ports),
        ],
    )
    .unwrap_err();
    assert!(
        v.0.iter()
            .any(|x| x.parameter == "Name" && x.message.contains("already")),
        "{v}"
    );
    let c = apply_to(
        CreateK8sService,
        &[
            ("Name", "admin"),
            ("Type", "ClusterIP"),
            ("ServicePorts", r#"[{"port":9090,"targetPort":8081}]"#),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.services.len(), 2);

    // Update: new ports; without ServicePorts the ports stay.
    let c = apply_to(
        UpdateK8sService,
        &[
            ("Name", "web"),
            ("Type", "ClusterIP"),
            (
                "ServicePorts",
                r#"[{"protocol":"TCP","port":8000,"targetPort":8080}]"#,
            ),
        ],
    )
    .unwrap();
    assert_eq!(c.spec.services[0].port_mappings[0].service_port.port, 8000);
    let c = apply_to(UpdateK8sService, &[("Name", "web"), ("Type", "ClusterIP")]).unwrap();
    assert_eq!(c.spec.services, with_web.services);
    let v = apply_to(UpdateK8sService, &[("Name", "nope"), ("Type", "ClusterIP")]).unwrap_err();
    assert!(
        v.0.iter().any(|x| x.parameter == "Name"
            && x.message
                .contains("has no service named `nope` (it has: web)")),
        "{v}"
    );

    // Delete.
    let c = apply_to(DeleteK8sService, &[("Name", "web")]).unwrap();
    assert!(c.spec.services.is_empty());
    assert!(
        apply_to(DeleteK8sService, &[("Name", "web"), ("Type", "ClusterIP")]).is_err(),
        "Type is not a DeleteK8sService parameter"
    );
}

#[test]
fn invalid_services_are_refused_naming_the_parameter() {
    let ok = r#"[{"port":80,"targetPort":8080}]"#;
    refused(
        CreateK8sService,
        &[("Type", "ClusterIP"), ("ServicePorts", ok)],
        "Name",
        ViolationKind::Missing,
    );
    refused(
        CreateK8sService,
        &[("Name", "web"), ("Type", "ClusterIP")],
        "ServicePorts",
        ViolationKind::Missing,
    );
    refused(
        CreateK8sService,
        &[
            ("Name", "Web_1"),
            ("Type", "ClusterIP"),
            ("ServicePorts", ok),
        ],
        "Name",
        ViolationKind::Invalid,
    );
    // Issue 24: NodePort and LoadBalancer are the runtime's to refuse (`local` does).
    for t in ["NodePort", "LoadBalancer"] {
        assert!(
            run(
                CreateK8sService,
                &[("Name", "web"), ("Type", t), ("ServicePorts", ok)]
            )
            .is_ok()
        );
    }
    assert!(
        run(
            CreateK8sService,
            &[
                ("Name", "web"),
                ("Type", "NodePort"),
                (
                    "ServicePorts",
                    r#"[{"port":80,"targetPort":8080,"nodePort":30080}]"#
                )
            ]
        )
        .is_ok()
    );
    refused(
        CreateK8sService,
        &[
            ("Name", "web"),
            ("Type", "NodePort"),
            (
                "ServicePorts",
                r#"[{"port":80,"targetPort":8080,"nodePort":80}]"#,
            ),
        ],
        "ServicePorts",
        ViolationKind::Invalid,
    );
    refused(
        CreateK8sService,
        &[("Name", "web"), ("Type", "Headless"), ("ServicePorts", ok)],
        "Type",
        ViolationKind::Invalid,
    );
    refused(
        CreateK8sService,
        &[
            ("Name", "web"),
            ("Type", "ClusterIP"),
            ("ServicePorts", ok),
            ("ExternalTrafficPolicy", "Local"),
        ],
        "ExternalTrafficPolicy",
        ViolationKind::NotSupported,
    );
    assert!(
        run(
            CreateK8sService,
            &[
                ("Name", "web"),
                ("Type", "ClusterIP"),
                ("ServicePorts", ok),
                ("ExternalTrafficPolicy", "Cluster")
            ]
        )
        .is_ok()
    );
    for bad in [
        "[]",
        r#"[{"port":0,"targetPort":8080}]"#,
        r#"[{"port":80,"targetPort":70000}]"#,
        r#"[{"port":80,"targetPort":8080,"protocol":"SCTP"}]"#,
        r#"[{"port":80,"targetPort":8080},{"port":80,"targetPort":8081}]"#,
        r#"[{"port":80,"targetPort":8080,"nodePort":30000}]"#,
        "not json",
    ] {
        refused(
            CreateK8sService,
            &[
                ("Name", "web"),
                ("Type", "ClusterIP"),
                ("ServicePorts", bad),
            ],
            "ServicePorts",
            ViolationKind::Invalid,
        );
    }
}

// === NUL bytes and JSON null ===

#[test]
fn a_nul_byte_in_any_parameter_is_refused_naming_it() {
    for (name, value) in [
        ("Command", "/bin/sh\0-c"),
        ("Args", "[\"a\0b\"]"),
        ("Envs", "[{\"name\":\"A\",\"value\":\"x\0y\"}]"),
    ] {
        let error = Params::from_pairs([(name, value)]).unwrap_err();
        assert_eq!(error.0[0].parameter, name, "{error}");
        assert!(error.0[0].message.contains("NUL"), "{error}");
    }
    // JSON-escaped NULs inside a JSON parameter, named by their path.
    for (name, value, path) in [
        ("Envs", r#"[{"name":"A","value":"x\u0000y"}]"#, "[0].value"),
        ("Envs", r#"[{"name":"A\u0000","value":"v"}]"#, "[0].name"),
        ("Args", r#"["ok","a\u0000b"]"#, "[1]"),
        (
            "Liveness",
            r#"{"exec":{"command":["sh","-c","x\u0000"]}}"#,
            "exec.command[2]",
        ),
    ] {
        let v = refused(
            DeployK8sApplication,
            &[(name, value)],
            name,
            ViolationKind::Invalid,
        );
        assert!(v.to_string().contains(path), "{name}: {v}");
    }
}

#[test]
fn json_null_is_a_documented_clear_form() {
    let c = deploy("Envs", "null");
    assert!(c.spec.envs.is_empty());
    assert!(crate::docs::parameters_markdown().contains("`null`"));
}

/// The one list of config references: every place a spec names a ConfigMap or Secret, mount
/// types in any case, names exactly as given (case-sensitive), the pull secret as its own kind.
#[test]
fn config_refs_list_every_reference_once() {
    use crate::model::{ConfigKind, ConfigRef};
    let mut spec = run(
        DeployK8sApplication,
        &[
            (
                "Envs",
                r#"[{"name":"A","valueFrom":{"configMapKeyRef":{"name":"cm1","key":"k"}}},{"name":"B","valueFrom":{"secretKeyRef":{"name":"s1","key":"k"}}}]"#,
            ),
            (
                "EnvFroms",
                r#"[{"configMapRef":{"name":"cm2"}},{"secretRef":{"name":"s2"}},{"configMapRef":{"name":"cm1"}}]"#,
            ),
            (
                "ConfigMountDescs",
                r#"[{"name":"cm3","type":"configmap","mountPath":"/a"},{"name":"s3","type":"SECRET","mountPath":"/b"}]"#,
            ),
        ],
    )
    .unwrap_or_else(|v| panic!("refused: {v}"))
    .spec;
    spec.image_pull_secret = Some("pull".into());
    let r = |kind, name: &str| ConfigRef {
        kind,
        name: name.to_owned(),
    };
    let want: std::collections::BTreeSet<ConfigRef> = [
        r(ConfigKind::ConfigMap, "cm1"),
        r(ConfigKind::ConfigMap, "cm2"),
        r(ConfigKind::ConfigMap, "cm3"),
        r(ConfigKind::Secret, "s1"),
        r(ConfigKind::Secret, "s2"),
        r(ConfigKind::Secret, "s3"),
        r(ConfigKind::PullSecret, "pull"),
    ]
    .into_iter()
    .collect();
    assert_eq!(spec.config_refs(), want);
    // Renaming visits exactly what is listed.
    let mut renamed = spec.clone();
    renamed.rename_config_refs(|kind, name| Some(format!("{name}-{kind:?}")));
    let moved: std::collections::BTreeSet<ConfigRef> = want
        .iter()
        .map(|x| r(x.kind, &format!("{}-{:?}", x.name, x.kind)))
        .collect();
    assert_eq!(renamed.config_refs(), moved);
    assert!(ConfigKind::PullSecret.is_secret() && !ConfigKind::PullSecret.is_copied());
    assert!(!ConfigKind::ConfigMap.is_secret() && ConfigKind::ConfigMap.is_copied());
}
