//! Generates `docs/PARAMETERS.md` from the [`catalog`](crate::catalog).

use std::fmt::Write as _;

use crate::catalog::{COMMON, Operation, Scope, doc, runtime_status};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The whole of `docs/PARAMETERS.md`.
pub fn parameters_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Parameters of the application operations\n\n");
    out.push_str(
        "Generated from `crates/edas-spec/src/catalog.rs` (a test keeps this file identical; \
         regenerate with `EDAS_UPDATE_DOCS=1 cargo test -p edas-spec docs`).\n\n\
         Every optional parameter is a tri-state: **absent** keeps the application's current \
         value, its **clear form** resets it, a **value** replaces it. For every JSON parameter \
         `\"\"`, JSON `null` and the empty JSON value (`{}` or `[]`) all clear it. No \
         parameter may carry a NUL byte, raw or as `\\u0000` inside JSON (an environment entry \
         or argument cannot hold one): it is refused naming the parameter and the JSON path. \
         JSON values are decoded strictly: a field the documented shape does not have is refused, so a misspelt setting \
         is never silently dropped. Booleans accept `true`/`false` in any case (the Python SDKs \
         send `True`/`False`). Integers are decimal. A parameter the operation does not have is \
         refused (`InvalidParameter.Unknown`), except `RegionId`, which the classic SDK adds to \
         every request. All violations of a request are reported at once, and an invalid \
         request changes nothing.\n\n\
         Scope: **application** parameters become part of the next revision; **release** \
         parameters are kept with that release's change order only; **request** parameters \
         identify what the request acts on.\n\n\
         The `local` and Kubernetes columns say how each runtime carries the parameter: on \
         `local` instances are sandboxed processes of this machine (README, \"Local runtime \
         isolation\"); what a runtime cannot carry is refused when the change is submitted, \
         naming the parameter (`RuntimeRefused`), and on `local` what this host cannot enforce \
         is refused unless `[local] unenforceable = \"record\"` (then the change order's \
         description and the log say what is not applied).\n\n\
         Error codes: `MissingParameter`, `InvalidParameter`, `InvalidParameter.NotSupported` \
         (a well-formed value this self-hosted server deliberately does not support), \
         `InvalidParameter.Unknown`; all with HTTP 400.\n",
    );
    for op in Operation::ALL {
        let params = op.parameters();
        let _ = write!(
            out,
            "\n## {} ({} parameters)\n\n",
            op.action(),
            params.len()
        );
        out.push_str("| Parameter | Type | Req | Scope | Meaning and unit | Clear form | Validation | Status | `local` | Kubernetes |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for (name, required) in params {
            let Some(d) = doc(name) else { continue };
            let scope = match d.scope {
                Scope::Application => "application",
                Scope::Release => "release",
                Scope::Request => "request",
            };
            let (local, kube) = runtime_status(d);
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                d.name,
                cell(d.ty),
                if *required { "yes" } else { "no" },
                scope,
                cell(d.meaning),
                cell(d.clear),
                cell(d.validation),
                cell(d.status),
                cell(local),
                cell(kube),
            );
        }
    }
    out.push_str("\n## Common parameters\n\n| Parameter | Meaning |\n|---|---|\n");
    for name in COMMON {
        if let Some(d) = doc(name) {
            let _ = writeln!(out, "| `{}` | {} |", d.name, cell(d.meaning));
        }
    }
    out.push_str(OPERATOR_VIEWS);
    out.push_str(CATALOG_VIEWS);
    out.push_str(CATALOG_SCALING);
    out.push_str(CATALOG_TRAFFIC_IN);
    out
}

