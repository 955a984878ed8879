//! Every EDAS 2017-08-01 operation, routed by method and path (no EDAS operation has path
//! parameters and (method, path) is unique, so this is all routing needs), and which of them
//! edasd implements together with the RAM action that authorizes each.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;

macro_rules! operations {
    ($($name:ident $method:ident $path:literal;)*) => {
        /// An EDAS operation (`x-acs-action`), one variant per operation of the Tea SDK.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $(#[doc = concat!("`", stringify!($method), " ", $path, "`")] $name,)*
        }

        impl Action {
            /// Every operation, in the order of edas-api.md §1.1.
            pub const ALL: &'static [Action] = &[$(Action::$name,)*];

            /// The action name, as in `x-acs-action`.
            pub fn name(self) -> &'static str {
                match self { $(Action::$name => stringify!($name),)* }
            }

            /// The HTTP method of the operation.
            pub fn method(self) -> Method {
                match self { $(Action::$name => Method::$method,)* }
            }

            /// The request path of the operation.
            pub fn path(self) -> &'static str {
                match self { $(Action::$name => $path,)* }
            }
        }
    };
}

include!("operations_table.rs");

static ROUTES: LazyLock<HashMap<(Method, &'static str), Action>> = LazyLock::new(|| {
    Action::ALL
        .iter()
        .map(|a| ((a.method(), a.path()), *a))
        .collect()
});

impl Action {
    /// The operation a request addresses, by exact method and path.
    pub fn route(method: &Method, path: &str) -> Option<Action> {
        // Look up by (method, path) without allocating: the map's keys are 'static, so probe
        // with the path's static twin found through the path index.
        let path = PATHS.get(path)?;
        ROUTES.get(&(method.clone(), *path)).copied()
    }

    /// Whether some operation lives at this path (with another method), for a clearer 404.
    pub fn path_exists(path: &str) -> bool {
        PATHS.contains_key(path)
    }

    /// The handler of the operation, when edasd implements it.
    pub fn implemented(self) -> Option<Implemented> {
        Implemented::ALL
            .iter()
            .copied()
            .find(|i| i.action() == self)
    }
}

static PATHS: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| Action::ALL.iter().map(|a| (a.path(), a.path())).collect());

