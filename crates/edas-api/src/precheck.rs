//! StartK8sAppPrecheck and GetK8sAppPrecheckResult: the application layer runs what a deploy
//! (with `AppId`) or an insert (without) would run, storing nothing; this module decodes the
//! request (its parameters renamed to the operation's: `ImageUrl` → `Image`, `LimitMem` →
//! `MemoryLimit`, … for a deploy), decides the caller's RAM rights for the change (reported,
//! not refused: reading the application is what a precheck needs) and answers in EDAS's shape.

use edas_app::{PRECHECK_JOBS, PrecheckRequest};
use edas_spec::{Operation, Params, Violation, ViolationKind, Violations};
use edas_wire::precheck::{
    PrecheckJobResult, PrecheckJobs, PrecheckJobsBody, PrecheckResult, PrecheckResultBody,
};

use crate::apps::{arn, authorize_local_use, live_application};
use crate::caller::{Call, Caller};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{invalid, only, required};
use crate::policy::application_arn;

const PARAMS: &[&str] = &[
    "Annotations",
    "AppId",
    "AppName",
    "ClusterId",
    "ComponentIds",
    "ConfigMountDescs",
    "EmptyDirs",
    "EnvFroms",
    "Envs",
    "ImageUrl",
    "JavaStartUpConfig",
    "Labels",
    "LimitEphemeralStorage",
    "LimitMem",
    "LimitmCpu",
    "LocalVolume",
    "Namespace",
    "PackageUrl",
    "PvcMountDescs",
    "Replicas",
    "RequestsEphemeralStorage",
    "RequestsMem",
    "RequestsmCpu",
];

/// A precheck parameter's name in DeployK8sApplication.
fn deploy_name(name: &str) -> &str {
    match name {
        "ImageUrl" => "Image",
        "LimitMem" => "MemoryLimit",
        "RequestsMem" => "MemoryRequest",
        "LimitmCpu" => "McpuLimit",
        "RequestsmCpu" => "McpuRequest",
        other => other,
    }
}

/// What the caller may not do of the change (RAM), as messages.
fn denials(caller: &Caller, action: &str, resource: &str) -> Vec<String> {
    match caller.authorize(action, resource) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e.message],
    }
}

pub(crate) async fn start(call: Call<'_>) -> Result<PrecheckJobsBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "StartK8sAppPrecheck", PARAMS)?;
    let cluster_id = required(params, "ClusterId")?;
    let namespace = required(params, "Namespace")?;
    if params
        .get("ComponentIds")
        .is_some_and(|v| !v.trim().is_empty() && v.trim() != "[]")
    {
        return Err(ApiError::from(Violations(vec![Violation {
            parameter: "ComponentIds".into(),
            kind: ViolationKind::NotSupported,
            message: "EDAS application components (Tomcat, EDAS Container) are not part of this server; leave ComponentIds out".into(),
        }])));
    }
    let region = api.config().region_id.clone();
    // The precheck has no `PackageVersion`, which a package needs: a package is checked
    // under the version label `precheck` (a label only; nothing is downloaded or stored).
    let package_version = params
        .get("PackageUrl")
        .filter(|v| !v.is_empty())
        .map(|_| ("PackageVersion".to_owned(), "precheck".to_owned()));
    let pass_on = |skip: &[&str], rename: fn(&str) -> &str| {
        Params::from_pairs(
            params
                .iter()
                .filter(|(k, _)| !skip.contains(k) && *k != "ComponentIds" && *k != "RegionId")
                .map(|(k, v)| (rename(k).to_owned(), v.to_owned()))
                .chain(package_version.clone()),
        )
        .map_err(ApiError::from)
    };
    let _ = match params.get("AppId").filter(|v| !v.is_empty()) {
        Some(app_id) => {
            let app = live_application(api, app_id).await?;
            caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
            for (name, given, actual) in [
                ("ClusterId", cluster_id, app.cluster_id.as_str()),
                ("Namespace", namespace, app.k8s_namespace.as_str()),
                (
                    "AppName",
                    params.get("AppName").unwrap_or(&app.name),
                    app.name.as_str(),
                ),
            ] {
                if given != actual {
                    return Err(invalid(
                        name,
                        format!("`{given}` is not the application's: it is `{actual}`"),
                    ));
                }
            }
            let deploy = pass_on(&["AppName", "ClusterId", "Namespace"], deploy_name)?;
            let mut denied = denials(caller, ram::MANAGE_APPLICATION, &arn(api, &app));
            if let Ok(change) = edas_spec::apply(
                Operation::DeployK8sApplication,
                Some(&app.spec.spec),
                &deploy,
            ) && let Err(e) =
                authorize_local_use(api, caller, Some(&app.spec.spec), &change.spec)
            {
                denied.push(e.message);
            }
            api.app()
                .precheck(PrecheckRequest {
                    current: Some(&app),
                    params: &deploy,
                    namespace_id: &app.namespace_id,
                    denied,
                })
                .await
        }
        None => {
            let resource = application_arn(&region, &api.config().account_id, &region, "*");
            caller.authorize(ram::READ_APPLICATION, &resource)?;
            let insert = pass_on(&["AppId"], |n| n)?;
            let mut denied = denials(caller, ram::CREATE_APPLICATION, &resource);
            if let Ok(change) = edas_spec::apply(Operation::InsertK8sApplication, None, &insert)
                && let Err(e) = authorize_local_use(api, caller, None, &change.spec)
            {
                denied.push(e.message);
            }
            api.app()
                .precheck(PrecheckRequest {
                    current: None,
                    params: &insert,
                    namespace_id: &region,
                    denied,
                })
                .await
        }
    };
    Ok(PrecheckJobsBody {
        data: PrecheckJobs {
            jobs: PRECHECK_JOBS.iter().map(|j| (*j).to_owned()).collect(),
        },
    })
}

pub(crate) async fn result(call: Call<'_>) -> Result<PrecheckResultBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(
        params,
        "GetK8sAppPrecheckResult",
        &["AppName", "ClusterId", "Namespace"],
    )?;
    let key = (
        required(params, "ClusterId")?.to_owned(),
        required(params, "Namespace")?.to_owned(),
        required(params, "AppName")?.to_owned(),
    );
    let not_found = || {
        ApiError::from(edas_app::AppError::EntityNotFound(format!(
            "no precheck of application `{}` in namespace `{}` of cluster `{}` ran since edasd started; run StartK8sAppPrecheck",
            key.2, key.1, key.0
        )))
    };
    let found = api.app().precheck_result(&key).ok_or_else(not_found)?;
    let resource = application_arn(
        &api.config().region_id,
        &api.config().account_id,
        &found.namespace_id,
        found.app_id.as_deref().unwrap_or("*"),
    );
    caller.authorize(ram::READ_APPLICATION, &resource)?;
    Ok(PrecheckResultBody {
        data: PrecheckResult {
            job_results: found
                .jobs
                .into_iter()
                .map(|j| PrecheckJobResult {
                    interrupted: j.interrupted,
                    name: j.name.to_owned(),
                    pass: j.pass,
                    reason: j.reason,
                })
                .collect(),
            reason: found.reason,
            status: found.status.to_owned(),
        },
    })
}
