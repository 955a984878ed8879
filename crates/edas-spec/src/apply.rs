//! Applying an operation's parameters to the application's current spec: decode every parameter
//! (absent = keep, empty form = clear, value = replace), then validate the merged result.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Container, EnvVar, SecurityContext};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Operation};
use crate::k8s;
use crate::model::{
    AppSpec, Artifact, ConfigMount, EmptyDirMount, JavaStartupOption, LocalVolume, LogCollection,
    NfsMount, Package, PortMapping, PvcMount, ServiceConfig, ServicePort, WebContainerConfig,
    Workload,
};
use crate::params::{
    Params, Patch, Reader, decode_value, decode_yaml_encoded, parse_json_text, shorten,
};
use crate::release::{
    ConditionOperator, ConditionSource, ReleaseSettings, ReleaseType, StrategyKind,
    TrafficCondition, TrafficControl, TrafficRule, UpdateStrategy,
};
use crate::validate;
use crate::violation::{Violation, ViolationKind, Violations};

/// The result of applying one request: the next revision and how to release it.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The operation applied.
    pub operation: Operation,
    /// `AppId` (absent for InsertK8sApplication).
    pub app_id: Option<String>,
    /// `RegionId`, when the client sent it (the server checks it against its own region).
    pub region_id: Option<String>,
    /// `Force` (DeleteK8sApplication).
    pub force: bool,
    /// The complete next revision.
    pub spec: AppSpec,
    /// The release settings of this change only.
    pub release: ReleaseSettings,
}

/// Applies `op`'s parameters to `current` (the application's latest revision; `None` for
/// InsertK8sApplication). Every violation is reported at once; on error nothing is produced.
pub fn apply(
    op: Operation,
    current: Option<&AppSpec>,
    params: &Params,
) -> Result<Change, Violations> {
    let mut r = Reader::for_operation(params, op);
    for (name, _) in params.iter() {
        if !op.has_parameter(name) {
            r.push(Violation::new(
                name,
                ViolationKind::Unknown,
                format!("{} has no parameter named `{name}`", op.action()),
            ));
        }
    }
    for (name, required) in op.parameters() {
        if *required {
            r.required(name);
        }
    }
    let base = match (op, current) {
        (Operation::InsertK8sApplication, _) => AppSpec {
            k8s_namespace: "default".to_owned(),
            ..AppSpec::default()
        },
        (_, Some(spec)) => spec.clone(),
        (_, None) => {
            r.push(Violation::invalid(
                "AppId",
                "the application does not exist",
            ));
            AppSpec::default()
        }
    };
    let mut spec = base.clone();
    let mut release = ReleaseSettings::default();
    let mut force = false;

    match op {
        Operation::InsertK8sApplication => {
            identity(&mut r, &mut spec);
            artifact_insert(&mut r, &mut spec);
            common(&mut r, &mut spec, op);
            resources(&mut r, &mut spec, op);
        }
        Operation::DeployK8sApplication => {
            artifact_deploy(&mut r, &mut spec);
            common(&mut r, &mut spec, op);
            resources(&mut r, &mut spec, op);
            release_settings(&mut r, &mut release);
        }
        Operation::UpdateK8sApplicationConfig => {
            if let Some(c) = r.raw("ClusterId")
                && c != spec.cluster_id
            {
                r.push(Violation::invalid(
                    "ClusterId",
                    format!(
                        "the application runs on cluster `{}`, not `{}`",
                        spec.cluster_id,
                        shorten(c)
                    ),
                ));
            }
            resources(&mut r, &mut spec, op);
        }
        Operation::ScaleK8sApplication => {
            if let Some(n) = r.int("Replicas", 0, MAX_REPLICAS, "") {
                spec.replicas = n as u32;
                spec.stopped = false;
            }
        }
        Operation::StartK8sApplication => {
            if let Some(n) = r.int("Replicas", 0, MAX_REPLICAS, "") {
                spec.replicas = n as u32;
            }
            spec.stopped = false;
        }
        Operation::StopK8sApplication => spec.stopped = true,
        Operation::RestartK8sApplication => {
            if spec.stopped {
                r.push(Violation::invalid(
                    "AppId",
                    "the application is stopped: start it instead of restarting it",
                ));
            }
            spec.restart_generation += 1;
        }
        Operation::DeleteK8sApplication => force = r.boolean("Force").unwrap_or(false),
        Operation::CreateK8sService | Operation::UpdateK8sService | Operation::DeleteK8sService => {
            service_operation(&mut r, &mut spec, op)
        }
    }
    if let Some(t) = r.int("Timeout", 1, 1800, " seconds") {
        release.timeout_seconds = t as u32;
    }

    let mut violations = r.violations;
    violations.extend(validate::spec(op, params, &base, &spec));
    violations.extend(validate::release(&spec, &release));
    if !violations.is_empty() {
        return Err(Violations(dedup(violations)));
    }
    Ok(Change {
        operation: op,
        app_id: params.get("AppId").map(str::to_owned),
        region_id: params.get("RegionId").map(str::to_owned),
        force,
        spec,
        release,
    })
}

fn dedup(mut v: Vec<Violation>) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::with_capacity(v.len());
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// The largest instance count accepted, a guard against typos (10000 instances of one application).
pub const MAX_REPLICAS: i64 = 10_000;

fn identity(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(name) = r.raw("AppName")
        && !name.is_empty()
    {
        let ok = name.len() <= 36
            && name.as_bytes()[0].is_ascii_alphabetic()
            && !name.ends_with('-')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            spec.name = name.to_owned();
        } else {
            r.push(Violation::invalid(
                "AppName",
                format!("`{}` must start with a letter, end with a letter or digit, and contain only letters, digits and hyphens, at most 36 characters", shorten(name)),
            ));
        }
    }
    // An empty ClusterId keeps the current one.
    let cluster_id = |c: &str| {
        c.is_empty()
            || c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
    };
    if let Some(c) = valid_text(r, "ClusterId", cluster_id, "a cluster id")
        && !c.is_empty()
    {
        spec.cluster_id = c.to_owned();
    }
    let namespace = "a Kubernetes namespace name (lowercase letters, digits, -, at most 63)";
    if let Some(ns) = valid_text(r, "Namespace", k8s::is_dns_label, namespace) {
        spec.k8s_namespace = ns.to_owned();
    }
    let edas_namespace = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id.split_once(':').is_none_or(|(_, n)| !n.is_empty())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
    };
    let expected = "an EDAS namespace id such as cn-hangzhou:dev";
    if let Some(id) = valid_text(r, "LogicalRegionId", edas_namespace, expected) {
        spec.edas_namespace = Some(id.to_owned());
    }
    bounded_text(r, "ApplicationDescription", 256).apply_to(&mut spec.description);
    bounded_text(r, "ResourceGroupId", 64).apply_to(&mut spec.resource_group_id);
    if let Some(b) = r.boolean("IsMultilingualApp") {
        spec.multilingual = b;
    }
    match r.raw("WorkloadType") {
        None => {}
        Some(w) if w.eq_ignore_ascii_case("Deployment") => spec.workload = Workload::Deployment,
        // Whether the cluster can honour it is its runtime's `check` (`local` cannot).
        Some(w) if w.eq_ignore_ascii_case("StatefulSet") => spec.workload = Workload::StatefulSet,
        Some(w) => r.push(Violation::invalid(
            "WorkloadType",
            format!("`{}` must be Deployment or StatefulSet", shorten(w)),
        )),
    }
    for name in [
        "AppTemplateName",
        "CsClusterId",
        "FeatureConfig",
        "InternetSlbId",
        "InternetSlbProtocol",
        "IntranetSlbId",
        "IntranetSlbProtocol",
        "ContainerRegistryId",
    ] {
        empty_only(r, name);
    }
    for name in [
        "InternetSlbPort",
        "InternetTargetPort",
        "IntranetSlbPort",
        "IntranetTargetPort",
    ] {
        if r.raw(name).is_some() {
            let reason = catalog::doc(name).map_or("not supported", |d| d.status);
            r.push(Violation::unsupported(
                name,
                reason.trim_start_matches("rejected: "),
            ));
        }
    }
    false_only(r, "EnableAsm");
    if let Some(raw) = r.raw("AppConfig") {
        match parse_json_text("AppConfig", raw) {
            Ok(None) => {}
            Ok(Some(_)) => r.push(Violation::unsupported(
                "AppConfig",
                "application templates are not supported",
            )),
            Err(v) => r.push(v),
        }
    }
}

