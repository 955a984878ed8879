//! The dispatcher of the implemented operations and the operations on applications and change
//! orders. Each authorizes before it decodes or stores anything. The helpers the operation
//! modules share live in `params` and `apps`, so no module imports back from here.

use edas_app::{Abort, OrderView};
use edas_app::{ApplicationFilter, PageRequest};
use edas_spec::{Operation, Params, Violation, ViolationKind, Violations};
use edas_wire::application::{ApplicationInfo, ApplicationInfoBody, ApplicationList};
use edas_wire::application::{ApplicationListBody, K8sApplicationBody};
use edas_wire::envelope::Empty;
use edas_wire::{ChangeOrderDataBody, ChangeOrderRef, DataTextBody};
use serde_json::{Map, Value};

use crate::Api;
use crate::apps::{
    actor, arn, authorize_local_use, change_application, live_application, revision_doc,
};
use crate::caller::{Call, Caller, encode, internal};
use crate::error::ApiError;
use crate::operations::{Implemented, ram};
use crate::params::{invalid, known_namespace, only, page_number, required};
use crate::policy::application_arn;
use crate::render;

pub(crate) async fn dispatch(
    api: &Api,
    caller: &Caller,
    op: Implemented,
    params: &Params,
    request_id: &str,
) -> Result<Map<String, Value>, ApiError> {
    check_region(api, params)?;
    let call = Call {
        api,
        caller,
        params,
        request_id,
    };
    if matches!(op, Implemented::DeployK8sApplication) && crate::instances::is_rollback(params) {
        return Box::pin(crate::instances::rollback(api, caller, params, request_id)).await;
    }
    // Every operation's future is boxed: inlined, this one would be as large as the largest of
    // them, and a debug build's poll frames overflowed the 2 MiB stack of a test thread.
    match op {
        Implemented::DescribeAppInstanceList => {
            Box::pin(crate::instances::describe_instances(api, caller, params)).await
        }
        Implemented::ListHistoryDeployVersion => {
            Box::pin(crate::instances::list_history(api, caller, params)).await
        }
        Implemented::InsertK8sApplication => encode(Box::pin(insert(call)).await?),
        Implemented::GetK8sServices => {
            encode(Box::pin(crate::lifecycle::get_services(call)).await?)
        }
        Implemented::GetApplication => {
            encode(Box::pin(crate::lifecycle::get_application(call)).await?)
        }
        Implemented::QueryApplicationStatus => {
            encode(Box::pin(crate::lifecycle::query_status(call)).await?)
        }
        Implemented::GetK8sCluster => {
            encode(Box::pin(crate::clusters::get_k8s_cluster(call)).await?)
        }
        Implemented::ListCluster => encode(Box::pin(crate::clusters::list_cluster(call)).await?),
        Implemented::ImportK8sCluster => {
            encode(Box::pin(crate::clusters::import_k8s_cluster(call)).await?)
        }
        Implemented::ListK8sNamespaces => {
            encode(Box::pin(crate::clusters::list_namespaces(call)).await?)
        }
        Implemented::ListBuildPack => encode(crate::clusters::list_build_packs(params)?),
        Implemented::InsertOrUpdateRegion => {
            encode(Box::pin(crate::namespaces::insert_or_update(call)).await?)
        }
        Implemented::ListUserDefineRegion => encode(Box::pin(crate::namespaces::list(call)).await?),
        Implemented::DeleteUserDefineRegion => {
            encode(Box::pin(crate::namespaces::delete(call)).await?)
        }
        Implemented::UpdateK8sApplicationBaseInfo => {
            encode(Box::pin(crate::base_info::update_k8s(call)).await?)
        }
        Implemented::UpdateApplicationBaseInfo => {
            encode(Box::pin(crate::base_info::update_classic(call)).await?)
        }
        Implemented::TagResources => encode(Box::pin(crate::tags::tag(call)).await?),
        Implemented::UntagResources => encode(Box::pin(crate::tags::untag(call)).await?),
        Implemented::ListTagResources => encode(Box::pin(crate::tags::list(call)).await?),
        Implemented::StartK8sAppPrecheck => encode(Box::pin(crate::precheck::start(call)).await?),
        Implemented::GetK8sAppPrecheckResult => {
            encode(Box::pin(crate::precheck::result(call)).await?)
        }
        Implemented::GetAppDeployment => {
            encode(Box::pin(crate::base_info::deployment(call)).await?)
        }
        Implemented::CreateApplicationScalingRule => {
            encode(Box::pin(crate::scaling::create(call)).await?)
        }
        Implemented::UpdateApplicationScalingRule => {
            encode(Box::pin(crate::scaling::update(call)).await?)
        }
        Implemented::DeleteApplicationScalingRule => {
            encode(Box::pin(crate::scaling::delete(call)).await?)
        }
        Implemented::DescribeApplicationScalingRules => {
            encode(Box::pin(crate::scaling::describe(call)).await?)
        }
        Implemented::EnableApplicationScalingRule => {
            encode(Box::pin(crate::scaling::set_enabled(call, true)).await?)
        }
        Implemented::DisableApplicationScalingRule => {
            encode(Box::pin(crate::scaling::set_enabled(call, false)).await?)
        }
        Implemented::CreateK8sIngressRule => encode(Box::pin(crate::ingress::create(call)).await?),
        Implemented::UpdateK8sIngressRule => encode(Box::pin(crate::ingress::update(call)).await?),
        Implemented::DeleteK8sIngressRule => encode(Box::pin(crate::ingress::delete(call)).await?),
        Implemented::ListK8sIngressRules => encode(Box::pin(crate::ingress::list(call)).await?),
        Implemented::BindK8sSlb => encode(Box::pin(crate::slb::bind(call)).await?),
        Implemented::UpdateK8sSlb => encode(Box::pin(crate::slb::update(call)).await?),
        Implemented::UnbindK8sSlb => encode(Box::pin(crate::slb::unbind(call)).await?),
        Implemented::CreateK8sConfigMap
        | Implemented::UpdateK8sConfigMap
        | Implemented::DeleteK8sConfigMap
        | Implemented::ListK8sConfigMaps
        | Implemented::CreateK8sSecret
        | Implemented::UpdateK8sSecret
        | Implemented::DeleteK8sSecret
        | Implemented::ListK8sSecrets => Box::pin(crate::configuration::dispatch(call, op)).await,
        Implemented::GetK8sApplication => encode(Box::pin(get_application(call)).await?),
        Implemented::ListApplication => encode(Box::pin(list_applications(call)).await?),
        Implemented::GetChangeOrderInfo => encode(Box::pin(get_change_order(call)).await?),
        Implemented::ListRecentChangeOrder => encode(Box::pin(list_change_orders(call)).await?),
        Implemented::ContinuePipeline => encode(Box::pin(continue_pipeline(call)).await?),
        Implemented::AbortChangeOrder => encode(Box::pin(abort(call, Abort::Only)).await?),
        Implemented::AbortAndRollbackChangeOrder => {
            encode(Box::pin(abort(call, Abort::AndRollback)).await?)
        }
        Implemented::RollbackChangeOrder => encode(Box::pin(abort(call, Abort::Rollback)).await?),
        Implemented::RetryChangeOrderTask => encode(Box::pin(retry(call)).await?),
        Implemented::DeployK8sApplication
        | Implemented::UpdateK8sApplicationConfig
        | Implemented::ScaleK8sApplication
        | Implemented::StartK8sApplication
        | Implemented::StopK8sApplication
        | Implemented::RestartK8sApplication
        | Implemented::DeleteK8sApplication
        | Implemented::CreateK8sService
        | Implemented::UpdateK8sService
        | Implemented::DeleteK8sService => {
            let (ram_action, _) = op.permission();
            let operation = op
                .change_operation()
                .ok_or_else(|| internal("dispatching", "not a change of an application"))?;
            encode(Box::pin(change_application(call, operation, ram_action)).await?)
        }
    }
}

