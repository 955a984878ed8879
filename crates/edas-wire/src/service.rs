//! GetK8sServices (the Service changes answer [`crate::application::ChangeOrderIdBody`]).

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of GetK8sServices: `{"Services": [...]}`, a bare list (no wrapper object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServicesBody {
    pub services: Vec<Service>,
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
    }
}
