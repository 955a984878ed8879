//! From the stored models to the EDAS wire shapes the SDK models read: GetK8sApplication's
//! `Applcation` (sic), ListApplication's items and GetChangeOrderInfo's `changeOrderInfo` with
//! their XML-style wrapper objects. Pure.

use edas_app::release::{EpochMillis, Pipeline, Release, Stage, StageKind, Status, TimerKind};
use edas_app::{Application, OrderState as ChangeOrder, StoredChangeOrder};
use edas_spec::AppSpec;
use edas_spec::model::Artifact;
use edas_wire as wire;
use edas_wire::application as app_wire;
use serde::Serialize;
use serde_json::{Value, json};

/// `ClusterType` of a Kubernetes application (EDAS: 5 = Container Service for Kubernetes).
pub const CLUSTER_TYPE_KUBERNETES: i64 = 5;

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

/// JSON text of a map, `""` when it is empty.
fn map_text(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        json_text(Some(map))
    }
}

/// A setting as its own JSON, for the `Edasd` section (`null` when it cannot be encoded, which
/// the model's types never do).
fn json_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
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
pub fn k8s_application(app: &Application, spec: &AppSpec) -> app_wire::K8sApplication {
    let r = &spec.resources;
    let plain_envs = spec
        .envs
        .iter()
        .filter(|e| e.value_from.is_none())
        .map(|e| app_wire::NameValue {
            name: e.name.clone(),
            value: e.value.clone().unwrap_or_default(),
        })
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
    let tag = tag.to_owned();
    let (package_url, package_version, jdk, base_image) = match &spec.artifact {
        Artifact::Package(p) => (
            p.url.clone(),
            p.version.clone(),
            p.jdk.clone().unwrap_or_default(),
            p.base_image.clone().unwrap_or_default(),
        ),
        _ => Default::default(),
    };
    // The volume settings keep the parameters' own camelCase keys inside the JSON text.
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
    let command = spec.command.clone().unwrap_or_default();
    let package = package_type(spec).to_owned();
    app_wire::K8sApplication {
        app_id: app.id.clone(),
        app: app_wire::K8sApp {
            app_id: app.id.clone(),
            application_name: spec.name.clone(),
            application_type: package.clone(),
            deploy_type: package,
            develop_type: if spec.multilingual {
                "Multilingual"
            } else {
                "General"
            }
            .to_owned(),
            cluster_id: app.cluster_id.clone(),
            cs_cluster_id: String::new(),
            region_id: app.region_id.clone(),
            k8s_namespace: spec.k8s_namespace.clone(),
            instances: i64::from(spec.effective_replicas()),
            instances_before_scaling: i64::from(spec.replicas),
            cmd: command.clone(),
            cmd_args: app_wire::CmdArgs {
                cmd_arg: spec.args.clone(),
            },
            env_list: app_wire::EnvList { env: plain_envs },
            labels: map_text(&spec.labels),
            annotations: map_text(&spec.annotations),
            limit_cpu_m: i64::from(r.cpu_limit_millis.unwrap_or(0)),
            request_cpu_m: i64::from(r.cpu_request_millis.unwrap_or(0)),
            limit_mem: i64::from(r.memory_limit_mib.unwrap_or(0)),
            request_mem: i64::from(r.memory_request_mib.unwrap_or(0)),
            limit_ephemeral_storage: r.ephemeral_limit_gib.unwrap_or(0).to_string(),
            request_ephemeral_storage: r.ephemeral_request_gib.unwrap_or(0).to_string(),
            enable_empty_push_reject: spec.empty_push_reject,
            enable_lossless_rule: spec.lossless.enabled,
            lossless_rule_aligned: spec.lossless.aligned,
            lossless_rule_delay_time: i64::from(spec.lossless.delay_seconds),
            lossless_rule_func_type: i64::from(spec.lossless.func_type),
            lossless_rule_related: spec.lossless.related,
            lossless_rule_warmup_time: i64::from(spec.lossless.warmup_seconds),
            security_context: json_text(spec.security_context.as_ref()),
            slb_info: String::new(),
            tomcat_version: String::new(),
            edas_container_version: String::new(),
            workload_type: spec.workload.as_str().to_owned(),
            feature_annotations: "base.combination.none".to_owned(),
        },
        conf: app_wire::K8sConf {
            liveness: json_text(spec.liveness.as_ref()),
            readiness: json_text(spec.readiness.as_ref()),
            post_start: json_text(spec.post_start.as_ref()),
            pre_stop: json_text(spec.pre_stop.as_ref()),
            affinity: json_text(spec.custom_affinity.as_ref()),
            tolerations: list_text(&spec.custom_tolerations),
            deploy_across_nodes: spec.deploy_across_nodes.to_string(),
            deploy_across_zones: spec.deploy_across_zones.to_string(),
            k8s_cmd: command,
            k8s_cmd_args: list_text(&spec.args),
            k8s_localvolume_info: list_text(&spec.local_volumes),
            k8s_nas_info: nas,
            k8s_volume_info: if has_volumes {
                json_text(Some(&volumes))
            } else {
                String::new()
            },
            runtime_class_name: spec.runtime_class_name.clone().unwrap_or_default(),
            user_base_image_url: base_image,
            ahas_enabled: false,
            jar_start_options: spec.java_options().join(" "),
            jar_start_args: String::new(),
        },
        deploy_groups: app_wire::DeployGroups {
            deploy_group: vec![app_wire::DeployGroup {
                env: list_text(&spec.envs),
                env_from: list_text(&spec.env_froms),
                components: app_wire::Components::default(),
            }],
        },
        image_info: app_wire::ImageInfo {
            image_url,
            repo_id,
            repo_name,
            repo_namespace,
            repo_origin_type: String::new(),
            region_id: app.region_id.clone(),
            tag,
        },
        latest_version: app_wire::LatestVersion {
            package_version,
            url: package_url,
            war_url: String::new(),
        },
        edasd: app_wire::EdasdSettings {
            description: spec.description.clone(),
            edas_namespace: app.namespace_id.clone(),
            resource_group_id: spec.resource_group_id.clone(),
            jdk,
            startup: json_value(&spec.startup),
            terminate_grace_period: spec.termination_grace_period_seconds.map(i64::from),
            image_platforms: spec.image_platforms.clone(),
            image_pull_secret: spec.image_pull_secret.clone(),
            sidecars: json_value(&spec.sidecars),
            init_containers: json_value(&spec.init_containers),
            java_start_up_config: json_value(&spec.java_startup),
            web_container_config: json_value(&spec.web_container),
            uri_encoding: spec.uri_encoding.clone(),
            sls_configs: json_value(&spec.log_collection),
            service_configs: json_value(&spec.services),
            min_ready_seconds: i64::from(spec.min_ready_seconds),
            stopped: spec.stopped,
            state: app.state.clone(),
            revision: app.current_revision,
        },
    }
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
pub fn application_list_item(
    app: &Application,
    spec: &AppSpec,
    running: usize,
) -> app_wire::ApplicationItem {
    app_wire::ApplicationItem {
        app_id: app.id.clone(),
        name: app.name.clone(),
        region_id: app.region_id.clone(),
        namespace_id: app.namespace_id.clone(),
        cluster_id: app.cluster_id.clone(),
        cluster_type: CLUSTER_TYPE_KUBERNETES,
        k8s_namespace: app.k8s_namespace.clone(),
        application_type: package_type(spec).to_owned(),
        instances: i64::from(spec.effective_replicas()),
        running_instance_count: count(running),
        state: app.state.clone(),
        create_time: millis(app.created_at),
        resource_group_id: spec.resource_group_id.clone().unwrap_or_default(),
    }
}

/// A count as the wire's integer.
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ms_text(t: Option<EpochMillis>) -> String {
    t.map(|t| t.0.to_string()).unwrap_or_default()
}

fn iso_text(t: Option<EpochMillis>) -> String {
    t.and_then(|t| i64::try_from(t.0).ok())
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `changeOrderInfo` object of GetChangeOrderInfo.
pub fn change_order_info(
    stored: &StoredChangeOrder,
    order: &ChangeOrder,
    app: &Application,
) -> wire::ChangeOrderInfo {
    wire::ChangeOrderInfo {
        head: change_order_head(
            stored,
            order,
            millis(stored.created_at).to_string(),
            ms_text(order.finish_time()),
        ),
        desc: order.message().unwrap_or(order.description()).to_owned(),
        support_rollback: order.supports_rollback(),
        targets: wire::Targets {
            items: vec![app.name.clone()],
        },
        pipeline_info_list: wire::PipelineInfoList {
            pipeline_info: order.pipelines().iter().map(pipeline).collect(),
        },
        next_batch_time: ms_text(
            order
                .armed_timers()
                .into_iter()
                .find(|(timer, _)| timer.kind == TimerKind::NextBatch)
                .map(|(_, at)| at),
        ),
    }
}

/// The fields both change-order responses have; the times as the operation formats them.
pub fn change_order_head(
    stored: &StoredChangeOrder,
    order: &ChangeOrder,
    create_time: String,
    finish_time: String,
) -> wire::ChangeOrderHead {
    let co_type = edas_app::change_order_type(order);
    wire::ChangeOrderHead {
        change_order_id: stored.id.clone(),
        status: i64::from(stored.status.code()),
        batch_count: count(order.batch_count()),
        batch_type: batch_type(order).to_owned(),
        change_order_description: order.description().to_owned(),
        co_type: co_type.to_owned(),
        co_type_code: stored.co_type.clone(),
        create_time,
        finish_time,
        create_user_id: stored.creator.clone().unwrap_or_default(),
        app_id: stored.app_id.clone(),
    }
}

/// `BatchType`: `Manual` or `Automatic`.
pub fn batch_type(order: &ChangeOrder) -> &'static str {
    match order.release() {
        Release::Manual => "Manual",
        Release::Auto { .. } => "Automatic",
    }
}

fn pipeline(p: &Pipeline) -> wire::PipelineInfo {
    wire::PipelineInfo {
        pipeline_id: p.id.clone(),
        pipeline_name: p.name.clone(),
        pipeline_status: i64::from(p.status.code()),
        start_time: ms_text(p.start_time),
        update_time: p.update_time.0.to_string(),
        stage_detail_list: wire::StageDetailList {
            stage_detail_dto: p.stages.iter().map(stage_detail).collect(),
        },
        stage_list: wire::StageList {
            stage_info_dto: p.stages.iter().map(|s| stage_info(p, s)).collect(),
        },
    }
}

fn stage_detail(s: &Stage) -> wire::StageDetail {
    let t = &s.task;
    wire::StageDetail {
        stage_id: s.id.clone(),
        stage_name: s.name.clone(),
        stage_status: i64::from(s.status.code()),
        task_list: wire::TaskList {
            task_info_dto: vec![wire::TaskInfo {
                task_id: t.id.clone(),
                task_name: t.name.clone(),
                task_status: t.status.code().to_string(),
                task_message: t.message.clone(),
                task_error_code: t.error_code.clone().unwrap_or_default(),
                task_error_message: t.error_message.clone().unwrap_or_default(),
                task_error_ignorance: 0,
                // A failed task is retried by RetryChangeOrderTask: manual retry.
                retry_type: if t.status.is_failure() { 2 } else { 0 },
                show_manual_ignorance: false,
            }],
        },
    }
}

fn stage_ref(s: &Stage, status: i32) -> wire::StageRef {
    wire::StageRef {
        stage_id: s.id.clone(),
        stage_name: s.name.clone(),
        status: i64::from(status),
    }
}

fn stage_info(p: &Pipeline, s: &Stage) -> wire::StageInfo {
    // The instances belong to the stages that start them and wait for them.
    let instances: Vec<wire::Instance> =
        if matches!(s.kind, StageKind::StartNew | StageKind::Readiness) {
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
                    let pod_status = if i.failed.is_some() {
                        "Failed"
                    } else if i.ready {
                        "Running"
                    } else {
                        "Pending"
                    };
                    wire::Instance {
                        instance_name: i.name.clone(),
                        pod_name: i.name.clone(),
                        instance_ip: i.ip.clone().unwrap_or_default(),
                        pod_status: pod_status.to_owned(),
                        status: i64::from(status),
                        instance_stage_dto_list: wire::InstanceStageList {
                            instance_stage_dto: vec![wire::InstanceStage {
                                stage: stage_ref(s, stage_status),
                                stage_message: i.failed.clone().unwrap_or_default(),
                                // ISO-8601 here, unlike the pipeline's epoch-millisecond
                                // strings (SDK examples).
                                start_time: iso_text(s.start_time),
                                finish_time: iso_text(s.finish_time),
                            }],
                        },
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
    wire::StageInfo {
        stage: stage_ref(s, s.status.code()),
        stage_result_dto: wire::StageResult {
            service_stage: wire::ServiceStage {
                stage: stage_ref(s, s.status.code()),
                message: s.task.message.clone(),
            },
            instance_dto_list: wire::InstanceList {
                instance_dto: instances,
            },
        },
    }
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