/// The parameters of the operations edas-api decodes itself (they change no spec), kept here
/// so that every parameter edasd takes is in one document.
const OPERATOR_VIEWS: &str = "
## Instances, history, rollback and logs (decoded by edas-api)

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| DeployK8sApplication | `RollbackToRevision` | integer | no | edasd extension: release revision N's whole spec again, as a new revision (EDAS: ListHistoryDeployVersion, then DeployK8sApplication with that version). Only release and request parameters (`UpdateStrategy`, `BatchTimeout`, `ChangeOrderDesc`, `TrafficControlStrategy`, `AppId`) may come with it. | 1 or more, a revision the application has (ListHistoryDeployVersion `Id`); an application parameter beside it is refused, naming it |
| DescribeAppInstanceList | `AppId` | string | yes | The application. | an application the caller may read |
| DescribeAppInstanceList | `WithNodeInfo` | boolean | no | Fill `NodeLabels` with the node's labels. | `true` only on `local` (edasd does not track the nodes of a Kubernetes cluster's pods): refused as `InvalidParameter.NotSupported` elsewhere |
| ListHistoryDeployVersion | `AppId` | string | yes | The application. | an application the caller may read |
| `GET /edasd/v1/logs` | `AppId` | string | yes | The application (signed like every request; `edas:ReadApplication`). | an application the caller may read |
| `GET /edasd/v1/logs` | `InstanceName` | string | yes | The instance (DescribeAppInstanceList `InstanceName`); on `local` also a stopped instance whose logs are kept. | an instance of the application |
| `GET /edasd/v1/logs` | `Follow` | boolean | no | Keep sending what the instance writes until its run ends. | `true` or `false` |
| `GET /edasd/v1/logs` | `Previous` | boolean | no | The run before the last restart. | the instance must have restarted (refused naming `Previous`) |
| `GET /edasd/v1/logs` | `TailLines` | integer | no | Only the last N lines (on `local`: of stdout and of stderr each). | 0 or more |
| `GET /edasd/v1/logs` | `SinceSeconds` | integer | no | Only what was written in the last N seconds (on `local` lines carry no time: rotated files last written before the cutoff are left out, the current file always counts). | 0 or more |