/// Each of the string parameters `names` that is given non-empty is invalid: `why`.
fn only_empty(r: &mut Reader<'_>, names: &[&str], why: &str) {
    for name in names {
        if r.raw(name).is_some_and(|v| !v.is_empty()) {
            r.push(Violation::invalid(name, why));
        }
    }
}

/// The non-empty image (`image_param`) and package URL of a request, or `None` (the violation
/// recorded) when it gives both.
fn image_or_package<'a>(
    r: &mut Reader<'a>,
    image_param: &str,
    both: &str,
) -> Option<(Option<&'a str>, Option<&'a str>)> {
    let image = r.raw(image_param).filter(|s| !s.is_empty());
    let url = r.raw("PackageUrl").filter(|s| !s.is_empty());
    if image.is_some() && url.is_some() {
        r.push(Violation::invalid("PackageUrl", both));
        return None;
    }
    Some((image, url))
}

/// A string parameter that is accepted only empty: it names an Alibaba Cloud-only service.
fn empty_only(r: &mut Reader<'_>, name: &str) {
    if r.raw(name).is_some_and(|v| !v.is_empty()) {
        let reason = catalog::doc(name).map_or("not supported", |d| d.status);
        r.push(Violation::unsupported(
            name,
            reason.trim_start_matches("rejected when non-empty: "),
        ));
    }
}

/// A boolean accepted only `false`.
fn false_only(r: &mut Reader<'_>, name: &str) {
    if r.boolean(name) == Some(true) {
        let reason = catalog::doc(name)
            .and_then(|d| d.status.split_once("rejected: "))
            .map_or("not supported", |(_, why)| why);
        r.push(Violation::unsupported(name, reason));
    }
}

fn bounded_text(r: &mut Reader<'_>, name: &str, max: usize) -> Patch<String> {
    match r.text(name) {
        Patch::Set(v) if v.chars().count() > max => {
            r.push(Violation::invalid(
                name,
                format!("must be at most {max} characters"),
            ));
            Patch::Keep
        }
        other => other,
    }
}

fn check_image_ref(r: &mut Reader<'_>, name: &str, image: &str) -> bool {
    let ok = !image.is_empty()
        && image.len() <= 512
        && !image.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        r.push(Violation::invalid(
            name,
            format!("`{}` is not an image reference", shorten(image)),
        ));
    }
    ok
}

fn check_package_url(r: &mut Reader<'_>, url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let scheme_ok = ["file://", "http://", "https://"]
        .iter()
        .any(|s| lower.starts_with(s) && lower.len() > s.len());
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        r.push(Violation::invalid(
            "PackageUrl",
            format!(
                "`{}` must be a file://, http:// or https:// URL",
                shorten(url)
            ),
        ));
        return false;
    }
    if lower
        .split(['?', '#'])
        .next()
        .is_some_and(|p| p.ends_with(".war"))
    {
        r.push(Violation::unsupported(
            "PackageUrl",
            "WAR packages need a Tomcat web container, which this server does not provide; package the application as a FatJar or an image",
        ));
        return false;
    }
    true
}

fn package_version(r: &mut Reader<'_>) -> Option<String> {
    match r.raw("PackageVersion") {
        None => None,
        Some(v) if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) => {
            r.push(Violation::invalid(
                "PackageVersion",
                "must be 1–128 printable characters",
            ));
            None
        }
        Some(v) => Some(v.to_owned()),
    }
}

fn jdk_settings(r: &mut Reader<'_>, pkg: &mut Package) {
    if let Some(j) = r.raw("JDK") {
        if matches!(j, "Open JDK 7" | "Open JDK 8" | "Custom OpenJDK") {
            pkg.jdk = Some(j.to_owned());
        } else {
            r.push(Violation::invalid(
                "JDK",
                format!(
                    "`{}` must be one of: Open JDK 7, Open JDK 8, Custom OpenJDK",
                    shorten(j)
                ),
            ));
        }
    }
    match r.text("UserBaseImageUrl") {
        Patch::Set(img) => {
            if check_image_ref(r, "UserBaseImageUrl", &img) {
                pkg.base_image = Some(img);
            }
        }
        other => other.apply_to(&mut pkg.base_image),
    }
}

fn artifact_insert(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let kind = r.raw("PackageType").map(|t| t.to_ascii_lowercase());
    if let Some(k) = kind.as_deref()
        && !matches!(k, "image" | "fatjar" | "war")
    {
        r.push(Violation::invalid(
            "PackageType",
            "must be one of: Image, FatJar, WAR",
        ));
        return;
    }
    if kind.as_deref() == Some("war") {
        r.push(Violation::unsupported(
            "PackageType",
            "WAR packages need a Tomcat web container, which this server does not provide; package the application as a FatJar or an image",
        ));
        return;
    }
    let both = "give either ImageUrl (an image) or PackageUrl (a package), not both";
    let Some((image, url)) = image_or_package(r, "ImageUrl", both) else {
        return;
    };
    let wants_image = kind.as_deref() == Some("image") || (kind.is_none() && image.is_some());
    let wants_package = kind.as_deref() == Some("fatjar") || (kind.is_none() && url.is_some());
    if wants_image {
        match image {
            None => r.push(Violation::missing(
                "ImageUrl",
                "required when PackageType is Image",
            )),
            Some(img) => {
                if check_image_ref(r, "ImageUrl", img) {
                    let repo_id = r.raw("RepoId").filter(|s| !s.is_empty()).map(str::to_owned);
                    spec.artifact = Artifact::Image {
                        url: img.to_owned(),
                        repo_id,
                    };
                }
            }
        }
        only_empty(
            r,
            &["JDK", "UserBaseImageUrl", "PackageVersion"],
            "applies to package-based applications, not to image-based ones",
        );
    } else if wants_package {
        let Some(url) = url else {
            r.push(Violation::missing(
                "PackageUrl",
                "required when PackageType is FatJar",
            ));
            return;
        };
        if !check_package_url(r, url) {
            return;
        }
        let Some(version) = package_version(r) else {
            if r.raw("PackageVersion").is_none() {
                r.push(Violation::missing(
                    "PackageVersion",
                    "required with PackageUrl",
                ));
            }
            return;
        };
        let mut pkg = Package {
            url: url.to_owned(),
            version,
            ..Package::default()
        };
        jdk_settings(r, &mut pkg);
        spec.artifact = Artifact::Package(pkg);
    } else {
        only_empty(
            r,
            &["JDK", "UserBaseImageUrl", "PackageVersion", "RepoId"],
            "applies only together with ImageUrl or PackageUrl",
        );
    }
    if r.raw("RepoId").is_some_and(|v| v.len() > 128) {
        r.push(Violation::invalid(
            "RepoId",
            "must be at most 128 characters",
        ));
    }
}