/// The operations edasd implements. Every other [`Action`] answers `UnsupportedOperation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Implemented {
    /// Creates an application, its first revision and change order.
    InsertK8sApplication,
    /// Deploys the next revision of an application.
    DeployK8sApplication,
    /// Reads an application's current spec.
    GetK8sApplication,
    /// Lists the applications the caller may read.
    ListApplication,
    /// Reads a change order with its batches, stages, tasks and instances.
    GetChangeOrderInfo,
    /// Lists an application's change orders, newest first.
    ListRecentChangeOrder,
    /// Confirms (or keeps holding) the next batch of a manual release.
    ContinuePipeline,
    /// Terminates a change order; nothing further starts.
    AbortChangeOrder,
    /// Terminates a change order and rolls the application back to the previous revision.
    AbortAndRollbackChangeOrder,
    /// Rolls the application back from a change order (running or finished).
    RollbackChangeOrder,
    /// Retries the failed batch of a change order.
    RetryChangeOrderTask,
    /// Changes the resources (CPU, memory, ephemeral storage) of an application.
    UpdateK8sApplicationConfig,
    /// Sets the number of instances.
    ScaleK8sApplication,
    /// Starts a stopped application.
    StartK8sApplication,
    /// Stops every instance, keeping the application.
    StopK8sApplication,
    /// Replaces the instances in batches (a rolling restart).
    RestartK8sApplication,
    /// Stops the instances and marks the application deleted (its history stays readable).
    DeleteK8sApplication,
    /// Reads an application (the `Application` object of GetApplication).
    GetApplication,
    /// Reads an application with its instances (`AppInfo`).
    QueryApplicationStatus,
    /// Lists the Kubernetes clusters (`local` and the configured ones).
    GetK8sCluster,
    /// Lists the clusters (EDAS's general view).
    ListCluster,
    /// Lists the Kubernetes namespaces edasd knows in a cluster.
    ListK8sNamespaces,
    /// Reports a cluster as imported: edasd imports clusters from its configuration file, so
    /// this answers for a configured cluster (its import status is in GetK8sCluster).
    ImportK8sCluster,
    /// Lists EDAS Container build packs: none (this server runs images and packages, not EDAS Container).
    ListBuildPack,
    /// Creates a ConfigMap.
    CreateK8sConfigMap,
    /// Replaces a ConfigMap's data.
    UpdateK8sConfigMap,
    /// Deletes a ConfigMap no application uses.
    DeleteK8sConfigMap,
    /// Lists ConfigMaps.
    ListK8sConfigMaps,
    /// Creates a Secret (encrypted at rest).
    CreateK8sSecret,
    /// Replaces a Secret's data.
    UpdateK8sSecret,
    /// Deletes a Secret no application uses.
    DeleteK8sSecret,
    /// Lists Secrets.
    ListK8sSecrets,
    /// Adds a Service to an application (a change order).
    CreateK8sService,
    /// Changes one of an application's Services (a change order).
    UpdateK8sService,
    /// Removes one of an application's Services (a change order).
    DeleteK8sService,
    /// Lists an application's Services.
    GetK8sServices,
    /// Lists an application's instances (revision, version, readiness, restarts, last exit).
    DescribeAppInstanceList,
    /// Lists an application's revisions (what a rollback to a revision names).
    ListHistoryDeployVersion,
    /// Creates or changes an EDAS namespace (stored; the configuration's are fixed).
    InsertOrUpdateRegion,
    /// Lists the EDAS namespaces: the default one, the configuration's and the stored ones.
    ListUserDefineRegion,
    /// Deletes a stored EDAS namespace no application is in.
    DeleteUserDefineRegion,
    /// Changes an application's description, owner and contact (no change order).
    UpdateK8sApplicationBaseInfo,
    /// Changes an application's description and owner (its name cannot change).
    UpdateApplicationBaseInfo,
    /// Sets tags on applications or clusters.
    TagResources,
    /// Removes tags from applications or clusters.
    UntagResources,
    /// Lists the tags of applications or clusters.
    ListTagResources,
    /// Runs what a deploy or an insert would run, storing nothing.
    StartK8sAppPrecheck,
    /// The last precheck of an application and each job's outcome.
    GetK8sAppPrecheckResult,
    /// The Deployment of an application's current revision, as its cluster has it.
    GetAppDeployment,
    /// Stores an autoscaling rule of an application (enabling one is refused until a runtime
    /// acts on rules).
    CreateApplicationScalingRule,
    /// Changes an autoscaling rule.
    UpdateApplicationScalingRule,
    /// Deletes an autoscaling rule.
    DeleteApplicationScalingRule,
    /// Lists an application's autoscaling rules.
    DescribeApplicationScalingRules,
    /// Enables an autoscaling rule: refused, naming why, until a runtime acts on rules.
    EnableApplicationScalingRule,
    /// Disables an autoscaling rule.
    DisableApplicationScalingRule,
    /// Creates an ingress rule (host and path routing to applications' Services): a
    /// `networking.k8s.io/v1` Ingress on Kubernetes, the shared ingress listener on `local`.
    CreateK8sIngressRule,
    /// Replaces an ingress rule's routing.
    UpdateK8sIngressRule,
    /// Deletes an ingress rule.
    DeleteK8sIngressRule,
    /// Lists ingress rules by cluster, with each path's backend status.
    ListK8sIngressRules,
    /// Gives an application a load balancer: a `LoadBalancer` Service (a change order).
    BindK8sSlb,
    /// Changes the ports of an application's load balancer (a change order).
    UpdateK8sSlb,
    /// Removes an application's load balancer (a change order).
    UnbindK8sSlb,
}

/// How the resource of an authorization check is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceScope {
    /// `…:namespace/{ns}/application/*` of the namespace the application will be created in.
    NewApplication,
    /// `…:namespace/{ns}/application/{AppId}` of the application named by `AppId`.
    Application,
    /// The application of the change order named by `ChangeOrderId`.
    ChangeOrderApplication,
    /// Each listed application is checked; those the caller may not read are left out.
    EachListedApplication,
    /// `…:cluster/{ClusterId}`; in listings, each cluster (those the caller may not read are
    /// left out).
    Cluster,
    /// `…:cluster/{ClusterId}/namespace/{Namespace}/configmap/{Name}` (or `/secret/{Name}`,
    /// `/ingress/{Name}`); in listings, each item.
    ClusterConfiguration,
    /// Any authenticated caller: the answer is the same for everyone and names nothing.
    Anyone,
    /// `…:namespace/{RegionTag}` of an EDAS namespace; in listings, each namespace.
    Namespace,
    /// Each resource of `ResourceIds` by `ResourceType`: an application's ARN or a cluster's;
    /// in listings, those the caller may not read are left out.
    TaggedResources,
    /// The application named by `AppId`, or `…:namespace/{default}/application/*` for a new
    /// one (GetK8sAppPrecheckResult: the application the kept result is of).
    PrecheckedApplication,
}