GetK8sServices answers, besides EDAS's `Services`, the edasd extension `Traffic`: where the
Services send requests now, the routing the release engine applies, derived from stored state
only (the application's current revision and the change order that decides it). `Mode` is
`AllReady` (no split: every ready instance of every revision; no other key), `GraySplit` (a
release's gray batch with a `TrafficControlStrategy`, from its start until the next batch
starts: requests matching `Rules` go to the instances of `GrayRevision`, the others to those of
`StableRevision`) or `Aborted` (an aborted release: every request to `StableRevision`, none to
`GrayRevision`, whose instances stay until a rollback or a newer release). `Rules` are the
strategy's, in order: `{\"ConditionType\":\"percent\",\"Percent\":20}` or
`{\"ConditionType\":\"content\",\"Conditions\":[{\"Type\":\"header\"|\"cookie\"|\"param\",\"Name\",\"Operator\":\"==\"|\"regex\",\"Value\"}]}`.
Revisions are strings, as ListHistoryDeployVersion's `Id`. EDAS's SDKs ignore the key.
";

/// The parameters of the namespace, base-information, tag, deployment and precheck
/// operations (decoded by edas-api and edas-app; they change no spec).
const CATALOG_VIEWS: &str = "
## Namespaces, base information, tags, deployment and precheck (decoded by edas-api)

EDAS namespaces: the default one (the region id) and those of the configuration file
(`namespaces`) are listed with `Id` 0 and cannot be changed or deleted through the API; the
others are stored. `RegionId` in the answers is the namespace id (`RegionTag`), `BelongRegion`
the region, `UserId` the account id, `RegistryType` `default`, `MseInstanceId` empty.

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| InsertOrUpdateRegion | `RegionTag` | string | yes | The namespace id, `<region>:<identifier>`. | this server's region; identifier 1-64 letters, digits, `-`, `_`; not the default or a configured namespace; on update it must be the stored one (it never changes) |
| InsertOrUpdateRegion | `RegionName` | string | yes | The display name. | 1-63 characters |
| InsertOrUpdateRegion | `Id` | integer | no | Absent or 0 creates; otherwise the stored namespace to change. | an existing `Id` (`EntityNotExist` otherwise); creating an existing `RegionTag` is `EntityAlreadyExists` |
| InsertOrUpdateRegion | `Description` | string | no | Kept on update when absent. | at most 128 characters |
| InsertOrUpdateRegion | `DebugEnable` | boolean | no | Recorded and answered (and a ListUserDefineRegion filter); edasd has no remote debugging to switch. | `true`/`false` |
| InsertOrUpdateRegion | `RegistryType` | string | no | The registry. | `default` only; `exclusive_mse` is `InvalidParameter.NotSupported` |
| InsertOrUpdateRegion | `MseInstanceId` | string | no | An MSE registry. | must be empty (`InvalidParameter.NotSupported`) |
| ListUserDefineRegion | `DebugEnable` | boolean | no | Only the namespaces whose `DebugEnable` is this. | `true`/`false`; namespaces the caller may not read (`edas:ReadNamespace`) are left out |
| DeleteUserDefineRegion | `Id` / `RegionTag` | integer / string | one of them | The stored namespace to delete. | both given must name the same one; refused (`OperationDenied.ResourceInUse`, naming them) while applications are in it; the default and configured ones are refused |
| UpdateK8sApplicationBaseInfo | `AppId` | string | yes | The application. | a live application (`edas:ManageApplication`) |
| UpdateK8sApplicationBaseInfo | `Description`, `Owner`, `Email`, `PhoneNumber` | string | no | Kept beside the revisions (no change order); absent keeps the value, empty clears it. `Description` supersedes `ApplicationDescription` in GetApplication. | description ≤ 256, owner ≤ 128 characters; an email address; a phone number (digits, `+`, `-`, `(`, `)`, spaces); all violations at once |
| UpdateApplicationBaseInfo | `AppId`, `Desc`, `Owner` | string | `AppId` | As UpdateK8sApplicationBaseInfo's `Description` and `Owner`. | `Desc` ≤ 256, `Owner` ≤ 127 characters |
| UpdateApplicationBaseInfo | `AppName` | string | no | The application's name. | must be its current name: renaming is `InvalidParameter.NotSupported` (its Kubernetes objects and instances are named after it) |
| TagResources | `ResourceType` | string | yes | `application` or `cluster`. | case-insensitive |
| TagResources | `ResourceRegionId` | string | yes | The region. | this server's region |
| TagResources | `ResourceIds` | JSON array | yes | The applications (`AppId`) or clusters (`ClusterId`). | 1-20, each once; live applications (`edas:ManageApplication`) or registered clusters (`edas:ManageCluster`) |
| TagResources | `Tags` | JSON array | yes | `[{\"key\": k, \"value\": v}, …]` (`Key`/`Value` and `{k: v}` too). A key a resource has gets the new value. | 1-20 tags, each key once; keys 1-128 and values 0-128 characters of letters, digits, `-,*/?:_.=` and spaces; no key starting with `aliyun` or `acs:`, no `http://`/`https://`; at most 20 tags a resource (nothing stored otherwise) |
| UntagResources | `ResourceType`, `ResourceRegionId`, `ResourceIds` | | yes | As TagResources. | as TagResources |
| UntagResources | `TagKeys` | JSON array | no | The keys to remove. | without it, `DeleteAll=true` is required (EDAS removes every tag only then) |
| UntagResources | `DeleteAll` | boolean | no | Remove every tag (only when `TagKeys` is empty). | `true`/`false` |
| ListTagResources | `ResourceType`, `ResourceRegionId` | string | yes | As TagResources. | as TagResources |
| ListTagResources | `ResourceIds`, `Tags` | JSON (Tea: flattened `ResourceIds.N`, `Tags.N.key`, `Tags.k`) | no | Only these resources; only resources carrying every given tag (all their tags are listed). | resources the caller may not read are left out |
| ListApplication | `Tags` | JSON | no | edasd extension: only applications carrying every given tag (TagResources' format). | as TagResources' `Tags` |
| ContinuePipeline | `SkipAnalysis` | boolean | no | edasd extension (release policies): move the batch judged by (or held by) its release analysis on without a verdict. | `true`/`false` (default `false`); needs `edas:SkipReleaseAnalysis` on the application besides `edas:ManageApplication`; not with `Confirm=false`; audited |
| GetAppDeployment | `AppId` | string | yes | The Deployment of the current revision, as the cluster has it, as JSON text in `Data`. | a live application (`edas:ReadApplication`); on `local` (processes, no Deployment) `RuntimeRefused`; a stopped application has none (`EntityNotExist`) |
| StartK8sAppPrecheck | `ClusterId`, `Namespace` | string | yes | Where the application runs. | with `AppId`: the application's own (and `AppName` its name) |
| StartK8sAppPrecheck | `AppId` | string | no | Precheck a DeployK8sApplication of this application; without it, an InsertK8sApplication. | a live application (`edas:ReadApplication`); without it `edas:ReadApplication` on the default namespace |
| StartK8sAppPrecheck | `AppName`, `Annotations`, `ConfigMountDescs`, `EmptyDirs`, `EnvFroms`, `Envs`, `ImageUrl`, `JavaStartUpConfig`, `Labels`, `LimitEphemeralStorage`, `LimitMem`, `LimitmCpu`, `LocalVolume`, `PackageUrl`, `PvcMountDescs`, `Replicas`, `RequestsEphemeralStorage`, `RequestsMem`, `RequestsmCpu` | | no | As InsertK8sApplication's (for a deploy: `ImageUrl` is `Image`, `LimitMem` `MemoryLimit`, `RequestsMem` `MemoryRequest`, `LimitmCpu` `McpuLimit`, `RequestsmCpu` `McpuRequest`); a package is checked under the version label `precheck` (the operation has no `PackageVersion`). | invalid values fail the `ParameterCheck` job (the other jobs are then interrupted), they are not an error of the request |
| StartK8sAppPrecheck | `ComponentIds` | string | no | EDAS application components. | must be empty (`InvalidParameter.NotSupported`) |
| GetK8sAppPrecheckResult | `AppName`, `ClusterId`, `Namespace` | string | yes | The last precheck of this application since edasd started (kept in memory for the last 1024 applications prechecked, never stored). | `EntityNotExist` when none ran |

A precheck runs, in order: `ParameterCheck` (the parameters into the next revision),
`RightsCheck` (the caller's RAM rights for the change — `edas:CreateApplication` or
`edas:ManageApplication`, and `edas:UseLocalCluster`/`edas:UseLocalHostPath` on `local` — and
the rights edasd lacks on the cluster; reported, not refused), `RenderCheck` (the runtime's
check of the revision and its Services: on Kubernetes it renders), `ReferenceCheck` (the
ConfigMaps and Secrets it references exist in its cluster and namespace; the image reference
and package URL are well-formed; a `file://` package exists on `local`) and `CapacityCheck`
(the instances' CPU and memory requests placed node by node on each schedulable node's room:
allocatable less the requests of the pods on it, listed from the cluster at that moment; on
`local` the host's CPUs and memory less the requests of the instances edasd runs there) and
`QuotaCheck` (the instances fit what the namespace's ResourceQuotas still allow — `pods`, CPU
and memory requests and limits, `hard` less `used`, the least of them — and set the requests
and limits a quota bounds, without which the namespace refuses pods). The status is `pass` or
`failed` (with the first failing job's reason).
";

/// The parameters of the autoscaling-rule operations (decoded by edas-api, validated by
/// edas-app; they change no spec).
const CATALOG_SCALING: &str = "
## Autoscaling rules (decoded by edas-api)

Rules are stored per application (min, max, metrics and their targets, scale-up and
scale-down behaviour, enabled or not) and answered in EDAS's `AppScalingRule` shape with
`ScaleRuleType` `metric` and the rule under `Metric` (`Trigger` is `null`). An enabled rule
is checked against the cluster's autoscaler (a metric it cannot measure is refused), stored,
and then handed to it for the serving revision; edasd sets it again at start-up, when the
cluster answers again and when each change order ends. On Kubernetes it is the application's
`autoscaling/v2` HorizontalPodAutoscaler (named like the application, targeting the serving
revision's Deployment; `CPU`, `MEMORY`). On `local` it is the built-in autoscaler (`CPU` from
the instances' cgroups against their request, `QPS` from the service proxies, per ready
instance; sampled every `[local] autoscale_interval_seconds`, default 15, and decided as
Kubernetes' HPA does: 10 % tolerance, stabilization windows, step policies). Releases plan
against the autoscaler's count, hold it while they run (the HPA's `selectPolicy` `Disabled`
both ways) and resume it on the released revision. Each decision is a Scale change order
(`CoScale`) created by `autoscaler` with the reason as its description (`autoscaler: 1 → 4
(qps 310.2/s per instance > target 20/s)`) and a `scaling` release event; on Kubernetes a
Deployment its HPA scaled is recorded the same way.

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| CreateApplicationScalingRule, UpdateApplicationScalingRule, DeleteApplicationScalingRule, EnableApplicationScalingRule, DisableApplicationScalingRule, DescribeApplicationScalingRules | `AppId` | string | yes | The application. | a live application (`edas:ManageApplication`; Describe `edas:ReadApplication`) |
| Create…, Update…, Delete…, Enable…, DisableApplicationScalingRule | `ScalingRuleName` | string | yes | The rule, one name per application. | 1-32 characters, a lowercase letter first, then lowercase letters, digits and `-`; creating an existing one is `EntityAlreadyExists`, any other operation on a missing one `EntityNotExist` |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingRuleType` | string | no | `metric` (the form edasd stores). | `trigger` is `InvalidParameter.NotSupported` (see `ScalingRuleTrigger`); anything else invalid |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingRuleMetric` | JSON | Create: yes | `{\"minReplicas\": 1, \"maxReplicas\": 4, \"metrics\": [{\"metricType\": \"CPU\", \"metricTargetAverageUtilization\": 60}]}` (keys camelCase or PascalCase, numbers or numeric strings); Update keeps the stored bounds and metrics when absent. | every key required, no other key; 1 ≤ `minReplicas` ≤ `maxReplicas` ≤ 1000; at least one metric, `CPU`, `MEMORY` or `QPS` (case-insensitive), each once; target 1-100 % of the request for `CPU` and `MEMORY`, 1-1000000 requests per second per instance for `QPS`; all violations at once, named `ScalingRuleMetric.<key>`; enabled, a metric the cluster cannot measure (`MEMORY` on `local`, `QPS` on Kubernetes) is `InvalidParameter.NotSupported` naming `ScalingRuleMetric.metrics[i].metricType` |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingBehaviour` | JSON | no | EDAS's `{\"scaleUp\": {…}, \"scaleDown\": {\"stabilizationWindowSeconds\": \"300\", \"selectPolicy\": \"Max\", \"policies\": [{\"type\": \"Percent\", \"value\": 200, \"periodSeconds\": 15}]}}`; a direction left out (or `null`) has the defaults; Update keeps the stored behaviour when absent. | window 0-3600 s; `selectPolicy` `Max`, `Min` or `Disabled` (`Disable` too, stored as `Disabled`); policy `type` `Pods` or `Percent`, `value` ≥ 1, `periodSeconds` 1-1800; no other key |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingRuleEnable` | boolean | no | Whether the rule is enabled (Update keeps it when absent). | `true`: checked first (a metric the cluster cannot measure is `InvalidParameter.NotSupported`, a cluster that does not answer refuses the request; nothing stored), then stored, then applied (a failure after storing is logged and made good by edasd); another rule of the application enabled already is `InvalidParameter` (one rule scales an application); `false` stores it disabled (Update records the time, `LastDisableTime`) |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingRuleTrigger` | JSON | no | EDAS's trigger rules (`cron`, `app_metric`). | `InvalidParameter.NotSupported`: EDAS does not publish the format of a trigger's `metaData`, so edasd could not honour one |
| CreateApplicationScalingRule, UpdateApplicationScalingRule | `ScalingRuleTimer` | JSON | no | Deprecated by EDAS. | `InvalidParameter.NotSupported` |
| EnableApplicationScalingRule | `ScalingRuleName` | string | yes | The rule to enable. | an existing rule; a metric the cluster cannot measure is `InvalidParameter.NotSupported` naming `ScalingRuleMetric.metrics[i].metricType`; another enabled rule is `InvalidParameter` |
| DescribeApplicationScalingRules | `AppId` | string | yes | Every rule of the application, by name, on one page (`CurrentPage` 1, `PageSize` = `TotalSize`). | |
";

/// The parameters of the ingress-rule and load-balancer operations (decoded by edas-api,
/// validated by edas-spec's `ingress` and edas-app).
const CATALOG_TRAFFIC_IN: &str = "
## Ingress rules and load balancers (decoded by edas-api)

An ingress rule routes requests from outside by host and path to applications' Services. It is
stored per cluster, Kubernetes namespace and name; each path's backend must be a Service of one
live application in that cluster and namespace, with that port (the application is found and
kept with the path, and ListK8sIngressRules reports its `Status`: `Normal`, `ServiceNotFound`,
`InvalidServicePort`). On Kubernetes a rule is a `networking.k8s.io/v1` Ingress of the same name
(`ingressClassName` from the cluster's `ingress_class`, labelled `edas.oam.ingress`; an Ingress
of that name that edasd did not create is refused), or on a cluster configured with
`ingress = \"gateway\"` one Gateway API HTTPRoute per host attached to its `gateway` (TLS refused:
the Gateway's listener holds certificates); on `local` the shared ingress listener
(`[local] ingress_listen`) routes it to the Services' loopback ports, so gray splits and lossless
start apply as on the service port; without a listener a rule on `local` is
`InvalidParameter.NotSupported` naming `ClusterId`. The rule reaches the runtime before it is
stored; a refused one stores nothing. Create/Update/DeleteK8sIngressRule answer `Code` and
`Message` (and the `RequestId` every answer carries).

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| Create…, Update…, DeleteK8sIngressRule, ListK8sIngressRules | `ClusterId` | string | yes (List: no) | The cluster. | a known cluster; `edas:ManageConfiguration` on `…:cluster/{ClusterId}/namespace/{Namespace}/ingress/{Name}`, `edas:ManageApplication` on each application routed to, on `local` `edas:UseLocalCluster`; List `edas:ReadConfiguration` per rule |
| Create…, Update…, DeleteK8sIngressRule | `Namespace`, `Name` | string | yes | The Kubernetes namespace and the rule's name. | a DNS label; `Name` a lowercase letter first, at most 63; creating an existing one is `EntityAlreadyExists`, changing or deleting a missing one `EntityNotExist` |
| CreateK8sIngressRule, UpdateK8sIngressRule | `IngressConf` | JSON (Tea: a dict, flattened as `IngressConf.rules.1.host` …) | Create: yes | `{\"rules\": [{\"host\": \"a.example.com\", \"secretName\": \"tls\", \"paths\": [{\"path\": \"/\", \"pathType\": \"Prefix\", \"backend\": {\"serviceName\": \"web\", \"servicePort\": 80}}]}]}`; Update keeps the stored routing when absent. | every violation at once, named `IngressConf.rules[i].paths[j]...`: host a lowercase DNS name (`*.` first allowed; empty: any host); path absolute, no spaces, `?`, `#` or `..`; `pathType` `Prefix` (default), `Exact` or `ImplementationSpecific` (on `local`: as `Prefix`); a host and path routed twice, or by another rule of the cluster, refused; backend as above; `secretName` (TLS) a DNS subdomain, on `local` `InvalidParameter.NotSupported` (the listener speaks plain HTTP); no other key |
| CreateK8sIngressRule, UpdateK8sIngressRule | `Annotations`, `Labels` | JSON object of strings | no | The Ingress's annotations and labels (on `local` recorded only). | Kubernetes key syntax; label values as Kubernetes allows |
| ListK8sIngressRules | `Namespace` | string | no | Only this namespace's rules. | |
| ListK8sIngressRules | `Condition` | JSON (or flattened) | no | `{\"field\": \"Name\"\\|\"ClusterName\", \"pattern\": \"my-\"}`: names starting with the pattern. | `field` `Name` or `ClusterName` |
| ListK8sIngressRules | `RegionId` | string | no | This installation's region. | |

BindK8sSlb, UpdateK8sSlb and UnbindK8sSlb give an application on Kubernetes a load balancer:
the `LoadBalancer` Service `<app name, lowercased>-internet-slb`, added, changed or removed as
one of its Services (a change order that replaces no instance; `ChangeOrderId` answered); the
cluster's load-balancer provider gives it its address and the API server its node ports. On
`local` (no load balancer) all three are `InvalidParameter.NotSupported` naming `AppId`.

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| BindK8sSlb, UpdateK8sSlb, UnbindK8sSlb | `AppId` | string | yes | The application. | a live application on Kubernetes (`edas:ManageApplication`) |
| BindK8sSlb, UpdateK8sSlb, UnbindK8sSlb | `ClusterId` | string | no | The application's cluster. | must be the application's |
| BindK8sSlb, UpdateK8sSlb, UnbindK8sSlb | `Type` | string | yes | `internet`. | `intranet` is `InvalidParameter.NotSupported` (an internal balancer needs the provider's own annotation); Bind when the application has one, or Update/Unbind when it has none, is `InvalidParameter` |
| BindK8sSlb, UpdateK8sSlb | `Port`, `TargetPort` | string | yes, unless `ServicePortInfos` | The Service port and the instances' port. | 1-65535 |
| BindK8sSlb, UpdateK8sSlb | `ServicePortInfos` | JSON | no | `[{\"port\": 80, \"targetPort\": 8080, \"loadBalancerProtocol\": \"TCP\"}]`: several ports. | not with `Port`; `loadBalancerProtocol` `TCP` only and `certId` refused (`InvalidParameter.NotSupported`: HTTPS listeners and certificates are SLB's) |
| BindK8sSlb, UpdateK8sSlb | `SlbProtocol` | string | no | `TCP`. | HTTP/HTTPS `InvalidParameter.NotSupported` |
| BindK8sSlb, UpdateK8sSlb | `SlbId`, `Specification`, `Scheduler` | string | no | Alibaba Cloud SLB's instance, size and algorithm. | `InvalidParameter.NotSupported` with the reason |
| UpdateK8sSlb | `DisableForceOverride` | boolean | no | Keep SLB listener settings. | `true` is `InvalidParameter.NotSupported` |
| UpdateK8sSlb, UnbindK8sSlb | `SlbName` | string | no | The load balancer's name. | must be the Service's name |
";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every per-runtime entry names a documented parameter.
    #[test]
    fn runtime_statuses_name_documented_parameters() {
        for (name, local, kube) in crate::catalog::RUNTIMES {
            assert!(doc(name).is_some(), "{name} is not in the catalog");
            assert!(!local.is_empty() && !kube.is_empty(), "{name}");
        }
    }

    /// docs/PARAMETERS.md must be exactly what the catalog generates.
    #[test]
    fn docs_parameters_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PARAMETERS.md");
        let want = parameters_markdown();
        if std::env::var_os("EDAS_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/PARAMETERS.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/PARAMETERS.md is stale: run EDAS_UPDATE_DOCS=1 cargo test -p edas-spec docs"
        );
    }
}