fn artifact_deploy(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let Some((image, url)) =
        image_or_package(r, "Image", "give either Image or PackageUrl, not both")
    else {
        return;
    };
    if let Some(img) = image {
        if r.raw("ImageTag").is_some() {
            // `Image` overrides `ImageTag`, as EDAS documents; the tag is still checked.
            image_tag(r);
        }
        if check_image_ref(r, "Image", img) {
            let repo_id = match &spec.artifact {
                Artifact::Image { repo_id, .. } => repo_id.clone(),
                _ => None,
            };
            spec.artifact = Artifact::Image {
                url: img.to_owned(),
                repo_id,
            };
        }
    } else if let Some(tag) = image_tag(r) {
        match &mut spec.artifact {
            Artifact::Image { url, .. } => *url = with_tag(url, &tag),
            _ => r.push(Violation::invalid(
                "ImageTag",
                "the application is not image-based; give Image instead",
            )),
        }
    }
    if let Some(u) = url {
        if !check_package_url(r, u) {
            return;
        }
        let version = package_version(r);
        let mut pkg = match &spec.artifact {
            Artifact::Package(p) => p.clone(),
            _ => Package::default(),
        };
        match version {
            Some(v) => pkg.version = v,
            None if r.raw("PackageVersion").is_none() => {
                r.push(Violation::missing(
                    "PackageVersion",
                    "required with PackageUrl",
                ));
                return;
            }
            None => return,
        }
        pkg.url = u.to_owned();
        jdk_settings(r, &mut pkg);
        spec.artifact = Artifact::Package(pkg);
    } else if image.is_none() {
        // Package settings without a new package change the current one.
        let touches = ["PackageVersion", "JDK", "UserBaseImageUrl"]
            .iter()
            .any(|n| r.raw(n).is_some());
        if touches {
            match &mut spec.artifact {
                Artifact::Package(pkg) => {
                    let mut pkg = pkg.clone();
                    if let Some(v) = package_version(r) {
                        pkg.version = v;
                    }
                    jdk_settings(r, &mut pkg);
                    spec.artifact = Artifact::Package(pkg);
                }
                _ => {
                    only_empty(
                        r,
                        &["PackageVersion", "JDK", "UserBaseImageUrl"],
                        "applies to package-based applications, not to image-based ones",
                    );
                }
            }
        }
    } else {
        only_empty(
            r,
            &["PackageVersion", "JDK", "UserBaseImageUrl"],
            "applies to package-based applications, not to image-based ones",
        );
    }
    empty_only(r, "PackageVersionId");
}

fn image_tag(r: &mut Reader<'_>) -> Option<String> {
    let valid = |tag: &str| {
        !tag.is_empty()
            && tag.len() <= 128
            && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.starts_with('_'))
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let expected = "an image tag (letters, digits, _ . -, at most 128)";
    valid_text(r, "ImageTag", valid, expected).map(str::to_owned)
}

/// String parameter `name` when it is given and `valid`; when it is not valid, the violation
/// that it is not `expected` (e.g. "a cluster id").
fn valid_text<'a>(
    r: &mut Reader<'a>,
    name: &str,
    valid: impl Fn(&str) -> bool,
    expected: &str,
) -> Option<&'a str> {
    let value = r.raw(name)?;
    if valid(value) {
        return Some(value);
    }
    r.push(Violation::invalid(
        name,
        format!("`{}` is not {expected}", shorten(value)),
    ));
    None
}

/// Replaces the tag of an image reference (a digest is replaced too).
pub fn with_tag(image: &str, tag: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repo = match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    };
    format!("{repo}:{tag}")
}

