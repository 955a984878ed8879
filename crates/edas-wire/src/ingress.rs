//! Ingress rules: ListK8sIngressRules answers `Data`, a list with one entry per cluster, each
//! with its `IngressConfs`; CreateK8sIngressRule, UpdateK8sIngressRule and DeleteK8sIngressRule
//! answer the envelope alone (their SDK models have `Code` and `Message` only; the `RequestId`
//! edasd adds, as to every answer, is ignored by them). Every key is one the SDK models read;
//! the Alibaba Cloud gateway keys (`AlbId`, `MseGatewayId`, dashboard URLs) are left out, which
//! the models read as unset.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// `{"Data": [...]}` of ListK8sIngressRules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressRulesBody {
    pub data: Vec<ClusterIngresses>,
}

/// The ingress rules of one cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterIngresses {
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    pub ingress_confs: Vec<IngressConf>,
}

/// One ingress rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressConf {
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
    /// The annotations as a JSON object text (the models type it a string).
    #[serde(deserialize_with = "lenient::text")]
    pub annotations: String,
    /// The labels as a JSON object text.
    #[serde(deserialize_with = "lenient::text")]
    pub labels: String,
    /// `yyyy-MM-dd HH:mm:ss` (UTC).
    #[serde(deserialize_with = "lenient::text")]
    pub creation_time: String,
    /// Where it is reached: empty (edasd reads no address back from an ingress controller,
    /// and the local listener's is in edasd's configuration).
    #[serde(deserialize_with = "lenient::text")]
    pub endpoint: String,
    /// `NginxIngress` (EDAS's default type: a plain Kubernetes Ingress).
    #[serde(deserialize_with = "lenient::text")]
    pub ingress_type: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub ssl_redirect: bool,
    pub rules: Vec<IngressRuleEntry>,
}

/// One host of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressRuleEntry {
    #[serde(deserialize_with = "lenient::text")]
    pub host: String,
    #[serde(deserialize_with = "lenient::text")]
    pub secret_name: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_tls: bool,
    pub paths: Vec<IngressPathEntry>,
}

/// One path of a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressPathEntry {
    #[serde(deserialize_with = "lenient::text")]
    pub path: String,
    #[serde(deserialize_with = "lenient::text")]
    pub path_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_name: String,
    /// `Normal`, `ServiceNotFound` (the application or its Service is gone) or
    /// `InvalidServicePort` (the Service no longer has the port).
    #[serde(deserialize_with = "lenient::text")]
    pub status: String,
    pub backend: IngressBackendEntry,
}

/// A path's backend Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IngressBackendEntry {
    #[serde(deserialize_with = "lenient::text")]
    pub service_name: String,
    /// A string in the SDK models.
    #[serde(deserialize_with = "lenient::text")]
    pub service_port: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listing_round_trips_with_the_sdk_keys() {
        let body = json!({"Data": [{"ClusterId": "local", "ClusterName": "local",
            "RegionId": "cn-hangzhou", "IngressConfs": [{"Name": "shop",
            "Namespace": "default", "Annotations": "{}", "Labels": "{}",
            "CreationTime": "2026-12-06 10:00:00", "Endpoint": "127.0.0.1:8080",
            "IngressType": "NginxIngress", "SslRedirect": false, "Rules": [{"Host": "a.test",
            "SecretName": "", "EnableTls": false, "Paths": [{"Path": "/", "PathType": "Prefix",
            "AppId": "app-1", "AppName": "web", "Status": "Normal",
            "Backend": {"ServiceName": "web", "ServicePort": "80"}}]}]}]}]});
        let decoded: IngressRulesBody = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(
            decoded.data[0].ingress_confs[0].rules[0].paths[0]
                .backend
                .service_port,
            "80"
        );
        assert_eq!(serde_json::to_value(&decoded).unwrap(), body);
    }
}
