//! The application operations: InsertK8sApplication's `ApplicationInfo`, the `ChangeOrderId` of
//! every change of an application (Deploy, Scale, Start, Stop, Restart, UpdateConfig, Delete and
//! the Service changes), GetK8sApplication's `Applcation` (sic), ListApplication,
//! GetApplication and QueryApplicationStatus (edas-api.md §1.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient;

/// The body of InsertK8sApplication: `{"ApplicationInfo": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationInfoBody {
    pub application_info: ApplicationInfo,
}

/// The application just created, with its first change order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationInfo {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_id: String,
    /// 5: Kubernetes.
    #[serde(deserialize_with = "lenient::int")]
    pub cluster_type: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub dockerize: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub edas_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub owner: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub user_id: String,
}

/// The body of every change of an existing application and of its Services:
/// `{"ChangeOrderId": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderIdBody {
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_id: String,
}

/// The body of GetK8sApplication: the key is `Applcation`, misspelt as EDAS spells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct K8sApplicationBody {
    #[serde(rename = "Applcation")]
    pub applcation: K8sApplication,
}

/// An application's current spec as GetK8sApplication shows it. JSON-valued settings are JSON
/// text (`""` when unset), as EDAS returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sApplication {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    pub app: K8sApp,
    pub conf: K8sConf,
    pub deploy_groups: DeployGroups,
    pub image_info: ImageInfo,
    pub latest_version: LatestVersion,
    /// edasd's own section: settings EDAS's response has no field for, so they read back too
    /// (the SDK models ignore keys they do not know).
    pub edasd: EdasdSettings,
}

/// `Applcation.App`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sApp {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub application_name: String,
    /// `Image`, `FatJar` or `Empty` (nothing deployed yet).
    #[serde(deserialize_with = "lenient::text")]
    pub application_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub deploy_type: String,
    /// `General` or `Multilingual`.
    #[serde(deserialize_with = "lenient::text")]
    pub develop_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cs_cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_namespace: String,
    /// Instances now (0 while stopped).
    #[serde(deserialize_with = "lenient::int")]
    pub instances: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub instances_before_scaling: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub cmd: String,
    pub cmd_args: CmdArgs,
    pub env_list: EnvList,
    /// JSON text.
    #[serde(deserialize_with = "lenient::text")]
    pub labels: String,
    /// JSON text.
    #[serde(deserialize_with = "lenient::text")]
    pub annotations: String,
    #[serde(deserialize_with = "lenient::int")]
    pub limit_cpu_m: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub request_cpu_m: i64,
    /// MiB.
    #[serde(deserialize_with = "lenient::int")]
    pub limit_mem: i64,
    /// MiB.
    #[serde(deserialize_with = "lenient::int")]
    pub request_mem: i64,
    /// GiB, as a string.
    #[serde(deserialize_with = "lenient::text")]
    pub limit_ephemeral_storage: String,
    /// GiB, as a string.
    #[serde(deserialize_with = "lenient::text")]
    pub request_ephemeral_storage: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_empty_push_reject: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_lossless_rule: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub lossless_rule_aligned: bool,
    #[serde(deserialize_with = "lenient::int")]
    pub lossless_rule_delay_time: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub lossless_rule_func_type: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub lossless_rule_related: bool,
    #[serde(deserialize_with = "lenient::int")]
    pub lossless_rule_warmup_time: i64,
    /// JSON text.
    #[serde(deserialize_with = "lenient::text")]
    pub security_context: String,
    #[serde(deserialize_with = "lenient::text")]
    pub slb_info: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tomcat_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub edas_container_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub workload_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub feature_annotations: String,
}

/// `App.CmdArgs.CmdArg[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CmdArgs {
    pub cmd_arg: Vec<String>,
}

/// `App.EnvList.Env[]`: the plain variables (those read from a ConfigMap or Secret are in
/// `DeployGroups`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnvList {
    pub env: Vec<NameValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NameValue {
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub value: String,
}

/// `Applcation.Conf`: probes, hooks, scheduling and volumes as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sConf {
    #[serde(deserialize_with = "lenient::text")]
    pub liveness: String,
    #[serde(deserialize_with = "lenient::text")]
    pub readiness: String,
    #[serde(deserialize_with = "lenient::text")]
    pub post_start: String,
    #[serde(deserialize_with = "lenient::text")]
    pub pre_stop: String,
    #[serde(deserialize_with = "lenient::text")]
    pub affinity: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tolerations: String,
    /// `"true"` or `"false"`.
    #[serde(deserialize_with = "lenient::text")]
    pub deploy_across_nodes: String,
    /// `"true"` or `"false"`.
    #[serde(deserialize_with = "lenient::text")]
    pub deploy_across_zones: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_cmd: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_cmd_args: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_localvolume_info: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_nas_info: String,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_volume_info: String,
    #[serde(deserialize_with = "lenient::text")]
    pub runtime_class_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub user_base_image_url: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub ahas_enabled: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub jar_start_options: String,
    #[serde(deserialize_with = "lenient::text")]
    pub jar_start_args: String,
}