#[derive(Serialize, Deserialize)]
struct CommandArg {
    argument: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct YamlEncoded {
    yaml_encoded: String,
}

/// Parameters shared by InsertK8sApplication and DeployK8sApplication.
fn common(r: &mut Reader<'_>, spec: &mut AppSpec, op: Operation) {
    if let Some(n) = r.int("Replicas", 0, MAX_REPLICAS, "") {
        spec.replicas = n as u32;
    }
    match r.text("Command") {
        Patch::Set(c) if c.contains('\0') => {
            r.push(Violation::invalid("Command", "must not contain NUL"))
        }
        p => p.apply_to(&mut spec.command),
    }
    r.json::<Vec<String>>("Args").apply_to_list(&mut spec.args);
    match r.json::<Vec<CommandArg>>("CommandArgs") {
        Patch::Keep => {}
        Patch::Clear => spec.args.clear(),
        Patch::Set(a) => spec.args = a.into_iter().map(|a| a.argument).collect(),
    }
    if spec.args.iter().any(|a| a.contains('\0')) {
        r.push(Violation::invalid(
            if op == Operation::InsertK8sApplication {
                "CommandArgs"
            } else {
                "Args"
            },
            "arguments must not contain NUL",
        ));
    }

    json_checked(r, "Envs", |n, e: &Vec<EnvVar>| k8s::check_envs(n, e))
        .apply_to_list(&mut spec.envs);
    json_checked(r, "EnvFroms", |n, f: &Vec<_>| k8s::check_env_froms(n, f))
        .apply_to_list(&mut spec.env_froms);

    for (name, field) in [
        ("Liveness", &mut spec.liveness),
        ("Readiness", &mut spec.readiness),
        ("Startup", &mut spec.startup),
    ] {
        json_checked(r, name, k8s::check_probe).apply_to(field);
    }
    for (name, field) in [
        ("PostStart", &mut spec.post_start),
        ("PreStop", &mut spec.pre_stop),
    ] {
        json_checked(r, name, k8s::check_handler).apply_to(field);
    }
    if let Some(n) = r.int("TerminateGracePeriod", 0, 86_400, " seconds") {
        spec.termination_grace_period_seconds = Some(n as u32);
    }
    if let Some(n) = r.int("BatchWaitTime", 0, 86_400, " seconds") {
        spec.min_ready_seconds = n as u32;
    }
    for (name, field) in [
        ("DeployAcrossNodes", &mut spec.deploy_across_nodes),
        ("DeployAcrossZones", &mut spec.deploy_across_zones),
    ] {
        if let Some(v) = r.raw(name) {
            *field = v.trim().eq_ignore_ascii_case("true");
        }
    }
    r.json::<Affinity>("CustomAffinity")
        .apply_to(&mut spec.custom_affinity);
    json_checked(r, "CustomTolerations", |n, t: &Vec<_>| {
        k8s::check_tolerations(n, t)
    })
    .apply_to_list(&mut spec.custom_tolerations);
    match r.text("RuntimeClassName") {
        Patch::Set(v) if !matches!(v.as_str(), "runc" | "runv") => r.push(Violation::invalid(
            "RuntimeClassName",
            format!("`{}` must be runc or runv", shorten(&v)),
        )),
        p => p.apply_to(&mut spec.runtime_class_name),
    }
    match r.text("ImagePlatforms") {
        Patch::Keep => {}
        Patch::Clear => spec.image_platforms.clear(),
        Patch::Set(v) => {
            let list: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
            let bad: Vec<&String> = list
                .iter()
                .filter(|p| !matches!(p.as_str(), "linux/amd64" | "linux/arm64"))
                .collect();
            if !bad.is_empty() {
                r.push(Violation::invalid(
                    "ImagePlatforms",
                    format!(
                        "`{}` is not a platform; use linux/amd64 and/or linux/arm64",
                        shorten(bad[0])
                    ),
                ));
            } else if list.len() == 2 && list[0] == list[1] {
                r.push(Violation::invalid(
                    "ImagePlatforms",
                    "a platform is listed twice",
                ));
            } else {
                spec.image_platforms = list;
            }
        }
    }
    labels(r, "Labels", &mut spec.labels, true);
    labels(r, "Annotations", &mut spec.annotations, false);

    let cm: Patch<Vec<ConfigMount>> = r.json("ConfigMountDescs");
    if let Patch::Set(mounts) = cm {
        let mut ok = true;
        let mut norm = Vec::with_capacity(mounts.len());
        for (i, mut m) in mounts.into_iter().enumerate() {
            let at = format!("[{i}].name ");
            ok &= subdomain(r, "ConfigMountDescs", &at, &m.name, "resource name");
            m.kind = match m.kind.to_ascii_lowercase().as_str() {
                "configmap" => "ConfigMap".to_owned(),
                "secret" => "Secret".to_owned(),
                _ => {
                    r.push(Violation::invalid(
                        "ConfigMountDescs",
                        format!(
                            "[{i}].type `{}` must be ConfigMap or Secret",
                            shorten(&m.kind)
                        ),
                    ));
                    ok = false;
                    m.kind
                }
            };
            norm.push(m);
        }
        if ok {
            spec.config_mounts = norm;
        }
    } else {
        cm.apply_to_list(&mut spec.config_mounts);
    }
    let pvc: Patch<Vec<PvcMount>> = r.json("PvcMountDescs");
    if let Patch::Set(p) = &pvc {
        for (i, m) in p.iter().enumerate() {
            let at = format!("[{i}].pvcName ");
            subdomain(r, "PvcMountDescs", &at, &m.pvc_name, "claim name");
            if m.mount_paths.is_empty() {
                r.push(Violation::invalid(
                    "PvcMountDescs",
                    format!("[{i}].mountPaths needs at least one mount path"),
                ));
            }
        }
    }
    pvc.apply_to_list(&mut spec.pvc_mounts);
    let ed: Patch<Vec<EmptyDirMount>> = r.json("EmptyDirs");
    if let Patch::Set(e) = &ed {
        for (i, m) in e.iter().enumerate() {
            if let Some(s) = &m.sub_path_expr
                && (s.starts_with('/') || s.split('/').any(|c| c == ".."))
            {
                r.push(Violation::invalid(
                    "EmptyDirs",
                    format!(
                        "[{i}].subPathExpr `{}` must be a relative path without ..",
                        shorten(s)
                    ),
                ));
            }
        }
    }
    ed.apply_to_list(&mut spec.empty_dirs);
    let lv: Patch<Vec<LocalVolume>> = r.json("LocalVolume");
    if let Patch::Set(l) = &lv {
        for (i, m) in l.iter().enumerate() {
            if !matches!(
                m.kind.as_str(),
                "" | "DirectoryOrCreate"
                    | "Directory"
                    | "FileOrCreate"
                    | "File"
                    | "Socket"
                    | "CharDevice"
                    | "BlockDevice"
            ) {
                r.push(Violation::invalid(
                    "LocalVolume",
                    format!("[{i}].type `{}` must be one of \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice", shorten(&m.kind)),
                ));
            }
            absolute_path(r, "LocalVolume", &format!("[{i}].nodePath"), &m.node_path);
        }
    }
    lv.apply_to_list(&mut spec.local_volumes);
    match r.text("NasId") {
        Patch::Set(s)
            if s.len() > 253
                || !s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                }) =>
        {
            r.push(Violation::invalid(
                "NasId",
                format!(
                    "`{}` is not an NFS server host name or address",
                    shorten(&s)
                ),
            ))
        }
        p => p.apply_to(&mut spec.nfs.server),
    }
    let nfs: Patch<Vec<NfsMount>> = r.json("MountDescs");
    if let Patch::Set(m) = &nfs {
        for (i, x) in m.iter().enumerate() {
            absolute_path(r, "MountDescs", &format!("[{i}].nasPath"), &x.nas_path);
        }
    }
    nfs.apply_to_list(&mut spec.nfs.mounts);
    match r.text("StorageType") {
        Patch::Set(s) if s == "Performance" => spec.nfs.storage_type = Some(s),
        Patch::Set(s)
            if matches!(
                s.as_str(),
                "Capacity" | "standard" | "advance" | "Standard" | "Advance"
            ) =>
        {
            r.push(Violation::unsupported(
                "StorageType",
                format!("`{s}` is not supported; only Performance is (as in EDAS)"),
            ))
        }
        Patch::Set(s) => r.push(Violation::invalid(
            "StorageType",
            format!(
                "`{}` must be one of Capacity, Performance, standard, advance",
                shorten(&s)
            ),
        )),
        p => p.apply_to(&mut spec.nfs.storage_type),
    }
    empty_only(r, "VolumesStr");

    containers(r, "Sidecars", &mut spec.sidecars);
    containers(r, "InitContainers", &mut spec.init_containers);
    match r.json::<YamlEncoded>("SecurityContext") {
        Patch::Keep => {}
        Patch::Clear => spec.security_context = None,
        Patch::Set(y) => match decode_yaml_encoded("SecurityContext", "", &y.yaml_encoded)
            .and_then(|v| decode_value::<SecurityContext>("SecurityContext", "", v))
        {
            Ok(sc) => spec.security_context = Some(sc),
            Err(v) => r.push(v),
        },
    }
    let secret = r.text("SecretName");
    let valid = match &secret {
        Patch::Set(s) => subdomain(r, "SecretName", "", s, "Secret name"),
        _ => true,
    };
    if valid {
        secret.apply_to(&mut spec.image_pull_secret);
    }

    if let Some(b) = r.boolean("EnableLosslessRule") {
        spec.lossless.enabled = b;
    }
    if let Some(n) = r.int("LosslessRuleDelayTime", 0, 86_400, " seconds") {
        spec.lossless.delay_seconds = n as u32;
    }
    if let Some(n) = r.int("LosslessRuleWarmupTime", 0, 86_400, " seconds") {
        spec.lossless.warmup_seconds = n as u32;
    }
    if let Some(n) = r.int("LosslessRuleFuncType", 0, 20, "") {
        spec.lossless.func_type = n as u32;
    }
    if let Some(b) = r.boolean("LosslessRuleAligned") {
        spec.lossless.aligned = b;
    }
    if let Some(b) = r.boolean("LosslessRuleRelated") {
        spec.lossless.related = b;
    }
    if let Some(b) = r.boolean("EnableEmptyPushReject") {
        spec.empty_push_reject = b;
    }

    java(r, spec);
    log_collection(r, spec);
    services(r, spec);
    false_only(r, "EnableAhas");
    for name in [
        "CustomAgentVersion",
        "EdasContainerVersion",
        "BuildPackId",
        "WebContainer",
    ] {
        empty_only(r, name);
    }
}