/// `RegionId` (the classic SDK sends it with every request) must be this installation's.
fn check_region(api: &Api, params: &Params) -> Result<(), ApiError> {
    match params.get("RegionId") {
        Some(region) if region != api.config().region_id => Err(invalid(
            "RegionId",
            format!(
                "this server serves region `{}`, not `{region}`",
                api.config().region_id
            ),
        )),
        _ => Ok(()),
    }
}

async fn insert(call: Call<'_>) -> Result<ApplicationInfoBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let config = api.config();
    let namespace = params
        .get("LogicalRegionId")
        .filter(|ns| !ns.is_empty())
        .unwrap_or(&config.region_id)
        .to_owned();
    let (action, _) = Implemented::InsertK8sApplication.permission();
    caller.authorize(
        action,
        &application_arn(&config.region_id, &config.account_id, &namespace, "*"),
    )?;
    known_namespace(api, "LogicalRegionId", &namespace).await?;
    let change = edas_spec::apply(Operation::InsertK8sApplication, None, params)?;
    authorize_local_use(api, caller, None, &change.spec)?;
    let app_name = change.spec.name.clone();
    let submitted = api
        .app()
        .insert(
            crate::params::fixed_namespaces(api),
            &namespace,
            change,
            &actor(caller, request_id),
        )
        .await?;
    metrics::counter!("edasd_change_orders_submitted_total", "action" => "InsertK8sApplication")
        .increment(1);
    Ok(ApplicationInfoBody {
        application_info: ApplicationInfo {
            app_id: submitted.app_id,
            app_name,
            change_order_id: submitted.change_order_id,
            cluster_type: render::CLUSTER_TYPE_KUBERNETES,
            dockerize: true,
            edas_id: config.account_id.clone(),
            owner: caller.user.name.clone(),
            region_id: config.region_id.clone(),
            user_id: caller.user.name.clone(),
        },
    })
}