/// `Applcation.DeployGroups.DeployGroup[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeployGroups {
    pub deploy_group: Vec<DeployGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeployGroup {
    /// Every variable, JSON text (`""` when none).
    #[serde(deserialize_with = "lenient::text")]
    pub env: String,
    /// JSON text (`""` when none).
    #[serde(deserialize_with = "lenient::text")]
    pub env_from: String,
    pub components: Components,
}

/// `Components.Components[]`: EDAS's middleware components; edasd has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Components {
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Component {
    #[serde(deserialize_with = "lenient::text")]
    pub component_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub component_key: String,
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
}

/// `Applcation.ImageInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageInfo {
    #[serde(deserialize_with = "lenient::text")]
    pub image_url: String,
    #[serde(deserialize_with = "lenient::text")]
    pub repo_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub repo_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub repo_namespace: String,
    #[serde(deserialize_with = "lenient::text")]
    pub repo_origin_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tag: String,
}

/// `Applcation.LatestVersion`: the package of a package application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LatestVersion {
    #[serde(deserialize_with = "lenient::text")]
    pub package_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub url: String,
    #[serde(deserialize_with = "lenient::text")]
    pub war_url: String,
}

/// `Applcation.Edasd`: what edasd keeps that EDAS's response cannot say. The structured settings
/// are the parameters' own JSON (`null` when unset), opaque to this crate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EdasdSettings {
    #[serde(deserialize_with = "lenient::opt_text")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    pub edas_namespace: String,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub resource_group_id: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    pub jdk: String,
    pub startup: Value,
    #[serde(deserialize_with = "lenient::opt_int")]
    pub terminate_grace_period: Option<i64>,
    pub image_platforms: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub image_pull_secret: Option<String>,
    pub sidecars: Value,
    pub init_containers: Value,
    #[serde(rename = "JavaStartUpConfig")]
    pub java_start_up_config: Value,
    pub web_container_config: Value,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub uri_encoding: Option<String>,
    pub sls_configs: Value,
    pub service_configs: Value,
    #[serde(deserialize_with = "lenient::int")]
    pub min_ready_seconds: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub stopped: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub state: String,
    #[serde(deserialize_with = "lenient::int")]
    pub revision: i64,
}

/// The body of ListApplication: `{"ApplicationList": {"Application": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationListBody {
    pub application_list: ApplicationList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationList {
    pub application: Vec<ApplicationItem>,
}

/// One application of ListApplication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationItem {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub cluster_type: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub k8s_namespace: String,
    #[serde(deserialize_with = "lenient::text")]
    pub application_type: String,
    #[serde(deserialize_with = "lenient::int")]
    pub instances: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub running_instance_count: i64,
    /// `RUNNING`, `STOPPED`, `DEPLOYING`, …; `UNKNOWN` while the cluster does not answer.
    #[serde(deserialize_with = "lenient::text")]
    pub state: String,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub resource_group_id: String,
}

/// The body of GetApplication: `{"Application": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationBody {
    pub application: ApplicationDetail,
}

/// An application in EDAS's classic view (GetApplication).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationDetail {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    /// `ready`, `progressing` or `unknown` (the cluster does not answer).
    #[serde(deserialize_with = "lenient::text")]
    pub app_phase: String,
    #[serde(deserialize_with = "lenient::text")]
    pub application_type: String,
    #[serde(deserialize_with = "lenient::int")]
    pub build_package_id: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    /// A string here, unlike every other `ClusterType`.
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_type: String,
    #[serde(deserialize_with = "lenient::int")]
    pub cpu: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub dockerize: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub email: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_port_check: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_url_check: bool,
    /// `"true"` or `"false"`.
    #[serde(deserialize_with = "lenient::text")]
    pub have_manage_access: String,
    #[serde(deserialize_with = "lenient::text")]
    pub health_check_url: String,
    #[serde(deserialize_with = "lenient::int")]
    pub instance_count: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub memory: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name_space: String,
    #[serde(deserialize_with = "lenient::text")]
    pub owner: String,
    #[serde(deserialize_with = "lenient::int")]
    pub port: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub resource_group_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub running_instance_count: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub slb_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub slb_info: String,
    #[serde(deserialize_with = "lenient::text")]
    pub slb_ip: String,
    #[serde(deserialize_with = "lenient::text")]
    pub slb_name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub slb_port: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub user_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub workload_type: String,
}

/// The body of QueryApplicationStatus: `{"AppInfo": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppInfoBody {
    pub app_info: AppInfo,
}