/// A path (field `at` of parameter `param`) on a host or server: absolute, without `..`; when
/// it is not, the violation.
fn absolute_path(r: &mut Reader<'_>, param: &str, at: &str, path: &str) {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        r.push(Violation::invalid(
            param,
            format!("{at} `{}` must be absolute, without ..", shorten(path)),
        ));
    }
}

/// Whether `name` (at `at` in parameter `param`, e.g. `[0].name `) is a Kubernetes object name
/// (a DNS subdomain); when it is not, the violation that it is not a valid `what`.
fn subdomain(r: &mut Reader<'_>, param: &str, at: &str, name: &str, what: &str) -> bool {
    let valid = k8s::is_dns_subdomain(name);
    if !valid {
        r.push(Violation::invalid(
            param,
            format!("{at}`{}` is not a valid {what}", shorten(name)),
        ));
    }
    valid
}

/// JSON parameter `name`, its violations under `check` recorded.
fn json_checked<T: DeserializeOwned + Serialize>(
    r: &mut Reader<'_>,
    name: &str,
    check: impl Fn(&str, &T) -> Vec<Violation>,
) -> Patch<T> {
    let patch: Patch<T> = r.json(name);
    if let Patch::Set(value) = &patch {
        checked(r, check(name, value));
    }
    patch
}

fn checked(r: &mut Reader<'_>, violations: Vec<Violation>) {
    for v in violations {
        r.push(v);
    }
}

/// Owned by edasd's rendering; a user value would break selection of the application's pods.
pub const RESERVED_LABELS: &[&str] = &[
    "edas.oam.acname",
    "edas.oam.revision",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
];

fn labels(r: &mut Reader<'_>, name: &str, field: &mut BTreeMap<String, String>, is_label: bool) {
    let p: Patch<BTreeMap<String, String>> = r.json(name);
    let Patch::Set(map) = p else {
        p.apply_to_map(field);
        return;
    };
    let mut ok = true;
    let mut total = 0usize;
    for (k, v) in &map {
        total += k.len() + v.len();
        if !k8s::is_qualified_name(k) {
            r.push(Violation::invalid(
                name,
                format!("key `{}` is not a valid Kubernetes key", shorten(k)),
            ));
            ok = false;
        } else if RESERVED_LABELS.contains(&k.as_str()) || k.starts_with("edas.oam.") {
            r.push(Violation::invalid(
                name,
                format!("key `{k}` is set by edasd itself"),
            ));
            ok = false;
        }
        if is_label && !k8s::is_label_value(v) {
            r.push(Violation::invalid(name, format!("value `{}` of `{}` is not a valid label value (at most 63 of letters, digits, - _ .)", shorten(v), shorten(k))));
            ok = false;
        }
    }
    if !is_label && total > 256 * 1024 {
        r.push(Violation::invalid(
            name,
            "annotations must total at most 256 KiB",
        ));
        ok = false;
    }
    if ok {
        *field = map;
    }
}

impl Patch<BTreeMap<String, String>> {
    fn apply_to_map(self, field: &mut BTreeMap<String, String>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => field.clear(),
            Patch::Set(m) => *field = m,
        }
    }
}

fn containers(r: &mut Reader<'_>, name: &str, field: &mut Vec<Container>) {
    match r.json::<Vec<YamlEncoded>>(name) {
        Patch::Keep => {}
        Patch::Clear => field.clear(),
        Patch::Set(list) => {
            let mut out = Vec::with_capacity(list.len());
            let mut ok = true;
            for (i, y) in list.iter().enumerate() {
                let at = format!("[{i}]");
                match decode_yaml_encoded(name, &at, &y.yaml_encoded)
                    .and_then(|v| decode_value::<Container>(name, &at, v))
                {
                    Ok(c) => {
                        let problems = k8s::check_container(name, &at, &c);
                        if problems.is_empty() {
                            out.push(c);
                        } else {
                            ok = false;
                            checked(r, problems);
                        }
                    }
                    Err(v) => {
                        ok = false;
                        r.push(v);
                    }
                }
            }
            for (i, c) in out.iter().enumerate() {
                if out[..i].iter().any(|o| o.name == c.name) {
                    ok = false;
                    r.push(Violation::invalid(
                        name,
                        format!("container name `{}` is used twice", c.name),
                    ));
                }
            }
            if ok {
                *field = out;
            }
        }
    }
}

const URI_ENCODINGS: [&str; 4] = ["ISO-8859-1", "GBK", "GB2312", "UTF-8"];

fn java(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let js: Patch<BTreeMap<String, JavaStartupOption>> = r.json("JavaStartUpConfig");
    if let Patch::Set(m) = &js {
        for (k, o) in m {
            if o.startup.contains('\0') {
                r.push(Violation::invalid(
                    "JavaStartUpConfig",
                    format!("{k}.startup must not contain NUL"),
                ));
            }
        }
    }
    js.apply_to_map_any(&mut spec.java_startup);
    match r.json::<WebContainerConfig>("WebContainerConfig") {
        Patch::Keep => {}
        Patch::Clear => spec.web_container = None,
        Patch::Set(w) => {
            let before = r.violations.len();
            const P: &str = "WebContainerConfig";
            if let Some(port) = w.http_port
                && !(1024..=65535).contains(&port)
            {
                r.push(Violation::invalid(
                    P,
                    format!("httpPort {port} must be between 1024 and 65535"),
                ));
            }
            match w.context_input_type.as_deref() {
                None | Some("war") | Some("root") => {}
                Some("custom") => {
                    if w.context_path
                        .as_deref()
                        .is_none_or(|p| p.trim().is_empty())
                    {
                        r.push(Violation::invalid(
                            P,
                            "contextPath is required when contextInputType is custom",
                        ));
                    } else if w.context_path.as_deref().is_some_and(|p| {
                        p.chars().any(|c| c.is_whitespace() || c == '?' || c == '#')
                    }) {
                        r.push(Violation::invalid(
                            P,
                            "contextPath must be a URL path without spaces, ? or #",
                        ));
                    }
                }
                Some(other) => r.push(Violation::invalid(
                    P,
                    format!(
                        "contextInputType `{}` must be war, root or custom",
                        shorten(other)
                    ),
                )),
            }
            if w.max_threads == Some(0) {
                r.push(Violation::invalid(P, "maxThreads must be at least 1"));
            }
            if let Some(e) = &w.uri_encoding
                && !URI_ENCODINGS.contains(&e.as_str())
            {
                r.push(Violation::invalid(
                    P,
                    format!(
                        "uriEncoding `{}` must be one of ISO-8859-1, GBK, GB2312, UTF-8",
                        shorten(e)
                    ),
                ));
            }
            if w.use_advanced_server_xml == Some(true)
                || w.server_xml.as_deref().is_some_and(|s| !s.is_empty())
            {
                r.push(Violation::unsupported(P, "useAdvancedServerXml/serverXml configure a standalone Tomcat, which this server does not run"));
            }
            if w.use_body_encoding == Some(true) {
                r.push(Violation::unsupported(
                    P,
                    "useBodyEncoding configures a standalone Tomcat and has no embedded equivalent",
                ));
            }
            if r.violations.len() == before {
                spec.web_container = Some(w);
            }
        }
    }
    match r.text("UriEncoding") {
        Patch::Set(e) if !URI_ENCODINGS.contains(&e.as_str()) => r.push(Violation::invalid(
            "UriEncoding",
            format!(
                "`{}` must be one of ISO-8859-1, GBK, GB2312, UTF-8",
                shorten(&e)
            ),
        )),
        p => p.apply_to(&mut spec.uri_encoding),
    }
    if r.boolean("UseBodyEncoding") == Some(true) {
        r.push(Violation::unsupported(
            "UseBodyEncoding",
            "useBodyEncodingForURI configures a standalone Tomcat and has no embedded equivalent",
        ));
    }
}

