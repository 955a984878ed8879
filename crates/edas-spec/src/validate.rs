//! Rules over the merged spec: they involve several parameters or the application's current
//! state (request ≤ limit after unit rules, unique mount paths, a strategy that fits the replica
//! count), so they run after decoding, on the next revision itself.

use crate::catalog::Operation;
use crate::model::{AppSpec, Artifact};
use crate::params::Params;
use crate::release::{ReleaseSettings, StrategyKind};
use crate::violation::Violation;

/// The first of `names` present in the request, else the first name.
fn named<'a>(params: &Params, names: &[&'a str]) -> &'a str {
    names
        .iter()
        .copied()
        .find(|n| params.get(n).is_some())
        .unwrap_or(names[0])
}

/// Rules of the next revision.
pub(crate) fn spec(
    op: Operation,
    params: &Params,
    base: &AppSpec,
    spec: &AppSpec,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let res = &spec.resources;
    let (cpu, mem, eph): (&[&str], &[&str], &[&str]) = match op {
        Operation::InsertK8sApplication => (
            &["RequestsmCpu", "RequestsCpu", "LimitmCpu", "LimitCpu"],
            &["RequestsMem", "LimitMem"],
            &["RequestsEphemeralStorage", "LimitEphemeralStorage"],
        ),
        Operation::UpdateK8sApplicationConfig => (
            &["McpuRequest", "CpuRequest", "McpuLimit", "CpuLimit"],
            &["MemoryRequest", "MemoryLimit"],
            &["EphemeralStorageRequest", "EphemeralStorageLimit"],
        ),
        _ => (
            &["McpuRequest", "CpuRequest", "McpuLimit", "CpuLimit"],
            &["MemoryRequest", "MemoryLimit"],
            &["RequestsEphemeralStorage", "LimitEphemeralStorage"],
        ),
    };
    let pairs = [
        (
            res.cpu_request_millis,
            res.cpu_limit_millis,
            cpu,
            "CPU",
            "millicores",
        ),
        (
            res.memory_request_mib,
            res.memory_limit_mib,
            mem,
            "memory",
            "MB",
        ),
        (
            res.ephemeral_request_gib,
            res.ephemeral_limit_gib,
            eph,
            "ephemeral storage",
            "GB",
        ),
    ];
    for (request, limit, names, what, unit) in pairs {
        if let (Some(req), Some(lim)) = (request, limit)
            && req > lim
        {
            out.push(Violation::invalid(
                named(params, names),
                format!(
                    "the {what} request ({req} {unit}) exceeds the {what} limit ({lim} {unit})"
                ),
            ));
        }
    }

    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (param, path) in spec.mount_paths() {
        if let Err(e) = crate::k8s::check_mount_path(path) {
            out.push(Violation::invalid(param, e));
            continue;
        }
        let norm = path.trim_end_matches('/');
        if let Some((other, _)) = seen.iter().find(|(_, p)| *p == norm) {
            out.push(Violation::invalid(
                param,
                format!("mount path `{path}` is already used by {other}"),
            ));
        } else {
            seen.push((param, norm));
        }
    }
    if !spec.nfs.mounts.is_empty() && spec.nfs.server.is_none() {
        out.push(Violation::missing(
            "NasId",
            "MountDescs needs NasId, the NFS server to mount from (this server cannot buy a NAS file system)",
        ));
    }

    if (op != Operation::InsertK8sApplication || !params.get("AppName").is_none_or(str::is_empty))
        && spec.artifact == Artifact::None
        && spec.command.is_none()
    {
        let p = match op {
            Operation::InsertK8sApplication => "ImageUrl",
            Operation::DeployK8sApplication if params.get("Command").is_some() => "Command",
            _ => "Image",
        };
        out.push(Violation::missing(
            p,
            "the application needs an image (ImageUrl/Image), a package (PackageUrl) or a command (Command)",
        ));
    }
    if let Artifact::Package(pkg) = &spec.artifact
        && pkg.jdk.as_deref() == Some("Custom OpenJDK")
        && pkg.base_image.is_none()
    {
        out.push(Violation::missing(
            "UserBaseImageUrl",
            "required with JDK Custom OpenJDK",
        ));
    }

    // The application container is named after the application (lowercased); rendering adds
    // `edas-package-fetcher` for packages.
    let app_container = spec.name.to_ascii_lowercase();
    let mut names: Vec<&str> = vec![app_container.as_str(), "edas-package-fetcher"];
    for (param, c) in spec
        .init_containers
        .iter()
        .map(|c| ("InitContainers", c))
        .chain(spec.sidecars.iter().map(|c| ("Sidecars", c)))
    {
        if names.contains(&c.name.as_str()) {
            out.push(Violation::invalid(
                param,
                format!(
                    "container name `{}` is used by another sidecar or init container",
                    c.name
                ),
            ));
        }
        names.push(&c.name);
    }

    let spread = spec.deploy_across_nodes || spec.deploy_across_zones;
    for (param, set) in [
        (
            "CustomAffinity",
            spec.custom_affinity.is_some() && spec.custom_affinity != base.custom_affinity,
        ),
        (
            "CustomTolerations",
            !spec.custom_tolerations.is_empty()
                && spec.custom_tolerations != base.custom_tolerations,
        ),
    ] {
        if spread && set && params.get(param).is_some() {
            out.push(Violation::invalid(
                param,
                "takes effect only when DeployAcrossNodes and DeployAcrossZones are both false; turn them off or leave this parameter out",
            ));
        }
    }
    out
}

/// Rules of the release settings against the next revision.
pub(crate) fn release(spec: &AppSpec, release: &ReleaseSettings) -> Vec<Violation> {
    let mut out = Vec::new();
    let replicas = spec.effective_replicas();
    if let Some(s) = &release.strategy {
        let rest = replicas.saturating_sub(s.gray);
        if s.kind == StrategyKind::GrayBatchUpdate && s.gray > 0 && s.gray >= replicas {
            out.push(Violation::invalid(
                "UpdateStrategy",
                format!("grayUpdate.gray ({}) must be less than the replica count ({replicas}) so that batches remain", s.gray),
            ));
        } else if s.batches > rest.max(1) {
            out.push(Violation::invalid(
                "UpdateStrategy",
                format!(
                    "batchUpdate.batch ({}) would leave a batch empty: {rest} instance(s) remain after the gray batch",
                    s.batches
                ),
            ));
        }
    }
    if release.traffic_control.is_some() {
        let gray = release
            .strategy
            .as_ref()
            .is_some_and(|s| s.kind == StrategyKind::GrayBatchUpdate && s.gray > 0);
        if !gray {
            out.push(Violation::invalid(
                "TrafficControlStrategy",
                "needs an UpdateStrategy of type GrayBatchUpdate with grayUpdate.gray of at least 1",
            ));
        }
    }
    out
}