async fn get_application(call: Call<'_>) -> Result<K8sApplicationBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "GetK8sApplication", &["AppId", "From"])?;
    if let Some(from) = params.get("From")
        && !from.is_empty()
        && from != "deploy"
    {
        return Err(invalid(
            "From",
            format!("`{from}` is not a query source; use `deploy` or leave it empty"),
        ));
    }
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let doc = revision_doc(&app)?;
    Ok(K8sApplicationBody {
        applcation: render::k8s_application(&app, &doc.spec),
    })
}

const LIST_PARAMS: &[&str] = &[
    "AppIds",
    "AppName",
    "ClusterId",
    "CurrentPage",
    "LogicalRegionId",
    "LogicalRegionIdFilter",
    "PageSize",
    "ResourceGroupId",
    "Tags",
];

async fn list_applications(call: Call<'_>) -> Result<ApplicationListBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "ListApplication", LIST_PARAMS)?;
    let current_page = page_number(params, "CurrentPage", i64::from(u32::MAX))?.unwrap_or(1);
    let page_size = page_number(params, "PageSize", i64::from(PageRequest::MAX_SIZE))?;
    let app_ids: Option<Vec<String>> = match params.get("AppIds") {
        None | Some("") => None,
        Some(raw) => Some(serde_json::from_str(raw).map_err(|e| {
            invalid(
                "AppIds",
                format!("must be a JSON array of application ids: {e}"),
            )
        })?),
    };
    let non_empty = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let namespace = match (
        non_empty("LogicalRegionId"),
        non_empty("LogicalRegionIdFilter"),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "LogicalRegionIdFilter",
                format!("`{b}` contradicts LogicalRegionId `{a}`"),
            ));
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let filter = ApplicationFilter {
        namespace_id: namespace,
        cluster_id: non_empty("ClusterId").map(str::to_owned),
    };
    let name = non_empty("AppName");
    let resource_group = non_empty("ResourceGroupId");
    // edasd's `Tags`: only applications carrying every tag given (TagResources' format).
    let wanted = crate::tags::tag_pairs(params, "Tags")?
        .unwrap_or_default()
        .into_iter()
        .collect();
    let tagged = api
        .app()
        .tagged(edas_app::TagResourceType::Application, &wanted)
        .await?;

    let listed = |app: &edas_app::Application| {
        app_ids.as_ref().is_none_or(|ids| ids.contains(&app.id))
            && name.is_none_or(|n| app.name.contains(n))
            && resource_group.is_none_or(|g| app.spec.spec.resource_group_id.as_deref() == Some(g))
            && tagged.as_ref().is_none_or(|ids| ids.contains(&app.id))
            && caller.may(ram::READ_APPLICATION, &arn(api, app))
    };
    // Only this page's applications are read to the end and observed.
    let page = api
        .app()
        .application_page(&filter, current_page, page_size, listed)
        .await?;
    let mut application = Vec::with_capacity(page.len());
    for app in page {
        let observed = api.app().observe(&app).await;
        let mut item = render::application_list_item(&app, &app.spec.spec, observed.running());
        crate::lifecycle::mark_list_item(&observed, &mut item);
        application.push(item);
    }
    Ok(ApplicationListBody {
        application_list: ApplicationList { application },
    })
}

async fn get_change_order(call: Call<'_>) -> Result<edas_wire::ChangeOrderInfoBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "GetChangeOrderInfo", &["ChangeOrderId"])?;
    let id = required(params, "ChangeOrderId")?;
    let view = authorized_order(api, caller, id, ram::READ_APPLICATION).await?;
    Ok(edas_wire::ChangeOrderInfoBody {
        change_order_info: render::change_order_info(&view.stored, &view.stored.state, &view.app),
    })
}

