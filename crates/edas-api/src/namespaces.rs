//! InsertOrUpdateRegion, ListUserDefineRegion and DeleteUserDefineRegion: EDAS namespaces. The
//! default namespace (the region id) and those of the configuration file are listed with `Id`
//! 0 and cannot be changed here; the others are stored by the application layer, which refuses
//! to delete one an application is in.

use edas_app::{Namespace, NamespaceKey, NamespaceRequest};
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::catalog::{
    RegionDefineBody, UserDefineRegion, UserDefineRegionBody, UserDefineRegionList,
    UserDefineRegionListBody,
};

use crate::Api;
use crate::apps::actor;
use crate::caller::Call;
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{fixed_namespaces, invalid, now, only, required};

/// The resource name of an EDAS namespace: `acs:edas:{region}:{account}:namespace/{ns}`.
pub(crate) fn namespace_arn(api: &Api, namespace: &str) -> String {
    format!(
        "acs:edas:{}:{}:namespace/{namespace}",
        api.config().region_id,
        api.config().account_id
    )
}

fn entity(api: &Api, n: Namespace) -> UserDefineRegion {
    UserDefineRegion {
        belong_region: api.config().region_id.clone(),
        debug_enable: n.debug_enable,
        description: n.description,
        id: n.id,
        mse_instance_id: String::new(),
        region_id: n.region_tag,
        region_name: n.name,
        registry_type: "default".to_owned(),
        user_id: api.config().account_id.clone(),
    }
}

fn optional_bool(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(v) => edas_spec::parse_bool(v)
            .map(Some)
            .ok_or_else(|| invalid(name, format!("`{v}` is not a boolean: use true or false"))),
    }
}

fn optional_id(params: &Params) -> Result<Option<i64>, ApiError> {
    match params.get("Id") {
        None | Some("") => Ok(None),
        Some(v) => match edas_spec::parse_int(v) {
            Some(id) if id >= 0 => Ok(Some(id)),
            _ => Err(invalid(
                "Id",
                format!("`{v}` is not a namespace Id (a non-negative integer)"),
            )),
        },
    }
}

fn not_supported(parameter: &str, message: &str) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::NotSupported,
        message: message.to_owned(),
    }]))
}

pub(crate) async fn insert_or_update(call: Call<'_>) -> Result<UserDefineRegionBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(
        params,
        "InsertOrUpdateRegion",
        &[
            "DebugEnable",
            "Description",
            "Id",
            "MseInstanceId",
            "RegionName",
            "RegionTag",
            "RegistryType",
        ],
    )?;
    let region_tag = required(params, "RegionTag")?;
    caller.authorize(ram::MANAGE_NAMESPACE, &namespace_arn(api, region_tag))?;
    if params.get("MseInstanceId").is_some_and(|v| !v.is_empty()) {
        return Err(not_supported(
            "MseInstanceId",
            "Microservices Engine registries are not part of this server; leave MseInstanceId out",
        ));
    }
    match params.get("RegistryType") {
        None | Some("") | Some("default") => {}
        Some(other) => {
            return Err(not_supported(
                "RegistryType",
                &format!(
                    "registry type `{other}` is not available: this server has only its own registry (`default`)"
                ),
            ));
        }
    }
    let request = NamespaceRequest {
        id: optional_id(params)?,
        region_tag: region_tag.to_owned(),
        name: required(params, "RegionName")?.to_owned(),
        description: params.get("Description").map(str::to_owned),
        debug_enable: optional_bool(params, "DebugEnable")?,
    };
    let stored = api
        .app()
        .put_namespace(
            fixed_namespaces(api),
            &request,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(UserDefineRegionBody {
        user_define_region_entity: entity(api, stored),
    })
}

pub(crate) async fn list(call: Call<'_>) -> Result<UserDefineRegionListBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "ListUserDefineRegion", &["DebugEnable"])?;
    let debug = optional_bool(params, "DebugEnable")?;
    let user_define_region_entity = api
        .app()
        .namespaces(fixed_namespaces(api))
        .await?
        .into_iter()
        .filter(|n| debug.is_none_or(|d| n.debug_enable == d))
        .filter(|n| caller.may(ram::READ_NAMESPACE, &namespace_arn(api, &n.region_tag)))
        .map(|n| entity(api, n))
        .collect();
    Ok(UserDefineRegionListBody {
        user_define_region_list: UserDefineRegionList {
            user_define_region_entity,
        },
    })
}

pub(crate) async fn delete(call: Call<'_>) -> Result<RegionDefineBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(params, "DeleteUserDefineRegion", &["Id", "RegionTag"])?;
    let id = optional_id(params)?.filter(|id| *id != 0);
    let fixed = fixed_namespaces(api);
    // The namespace is authorized by its id (`RegionTag`), found by `Id` when only that is
    // given; the layer checks that both name the same namespace.
    let region_tag = match (params.get("RegionTag").filter(|v| !v.is_empty()), id) {
        (Some(tag), _) => tag.to_owned(),
        (None, Some(id)) => api
            .app()
            .namespaces(fixed)
            .await?
            .into_iter()
            .find(|n| n.id == id)
            .map(|n| n.region_tag)
            .ok_or_else(|| {
                ApiError::from(edas_app::AppError::EntityNotFound(format!(
                    "no namespace has the Id {id}"
                )))
            })?,
        (None, None) => {
            return Err(ApiError::from(Violations(vec![Violation {
                parameter: "Id".into(),
                kind: ViolationKind::Missing,
                message: "Id or RegionTag is required".into(),
            }])));
        }
    };
    caller.authorize(ram::MANAGE_NAMESPACE, &namespace_arn(api, &region_tag))?;
    let key = NamespaceKey {
        id,
        region_tag: Some(region_tag),
    };
    let deleted = api
        .app()
        .delete_namespace(fixed, &key, &actor(caller, request_id), now(api))
        .await?;
    Ok(RegionDefineBody {
        region_define: entity(api, deleted),
    })
}