impl<V> Patch<BTreeMap<String, V>> {
    fn apply_to_map_any(self, field: &mut BTreeMap<String, V>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => field.clear(),
            Patch::Set(m) => *field = m,
        }
    }
}

fn log_collection(r: &mut Reader<'_>, spec: &mut AppSpec) {
    const P: &str = "SlsConfigs";
    let p: Patch<Vec<LogCollection>> = r.json(P);
    let Patch::Set(list) = p else {
        p.apply_to_list(&mut spec.log_collection);
        return;
    };
    let before = r.violations.len();
    let mut out = Vec::with_capacity(list.len());
    for (i, mut c) in list.into_iter().enumerate() {
        let name = &c.logstore;
        if !name.is_empty() {
            let ok = (3..=63).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                })
                && name.as_bytes()[0].is_ascii_alphanumeric()
                && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
            if !ok {
                r.push(Violation::invalid(
                    P,
                    format!("[{i}].logstore `{}`: 3–63 lowercase letters, digits, - or _, starting and ending with a letter or digit", shorten(name)),
                ));
            }
        }
        match c.kind.as_str() {
            "stdout" => {
                if c.log_dir.is_empty() {
                    c.log_dir = "stdout.log".to_owned();
                } else if c.log_dir != "stdout.log" {
                    r.push(Violation::invalid(
                        P,
                        format!("[{i}].logDir of a stdout collection must be stdout.log"),
                    ));
                }
            }
            "file" => {
                let d = &c.log_dir;
                if !d.starts_with('/')
                    || d.ends_with('/')
                    || d.len() < 3
                    || d.split('/').any(|s| s == "..")
                {
                    r.push(Violation::invalid(P, format!("[{i}].logDir `{}` must be an absolute file path or pattern such as /var/log/*.log", shorten(d))));
                }
            }
            other => r.push(Violation::invalid(
                P,
                format!("[{i}].type `{}` must be file or stdout", shorten(other)),
            )),
        }
        if !c.logstore.is_empty() && out.iter().any(|o: &LogCollection| o.logstore == c.logstore) {
            r.push(Violation::invalid(
                P,
                format!("logstore `{}` is used twice", c.logstore),
            ));
        }
        out.push(c);
    }
    if r.violations.len() == before {
        spec.log_collection = out;
    }
}

fn services(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let p: Patch<Vec<ServiceConfig>> = r.json("ServiceConfigs");
    let Patch::Set(list) = p else {
        p.apply_to_list(&mut spec.services);
        return;
    };
    let before = r.violations.len();
    for (i, s) in list.iter().enumerate() {
        check_service(r, "ServiceConfigs", &format!("[{i}]"), s);
        if list[..i].iter().any(|o| o.name == s.name) {
            r.push(Violation::invalid(
                "ServiceConfigs",
                format!("service name `{}` is used twice", s.name),
            ));
        }
    }
    if r.violations.len() == before {
        spec.services = list;
    }
}