/// The change order and its application, authorized for `action`, or 404.
async fn authorized_order(
    api: &Api,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<OrderView, ApiError> {
    let view = api.app().change_order(id).await?;
    caller.authorize(action, &arn(api, &view.app))?;
    Ok(view)
}

/// `CreateTime`/`FinishTime` of ListRecentChangeOrder: `"2019-11-13 14:23:46"` (UTC).
fn list_time(t: Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

async fn list_change_orders(call: Call<'_>) -> Result<edas_wire::ChangeOrderListBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "ListRecentChangeOrder", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    // Deleted applications keep their history, so their change orders stay listable.
    let app = api.app().application_with_history(app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let orders = api.app().change_orders(app_id).await?;
    let mut items = Vec::with_capacity(orders.len());
    for stored in orders {
        let head = render::change_order_head(
            &stored,
            &stored.state,
            list_time(Some(stored.created_at)),
            list_time(stored.finished_at),
        );
        items.push(edas_wire::ChangeOrderSummary {
            user_id: head.create_user_id.clone(),
            head,
            group_id: String::new(),
            source: "pop".to_owned(),
        });
    }
    Ok(edas_wire::ChangeOrderListBody {
        change_order_list: edas_wire::ChangeOrderList {
            change_order: items,
        },
    })
}

async fn continue_pipeline(call: Call<'_>) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(
        params,
        "ContinuePipeline",
        &["PipelineId", "Confirm", "SkipAnalysis"],
    )?;
    let pipeline_id = required(params, "PipelineId")?;
    let boolean = |name: &str| match params.get(name) {
        None => Ok(None),
        Some(v) => edas_spec::parse_bool(v)
            .map(Some)
            .ok_or_else(|| invalid(name, format!("`{v}` is not a boolean: use true or false"))),
    };
    let confirm = boolean("Confirm")?.unwrap_or(true);
    // edasd's extension (issue 21): pass the release analysis without a verdict.
    let skip = boolean("SkipAnalysis")?.unwrap_or(false);
    if skip && !confirm {
        return Err(invalid(
            "SkipAnalysis",
            "SkipAnalysis=true moves the release on; it cannot go with Confirm=false",
        ));
    }
    let view = api.app().order_of_pipeline(pipeline_id).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &view.app))?;
    if skip {
        caller.authorize(ram::SKIP_RELEASE_ANALYSIS, &arn(api, &view.app))?;
        api.app()
            .skip_analysis(&view.stored.id, pipeline_id, &actor(caller, request_id))
            .await?;
        return Ok(Empty {});
    }
    api.app()
        .continue_pipeline(
            &view.stored.id,
            pipeline_id,
            confirm,
            &actor(caller, request_id),
        )
        .await?;
    Ok(Empty {})
}

async fn abort(call: Call<'_>, how: Abort) -> Result<ChangeOrderDataBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let action = match how {
        Abort::Only => "AbortChangeOrder",
        Abort::AndRollback => "AbortAndRollbackChangeOrder",
        Abort::Rollback => "RollbackChangeOrder",
    };
    only(params, action, &["ChangeOrderId"])?;
    let id = required(params, "ChangeOrderId")?;
    authorized_order(api, caller, id, ram::MANAGE_APPLICATION).await?;
    let change_order_id = api.app().abort(id, how, &actor(caller, request_id)).await?;
    let traffic = match how {
        Abort::Only => api.app().aborted_traffic(&change_order_id).await?,
        Abort::AndRollback | Abort::Rollback => String::new(),
    };
    Ok(ChangeOrderDataBody {
        data: ChangeOrderRef {
            change_order_id,
            traffic,
        },
    })
}

async fn retry(call: Call<'_>) -> Result<DataTextBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(params, "RetryChangeOrderTask", &["TaskId", "RetryStatus"])?;
    let task_id = required(params, "TaskId")?;
    if let Some(v) = params.get("RetryStatus") {
        match edas_spec::parse_bool(v) {
            Some(true) => {}
            Some(false) => {
                return Err(ApiError::from(Violations(vec![Violation {
                    parameter: "RetryStatus".into(),
                    kind: ViolationKind::NotSupported,
                    message: "RetryStatus=false (skip the failed task) is not supported; retry it, or abort or roll back the change order".into(),
                }])));
            }
            None => {
                return Err(invalid(
                    "RetryStatus",
                    format!("`{v}` is not a boolean: use true or false"),
                ));
            }
        }
    }
    let view = api.app().order_of_task(task_id).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &view.app))?;
    let status = api
        .app()
        .retry_task(task_id, &actor(caller, request_id))
        .await?;
    let id = &view.stored.id;
    Ok(DataTextBody {
        data: format!("change order {id} retried; status {status}"),
    })
}
