//! From the stored models to the EDAS wire shapes the SDK models read: GetK8sApplication's
//! `Applcation` (sic), ListApplication's items and GetChangeOrderInfo's `changeOrderInfo` with
//! their XML-style wrapper objects. Pure.

use edas_release::{ChangeOrder, Pipeline, Release, Stage, StageKind, Status};
use edas_spec::AppSpec;
use edas_spec::model::Artifact;
use edas_store::Application;
use serde::Serialize;
use serde_json::{Value, json};

/// `ClusterType` of a Kubernetes application (EDAS: 5 = Container Service for Kubernetes).
pub const CLUSTER_TYPE_KUBERNETES: i32 = 5;

/// Compact JSON text of a value, the way EDAS returns JSON-valued fields; `""` when absent.
fn json_text<T: Serialize>(value: Option<&T>) -> String {
    value
        .and_then(|v| serde_json::to_string(v).ok())
        .unwrap_or_default()
}

/// JSON text of a list, `""` when it is empty.
fn list_text<T: Serialize>(list: &[T]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        json_text(Some(&list))
    }
}

/// `Image`, `FatJar` or `Empty` (nothing deployed yet), as ApplicationType/DeployType.
pub(crate) fn package_type(spec: &AppSpec) -> &'static str {
    match &spec.artifact {
        Artifact::Image { .. } => "Image",
        Artifact::Package(_) => "FatJar",
        Artifact::None => "Empty",
    }
}

fn millis(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// The `Applcation` object of GetK8sApplication.
pub fn k8s_application(app: &Application, spec: &AppSpec) -> Value {
    let r = &spec.resources;
    let plain_envs: Vec<Value> = spec
        .envs
        .iter()
        .filter(|e| e.value_from.is_none())
        .map(|e| json!({"Name": e.name, "Value": e.value.clone().unwrap_or_default()}))
        .collect();
    let (image_url, repo_id) = match &spec.artifact {
        Artifact::Image { url, repo_id } => (url.clone(), repo_id.clone().unwrap_or_default()),
        _ => (String::new(), String::new()),
    };
    let (image_name, tag) = split_image(&image_url);
    let (repo_namespace, repo_name) = match image_name.rsplit_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), image_name.to_owned()),
    };
    let (package_url, package_version, jdk, base_image) = match &spec.artifact {
        Artifact::Package(p) => (
            p.url.clone(),
            p.version.clone(),
            p.jdk.clone().unwrap_or_default(),
            p.base_image.clone().unwrap_or_default(),
        ),
        _ => Default::default(),
    };
    let volumes = json!({
        "configMounts": spec.config_mounts,
        "pvcMounts": spec.pvc_mounts,
        "emptyDirs": spec.empty_dirs,
    });
    let has_volumes = !(spec.config_mounts.is_empty()
        && spec.pvc_mounts.is_empty()
        && spec.empty_dirs.is_empty());
    let nas = if spec.nfs.server.is_some() || !spec.nfs.mounts.is_empty() {
        json_text(Some(&json!({
            "nasId": spec.nfs.server,
            "storageType": spec.nfs.storage_type,
            "mountDescs": spec.nfs.mounts,
        })))
    } else {
        String::new()
    };
    let java_options = spec.java_options().join(" ");
    json!({
        "AppId": app.id,
        "App": {
            "AppId": app.id,
            "ApplicationName": spec.name,
            "ApplicationType": package_type(spec),
            "DeployType": package_type(spec),
            "DevelopType": if spec.multilingual { "Multilingual" } else { "General" },
            "ClusterId": app.cluster_id,
            "CsClusterId": "",
            "RegionId": app.region_id,
            "K8sNamespace": spec.k8s_namespace,
            "Instances": spec.effective_replicas(),
            "InstancesBeforeScaling": spec.replicas,
            "Cmd": spec.command.clone().unwrap_or_default(),
            "CmdArgs": {"CmdArg": spec.args},
            "EnvList": {"Env": plain_envs},
            "Labels": if spec.labels.is_empty() { String::new() } else { json_text(Some(&spec.labels)) },
            "Annotations": if spec.annotations.is_empty() { String::new() } else { json_text(Some(&spec.annotations)) },
            "LimitCpuM": r.cpu_limit_millis.unwrap_or(0),
            "RequestCpuM": r.cpu_request_millis.unwrap_or(0),
            "LimitMem": r.memory_limit_mib.unwrap_or(0),
            "RequestMem": r.memory_request_mib.unwrap_or(0),
            "LimitEphemeralStorage": r.ephemeral_limit_gib.unwrap_or(0).to_string(),
            "RequestEphemeralStorage": r.ephemeral_request_gib.unwrap_or(0).to_string(),
            "EnableEmptyPushReject": spec.empty_push_reject,
            "EnableLosslessRule": spec.lossless.enabled,
            "LosslessRuleAligned": spec.lossless.aligned,
            "LosslessRuleDelayTime": spec.lossless.delay_seconds,
            "LosslessRuleFuncType": spec.lossless.func_type,
            "LosslessRuleRelated": spec.lossless.related,
            "LosslessRuleWarmupTime": spec.lossless.warmup_seconds,
            "SecurityContext": json_text(spec.security_context.as_ref()),
            "SlbInfo": "",
            "TomcatVersion": "",
            "EdasContainerVersion": "",
            "WorkloadType": "Deployment",
            "FeatureAnnotations": "base.combination.none",
        },
        "Conf": {
            "Liveness": json_text(spec.liveness.as_ref()),
            "Readiness": json_text(spec.readiness.as_ref()),
            "PostStart": json_text(spec.post_start.as_ref()),
            "PreStop": json_text(spec.pre_stop.as_ref()),
            "Affinity": json_text(spec.custom_affinity.as_ref()),
            "Tolerations": list_text(&spec.custom_tolerations),
            "DeployAcrossNodes": spec.deploy_across_nodes.to_string(),
            "DeployAcrossZones": spec.deploy_across_zones.to_string(),
            "K8sCmd": spec.command.clone().unwrap_or_default(),
            "K8sCmdArgs": list_text(&spec.args),
            "K8sLocalvolumeInfo": list_text(&spec.local_volumes),
            "K8sNasInfo": nas,
            "K8sVolumeInfo": if has_volumes { json_text(Some(&volumes)) } else { String::new() },
            "RuntimeClassName": spec.runtime_class_name.clone().unwrap_or_default(),
            "UserBaseImageUrl": base_image,
            "AhasEnabled": false,
            "JarStartOptions": java_options,
            "JarStartArgs": "",
        },
        "DeployGroups": {"DeployGroup": [{
            "Env": list_text(&spec.envs),
            "EnvFrom": list_text(&spec.env_froms),
            "Components": {"Components": []},
        }]},
        "ImageInfo": {
            "ImageUrl": image_url,
            "RepoId": repo_id,
            "RepoName": repo_name,
            "RepoNamespace": repo_namespace,
            "RepoOriginType": "",
            "RegionId": app.region_id,
            "Tag": tag,
        },
        "LatestVersion": {
            "PackageVersion": package_version,
            "Url": package_url,
            "WarUrl": "",
        },
        // Settings the EDAS response has no field for, so they can be read back too (the SDK
        // models ignore keys they do not know; raw JSON readers see them).
        "Edasd": {
            "Description": spec.description,
            "EdasNamespace": app.namespace_id,
            "ResourceGroupId": spec.resource_group_id,
            "Jdk": jdk,
            "Startup": spec.startup,
            "TerminateGracePeriod": spec.termination_grace_period_seconds,
            "ImagePlatforms": spec.image_platforms,
            "ImagePullSecret": spec.image_pull_secret,
            "Sidecars": spec.sidecars,
            "InitContainers": spec.init_containers,
            "JavaStartUpConfig": spec.java_startup,
            "WebContainerConfig": spec.web_container,
            "UriEncoding": spec.uri_encoding,
            "SlsConfigs": spec.log_collection,
            "ServiceConfigs": spec.services,
            "MinReadySeconds": spec.min_ready_seconds,
            "Stopped": spec.stopped,
            "State": app.state,
            "Revision": app.current_revision,
        },
    })
}