/// CreateK8sService, UpdateK8sService, DeleteK8sService: one Service of `spec.services` added,
/// changed or removed. `Name` must be new for a create and existing otherwise.
fn service_operation(r: &mut Reader<'_>, spec: &mut AppSpec, op: Operation) {
    let name = r.required("Name").map(str::to_owned);
    let existing = name
        .as_deref()
        .and_then(|n| spec.services.iter().position(|s| s.name == n));
    if let Some(n) = &name {
        if !k8s::is_dns_label(n) {
            r.push(Violation::invalid(
                "Name",
                format!(
                    "`{}` must be a DNS label (lowercase letters, digits, -; at most 63)",
                    shorten(n)
                ),
            ));
        } else if op == Operation::CreateK8sService && existing.is_some() {
            r.push(Violation::invalid(
                "Name",
                format!("the application already has a service named `{n}`; use UpdateK8sService"),
            ));
        } else if op != Operation::CreateK8sService && existing.is_none() {
            let known: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
            r.push(Violation::invalid(
                "Name",
                format!(
                    "the application has no service named `{n}` (it has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    if op == Operation::DeleteK8sService {
        if let Some(i) = existing {
            spec.services.remove(i);
        }
        return;
    }
    let service_type = r.required("Type").map(str::to_owned);
    match service_type.as_deref() {
        None | Some("ClusterIP" | "NodePort" | "LoadBalancer") => {}
        Some(other) => r.push(Violation::invalid(
            "Type",
            format!(
                "`{}` must be ClusterIP, NodePort or LoadBalancer",
                shorten(other)
            ),
        )),
    }
    match r.raw("ExternalTrafficPolicy") {
        None | Some("" | "Cluster") => {}
        Some("Local") => r.push(Violation::unsupported(
            "ExternalTrafficPolicy",
            "Local applies only to externally reachable (NodePort, LoadBalancer) Services; a ClusterIP Service routes within the cluster (Cluster)",
        )),
        Some(other) => r.push(Violation::invalid(
            "ExternalTrafficPolicy",
            format!("`{}` must be Cluster or Local", shorten(other)),
        )),
    }
    let ports: Option<Vec<ServicePort>> = match r.json::<Vec<ServicePort>>("ServicePorts") {
        Patch::Set(ports) => Some(ports),
        Patch::Clear => {
            r.push(Violation::invalid(
                "ServicePorts",
                "a Service needs at least one port",
            ));
            None
        }
        // Absent: required for a create (reported with the other required parameters); an
        // update keeps the ports.
        Patch::Keep => None,
    };
    if let Some(ports) = &ports {
        for (j, sp) in ports.iter().enumerate() {
            for (what, v) in [("port", sp.port), ("targetPort", sp.target_port)] {
                if !(1..=65535).contains(&v) {
                    r.push(Violation::invalid(
                        "ServicePorts",
                        format!("[{j}].{what} {v} must be between 1 and 65535"),
                    ));
                }
            }
            if let Some(proto) = &sp.protocol
                && !matches!(proto.as_str(), "TCP" | "UDP")
            {
                r.push(Violation::invalid(
                    "ServicePorts",
                    format!("[{j}].protocol `{}` must be TCP or UDP", shorten(proto)),
                ));
            }
            check_node_port(
                r,
                "ServicePorts",
                &format!("[{j}]"),
                service_type.as_deref(),
                sp,
            );
            let proto = |p: &ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
            if ports[..j]
                .iter()
                .any(|o| o.port == sp.port && proto(o) == proto(sp))
            {
                r.push(Violation::invalid(
                    "ServicePorts",
                    format!("[{j}]: port {} is mapped twice", sp.port),
                ));
            }
        }
    }
    let (Some(name), Some(service_type)) = (name, service_type) else {
        return;
    };
    let port_mappings = match (ports, existing) {
        (Some(ports), _) => ports
            .into_iter()
            .map(|service_port| PortMapping { service_port })
            .collect(),
        (None, Some(i)) => spec.services[i].port_mappings.clone(),
        (None, None) => return,
    };
    let service = ServiceConfig {
        name,
        service_type,
        port_mappings,
    };
    match existing {
        Some(i) => spec.services[i] = service,
        None => spec.services.push(service),
    }
}

/// The node ports Kubernetes allocates from by default.
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// A port's `nodePort`: only on a `NodePort` or `LoadBalancer` Service (a ClusterIP Service
/// has none, so it would be silently dropped), and in Kubernetes' default node-port range.
fn check_node_port(
    r: &mut Reader<'_>,
    param: &str,
    at: &str,
    service_type: Option<&str>,
    sp: &ServicePort,
) {
    let Some(node_port) = sp.node_port else {
        return;
    };
    // EDAS answers `NodePort: 0` for "none"; a client echoing that back asks for nothing.
    if node_port == 0 {
        return;
    }
    if !matches!(service_type, Some("NodePort" | "LoadBalancer")) {
        r.push(Violation::invalid(
            param,
            format!("{at}.nodePort applies only to a NodePort or LoadBalancer Service"),
        ));
    } else if !NODE_PORTS.contains(&node_port) {
        r.push(Violation::invalid(
            param,
            format!(
                "{at}.nodePort {node_port} must be between {} and {}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ),
        ));
    }
}

/// Checks one Service definition (shared with CreateK8sService and UpdateK8sService).
pub fn service_violations(param: &str, s: &ServiceConfig) -> Vec<Violation> {
    let params = Params::default();
    let mut r = Reader::new(&params);
    check_service(&mut r, param, "", s);
    r.violations
}

fn check_service(r: &mut Reader<'_>, param: &str, at: &str, s: &ServiceConfig) {
    let sep = if at.is_empty() { "" } else { "." };
    if !k8s::is_dns_label(&s.name) {
        r.push(Violation::invalid(
            param,
            format!(
                "{at}{sep}name `{}` must be a DNS label (lowercase letters, digits, -)",
                shorten(&s.name)
            ),
        ));
    }
    match s.service_type.as_str() {
        "ClusterIP" | "NodePort" | "LoadBalancer" => {}
        other => r.push(Violation::invalid(
            param,
            format!(
                "{at}{sep}serviceType `{}` must be ClusterIP, NodePort or LoadBalancer",
                shorten(other)
            ),
        )),
    }
    if s.port_mappings.is_empty() {
        r.push(Violation::invalid(
            param,
            format!("{at}{sep}portMappings needs at least one mapping"),
        ));
    }
    for (j, m) in s.port_mappings.iter().enumerate() {
        let sp = &m.service_port;
        for (what, v) in [("port", sp.port), ("targetPort", sp.target_port)] {
            if !(1..=65535).contains(&v) {
                r.push(Violation::invalid(param, format!("{at}{sep}portMappings[{j}].servicePort.{what} {v} must be between 1 and 65535")));
            }
        }
        check_node_port(
            r,
            param,
            &format!("{at}{sep}portMappings[{j}].servicePort"),
            Some(&s.service_type),
            sp,
        );
        if let Some(proto) = &sp.protocol
            && !matches!(proto.as_str(), "TCP" | "UDP")
        {
            r.push(Violation::invalid(
                param,
                format!(
                    "{at}{sep}portMappings[{j}].servicePort.protocol `{}` must be TCP or UDP",
                    shorten(proto)
                ),
            ));
        }
        if s.port_mappings[..j]
            .iter()
            .any(|o| o.service_port.port == sp.port && o.service_port.protocol == sp.protocol)
        {
            r.push(Violation::invalid(
                param,
                format!("{at}{sep}port {} is mapped twice", sp.port),
            ));
        }
    }
}

/// Resource parameters; the names differ per operation, the rules do not.
fn resources(r: &mut Reader<'_>, spec: &mut AppSpec, op: Operation) {
    let (cpu_l, mcpu_l, cpu_r, mcpu_r, mem_l, mem_r, eph_l, eph_r) = match op {
        Operation::InsertK8sApplication => (
            "LimitCpu",
            "LimitmCpu",
            "RequestsCpu",
            "RequestsmCpu",
            "LimitMem",
            "RequestsMem",
            "LimitEphemeralStorage",
            "RequestsEphemeralStorage",
        ),
        Operation::UpdateK8sApplicationConfig => (
            "CpuLimit",
            "McpuLimit",
            "CpuRequest",
            "McpuRequest",
            "MemoryLimit",
            "MemoryRequest",
            "EphemeralStorageLimit",
            "EphemeralStorageRequest",
        ),
        _ => (
            "CpuLimit",
            "McpuLimit",
            "CpuRequest",
            "McpuRequest",
            "MemoryLimit",
            "MemoryRequest",
            "LimitEphemeralStorage",
            "RequestsEphemeralStorage",
        ),
    };
    let res = &mut spec.resources;
    if let Some(v) = cpu(r, cpu_l, mcpu_l) {
        res.cpu_limit_millis = v;
    }
    if let Some(v) = cpu(r, cpu_r, mcpu_r) {
        res.cpu_request_millis = v;
    }
    if let Some(v) = r.int(mem_l, 0, 4_194_304, " MB") {
        res.memory_limit_mib = nonzero(v);
    }
    if let Some(v) = r.int(mem_r, 0, 4_194_304, " MB") {
        res.memory_request_mib = nonzero(v);
    }
    if let Some(v) = r.int(eph_l, 0, 65_536, " GB") {
        res.ephemeral_limit_gib = nonzero(v);
    }
    if let Some(v) = r.int(eph_r, 0, 65_536, " GB") {
        res.ephemeral_request_gib = nonzero(v);
    }
}

/// 0 means "no bound", never a bound of zero.
fn nonzero(v: i64) -> Option<u32> {
    (v > 0).then_some(v as u32)
}

/// A CPU amount from cores and/or millicores; millicores win when both are given.
/// `None` = not given; `Some(None)` = unbounded.
fn cpu(r: &mut Reader<'_>, cores: &str, millis: &str) -> Option<Option<u32>> {
    let c = r.int(cores, 0, 1000, " cores");
    let m = r.int(millis, 0, 1_000_000, " millicores");
    match (c, m) {
        (_, Some(m)) => Some(nonzero(m)),
        (Some(c), None) => Some(nonzero(c * 1000)),
        (None, None) => None,
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStrategy {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_update: Option<WireBatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gray_update: Option<WireGray>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_wait_time: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct WireGray {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gray: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct WireTraffic {
    http: WireHttp,
}

#[derive(Serialize, Deserialize)]
struct WireHttp {
    rules: Vec<WireRule>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRule {
    condition_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conditions: Option<Vec<WireCondition>>,
}

#[derive(Serialize, Deserialize)]
struct WireCondition {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    operator: String,
    value: String,
}

fn release_settings(r: &mut Reader<'_>, release: &mut ReleaseSettings) {
    if let Patch::Set(d) = bounded_text(r, "ChangeOrderDesc", 256) {
        release.description = Some(d);
    }
    if let Some(t) = r.int("BatchTimeout", 1, 86_400, " seconds") {
        release.batch_timeout_seconds = Some(t as u32);
    }
    empty_only(r, "CanaryRuleId");
    if let Patch::Set(w) = r.json::<WireStrategy>("UpdateStrategy") {
        release.strategy = strategy(r, w);
    }
    if let Patch::Set(t) = r.json::<WireTraffic>("TrafficControlStrategy") {
        release.traffic_control = traffic(r, t);
    }
}

fn strategy(r: &mut Reader<'_>, w: WireStrategy) -> Option<UpdateStrategy> {
    const P: &str = "UpdateStrategy";
    let before = r.violations.len();
    let kind = match w.kind.as_str() {
        "BatchUpdate" => StrategyKind::BatchUpdate,
        "GrayBatchUpdate" => StrategyKind::GrayBatchUpdate,
        other => {
            r.push(Violation::invalid(
                P,
                format!(
                    "type `{}` must be BatchUpdate or GrayBatchUpdate",
                    shorten(other)
                ),
            ));
            StrategyKind::BatchUpdate
        }
    };
    let Some(b) = w.batch_update else {
        r.push(Violation::invalid(P, "batchUpdate is required"));
        return None;
    };
    let batches = strategy_count(r, b.batch, "batchUpdate.batch", 1, "must be at least 1");
    let release_type = match b.release_type.as_deref() {
        None | Some("auto") => ReleaseType::Auto,
        Some("manual") => ReleaseType::Manual,
        Some(other) => {
            r.push(Violation::invalid(
                P,
                format!(
                    "batchUpdate.releaseType `{}` must be auto or manual",
                    shorten(other)
                ),
            ));
            ReleaseType::Auto
        }
    };
    let batch_wait_minutes = match b.batch_wait_time {
        None => 0,
        Some(n) if (0..=1440).contains(&n) => n as u32,
        Some(n) => {
            r.push(Violation::invalid(
                P,
                format!("batchUpdate.batchWaitTime {n} must be between 0 and 1440 minutes"),
            ));
            0
        }
    };
    if release_type == ReleaseType::Manual && b.batch_wait_time.is_some_and(|n| n > 0) {
        r.push(Violation::invalid(P, "batchUpdate.batchWaitTime applies to releaseType auto; a manual release waits for ContinuePipeline"));
    }
    let gray = match (kind, w.gray_update) {
        (StrategyKind::GrayBatchUpdate, None) => {
            r.push(Violation::invalid(
                P,
                "grayUpdate is required for GrayBatchUpdate",
            ));
            0
        }
        (StrategyKind::GrayBatchUpdate, Some(g)) => {
            strategy_count(r, g.gray, "grayUpdate.gray", 0, "must not be negative")
        }
        (StrategyKind::BatchUpdate, Some(_)) => {
            r.push(Violation::invalid(
                P,
                "grayUpdate applies only to type GrayBatchUpdate",
            ));
            0
        }
        (StrategyKind::BatchUpdate, None) => 0,
    };
    (r.violations.len() == before).then_some(UpdateStrategy {
        kind,
        gray,
        batches,
        release_type,
        batch_wait_minutes,
    })
}

/// A required count of `UpdateStrategy` (`field`, at least `min`, at most [`MAX_REPLICAS`]);
/// when it is missing or out of range, the violation (`rule` says why) and `min`.
fn strategy_count(
    r: &mut Reader<'_>,
    value: Option<i64>,
    field: &str,
    min: i64,
    rule: &str,
) -> u32 {
    const P: &str = "UpdateStrategy";
    match value {
        Some(n) if (min..=MAX_REPLICAS).contains(&n) => n as u32,
        Some(n) => {
            r.push(Violation::invalid(P, format!("{field} {n} {rule}")));
            min as u32
        }
        None => {
            r.push(Violation::invalid(P, format!("{field} is required")));
            min as u32
        }
    }
}

fn traffic(r: &mut Reader<'_>, t: WireTraffic) -> Option<TrafficControl> {
    const P: &str = "TrafficControlStrategy";
    let before = r.violations.len();
    let mut rules = Vec::new();
    if t.http.rules.is_empty() {
        r.push(Violation::invalid(P, "http.rules needs at least one rule"));
    }
    for (i, rule) in t.http.rules.into_iter().enumerate() {
        let at = format!("http.rules[{i}]");
        match rule.condition_type.as_str() {
            "percent" => {
                if rule.conditions.is_some() {
                    r.push(Violation::invalid(
                        P,
                        format!("{at}: a percent rule takes no conditions"),
                    ));
                }
                match rule.percent {
                    Some(p) if (0..=100).contains(&p) => {
                        rules.push(TrafficRule::Percent { percent: p as u32 })
                    }
                    Some(p) => r.push(Violation::invalid(
                        P,
                        format!("{at}.percent {p} must be between 0 and 100"),
                    )),
                    None => r.push(Violation::invalid(P, format!("{at}.percent is required"))),
                }
            }
            "content" => {
                if rule.percent.is_some() {
                    r.push(Violation::invalid(
                        P,
                        format!("{at}: a content rule takes no percent"),
                    ));
                }
                let conds = rule.conditions.unwrap_or_default();
                if conds.is_empty() {
                    r.push(Violation::invalid(
                        P,
                        format!("{at}.conditions needs at least one condition"),
                    ));
                }
                let mut out = Vec::new();
                for (j, c) in conds.into_iter().enumerate() {
                    let cat = format!("{at}.conditions[{j}]");
                    let source = match c.kind.as_str() {
                        "header" => Some(ConditionSource::Header),
                        "cookie" => Some(ConditionSource::Cookie),
                        "param" => Some(ConditionSource::Param),
                        other => {
                            r.push(Violation::invalid(
                                P,
                                format!(
                                    "{cat}.type `{}` must be header, cookie or param",
                                    shorten(other)
                                ),
                            ));
                            None
                        }
                    };
                    let operator = match c.operator.as_str() {
                        "==" => Some(ConditionOperator::Equal),
                        "regex" => Some(ConditionOperator::Regex),
                        other => {
                            r.push(Violation::invalid(
                                P,
                                format!("{cat}.operator `{}` must be == or regex", shorten(other)),
                            ));
                            None
                        }
                    };
                    if c.name.trim().is_empty()
                        || c.name
                            .chars()
                            .any(|ch| ch.is_whitespace() || ch.is_control())
                    {
                        r.push(Violation::invalid(
                            P,
                            format!("{cat}.name must be a non-empty token"),
                        ));
                    }
                    if c.value.is_empty() {
                        r.push(Violation::invalid(
                            P,
                            format!("{cat}.value must not be empty"),
                        ));
                    }
                    if let (Some(source), Some(operator)) = (source, operator) {
                        out.push(TrafficCondition {
                            source,
                            name: c.name,
                            operator,
                            value: c.value,
                        });
                    }
                }
                rules.push(TrafficRule::Content { conditions: out });
            }
            other => r.push(Violation::invalid(
                P,
                format!(
                    "{at}.conditionType `{}` must be percent or content",
                    shorten(other)
                ),
            )),
        }
    }
    if rules
        .iter()
        .filter(|r| matches!(r, TrafficRule::Percent { .. }))
        .count()
        > 1
    {
        r.push(Violation::invalid(
            P,
            "at most one percent rule may be given",
        ));
    }
    (r.violations.len() == before).then_some(TrafficControl { rules })
}
