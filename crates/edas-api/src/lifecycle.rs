//! GetApplication and QueryApplicationStatus: an application as EDAS's classic views show it,
//! with the instances its runtime reports now. (The changes — scale, start, stop, restart,
//! configure, delete — are change orders, submitted by `apps::change_application`.)

use edas_app::{Application, Observed};
use edas_spec::Params;
use serde_json::{Map, Value, json};

use crate::Api;
use crate::apps::{arn, live_application, revision_doc};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{only, required};
use crate::render;

/// Marks a ListApplication item unknown: `State` `UNKNOWN` while its cluster does not answer
/// (`RunningInstanceCount` is then the last known count).
pub(crate) fn mark_list_item(observed: &Observed, item: &mut Value) {
    if observed.unknown.is_some() {
        item["State"] = Value::from(UNKNOWN_STATE);
    }
}

/// `State` of an application whose cluster does not answer.
const UNKNOWN_STATE: &str = "UNKNOWN";

/// The first Service port, or 0 when the application has no Service.
fn service_port(spec: &edas_spec::AppSpec) -> i64 {
    spec.services
        .iter()
        .flat_map(|s| &s.port_mappings)
        .map(|p| p.service_port.port)
        .next()
        .unwrap_or(0)
}

/// `AppPhase`: `unknown` while the cluster does not answer, `progressing` while a change order
/// runs, else `ready`.
fn phase(app: &Application, observed: &Observed) -> &'static str {
    if observed.unknown.is_some() {
        "unknown"
    } else if app.state == "DEPLOYING" {
        "progressing"
    } else {
        "ready"
    }
}

pub(crate) async fn get_application(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "GetApplication", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let spec = revision_doc(&app)?.spec;
    let observed = api.app().observe(&app).await;
    let r = &spec.resources;
    let port = service_port(&spec);
    let mut out = Map::new();
    out.insert(
        "Application".into(),
        json!({
            "AppId": app.id,
            "AppPhase": phase(&app, &observed),
            "ApplicationType": render::package_type(&spec),
            "BuildPackageId": 0,
            "ClusterId": app.cluster_id,
            "ClusterType": render::CLUSTER_TYPE_KUBERNETES.to_string(),
            "Cpu": r.cpu_limit_millis.map_or(0, |m| m.div_ceil(1000)),
            "CreateTime": app.created_at.as_millisecond(),
            "Description": spec.description.clone().unwrap_or_default(),
            "Dockerize": true,
            "Email": "",
            "EnablePortCheck": false,
            "EnableUrlCheck": false,
            "HaveManageAccess": caller.may(ram::MANAGE_APPLICATION, &arn(api, &app)).to_string(),
            "HealthCheckUrl": "",
            "InstanceCount": spec.effective_replicas(),
            "Memory": r.memory_limit_mib.unwrap_or(0),
            "Name": app.name,
            "NameSpace": app.namespace_id,
            "Owner": "",
            "Port": port,
            "RegionId": app.region_id,
            "ResourceGroupId": spec.resource_group_id.clone().unwrap_or_default(),
            "RunningInstanceCount": observed.running(),
            "SlbId": "",
            "SlbInfo": "",
            "SlbIp": "",
            "SlbName": "",
            "SlbPort": 0,
            "UserId": api.config().account_id,
            "WorkloadType": "Deployment",
        }),
    );
    Ok(out)
}

/// GetK8sServices: the Services of the application's newest revision. On the local runtime each
/// listens on 127.0.0.1 at its port (the `ClusterIP`); elsewhere the cluster assigns the address,
/// which this API does not track (empty).
pub(crate) async fn get_services(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "GetK8sServices", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let spec = revision_doc(&app)?.spec;
    let cluster_ip = edas_app::service_address(&app.cluster_id).unwrap_or_default();
    let services: Vec<Value> = spec
        .services
        .iter()
        .map(|s| {
            let ports: Vec<Value> = s
                .port_mappings
                .iter()
                .map(|m| {
                    let p = &m.service_port;
                    json!({
                        "NodePort": 0,
                        "Port": p.port,
                        "Protocol": p.protocol.as_deref().unwrap_or("TCP"),
                        "TargetPort": p.target_port.to_string(),
                    })
                })
                .collect();
            json!({
                "ClusterIP": cluster_ip,
                "Name": s.name,
                "ServicePorts": ports,
                "Type": s.service_type,
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("Services".into(), Value::Array(services));
    Ok(out)
}

pub(crate) async fn query_status(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "QueryApplicationStatus", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let spec = revision_doc(&app)?.spec;
    let observed = api.app().observe(&app).await;
    let instances = &observed.instances;
    let r = &spec.resources;
    let created = app.created_at.as_millisecond();
    let updated = app.updated_at.as_millisecond();
    let group_id = format!("{}-default", app.id);
    let eccs: Vec<Value> = instances
        .iter()
        .map(|i| {
            // EDAS's own "unknown" values while the cluster does not answer: the agent is
            // offline (AppState 0) and the latest task's state is unknown (TaskState 0).
            let (app_state, task_state) = if observed.unknown.is_some() {
                (0, 0)
            } else if i.failed.is_some() {
                (3, 3)
            } else if i.ready {
                (7, 2)
            } else {
                (3, 1)
            };
            json!({
                "AppId": app.id,
                "AppState": app_state,
                "ContainerStatus": if observed.unknown.is_some() {
                    "unknown"
                } else if i.failed.is_some() {
                    "failed"
                } else if i.ready {
                    "running"
                } else {
                    "starting"
                },
                "CreateTime": updated,
                "EccId": i.name,
                "EcuId": i.name,
                "GroupId": group_id,
                "Ip": i.ip.clone().unwrap_or_default(),
                "TaskState": task_state,
                "UpdateTime": updated,
                "VpcId": "",
            })
        })
        .collect();
    let revisions = api.app().revisions(&app.id).await?;
    let records: Vec<Value> = revisions
        .iter()
        .map(|rev| {
            json!({
                "CreateTime": rev.created_at.as_millisecond(),
                "DeployRecordId": format!("{}-{}", app.id, rev.number),
                "EccId": "",
                "EcuId": "",
                "PackageMd5": "",
                "PackageVersionId": rev.number.to_string(),
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert(
        "AppInfo".into(),
        json!({
            "Application": {
                "ApplicationId": app.id,
                "BuildPackageId": 0,
                "ClusterId": app.cluster_id,
                "Cpu": r.cpu_limit_millis.map_or(0, |m| m.div_ceil(1000)),
                "CreateTime": created,
                "Dockerize": true,
                "Email": "",
                "HealthCheckUrl": "",
                "InstanceCount": spec.effective_replicas(),
                "LaunchTime": updated,
                "Memory": r.memory_limit_mib.unwrap_or(0),
                "Name": app.name,
                "Owner": "",
                "Phone": "",
                "Port": service_port(&spec),
                "RegionId": app.namespace_id,
                "RunningInstanceCount": observed.running(),
                "UserId": api.config().account_id,
            },
            "DeployRecordList": { "DeployRecord": records },
            "EccList": { "Ecc": eccs },
            "EcuList": { "Ecu": [] },
            "GroupList": { "Group": [{
                "AppId": app.id,
                "AppVersionId": app.current_revision.to_string(),
                "ClusterId": app.cluster_id,
                "CreateTime": created,
                "GroupId": group_id,
                "GroupName": "_DEFAULT_GROUP",
                "GroupType": 0,
                "PackageVersionId": app.current_revision.to_string(),
                "UpdateTime": updated,
            }]},
        }),
    );
    Ok(out)
}
