//! `edasctl service`: an application's Services (CreateK8sService, UpdateK8sService,
//! DeleteK8sService, each a change order that `--watch` follows, and GetK8sServices). On cluster
//! `local` a Service port is a port on 127.0.0.1 that balances over the ready instances.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use edas_wire::service::{ServicePort, ServicesBody};
use serde_json::{Value, json};

use crate::client::{Client, ops};
use crate::cmd::app::change;
use crate::cmd::context::{Global, WatchFlags};
use crate::cmd::params::ParamList;
use crate::output::{self, table};

/// Services.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List an application's Services (GetK8sServices).
    List {
        /// The application (`AppId`): its id or its name.
        app_id: String,
    },
    /// Add a Service to an application (CreateK8sService).
    Create(WriteArgs),
    /// Change a Service's ports (UpdateK8sService).
    Update(WriteArgs),
    /// Remove a Service (DeleteK8sService).
    Delete {
        /// The application (`AppId`): its id or its name.
        app_id: String,
        /// `Name`.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        watch: WatchFlags,
    },
}

/// `create` / `update`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The application (`AppId`): its id or its name.
    pub app_id: String,
    /// `Name`: the Service name (a DNS label).
    #[arg(long)]
    pub name: String,
    /// One port mapping PORT:TARGET_PORT[/PROTOCOL] (repeatable; protocol TCP or UDP, default
    /// TCP): `ServicePorts`. `update` without it keeps the ports.
    #[arg(long = "port", value_name = "PORT:TARGET[/PROTO]")]
    pub ports: Vec<String>,
    /// `Type`.
    #[arg(long = "type", default_value = "ClusterIP")]
    pub service_type: String,
    /// `ExternalTrafficPolicy`.
    #[arg(long)]
    pub external_traffic_policy: Option<String>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `8080:80/TCP` → `{"port":8080,"targetPort":80,"protocol":"TCP"}`.
fn port_mapping(text: &str) -> anyhow::Result<Value> {
    let (ports, protocol) = match text.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (text, "TCP"),
    };
    let number = |s: &str| -> anyhow::Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow::anyhow!("--port `{text}`: `{s}` is not a port number (1-65535)"))
    };
    let (port, target) = ports
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--port `{text}` must be PORT:TARGET_PORT[/PROTOCOL]"))?;
    Ok(json!({
        "port": number(port)?,
        "targetPort": number(target)?,
        "protocol": protocol.to_ascii_uppercase(),
    }))
}

fn write_params(client: &Client, args: &WriteArgs) -> anyhow::Result<ParamList> {
    let mut list = crate::cmd::instances::app_params(client, &args.app_id)?;
    list.set("Name", args.name.clone(), "--name")?;
    list.set("Type", args.service_type.clone(), "--type")?;
    list.set_opt(
        "ExternalTrafficPolicy",
        args.external_traffic_policy.clone(),
        "--external-traffic-policy",
    )?;
    if !args.ports.is_empty() {
        let ports = args
            .ports
            .iter()
            .map(|p| port_mapping(p))
            .collect::<anyhow::Result<Vec<Value>>>()?;
        list.set("ServicePorts", Value::from(ports).to_string(), "--port")?;
    }
    Ok(list)
}

/// Runs an `edasctl service` command.
pub fn run(global: &Global, command: &ServiceCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        ServiceCommand::List { app_id } => {
            let list = crate::cmd::instances::app_params(&client, app_id)?;
            let answer = client.call(ops::GetK8sServices, &list.into_pairs())?;
            output::print(global.output, &answer, |a| {
                let mut t = table(&["Name", "Type", "ClusterIP", "Ports"]);
                for s in output::body::<ServicesBody>(a).services {
                    let ports: Vec<String> =
                        s.service_ports.iter().map(ServicePort::mapping).collect();
                    t.add_row(vec![s.name, s.r#type, s.cluster_ip, ports.join(", ")]);
                }
                t
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Create(args) => {
            if args.ports.is_empty() {
                anyhow::bail!("service create needs at least one --port PORT:TARGET_PORT");
            }
            change(
                global,
                &client,
                ops::CreateK8sService,
                write_params(&client, args)?,
                &args.watch,
            )
        }
        ServiceCommand::Update(args) => change(
            global,
            &client,
            ops::UpdateK8sService,
            write_params(&client, args)?,
            &args.watch,
        ),
        ServiceCommand::Delete {
            app_id,
            name,
            watch,
        } => {
            let mut list = crate::cmd::instances::app_params(&client, app_id)?;
            list.set("Name", name.clone(), "--name")?;
            change(global, &client, ops::DeleteK8sService, list, watch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_are_parsed_or_refused_clearly() {
        assert_eq!(
            port_mapping("8080:80").unwrap(),
            json!({"port": 8080, "targetPort": 80, "protocol": "TCP"})
        );
        assert_eq!(port_mapping("53:53/udp").unwrap()["protocol"], "UDP");
        let err = port_mapping("8080").unwrap_err().to_string();
        assert!(err.contains("PORT:TARGET_PORT"), "{err}");
        let err = port_mapping("0:80").unwrap_err().to_string();
        assert!(err.contains("`0` is not a port number"), "{err}");
    }
}