/// `registry/ns/name:tag` → (`registry/ns/name`, `tag`); a digest or no tag gives an empty tag.
fn split_image(image: &str) -> (&str, &str) {
    let last_segment_start = image.rfind('/').map_or(0, |i| i + 1);
    if image.contains('@') {
        return (image, "");
    }
    match image[last_segment_start..].rfind(':') {
        Some(i) => (
            &image[..last_segment_start + i],
            &image[last_segment_start + i + 1..],
        ),
        None => (image, ""),
    }
}

/// One `ApplicationList.Application[]` item of ListApplication; `running` is the number of
/// ready instances the runtime reports.
pub fn application_list_item(app: &Application, spec: &AppSpec, running: usize) -> Value {
    json!({
        "AppId": app.id,
        "Name": app.name,
        "RegionId": app.region_id,
        "NamespaceId": app.namespace_id,
        "ClusterId": app.cluster_id,
        "ClusterType": CLUSTER_TYPE_KUBERNETES,
        "K8sNamespace": app.k8s_namespace,
        "ApplicationType": package_type(spec),
        "Instances": spec.effective_replicas(),
        "RunningInstanceCount": running,
        "State": app.state,
        "CreateTime": millis(app.created_at),
        "ResourceGroupId": spec.resource_group_id.clone().unwrap_or_default(),
    })
}

fn ms_text(t: Option<edas_release::EpochMillis>) -> String {
    t.map(|t| t.0.to_string()).unwrap_or_default()
}

