//! BindK8sSlb, UpdateK8sSlb and UnbindK8sSlb: an application's load balancer is a Kubernetes
//! `LoadBalancer` Service named `<app name, lowercased>-internet-slb`, added, changed or removed
//! as one more Service of the application (CreateK8sService, UpdateK8sService,
//! DeleteK8sService: a change order that replaces no instance). The cluster's load-balancer
//! provider gives it its address, whatever the provider is.
//!
//! What only Alibaba Cloud's SLB has is refused, naming the parameter and why: an SLB instance
//! (`SlbId`, `Specification`), its scheduler (`Scheduler`), HTTP/HTTPS listeners and their
//! certificates (`SlbProtocol`, `loadBalancerProtocol`, `certId`), keeping a listener's
//! configuration (`DisableForceOverride=true`), and an internal-facing balancer
//! (`Type=intranet`, which needs a provider's own annotation). On `local` there is no load
//! balancer: refused, pointing at the ingress listener.

use edas_app::LOCAL_CLUSTER;
use edas_spec::{Operation, Params, Violation, ViolationKind, Violations};
use edas_wire::application::ChangeOrderIdBody;
use serde_json::{Value, json};

use crate::apps::{change_application, live_application};
use crate::caller::Call;
use crate::error::ApiError;
use crate::params::{invalid, only, required};

const BIND: [&str; 10] = [
    "AppId",
    "ClusterId",
    "Port",
    "Scheduler",
    "ServicePortInfos",
    "SlbId",
    "SlbProtocol",
    "Specification",
    "TargetPort",
    "Type",
];

const UPDATE: [&str; 11] = [
    "AppId",
    "ClusterId",
    "DisableForceOverride",
    "Port",
    "Scheduler",
    "ServicePortInfos",
    "SlbName",
    "SlbProtocol",
    "Specification",
    "TargetPort",
    "Type",
];

fn not_supported(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::NotSupported,
        message: message.into(),
    }]))
}

fn missing(parameter: &str, message: &str) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::Missing,
        message: message.to_owned(),
    }]))
}

fn given<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// The Service that is `app`'s load balancer.
fn service_name(app_name: &str) -> String {
    format!("{}-internet-slb", app_name.to_ascii_lowercase())
}

/// What every operation refuses: the Alibaba Cloud parts, `intranet`, a foreign cluster.
fn refuse_slb_only(params: &Params) -> Result<(), ApiError> {
    if given(params, "SlbId").is_some() {
        return Err(not_supported(
            "SlbId",
            "SLB instances are Alibaba Cloud's: the cluster's load-balancer provider creates the LoadBalancer Service's balancer; leave SlbId out",
        ));
    }
    if given(params, "Specification").is_some() {
        return Err(not_supported(
            "Specification",
            "SLB specifications are Alibaba Cloud's: the cluster's load-balancer provider sizes the balancer; leave Specification out",
        ));
    }
    if given(params, "Scheduler").is_some() {
        return Err(not_supported(
            "Scheduler",
            "the balancing algorithm is the cluster's load-balancer provider's; a LoadBalancer Service has no scheduler to set; leave Scheduler out",
        ));
    }
    if let Some(p) = given(params, "SlbProtocol")
        && !p.eq_ignore_ascii_case("TCP")
    {
        return Err(not_supported(
            "SlbProtocol",
            format!(
                "`{p}` listeners are Alibaba Cloud SLB's; a LoadBalancer Service forwards TCP (HTTP rides on it): use TCP, or an ingress rule for HTTP routing"
            ),
        ));
    }
    if let Some(v) = given(params, "DisableForceOverride") {
        match edas_spec::parse_bool(v) {
            Some(false) => {}
            Some(true) => {
                return Err(not_supported(
                    "DisableForceOverride",
                    "there is no SLB listener configuration to keep: the Service's ports are the listeners; leave it out or false",
                ));
            }
            None => return Err(invalid("DisableForceOverride", "must be true or false")),
        }
    }
    match required(params, "Type")?.to_ascii_lowercase().as_str() {
        "internet" => Ok(()),
        "intranet" => Err(not_supported(
            "Type",
            "an internal-facing load balancer needs an annotation of the cluster's own provider, which edasd cannot know; use Type=internet, or a ClusterIP Service (CreateK8sService) reached inside the cluster",
        )),
        other => Err(invalid(
            "Type",
            format!("`{other}` is not a load-balancer type: internet or intranet"),
        )),
    }
}

