//! EDAS namespaces (InsertOrUpdateRegion, ListUserDefineRegion, DeleteUserDefineRegion), tags
//! (ListTagResources; TagResources and UntagResources answer the envelope alone) and an
//! application's base information and Deployment (UpdateK8sApplicationBaseInfo's `Result`,
//! UpdateApplicationBaseInfo's `Applcation`, GetAppDeployment's `Data`).

use serde::{Deserialize, Serialize};

use crate::lenient;

/// One EDAS namespace, with every key any of the three namespace operations answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserDefineRegion {
    /// The physical region (`cn-hangzhou`).
    #[serde(deserialize_with = "lenient::text")]
    pub belong_region: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub debug_enable: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    /// EDAS's numeric id; 0 for the default namespace and those of edasd's configuration.
    #[serde(deserialize_with = "lenient::int")]
    pub id: i64,
    /// Always empty: no Microservices Engine registry.
    #[serde(deserialize_with = "lenient::text")]
    pub mse_instance_id: String,
    /// The namespace id (`cn-hangzhou:prod`), what `LogicalRegionId` names.
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_name: String,
    /// `default`: edasd's own registry (it has no MSE one).
    #[serde(deserialize_with = "lenient::text")]
    pub registry_type: String,
    /// The account id.
    #[serde(deserialize_with = "lenient::text")]
    pub user_id: String,
}

/// The body of InsertOrUpdateRegion: `{"UserDefineRegionEntity": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserDefineRegionBody {
    pub user_define_region_entity: UserDefineRegion,
}

/// The body of ListUserDefineRegion: `{"UserDefineRegionList": {"UserDefineRegionEntity": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserDefineRegionListBody {
    pub user_define_region_list: UserDefineRegionList,
}

/// The wrapper object of ListUserDefineRegion's list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserDefineRegionList {
    pub user_define_region_entity: Vec<UserDefineRegion>,
}

/// The body of DeleteUserDefineRegion: `{"RegionDefine": {...}}`, the deleted namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegionDefineBody {
    pub region_define: UserDefineRegion,
}

/// The body of ListTagResources: `{"TagResources": {"TagResource": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResourcesBody {
    pub tag_resources: TagResourceList,
}

/// The wrapper object of ListTagResources' list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResourceList {
    pub tag_resource: Vec<TagResource>,
}

/// One tag of one resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResource {
    #[serde(deserialize_with = "lenient::text")]
    pub resource_id: String,
    /// `application` or `cluster`.
    #[serde(deserialize_with = "lenient::text")]
    pub resource_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tag_key: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tag_value: String,
}

/// The body of UpdateK8sApplicationBaseInfo: `{"Result": "..."}`, what was changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResultTextBody {
    #[serde(deserialize_with = "lenient::text")]
    pub result: String,
}

/// The body of GetAppDeployment: `{"Data": "<the Deployment as a JSON string>"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentBody {
    #[serde(deserialize_with = "lenient::text")]
    pub data: String,
}

/// The body of UpdateApplicationBaseInfo: `{"Applcation": {...}}` (sic), the application as
/// GetApplication shows it plus the `ExtSlb…` keys of this model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdatedApplicationBody {
    #[serde(rename = "Applcation")]
    pub applcation: UpdatedApplication,
}

/// UpdateApplicationBaseInfo's application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdatedApplication {
    #[serde(flatten)]
    pub detail: crate::application::ApplicationDetail,
    /// No Server Load Balancer: always empty.
    #[serde(deserialize_with = "lenient::text")]
    pub ext_slb_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ext_slb_ip: String,
    #[serde(deserialize_with = "lenient::text")]
    pub ext_slb_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;

    #[test]
    fn captured_namespace_answers_round_trip() {
        let list: UserDefineRegionListBody =
            round_trip(include_str!("../fixtures/list_user_define_region.json"));
        let entities = &list.user_define_region_list.user_define_region_entity;
        assert_eq!(entities[0].region_id, "cn-hangzhou");
        assert_eq!(entities[1].id, 1);
        let one: UserDefineRegionBody =
            round_trip(include_str!("../fixtures/insert_or_update_region.json"));
        assert_eq!(one.user_define_region_entity.region_id, "cn-hangzhou:prod");
        let gone: RegionDefineBody =
            round_trip(include_str!("../fixtures/delete_user_define_region.json"));
        assert_eq!(gone.region_define.region_name, "Production");
    }

    #[test]
    fn captured_tags_and_base_info_answers_round_trip() {
        let tags: TagResourcesBody =
            round_trip(include_str!("../fixtures/list_tag_resources.json"));
        assert_eq!(tags.tag_resources.tag_resource[0].tag_key, "env");
        let result: ResultTextBody = round_trip(include_str!(
            "../fixtures/update_k8s_application_base_info.json"
        ));
        assert!(result.result.contains("Owner"));
    }
}