fn iso_text(t: Option<edas_release::EpochMillis>) -> String {
    t.and_then(|t| i64::try_from(t.0).ok())
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `changeOrderInfo` object of GetChangeOrderInfo.
pub fn change_order_info(
    stored: &edas_store::ChangeOrder,
    order: &ChangeOrder,
    app: &Application,
) -> Value {
    let (_, co_type) = edas_engine::mapping::co_type(order.kind());
    let batch_type = match order.release() {
        Release::Manual => "Manual",
        Release::Auto { .. } => "Automatic",
    };
    let pipelines: Vec<Value> = order.pipelines().iter().map(pipeline).collect();
    json!({
        "ChangeOrderId": stored.id,
        "Status": stored.status.code(),
        "BatchCount": order.batch_count(),
        "BatchType": batch_type,
        "ChangeOrderDescription": order.description(),
        "Desc": order.message().unwrap_or(order.description()),
        "CoType": co_type,
        "CoTypeCode": stored.co_type,
        "CreateTime": millis(stored.created_at).to_string(),
        "FinishTime": ms_text(order.finish_time()),
        "CreateUserId": stored.creator.as_deref().unwrap_or_default(),
        "AppId": app.id,
        "SupportRollback": order.supports_rollback(),
        "Targets": {"Items": [app.name.clone()]},
        "PipelineInfoList": {"PipelineInfo": pipelines},
    })
}

fn pipeline(p: &Pipeline) -> Value {
    let details: Vec<Value> = p.stages.iter().map(stage_detail).collect();
    let stages: Vec<Value> = p.stages.iter().map(|s| stage_info(p, s)).collect();
    json!({
        "PipelineId": p.id,
        "PipelineName": p.name,
        "PipelineStatus": p.status.code(),
        "StartTime": ms_text(p.start_time),
        "UpdateTime": p.update_time.0.to_string(),
        "StageDetailList": {"StageDetailDTO": details},
        "StageList": {"StageInfoDTO": stages},
    })
}

fn stage_detail(s: &Stage) -> Value {
    let t = &s.task;
    let failed = t.status.is_failure();
    json!({
        "StageId": s.id,
        "StageName": s.name,
        "StageStatus": s.status.code(),
        "TaskList": {"TaskInfoDTO": [{
            "TaskId": t.id,
            "TaskName": t.name,
            "TaskStatus": t.status.code().to_string(),
            "TaskMessage": t.message,
            "TaskErrorCode": t.error_code.clone().unwrap_or_default(),
            "TaskErrorMessage": t.error_message.clone().unwrap_or_default(),
            "TaskErrorIgnorance": 0,
            // A failed task is retried by RetryChangeOrderTask: manual retry.
            "RetryType": if failed { 2 } else { 0 },
            "ShowManualIgnorance": false,
        }]},
    })
}

fn stage_info(p: &Pipeline, s: &Stage) -> Value {
    // The instances belong to the stages that start them and wait for them.
    let instances: Vec<Value> = if matches!(s.kind, StageKind::StartNew | StageKind::Readiness) {
        p.instances
            .iter()
            .map(|i| {
                let status = i.status().code();
                // Within "start new instances" an instance that exists has done its part;
                // within "readiness" its own readiness is the stage's outcome for it.
                let stage_status = match (s.kind, &i.failed) {
                    (_, Some(_)) => Status::Failed.code(),
                    (StageKind::StartNew, None) => Status::Success.code(),
                    _ => status,
                };
                json!({
                    "InstanceName": i.name,
                    "PodName": i.name,
                    "InstanceIp": i.ip.clone().unwrap_or_default(),
                    "PodStatus": if i.failed.is_some() { "Failed" } else if i.ready { "Running" } else { "Pending" },
                    "Status": status,
                    "InstanceStageDTOList": {"InstanceStageDTO": [{
                        "StageId": s.id,
                        "StageName": s.name,
                        "Status": stage_status,
                        "StageMessage": i.failed.clone().unwrap_or_default(),
                        // ISO-8601 here, unlike the pipeline's epoch-millisecond strings (SDK examples).
                        "StartTime": iso_text(s.start_time),
                        "FinishTime": iso_text(s.finish_time),
                    }]},
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "StageId": s.id,
        "StageName": s.name,
        "Status": s.status.code(),
        "StageResultDTO": {
            "ServiceStage": {
                "StageId": s.id,
                "StageName": s.name,
                "Status": s.status.code(),
                "Message": s.task.message,
            },
            "InstanceDTOList": {"InstanceDTO": instances},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_image("nginx:1.25"), ("nginx", "1.25"));
        assert_eq!(
            split_image("registry:5000/team/app:v2"),
            ("registry:5000/team/app", "v2")
        );
        assert_eq!(
            split_image("registry:5000/team/app"),
            ("registry:5000/team/app", "")
        );
        assert_eq!(split_image("app@sha256:abc"), ("app@sha256:abc", ""));
        assert_eq!(split_image(""), ("", ""));
    }
}