fn port_number(value: &Value, path: &str) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| (1..=65535).contains(n))
    .ok_or_else(|| invalid(path, format!("must be a port (1-65535), not {value}")))
}

/// The Service's ports: `Port` + `TargetPort` (+ `SlbProtocol`), or `ServicePortInfos`, as
/// ServicePorts JSON.
fn service_ports(params: &Params) -> Result<String, ApiError> {
    let single = given(params, "Port").is_some() || given(params, "TargetPort").is_some();
    let ports = match (given(params, "ServicePortInfos"), single) {
        (Some(_), true) => {
            return Err(invalid(
                "ServicePortInfos",
                "give either ServicePortInfos or Port and TargetPort, not both",
            ));
        }
        (None, false) => {
            return Err(missing(
                "Port",
                "Port and TargetPort (or ServicePortInfos) are required",
            ));
        }
        (None, true) => {
            let port = port_number(&json!(required(params, "Port")?), "Port")?;
            let target = port_number(&json!(required(params, "TargetPort")?), "TargetPort")?;
            vec![json!({"port": port, "targetPort": target, "protocol": "TCP"})]
        }
        (Some(text), false) => {
            const P: &str = "ServicePortInfos";
            let value: Value = serde_json::from_str(text)
                .map_err(|e| invalid(P, format!("is not valid JSON: {e}")))?;
            let Value::Array(items) = value else {
                return Err(invalid(P, "must be a JSON array"));
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{P}[{i}]");
                let Value::Object(map) = item else {
                    return Err(invalid(&at, "must be a JSON object"));
                };
                let (mut port, mut target) = (None, None);
                for (key, v) in map {
                    let p = format!("{at}.{key}");
                    match key.as_str() {
                        "port" => port = Some(port_number(v, &p)?),
                        "targetPort" => target = Some(port_number(v, &p)?),
                        "loadBalancerProtocol" => {
                            let proto = v.as_str().unwrap_or_default();
                            if !proto.eq_ignore_ascii_case("TCP") {
                                return Err(not_supported(
                                    &p,
                                    format!(
                                        "`{proto}` listeners (and their certificates) are Alibaba Cloud SLB's; a LoadBalancer Service forwards TCP: use TCP"
                                    ),
                                ));
                            }
                        }
                        "certId" => {
                            return Err(not_supported(
                                &p,
                                "SLB certificates are Alibaba Cloud's; a LoadBalancer Service forwards TCP, so TLS ends in the application",
                            ));
                        }
                        _ => {
                            return Err(invalid(
                                &p,
                                "unknown key; an entry has port, targetPort, loadBalancerProtocol",
                            ));
                        }
                    }
                }
                out.push(json!({
                    "port": port.ok_or_else(|| missing(&format!("{at}.port"), "port is required"))?,
                    "targetPort": target.ok_or_else(|| missing(&format!("{at}.targetPort"), "targetPort is required"))?,
                    "protocol": "TCP",
                }));
            }
            if out.is_empty() {
                return Err(invalid(P, "needs at least one port"));
            }
            out
        }
    };
    Ok(Value::Array(ports).to_string())
}

enum Slb {
    Bind,
    Update,
    Unbind,
}