impl Implemented {
    /// Every implemented operation.
    pub const ALL: &'static [Implemented] = &[
        Implemented::InsertK8sApplication,
        Implemented::DeployK8sApplication,
        Implemented::GetK8sApplication,
        Implemented::ListApplication,
        Implemented::GetChangeOrderInfo,
        Implemented::ListRecentChangeOrder,
        Implemented::ContinuePipeline,
        Implemented::AbortChangeOrder,
        Implemented::AbortAndRollbackChangeOrder,
        Implemented::RollbackChangeOrder,
        Implemented::RetryChangeOrderTask,
        Implemented::UpdateK8sApplicationConfig,
        Implemented::ScaleK8sApplication,
        Implemented::StartK8sApplication,
        Implemented::StopK8sApplication,
        Implemented::RestartK8sApplication,
        Implemented::DeleteK8sApplication,
        Implemented::GetApplication,
        Implemented::QueryApplicationStatus,
        Implemented::GetK8sCluster,
        Implemented::ListCluster,
        Implemented::ListK8sNamespaces,
        Implemented::ImportK8sCluster,
        Implemented::ListBuildPack,
        Implemented::CreateK8sConfigMap,
        Implemented::UpdateK8sConfigMap,
        Implemented::DeleteK8sConfigMap,
        Implemented::ListK8sConfigMaps,
        Implemented::CreateK8sSecret,
        Implemented::UpdateK8sSecret,
        Implemented::DeleteK8sSecret,
        Implemented::ListK8sSecrets,
        Implemented::CreateK8sService,
        Implemented::UpdateK8sService,
        Implemented::DeleteK8sService,
        Implemented::GetK8sServices,
        Implemented::DescribeAppInstanceList,
        Implemented::ListHistoryDeployVersion,
        Implemented::InsertOrUpdateRegion,
        Implemented::ListUserDefineRegion,
        Implemented::DeleteUserDefineRegion,
        Implemented::UpdateK8sApplicationBaseInfo,
        Implemented::UpdateApplicationBaseInfo,
        Implemented::TagResources,
        Implemented::UntagResources,
        Implemented::ListTagResources,
        Implemented::StartK8sAppPrecheck,
        Implemented::GetK8sAppPrecheckResult,
        Implemented::GetAppDeployment,
        Implemented::CreateApplicationScalingRule,
        Implemented::UpdateApplicationScalingRule,
        Implemented::DeleteApplicationScalingRule,
        Implemented::DescribeApplicationScalingRules,
        Implemented::EnableApplicationScalingRule,
        Implemented::DisableApplicationScalingRule,
        Implemented::CreateK8sIngressRule,
        Implemented::UpdateK8sIngressRule,
        Implemented::DeleteK8sIngressRule,
        Implemented::ListK8sIngressRules,
        Implemented::BindK8sSlb,
        Implemented::UpdateK8sSlb,
        Implemented::UnbindK8sSlb,
    ];

    /// The EDAS operation.
    pub fn action(self) -> Action {
        match self {
            Implemented::InsertK8sApplication => Action::InsertK8sApplication,
            Implemented::DeployK8sApplication => Action::DeployK8sApplication,
            Implemented::GetK8sApplication => Action::GetK8sApplication,
            Implemented::ListApplication => Action::ListApplication,
            Implemented::GetChangeOrderInfo => Action::GetChangeOrderInfo,
            Implemented::ListRecentChangeOrder => Action::ListRecentChangeOrder,
            Implemented::ContinuePipeline => Action::ContinuePipeline,
            Implemented::AbortChangeOrder => Action::AbortChangeOrder,
            Implemented::AbortAndRollbackChangeOrder => Action::AbortAndRollbackChangeOrder,
            Implemented::RollbackChangeOrder => Action::RollbackChangeOrder,
            Implemented::RetryChangeOrderTask => Action::RetryChangeOrderTask,
            Implemented::UpdateK8sApplicationConfig => Action::UpdateK8sApplicationConfig,
            Implemented::ScaleK8sApplication => Action::ScaleK8sApplication,
            Implemented::StartK8sApplication => Action::StartK8sApplication,
            Implemented::StopK8sApplication => Action::StopK8sApplication,
            Implemented::RestartK8sApplication => Action::RestartK8sApplication,
            Implemented::DeleteK8sApplication => Action::DeleteK8sApplication,
            Implemented::GetApplication => Action::GetApplication,
            Implemented::QueryApplicationStatus => Action::QueryApplicationStatus,
            Implemented::GetK8sCluster => Action::GetK8sCluster,
            Implemented::ListCluster => Action::ListCluster,
            Implemented::ListK8sNamespaces => Action::ListK8sNamespaces,
            Implemented::ImportK8sCluster => Action::ImportK8sCluster,
            Implemented::ListBuildPack => Action::ListBuildPack,
            Implemented::CreateK8sConfigMap => Action::CreateK8sConfigMap,
            Implemented::UpdateK8sConfigMap => Action::UpdateK8sConfigMap,
            Implemented::DeleteK8sConfigMap => Action::DeleteK8sConfigMap,
            Implemented::ListK8sConfigMaps => Action::ListK8sConfigMaps,
            Implemented::CreateK8sSecret => Action::CreateK8sSecret,
            Implemented::UpdateK8sSecret => Action::UpdateK8sSecret,
            Implemented::DeleteK8sSecret => Action::DeleteK8sSecret,
            Implemented::ListK8sSecrets => Action::ListK8sSecrets,
            Implemented::CreateK8sService => Action::CreateK8sService,
            Implemented::UpdateK8sService => Action::UpdateK8sService,
            Implemented::DeleteK8sService => Action::DeleteK8sService,
            Implemented::GetK8sServices => Action::GetK8sServices,
            Implemented::DescribeAppInstanceList => Action::DescribeAppInstanceList,
            Implemented::ListHistoryDeployVersion => Action::ListHistoryDeployVersion,
            Implemented::InsertOrUpdateRegion => Action::InsertOrUpdateRegion,
            Implemented::ListUserDefineRegion => Action::ListUserDefineRegion,
            Implemented::DeleteUserDefineRegion => Action::DeleteUserDefineRegion,
            Implemented::UpdateK8sApplicationBaseInfo => Action::UpdateK8sApplicationBaseInfo,
            Implemented::UpdateApplicationBaseInfo => Action::UpdateApplicationBaseInfo,
            Implemented::TagResources => Action::TagResources,
            Implemented::UntagResources => Action::UntagResources,
            Implemented::ListTagResources => Action::ListTagResources,
            Implemented::StartK8sAppPrecheck => Action::StartK8sAppPrecheck,
            Implemented::GetK8sAppPrecheckResult => Action::GetK8sAppPrecheckResult,
            Implemented::GetAppDeployment => Action::GetAppDeployment,
            Implemented::CreateApplicationScalingRule => Action::CreateApplicationScalingRule,
            Implemented::UpdateApplicationScalingRule => Action::UpdateApplicationScalingRule,
            Implemented::DeleteApplicationScalingRule => Action::DeleteApplicationScalingRule,
            Implemented::DescribeApplicationScalingRules => Action::DescribeApplicationScalingRules,
            Implemented::EnableApplicationScalingRule => Action::EnableApplicationScalingRule,
            Implemented::DisableApplicationScalingRule => Action::DisableApplicationScalingRule,
            Implemented::CreateK8sIngressRule => Action::CreateK8sIngressRule,
            Implemented::UpdateK8sIngressRule => Action::UpdateK8sIngressRule,
            Implemented::DeleteK8sIngressRule => Action::DeleteK8sIngressRule,
            Implemented::ListK8sIngressRules => Action::ListK8sIngressRules,
            Implemented::BindK8sSlb => Action::BindK8sSlb,
            Implemented::UpdateK8sSlb => Action::UpdateK8sSlb,
            Implemented::UnbindK8sSlb => Action::UnbindK8sSlb,
        }
    }

    /// The `edas-spec` operation of a change to an existing application, submitted as a
    /// change order.
    pub fn change_operation(self) -> Option<edas_spec::Operation> {
        use edas_spec::Operation as O;
        Some(match self {
            Implemented::DeployK8sApplication => O::DeployK8sApplication,
            Implemented::UpdateK8sApplicationConfig => O::UpdateK8sApplicationConfig,
            Implemented::ScaleK8sApplication => O::ScaleK8sApplication,
            Implemented::StartK8sApplication => O::StartK8sApplication,
            Implemented::StopK8sApplication => O::StopK8sApplication,
            Implemented::RestartK8sApplication => O::RestartK8sApplication,
            Implemented::DeleteK8sApplication => O::DeleteK8sApplication,
            Implemented::CreateK8sService => O::CreateK8sService,
            Implemented::UpdateK8sService => O::UpdateK8sService,
            Implemented::DeleteK8sService => O::DeleteK8sService,
            _ => return None,
        })
    }

    /// The RAM action a policy must allow, and on which resource. Reads need
    /// `edas:ReadApplication`; changes to an application `edas:ManageApplication` (as the seed
    /// documents for DeployK8sApplication); creating one `edas:CreateApplication`.
    pub fn permission(self) -> (&'static str, ResourceScope) {
        match self {
            Implemented::InsertK8sApplication => {
                (ram::CREATE_APPLICATION, ResourceScope::NewApplication)
            }
            Implemented::DeployK8sApplication
            | Implemented::UpdateK8sApplicationConfig
            | Implemented::ScaleK8sApplication
            | Implemented::StartK8sApplication
            | Implemented::StopK8sApplication
            | Implemented::RestartK8sApplication
            | Implemented::CreateK8sService
            | Implemented::UpdateK8sService
            | Implemented::DeleteK8sService
            | Implemented::UpdateK8sApplicationBaseInfo
            | Implemented::UpdateApplicationBaseInfo
            | Implemented::CreateApplicationScalingRule
            | Implemented::UpdateApplicationScalingRule
            | Implemented::DeleteApplicationScalingRule
            | Implemented::EnableApplicationScalingRule
            | Implemented::DisableApplicationScalingRule
            | Implemented::BindK8sSlb
            | Implemented::UpdateK8sSlb
            | Implemented::UnbindK8sSlb => (ram::MANAGE_APPLICATION, ResourceScope::Application),
            Implemented::DeleteK8sApplication => {
                (ram::DELETE_APPLICATION, ResourceScope::Application)
            }
            Implemented::GetK8sApplication
            | Implemented::GetApplication
            | Implemented::QueryApplicationStatus
            | Implemented::GetK8sServices
            | Implemented::DescribeAppInstanceList
            | Implemented::ListHistoryDeployVersion
            | Implemented::GetAppDeployment
            | Implemented::DescribeApplicationScalingRules => {
                (ram::READ_APPLICATION, ResourceScope::Application)
            }
            Implemented::ListApplication => {
                (ram::READ_APPLICATION, ResourceScope::EachListedApplication)
            }
            Implemented::GetChangeOrderInfo => {
                (ram::READ_APPLICATION, ResourceScope::ChangeOrderApplication)
            }
            Implemented::ListRecentChangeOrder => {
                (ram::READ_APPLICATION, ResourceScope::Application)
            }
            Implemented::ContinuePipeline
            | Implemented::AbortChangeOrder
            | Implemented::AbortAndRollbackChangeOrder
            | Implemented::RollbackChangeOrder
            | Implemented::RetryChangeOrderTask => (
                ram::MANAGE_APPLICATION,
                ResourceScope::ChangeOrderApplication,
            ),
            Implemented::GetK8sCluster
            | Implemented::ListCluster
            | Implemented::ListK8sNamespaces
            | Implemented::ImportK8sCluster => (ram::READ_CLUSTER, ResourceScope::Cluster),
            Implemented::ListBuildPack => (ram::READ_CLUSTER, ResourceScope::Anyone),
            Implemented::ListK8sConfigMaps
            | Implemented::ListK8sSecrets
            | Implemented::ListK8sIngressRules => {
                (ram::READ_CONFIGURATION, ResourceScope::ClusterConfiguration)
            }
            // And edas:ManageApplication on every application the rule routes to.
            Implemented::CreateK8sIngressRule
            | Implemented::UpdateK8sIngressRule
            | Implemented::DeleteK8sIngressRule => (
                ram::MANAGE_CONFIGURATION,
                ResourceScope::ClusterConfiguration,
            ),
            Implemented::CreateK8sConfigMap
            | Implemented::UpdateK8sConfigMap
            | Implemented::DeleteK8sConfigMap
            | Implemented::CreateK8sSecret
            | Implemented::UpdateK8sSecret
            | Implemented::DeleteK8sSecret => (
                ram::MANAGE_CONFIGURATION,
                ResourceScope::ClusterConfiguration,
            ),
            Implemented::InsertOrUpdateRegion | Implemented::DeleteUserDefineRegion => {
                (ram::MANAGE_NAMESPACE, ResourceScope::Namespace)
            }
            Implemented::ListUserDefineRegion => (ram::READ_NAMESPACE, ResourceScope::Namespace),
            // On a cluster the action is edas:ManageCluster (edas:ReadCluster to list).
            Implemented::TagResources | Implemented::UntagResources => {
                (ram::MANAGE_APPLICATION, ResourceScope::TaggedResources)
            }
            Implemented::ListTagResources => {
                (ram::READ_APPLICATION, ResourceScope::TaggedResources)
            }
            // The rights the change itself needs are reported by the precheck, not required.
            Implemented::StartK8sAppPrecheck | Implemented::GetK8sAppPrecheckResult => {
                (ram::READ_APPLICATION, ResourceScope::PrecheckedApplication)
            }
        }
    }

    /// Whether the operation takes its parameters in an `application/x-www-form-urlencoded`
    /// body (Tea `req_body_type=formData`).
    pub fn takes_form_body(self) -> bool {
        matches!(
            self,
            Implemented::CreateK8sConfigMap
                | Implemented::UpdateK8sConfigMap
                | Implemented::CreateK8sSecret
                | Implemented::UpdateK8sSecret
        )
    }
}

