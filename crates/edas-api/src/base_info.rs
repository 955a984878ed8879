//! UpdateK8sApplicationBaseInfo and UpdateApplicationBaseInfo: an application's description,
//! owner and contact, kept beside its revisions by the application layer (not a release, so
//! no change order). Renaming an application is refused: its Kubernetes objects and instances
//! are named after it. GetAppDeployment: the Deployment of its current revision, as the
//! cluster has it.

use edas_app::BaseInfoChange;
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::catalog::{
    DeploymentBody, ResultTextBody, UpdatedApplication, UpdatedApplicationBody,
};

use crate::apps::{actor, arn, live_application};
use crate::caller::Call;
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{now, only, required};

/// The longest owner of UpdateK8sApplicationBaseInfo (EDAS: 128 characters).
const K8S_OWNER: usize = 128;
/// The longest owner of UpdateApplicationBaseInfo (EDAS: 127 characters).
const CLASSIC_OWNER: usize = 127;

fn text(params: &Params, name: &str) -> Option<String> {
    params.get(name).map(str::to_owned)
}

pub(crate) async fn update_k8s(call: Call<'_>) -> Result<ResultTextBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(
        params,
        "UpdateK8sApplicationBaseInfo",
        &["AppId", "Description", "Email", "Owner", "PhoneNumber"],
    )?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    let change = BaseInfoChange {
        description: text(params, "Description"),
        owner: text(params, "Owner").map(|o| (o, K8S_OWNER)),
        email: text(params, "Email"),
        phone_number: text(params, "PhoneNumber"),
    };
    let changed: Vec<&str> = ["Description", "Owner", "Email", "PhoneNumber"]
        .into_iter()
        .filter(|n| params.get(n).is_some())
        .collect();
    api.app()
        .update_base_info(
            &app,
            change,
            "Description",
            "UpdateK8sApplicationBaseInfo",
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    let result = if changed.is_empty() {
        format!("nothing to change for application {}", app.id)
    } else {
        format!("updated {} of application {}", changed.join(", "), app.id)
    };
    Ok(ResultTextBody { result })
}

pub(crate) async fn update_classic(call: Call<'_>) -> Result<UpdatedApplicationBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(
        params,
        "UpdateApplicationBaseInfo",
        &["AppId", "AppName", "Desc", "Owner"],
    )?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    if let Some(name) = params.get("AppName").filter(|n| !n.is_empty())
        && name != app.name
    {
        return Err(ApiError::from(Violations(vec![Violation {
            parameter: "AppName".into(),
            kind: ViolationKind::NotSupported,
            message: format!(
                "application `{}` cannot be renamed to `{name}`: its Kubernetes objects and instances are named after it; leave AppName out or give the current name",
                app.name
            ),
        }])));
    }
    let change = BaseInfoChange {
        description: text(params, "Desc"),
        owner: text(params, "Owner").map(|o| (o, CLASSIC_OWNER)),
        ..Default::default()
    };
    api.app()
        .update_base_info(
            &app,
            change,
            "Desc",
            "UpdateApplicationBaseInfo",
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(UpdatedApplicationBody {
        applcation: UpdatedApplication {
            detail: crate::lifecycle::application_detail(api, caller, &app).await?,
            ..Default::default()
        },
    })
}

pub(crate) async fn deployment(call: Call<'_>) -> Result<DeploymentBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "GetAppDeployment", &["AppId"])?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    Ok(DeploymentBody {
        data: api.app().deployment(&app).await?,
    })
}
