//! GetApplication and QueryApplicationStatus: an application as EDAS's classic views show it,
//! with the instances its runtime reports now. (The changes — scale, start, stop, restart,
//! configure, delete — are change orders, submitted by `apps::change_application`.)

use edas_app::{Application, Observed};
use edas_spec::release::{ConditionOperator, ConditionSource, TrafficRule};
use edas_wire::application::{self as wire, AppInfo, AppInfoBody, ApplicationBody};
use edas_wire::service::{self as wire_service, Service, ServicePort, ServicesBody};

use crate::Api;
use crate::apps::{arn, live_application, revision_doc};
use crate::caller::{Call, Caller};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{only, required};
use crate::render::{self, count};

/// Marks a ListApplication item unknown: `State` `UNKNOWN` while its cluster does not answer
/// (`RunningInstanceCount` is then the last known count).
pub(crate) fn mark_list_item(observed: &Observed, item: &mut wire::ApplicationItem) {
    if observed.unknown.is_some() {
        item.state = UNKNOWN_STATE.to_owned();
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

pub(crate) async fn get_application(call: Call<'_>) -> Result<ApplicationBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "GetApplication", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    Ok(ApplicationBody {
        application: application_detail(api, caller, &app).await?,
    })
}

/// GetApplication's `Application` (UpdateApplicationBaseInfo answers it too): the current
/// revision, its base information and the instances its runtime reports now.
pub(crate) async fn application_detail(
    api: &Api,
    caller: &Caller,
    app: &Application,
) -> Result<wire::ApplicationDetail, ApiError> {
    let spec = revision_doc(app)?.spec;
    let base = api.app().base_info(&app.id).await?;
    let observed = api.app().observe(app).await;
    let r = &spec.resources;
    Ok(wire::ApplicationDetail {
        app_id: app.id.clone(),
        app_phase: phase(app, &observed).to_owned(),
        application_type: render::package_type(&spec).to_owned(),
        build_package_id: 0,
        cluster_id: app.cluster_id.clone(),
        cluster_type: render::CLUSTER_TYPE_KUBERNETES.to_string(),
        cpu: cpu_cores(&spec),
        create_time: app.created_at.as_millisecond(),
        description: base
            .description
            .or_else(|| spec.description.clone())
            .unwrap_or_default(),
        dockerize: true,
        email: base.email.unwrap_or_default(),
        enable_port_check: false,
        enable_url_check: false,
        have_manage_access: caller
            .may(ram::MANAGE_APPLICATION, &arn(api, app))
            .to_string(),
        health_check_url: String::new(),
        instance_count: i64::from(spec.effective_replicas()),
        memory: i64::from(r.memory_limit_mib.unwrap_or(0)),
        name: app.name.clone(),
        name_space: app.namespace_id.clone(),
        owner: base.owner.unwrap_or_default(),
        port: service_port(&spec),
        region_id: app.region_id.clone(),
        resource_group_id: spec.resource_group_id.clone().unwrap_or_default(),
        running_instance_count: count(observed.running()),
        slb_id: String::new(),
        slb_info: String::new(),
        slb_ip: String::new(),
        slb_name: String::new(),
        slb_port: 0,
        user_id: api.config().account_id.clone(),
        workload_type: spec.workload.as_str().to_owned(),
    })
}

/// `Cpu`: the CPU limit in whole cores, rounded up (0 without a limit).
fn cpu_cores(spec: &edas_spec::AppSpec) -> i64 {
    i64::from(
        spec.resources
            .cpu_limit_millis
            .map_or(0, |m| m.div_ceil(1000)),
    )
}