/// The RAM actions edasd checks.
pub mod ram {
    /// Reading an application, its change orders, listing it.
    pub const READ_APPLICATION: &str = "edas:ReadApplication";
    /// Changing an application (deploy, configure, scale, start, stop, restart).
    pub const MANAGE_APPLICATION: &str = "edas:ManageApplication";
    /// Creating an application in a namespace.
    pub const CREATE_APPLICATION: &str = "edas:CreateApplication";
    /// ContinuePipeline with edasd's `SkipAnalysis=true`: moving a release past its release
    /// analysis without a verdict (issue 21); separate from managing the application, so a
    /// policy can allow releases but not overriding their checks.
    pub const SKIP_RELEASE_ANALYSIS: &str = "edas:SkipReleaseAnalysis";
    /// Deleting an application: separate from managing it, so a policy can allow every change
    /// but deletion.
    pub const DELETE_APPLICATION: &str = "edas:DeleteApplication";
    /// Reading clusters and their namespaces.
    pub const READ_CLUSTER: &str = "edas:ReadCluster";
    /// Reading ConfigMaps and Secrets (Secret values included).
    pub const READ_CONFIGURATION: &str = "edas:ReadConfiguration";
    /// Creating, changing and deleting ConfigMaps and Secrets.
    pub const MANAGE_CONFIGURATION: &str = "edas:ManageConfiguration";
    /// Any change of an application on the built-in cluster `local`, on the cluster's ARN:
    /// an application there is code run on edasd's host, so this right is separate from
    /// managing applications and only administrators have it unless a policy grants it.
    pub const USE_LOCAL_CLUSTER: &str = "edas:UseLocalCluster";
    /// A new or changed host path on `local` (a `LocalVolume` or a `file://` `PackageUrl`), on
    /// the cluster's ARN; the path must also lie under a `[local] allowed_host_paths` root.
    pub const USE_LOCAL_HOST_PATH: &str = "edas:UseLocalHostPath";
    /// Reading an EDAS namespace (ListUserDefineRegion leaves out the others), on
    /// `acs:edas:{region}:{account}:namespace/{namespace id}`.
    pub const READ_NAMESPACE: &str = "edas:ReadNamespace";
    /// Creating, changing and deleting an EDAS namespace, on its ARN.
    pub const MANAGE_NAMESPACE: &str = "edas:ManageNamespace";
    /// Changing a cluster's tags, on the cluster's ARN (clusters come from the configuration
    /// file, so nothing else of a cluster changes through the API).
    pub const MANAGE_CLUSTER: &str = "edas:ManageCluster";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_operation_of_the_reference_is_routed_to_itself() {
        assert_eq!(Action::ALL.len(), 162, "edas-api.md §1.0: 162 operations");
        for action in Action::ALL {
            assert_eq!(
                Action::route(&action.method(), action.path()),
                Some(*action),
                "{}",
                action.name()
            );
            assert!(action.path().starts_with("/pop/"), "{}", action.name());
        }
        let pairs: HashSet<_> = Action::ALL.iter().map(|a| (a.method(), a.path())).collect();
        assert_eq!(pairs.len(), Action::ALL.len(), "(method, path) is unique");
        let names: HashSet<_> = Action::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), Action::ALL.len());
    }

    #[test]
    fn routing_table_matches_the_reference_rows() {
        // Spot checks straight from edas-api.md §1.1, including paths shared by several methods.
        let rows = [
            (
                "POST",
                "/pop/v5/k8s/acs/k8s_apps",
                Action::DeployK8sApplication,
            ),
            (
                "PUT",
                "/pop/v5/k8s/acs/k8s_apps",
                Action::ScaleK8sApplication,
            ),
            (
                "DELETE",
                "/pop/v5/k8s/acs/k8s_apps",
                Action::DeleteK8sApplication,
            ),
            (
                "POST",
                "/pop/v5/k8s/acs/create_k8s_app",
                Action::InsertK8sApplication,
            ),
            (
                "GET",
                "/pop/v5/changeorder/co_application",
                Action::GetK8sApplication,
            ),
            ("POST", "/pop/v5/app/app_list", Action::ListApplication),
            (
                "POST",
                "/pop/v5/changeorder/change_order_info",
                Action::GetChangeOrderInfo,
            ),
            (
                "GET",
                "/pop/v5/changeorder/pipeline_batch_confirm",
                Action::ContinuePipeline,
            ),
            (
                "POST",
                "/pop/v5/k8s/acs/k8s_config_map",
                Action::CreateK8sConfigMap,
            ),
            (
                "PUT",
                "/pop/v5/k8s/acs/k8s_config_map",
                Action::UpdateK8sConfigMap,
            ),
            (
                "DELETE",
                "/pop/v5/k8s/acs/k8s_config_map",
                Action::DeleteK8sConfigMap,
            ),
            (
                "GET",
                "/pop/v5/k8s/acs/k8s_config_map",
                Action::ListK8sConfigMaps,
            ),
            (
                "POST",
                "/pop/sp/applications/locality/setting",
                Action::UpdateLocalitySetting,
            ),
            (
                "GET",
                "/pop/sp/applications/locality/setting",
                Action::DescribeLocalitySetting,
            ),
            (
                "PUT",
                "/pop/v5/oam/changeorder/rollback",
                Action::RollbackChangeOrder,
            ),
            ("POST", "/pop/app/bind_slb_json", Action::BindSlb),
        ];
        for (method, path, action) in rows {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                Action::route(&method, path),
                Some(action),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn unknown_methods_and_paths_do_not_route() {
        assert_eq!(
            Action::route(&Method::GET, "/pop/v5/k8s/acs/k8s_apps"),
            None
        );
        assert!(Action::path_exists("/pop/v5/k8s/acs/k8s_apps"));
        assert_eq!(
            Action::route(&Method::POST, "/pop/v5/k8s/acs/k8s_apps/"),
            None
        );
        assert_eq!(Action::route(&Method::POST, "/pop/v5/nothing"), None);
        assert!(!Action::path_exists("/"));
    }

    #[test]
    fn implemented_operations_map_back_and_have_a_permission() {
        assert_eq!(Implemented::ALL.len(), 62);
        for implemented in Implemented::ALL {
            assert_eq!(implemented.action().implemented(), Some(*implemented));
            let (ram_action, _) = implemented.permission();
            assert!(ram_action.starts_with("edas:"));
        }
        assert_eq!(
            Implemented::DeployK8sApplication.permission().0,
            "edas:ManageApplication"
        );
        assert_eq!(Action::InsertCluster.implemented(), None);
        let unimplemented = Action::ALL
            .iter()
            .filter(|a| a.implemented().is_none())
            .count();
        assert_eq!(unimplemented, 162 - Implemented::ALL.len());
    }
}
