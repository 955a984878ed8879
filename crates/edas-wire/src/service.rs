//! GetK8sServices (the Service changes answer [`crate::application::ChangeOrderIdBody`]).

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of GetK8sServices: `{"Services": [...]}`, a bare list (no wrapper object), and
/// edasd's extension `Traffic` (absent from EDAS's answers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServicesBody {
    pub services: Vec<Service>,
    /// edasd extension: where the Services send requests now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

/// edasd extension `Traffic`: the live split of an application's requests between revisions.
/// `Mode` is `AllReady` (every ready instance of every revision, no revision named),
/// `GraySplit` (requests matching `Rules` go to `GrayRevision`, the others to
/// `StableRevision`) or `Aborted` (everything to `StableRevision`, nothing to `GrayRevision`,
/// whose instances stay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Traffic {
    #[serde(deserialize_with = "lenient::text")]
    pub mode: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_text"
    )]
    pub stable_revision: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_text"
    )]
    pub gray_revision: Option<String>,
    /// The release's `TrafficControlStrategy` rules (`GraySplit` only), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TrafficRule>,
}

impl Traffic {
    /// No split.
    pub const ALL_READY: &'static str = "AllReady";
    /// A gray batch's split.
    pub const GRAY_SPLIT: &'static str = "GraySplit";
    /// An aborted release's revision gets nothing.
    pub const ABORTED: &'static str = "Aborted";
}

/// One rule: `ConditionType` `percent` (with `Percent`, 0–100) or `content` (with
/// `Conditions`, all of which must match).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TrafficRule {
    #[serde(deserialize_with = "lenient::text")]
    pub condition_type: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_int"
    )]
    pub percent: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TrafficCondition>,
}

/// A content condition: `Type` `header`, `cookie` or `param`; `Operator` `==` or `regex`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TrafficCondition {
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub operator: String,
    #[serde(deserialize_with = "lenient::text")]
    pub value: String,
}

/// One Service of the application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    /// 127.0.0.1 on `local`; empty where the cluster assigns it (edasd does not track it).
    #[serde(rename = "ClusterIP", deserialize_with = "lenient::text")]
    pub cluster_ip: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    pub service_ports: Vec<ServicePort>,
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
}

/// A port mapping; `TargetPort` is a string, `Port` a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServicePort {
    #[serde(deserialize_with = "lenient::int")]
    pub node_port: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub port: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub protocol: String,
    #[serde(deserialize_with = "lenient::text")]
    pub target_port: String,
}

impl ServicePort {
    /// `PORT:TARGET/PROTOCOL`, the way edasctl takes and shows a mapping.
    pub fn mapping(&self) -> String {
        format!("{}:{}/{}", self.port, self.target_port, self.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;

    #[test]
    fn captured_services_round_trip_with_their_mixed_port_types() {
        let body: ServicesBody = round_trip(include_str!("../fixtures/get_k8s_services.json"));
        let port = &body.services[0].service_ports[0];
        assert_eq!(port.mapping(), "18080:8080/TCP");
        assert_eq!(body.services[0].cluster_ip, "127.0.0.1");
        assert_eq!(body.traffic, None, "EDAS's answer has no Traffic");
    }

    #[test]
    fn a_gray_batchs_traffic_split_round_trips() {
        let body: ServicesBody =
            round_trip(include_str!("../fixtures/get_k8s_services_traffic.json"));
        let traffic = body.traffic.expect("edasd's extension");
        assert_eq!(traffic.mode, Traffic::GRAY_SPLIT);
        assert_eq!(
            (
                traffic.stable_revision.as_deref(),
                traffic.gray_revision.as_deref()
            ),
            (Some("1"), Some("2"))
        );
        assert_eq!(traffic.rules[0].condition_type, "percent");
        assert_eq!(traffic.rules[0].percent, Some(20));
        assert!(traffic.rules[0].conditions.is_empty());
    }
}