async fn change(call: Call<'_>, op: Slb) -> Result<ChangeOrderIdBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    match op {
        Slb::Bind => only(params, "BindK8sSlb", &BIND)?,
        Slb::Update => only(params, "UpdateK8sSlb", &UPDATE)?,
        Slb::Unbind => only(
            params,
            "UnbindK8sSlb",
            &["AppId", "ClusterId", "SlbName", "Type"],
        )?,
    }
    let app = live_application(api, required(params, "AppId")?).await?;
    if let Some(cluster) = given(params, "ClusterId")
        && cluster != app.cluster_id
    {
        return Err(invalid(
            "ClusterId",
            format!(
                "application `{}` runs on cluster `{}`, not `{cluster}`",
                app.id, app.cluster_id
            ),
        ));
    }
    if app.cluster_id == LOCAL_CLUSTER {
        return Err(not_supported(
            "AppId",
            format!(
                "application `{}` runs on cluster `local`, which has no load balancer: its Services are loopback listeners; reach it from outside through the ingress listener (`[local] ingress_listen`, CreateK8sIngressRule)",
                app.id
            ),
        ));
    }
    refuse_slb_only(params)?;
    let name = service_name(&app.name);
    if let Some(given_name) = given(params, "SlbName")
        && given_name != name
    {
        return Err(invalid(
            "SlbName",
            format!(
                "the load balancer of application `{}` is the Service `{name}`, not `{given_name}`",
                app.id
            ),
        ));
    }
    let exists = crate::apps::revision_doc(&app)?
        .spec
        .services
        .iter()
        .any(|s| s.name == name);
    let (operation, mut pairs) = match (op, exists) {
        (Slb::Bind, true) => {
            return Err(invalid(
                "Type",
                format!(
                    "application `{}` has an internet load balancer already (the Service `{name}`); change it with UpdateK8sSlb",
                    app.id
                ),
            ));
        }
        (Slb::Update | Slb::Unbind, false) => {
            return Err(invalid(
                "Type",
                format!(
                    "application `{}` has no internet load balancer; bind one with BindK8sSlb",
                    app.id
                ),
            ));
        }
        (Slb::Bind, false) => (
            Operation::CreateK8sService,
            vec![
                ("Type", "LoadBalancer".to_owned()),
                ("ServicePorts", service_ports(params)?),
            ],
        ),
        (Slb::Update, true) => (
            Operation::UpdateK8sService,
            vec![
                ("Type", "LoadBalancer".to_owned()),
                ("ServicePorts", service_ports(params)?),
            ],
        ),
        (Slb::Unbind, true) => (Operation::DeleteK8sService, vec![]),
    };
    pairs.push(("AppId", app.id.clone()));
    pairs.push(("Name", name));
    let service_params = Params::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
        .map_err(|e| invalid("AppId", e.to_string()))?;
    let (ram_action, _) = crate::operations::Implemented::CreateK8sService.permission();
    // Boxed: the change's future is large, and nested in this one it would overflow a
    // worker's stack in a debug build.
    Box::pin(change_application(
        Call {
            api,
            caller,
            params: &service_params,
            request_id,
        },
        operation,
        ram_action,
    ))
    .await
}

pub(crate) async fn bind(call: Call<'_>) -> Result<ChangeOrderIdBody, ApiError> {
    Box::pin(change(call, Slb::Bind)).await
}

pub(crate) async fn update(call: Call<'_>) -> Result<ChangeOrderIdBody, ApiError> {
    Box::pin(change(call, Slb::Update)).await
}

pub(crate) async fn unbind(call: Call<'_>) -> Result<ChangeOrderIdBody, ApiError> {
    Box::pin(change(call, Slb::Unbind)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn named(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        format!("{:?}", r.unwrap_err())
    }

    #[test]
    fn ports_come_from_port_and_target_port_or_the_infos() {
        assert_eq!(
            service_ports(&params(&[("Port", "80"), ("TargetPort", "8080")])).unwrap(),
            r#"[{"port":80,"protocol":"TCP","targetPort":8080}]"#
        );
        assert_eq!(
            service_ports(&params(&[(
                "ServicePortInfos",
                r#"[{"port":82,"targetPort":8080,"loadBalancerProtocol":"TCP"},{"port":81,"targetPort":8181}]"#
            )]))
            .unwrap(),
            r#"[{"port":82,"protocol":"TCP","targetPort":8080},{"port":81,"protocol":"TCP","targetPort":8181}]"#
        );
        assert!(named(service_ports(&params(&[]))).contains("Port"));
        assert!(
            named(service_ports(&params(&[
                ("Port", "0"),
                ("TargetPort", "1")
            ])))
            .contains("Port")
        );
        assert!(
            named(service_ports(&params(&[(
                "ServicePortInfos",
                r#"[{"port":81,"targetPort":8181,"loadBalancerProtocol":"HTTPS","certId":"x"}]"#
            )])))
            .contains("ServicePortInfos[0].")
        );
    }

    #[test]
    fn alibaba_only_parameters_are_refused_naming_them() {
        for (name, value) in [
            ("SlbId", "lb-123"),
            ("Specification", "slb.s1.small"),
            ("Scheduler", "wrr"),
            ("SlbProtocol", "HTTP"),
            ("DisableForceOverride", "true"),
        ] {
            let e = named(refuse_slb_only(&params(&[
                ("Type", "internet"),
                (name, value),
            ])));
            assert!(e.contains(name) && e.contains("NotSupported"), "{e}");
        }
        assert!(named(refuse_slb_only(&params(&[("Type", "intranet")]))).contains("Type"));
        assert!(refuse_slb_only(&params(&[("Type", "Internet"), ("SlbProtocol", "tcp")])).is_ok());
    }
}
