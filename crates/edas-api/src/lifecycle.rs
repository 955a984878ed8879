//! GetApplication and QueryApplicationStatus: an application as EDAS's classic views show it,
//! with the instances its runtime reports now. (The changes — scale, start, stop, restart,
//! configure, delete — are change orders, submitted by `apps::change_application`.)

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use edas_runtime::Instance;
use edas_spec::Params;
use edas_store::{Application, PageRequest};
use serde_json::{Map, Value, json};

use crate::Api;
use crate::apps::{arn, live_application, revision_doc};
use crate::caller::{Caller, internal};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{only, required};
use crate::render;

/// How long a read may wait on a cluster before answering from what it knows: reads never
/// wait on a cluster that does not answer (one that is known to be down answers at once).
const READ_BOUND: Duration = Duration::from_millis(500);

/// After a read of a cluster ran out of [`READ_BOUND`], reads of it do not wait at all for this
/// long (a cluster not reached yet must not cost every application of a list its bound).
const SLOW_MEMORY: Duration = Duration::from_secs(10);

/// Clusters whose last read ran out of its bound, and when.
static SLOW_CLUSTERS: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Mutex::default);

fn read_bound(cluster_id: &str) -> Duration {
    let slow = SLOW_CLUSTERS.lock().unwrap_or_else(|p| p.into_inner());
    match slow.get(cluster_id) {
        Some(at) if at.elapsed() < SLOW_MEMORY => Duration::ZERO,
        _ => READ_BOUND,
    }
}

/// An application's instances, as its runtime reports them now or, when its cluster does not
/// answer, as last known: then `unknown` says why, and the answer marks its state unknown.
pub(crate) struct Observed {
    /// The instances (every revision that has any).
    pub(crate) instances: Vec<Instance>,
    /// Why the instances are not known to be current (the cluster does not answer).
    pub(crate) unknown: Option<String>,
}

impl Observed {
    /// `RunningInstanceCount`: ready instances.
    pub(crate) fn running(&self) -> usize {
        ready_count(&self.instances)
    }

    /// Marks a ListApplication item unknown: `State` `UNKNOWN` while its cluster does not
    /// answer (`RunningInstanceCount` is then the last known count).
    pub(crate) fn mark_list_item(&self, item: &mut Value) {
        if self.unknown.is_some() {
            item["State"] = Value::from(UNKNOWN_STATE);
        }
    }
}

/// `State` of an application whose cluster does not answer.
const UNKNOWN_STATE: &str = "UNKNOWN";

/// The application's instances (see [`Observed`]). Never fails and never waits on a cluster
/// that does not answer.
pub(crate) async fn observe_application(api: &Api, app: &Application) -> Observed {
    let Some(runtime) = api.engine().runtimes().get(&app.cluster_id) else {
        return Observed {
            instances: Vec::new(),
            unknown: Some(format!(
                "cluster `{}` has no runtime on this server",
                app.cluster_id
            )),
        };
    };
    let down = runtime.availability().err().map(|e| e.to_string());
    let read = async {
        let mut out = Vec::new();
        let app = edas_engine::app_ref(app);
        for revision in runtime.revisions(&app).await? {
            out.extend(runtime.observe(&app, &revision).await?.instances);
        }
        Ok::<_, edas_runtime::RuntimeError>(out)
    };
    let bound = read_bound(&app.cluster_id);
    let result = tokio::time::timeout(bound, read).await;
    {
        let mut slow = SLOW_CLUSTERS.lock().unwrap_or_else(|p| p.into_inner());
        match (&result, bound == READ_BOUND) {
            // It used its whole bound: remember (again) not to wait for it.
            (Err(_), true) => {
                slow.insert(app.cluster_id.clone(), Instant::now());
            }
            (Err(_), false) => {}
            (Ok(_), _) => {
                slow.remove(&app.cluster_id);
            }
        }
    }
    match result {
        Ok(Ok(instances)) => Observed {
            instances,
            unknown: down,
        },
        Ok(Err(e)) => Observed {
            instances: Vec::new(),
            unknown: Some(down.unwrap_or_else(|| e.to_string())),
        },
        Err(_) => Observed {
            instances: Vec::new(),
            unknown: Some(down.unwrap_or_else(|| {
                format!(
                    "cluster `{}` did not answer within {bound:?}",
                    app.cluster_id
                )
            })),
        },
    }
}

/// The first Service port, or 0 when the application has no Service.
fn service_port(spec: &edas_spec::AppSpec) -> i64 {
    spec.services
        .iter()
        .flat_map(|s| &s.port_mappings)
        .map(|p| p.service_port.port)
        .next()
        .unwrap_or(0)
}

fn ready_count(instances: &[Instance]) -> usize {
    instances.iter().filter(|i| i.ready).count()
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
    let observed = observe_application(api, &app).await;
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
    let observed = observe_application(api, &app).await;
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
    let revisions = api
        .store()
        .list_revisions(&app.id, PageRequest::new(1, PageRequest::MAX_SIZE))
        .await
        .map_err(|e| internal("listing the application's revisions", e))?;
    let records: Vec<Value> = revisions
        .items
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