/// GetK8sServices: the Services of the application's newest revision. On the local runtime each
/// listens on 127.0.0.1 at its port (the `ClusterIP`); elsewhere the cluster assigns the address,
/// which this API does not track (empty). edasd's extension `Traffic` says where the Services
/// send requests now (edas-app's [`edas_app::Traffic`], the routing the engine applies).
pub(crate) async fn get_services(call: Call<'_>) -> Result<ServicesBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "GetK8sServices", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let spec = revision_doc(&app)?.spec;
    let cluster_ip = edas_app::service_address(&app.cluster_id).unwrap_or_default();
    let services = spec
        .services
        .iter()
        .map(|s| Service {
            cluster_ip: cluster_ip.to_owned(),
            name: s.name.clone(),
            service_ports: s
                .port_mappings
                .iter()
                .map(|m| {
                    let p = &m.service_port;
                    ServicePort {
                        node_port: p.node_port.unwrap_or(0),
                        port: p.port,
                        protocol: p.protocol.as_deref().unwrap_or("TCP").to_owned(),
                        target_port: p.target_port.to_string(),
                    }
                })
                .collect(),
            r#type: s.service_type.clone(),
        })
        .collect();
    let traffic = traffic_wire(api.app().traffic(&app).await?);
    Ok(ServicesBody {
        services,
        traffic: Some(traffic),
    })
}

/// GetK8sServices' `Traffic`: the mode, the revisions it names and a split's rules, in the
/// words of `TrafficControlStrategy` (`percent`/`content`, `header`/`cookie`/`param`,
/// `==`/`regex`).
fn traffic_wire(traffic: edas_app::Traffic) -> wire_service::Traffic {
    use wire_service::Traffic as Wire;
    match traffic {
        edas_app::Traffic::AllReady => Wire {
            mode: Wire::ALL_READY.to_owned(),
            ..Wire::default()
        },
        edas_app::Traffic::GraySplit {
            stable_revision,
            gray_revision,
            rules,
        } => Wire {
            mode: Wire::GRAY_SPLIT.to_owned(),
            stable_revision: Some(stable_revision),
            gray_revision: Some(gray_revision),
            rules: rules.into_iter().map(traffic_rule).collect(),
        },
        edas_app::Traffic::Aborted {
            stable_revision,
            aborted_revision,
        } => Wire {
            mode: Wire::ABORTED.to_owned(),
            stable_revision: Some(stable_revision),
            gray_revision: Some(aborted_revision),
            rules: Vec::new(),
        },
    }
}

fn traffic_rule(rule: TrafficRule) -> wire_service::TrafficRule {
    match rule {
        TrafficRule::Percent { percent } => wire_service::TrafficRule {
            condition_type: "percent".to_owned(),
            percent: Some(i64::from(percent)),
            conditions: Vec::new(),
        },
        TrafficRule::Content { conditions } => wire_service::TrafficRule {
            condition_type: "content".to_owned(),
            percent: None,
            conditions: conditions
                .into_iter()
                .map(|c| wire_service::TrafficCondition {
                    r#type: match c.source {
                        ConditionSource::Header => "header",
                        ConditionSource::Cookie => "cookie",
                        ConditionSource::Param => "param",
                    }
                    .to_owned(),
                    name: c.name,
                    operator: match c.operator {
                        ConditionOperator::Equal => "==",
                        ConditionOperator::Regex => "regex",
                    }
                    .to_owned(),
                    value: c.value,
                })
                .collect(),
        },
    }
}

