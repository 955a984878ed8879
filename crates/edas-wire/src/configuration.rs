//! ListK8sConfigMaps and ListK8sSecrets (their Create/Update/Delete answer the envelope only).

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of ListK8sConfigMaps: `{"Result": {"ConfigMaps": [...], "Total": n}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigMapsBody {
    pub result: ConfigMapPage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigMapPage {
    pub config_maps: Vec<ConfigItem>,
    /// Every match, not only this page's.
    #[serde(deserialize_with = "lenient::int")]
    pub total: i64,
}

/// The body of ListK8sSecrets: `{"Result": {"Secrets": [...], "Total": n}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecretsBody {
    pub result: SecretPage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecretPage {
    pub secrets: Vec<SecretItem>,
    #[serde(deserialize_with = "lenient::int")]
    pub total: i64,
}

/// A ConfigMap, and what a Secret shares with one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigItem {
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_name: String,
    /// ISO-8601, `yyyy-MM-ddTHH:mm:ssZ`.
    #[serde(deserialize_with = "lenient::text")]
    pub creation_time: String,
    pub data: Vec<KeyValue>,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
    /// The applications whose current spec uses it (only with `ShowRelatedApps=true`).
    pub related_apps: Vec<RelatedApp>,
}

/// A Secret: a [`ConfigItem`] and its type (edasd keeps Opaque Secrets, values not Base64).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecretItem {
    #[serde(flatten)]
    pub item: ConfigItem,
    #[serde(deserialize_with = "lenient::boolean")]
    pub base64_encoded: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cert_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cert_region_id: String,
    pub related_ingress_rules: Vec<IngressRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyValue {
    #[serde(deserialize_with = "lenient::text")]
    pub key: String,
    #[serde(deserialize_with = "lenient::text")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RelatedApp {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_name: String,
}

/// An Ingress rule that uses a Secret (edasd manages no Ingress: always empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressRule {
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
    pub related_apps: Vec<RelatedApp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Empty;
    use crate::fixture::round_trip;

    #[test]
    fn captured_config_map_and_secret_lists_round_trip() {
        let maps: ConfigMapsBody =
            round_trip(include_str!("../fixtures/list_k8s_config_maps.json"));
        assert_eq!(maps.result.total, 1);
        assert_eq!(maps.result.config_maps[0].data[0].key, "k");
        let secrets: SecretsBody = round_trip(include_str!("../fixtures/list_k8s_secrets.json"));
        let secret = &secrets.result.secrets[0];
        assert_eq!(
            (secret.r#type.as_str(), secret.base64_encoded),
            ("Opaque", false)
        );
        assert_eq!(secret.item.name, "web-secret");
        let _: Empty = round_trip(include_str!("../fixtures/create_k8s_config_map.json"));
    }
}