/// An application with its instances (ECCs), deployment records and its one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppInfo {
    pub application: StatusApplication,
    pub deploy_record_list: DeployRecordList,
    pub ecc_list: EccList,
    pub ecu_list: EcuList,
    pub group_list: GroupList,
}

/// `AppInfo.Application`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StatusApplication {
    #[serde(deserialize_with = "lenient::text")]
    pub application_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub build_package_id: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub cpu: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub dockerize: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub email: String,
    #[serde(deserialize_with = "lenient::text")]
    pub health_check_url: String,
    #[serde(deserialize_with = "lenient::int")]
    pub instance_count: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub launch_time: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub memory: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub owner: String,
    #[serde(deserialize_with = "lenient::text")]
    pub phone: String,
    #[serde(deserialize_with = "lenient::int")]
    pub port: i64,
    /// The EDAS namespace, as EDAS documents it.
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub running_instance_count: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub user_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeployRecordList {
    pub deploy_record: Vec<DeployRecord>,
}

/// One revision, as a deployment record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeployRecord {
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub deploy_record_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ecc_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ecu_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub package_md5: String,
    #[serde(deserialize_with = "lenient::text")]
    pub package_version_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EccList {
    pub ecc: Vec<Ecc>,
}

/// One instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ecc {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    /// 0 agent offline (unknown), 3 failing, 7 running.
    #[serde(deserialize_with = "lenient::int")]
    pub app_state: i64,
    /// `running`, `starting`, `restarting` (not ready after a run ended), `failed` or `unknown`.
    #[serde(deserialize_with = "lenient::text")]
    pub container_status: String,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub ecc_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ecu_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub group_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ip: String,
    /// 0 unknown, 1 processing, 2 success, 3 failed.
    #[serde(deserialize_with = "lenient::int")]
    pub task_state: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub vpc_id: String,
    /// edasd: the revision the instance runs.
    #[serde(deserialize_with = "lenient::text")]
    pub revision: String,
    /// edasd: its restarts so far.
    #[serde(deserialize_with = "lenient::int")]
    pub restarts: i64,
    /// edasd: how its previous run ended (`OOMKilled`, an exit status …), or empty.
    #[serde(deserialize_with = "lenient::text")]
    pub last_exit_reason: String,
    /// edasd: its port on `local` (its `$PORT`), else 0.
    #[serde(deserialize_with = "lenient::int")]
    pub port: i64,
}

/// `EcuList.Ecu[]`: EDAS's hosts; empty on edasd (instances are ECCs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EcuList {
    pub ecu: Vec<Ecu>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ecu {
    #[serde(deserialize_with = "lenient::text")]
    pub ecu_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ip_addr: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub online: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GroupList {
    pub group: Vec<Group>,
}

/// An instance group (edasd has one per application, `_DEFAULT_GROUP`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Group {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_version_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub group_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub group_name: String,
    /// 0: the default group.
    #[serde(deserialize_with = "lenient::int")]
    pub group_type: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub package_version_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;

    #[test]
    fn captured_application_answers_round_trip() {
        let info: ApplicationInfoBody =
            round_trip(include_str!("../fixtures/insert_k8s_application.json"));
        assert_eq!(info.application_info.cluster_type, 5);
        let changed: ChangeOrderIdBody =
            round_trip(include_str!("../fixtures/scale_k8s_application.json"));
        assert!(!changed.change_order_id.is_empty());
        let app: K8sApplicationBody =
            round_trip(include_str!("../fixtures/get_k8s_application.json"));
        let app = app.applcation;
        assert_eq!(app.app.env_list.env[0].name, "A");
        assert_eq!(app.edasd.description, None, "an unset setting stays null");
        assert!(app.edasd.service_configs.is_array());
        let list: ApplicationListBody =
            round_trip(include_str!("../fixtures/list_application.json"));
        assert_eq!(list.application_list.application.len(), 1);
        let detail: ApplicationBody = round_trip(include_str!("../fixtures/get_application.json"));
        assert_eq!(detail.application.cluster_type, "5", "a string here");
        let status: AppInfoBody =
            round_trip(include_str!("../fixtures/query_application_status.json"));
        assert_eq!(
            status.app_info.group_list.group[0].group_name,
            "_DEFAULT_GROUP"
        );
        assert!(status.app_info.ecu_list.ecu.is_empty());
    }

    #[test]
    fn the_misspelt_key_is_kept_and_numbers_are_read_leniently() {
        let body: K8sApplicationBody = serde_json::from_value(serde_json::json!({
            "Applcation": {"App": {"Instances": "3", "LimitMem": 512}, "Edasd": {"Revision": "4"}}
        }))
        .unwrap();
        assert_eq!(body.applcation.app.instances, 3);
        assert_eq!(body.applcation.edasd.revision, 4);
        let encoded = serde_json::to_value(&body).unwrap();
        assert!(encoded["Applcation"]["App"]["Instances"].is_number());
    }
}