pub(crate) async fn query_status(call: Call<'_>) -> Result<AppInfoBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "QueryApplicationStatus", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let spec = revision_doc(&app)?.spec;
    let base = api.app().base_info(&app.id).await?;
    let observed = api.app().observe(&app).await;
    let created = app.created_at.as_millisecond();
    let updated = app.updated_at.as_millisecond();
    let group_id = format!("{}-default", app.id);
    let unknown = observed.unknown.is_some();
    let ecc = observed
        .instances
        .iter()
        .map(|i| {
            // EDAS's own "unknown" values while the cluster does not answer: the agent is
            // offline (AppState 0) and the latest task's state is unknown (TaskState 0).
            let (app_state, task_state, container_status) = if unknown {
                (0, 0, "unknown")
            } else if i.failed.is_some() {
                (3, 3, "failed")
            } else if i.ready {
                (7, 2, "running")
            } else if i.restarts > 0 && i.last_exit.is_some() {
                // A crash loop is not a start: it ran, ended and is being started again.
                (3, 1, "restarting")
            } else {
                (3, 1, "starting")
            };
            wire::Ecc {
                app_id: app.id.clone(),
                app_state,
                container_status: container_status.to_owned(),
                create_time: updated,
                ecc_id: i.name.clone(),
                ecu_id: i.name.clone(),
                group_id: group_id.clone(),
                ip: i.ip.clone().unwrap_or_default(),
                task_state,
                update_time: updated,
                vpc_id: String::new(),
                revision: i.revision.clone(),
                restarts: i64::from(i.restarts),
                last_exit_reason: i.last_exit.clone().unwrap_or_default(),
                port: i.port.map_or(0, i64::from),
            }
        })
        .collect();
    let deploy_record = api
        .app()
        .revisions(&app.id)
        .await?
        .iter()
        .map(|rev| wire::DeployRecord {
            create_time: rev.created_at.as_millisecond(),
            deploy_record_id: format!("{}-{}", app.id, rev.number),
            ecc_id: String::new(),
            ecu_id: String::new(),
            package_md5: String::new(),
            package_version_id: rev.number.to_string(),
        })
        .collect();
    let revision = app.current_revision.to_string();
    Ok(AppInfoBody {
        app_info: AppInfo {
            application: wire::StatusApplication {
                application_id: app.id.clone(),
                build_package_id: 0,
                cluster_id: app.cluster_id.clone(),
                cpu: cpu_cores(&spec),
                create_time: created,
                dockerize: true,
                email: base.email.unwrap_or_default(),
                health_check_url: String::new(),
                instance_count: i64::from(spec.effective_replicas()),
                launch_time: updated,
                memory: i64::from(spec.resources.memory_limit_mib.unwrap_or(0)),
                name: app.name.clone(),
                owner: base.owner.unwrap_or_default(),
                phone: base.phone_number.unwrap_or_default(),
                port: service_port(&spec),
                region_id: app.namespace_id.clone(),
                running_instance_count: count(observed.running()),
                user_id: api.config().account_id.clone(),
            },
            deploy_record_list: wire::DeployRecordList { deploy_record },
            ecc_list: wire::EccList { ecc },
            ecu_list: wire::EcuList::default(),
            group_list: wire::GroupList {
                group: vec![wire::Group {
                    app_id: app.id.clone(),
                    app_version_id: revision.clone(),
                    cluster_id: app.cluster_id.clone(),
                    create_time: created,
                    group_id,
                    group_name: "_DEFAULT_GROUP".to_owned(),
                    group_type: 0,
                    package_version_id: revision,
                    update_time: updated,
                }],
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use edas_spec::release::TrafficCondition;

    use super::*;

    #[test]
    fn traffic_rules_are_answered_in_the_words_of_traffic_control_strategy() {
        let wire = traffic_wire(edas_app::Traffic::GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            rules: vec![
                TrafficRule::Content {
                    conditions: vec![
                        TrafficCondition {
                            source: ConditionSource::Header,
                            name: "x-gray".into(),
                            operator: ConditionOperator::Equal,
                            value: "1".into(),
                        },
                        TrafficCondition {
                            source: ConditionSource::Cookie,
                            name: "user".into(),
                            operator: ConditionOperator::Regex,
                            value: "a.*".into(),
                        },
                    ],
                },
                TrafficRule::Percent { percent: 20 },
            ],
        });
        assert_eq!(
            serde_json::to_value(&wire).expect("encodes"),
            serde_json::json!({
                "Mode": "GraySplit", "StableRevision": "1", "GrayRevision": "2",
                "Rules": [
                    {"ConditionType": "content", "Conditions": [
                        {"Type": "header", "Name": "x-gray", "Operator": "==", "Value": "1"},
                        {"Type": "cookie", "Name": "user", "Operator": "regex", "Value": "a.*"},
                    ]},
                    {"ConditionType": "percent", "Percent": 20},
                ],
            })
        );
        let aborted = traffic_wire(edas_app::Traffic::Aborted {
            stable_revision: "1".into(),
            aborted_revision: "2".into(),
        });
        assert_eq!(
            serde_json::to_value(&aborted).expect("encodes"),
            serde_json::json!({"Mode": "Aborted", "StableRevision": "1", "GrayRevision": "2"})
        );
        let all = traffic_wire(edas_app::Traffic::AllReady);
        assert_eq!(
            serde_json::to_value(&all).expect("encodes"),
            serde_json::json!({"Mode": "AllReady"})
        );
    }
}
