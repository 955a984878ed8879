//! An application's instances and its deployment history: DescribeAppInstanceList and
//! ListHistoryDeployVersion, in the SDK models' keys, plus edasd's flat per-instance keys
//! (`InstanceName`, `Revision`, `Ready`, `Restarts`, `LastExitReason`, `Failed`, `Ip`, `Port`)
//! that the SDKs ignore and edasctl reads.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of DescribeAppInstanceList: `{"InstanceList": [...]}`, a bare list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceListBody {
    pub instance_list: Vec<AppInstance>,
}

/// One instance (a pod, or a process on `local`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppInstance {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    /// Whether it runs the revision a release in progress is rolling out while older
    /// revisions still have instances.
    #[serde(deserialize_with = "lenient::boolean")]
    pub canary: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub group_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub group_name: String,
    /// A JSON object of strings (`{}` unless `WithNodeInfo=true`).
    #[serde(deserialize_with = "lenient::text")]
    pub node_labels: String,
    #[serde(deserialize_with = "lenient::text")]
    pub node_name: String,
    /// The instance as a Kubernetes Pod, a JSON string (`metadata`, `status` with
    /// `containerStatuses`: ready, restartCount, lastState).
    #[serde(deserialize_with = "lenient::text")]
    pub pod_raw: String,
    /// The version of what it runs: the image, the package's `PackageVersion`, or `r<N>` for
    /// a command-only application.
    #[serde(deserialize_with = "lenient::text")]
    pub version: String,
    /// edasd: the instance (pod) name.
    #[serde(deserialize_with = "lenient::text")]
    pub instance_name: String,
    /// edasd: the revision it runs.
    #[serde(deserialize_with = "lenient::text")]
    pub revision: String,
    /// edasd: whether it is ready.
    #[serde(deserialize_with = "lenient::boolean")]
    pub ready: bool,
    /// edasd: restarts so far.
    #[serde(deserialize_with = "lenient::int")]
    pub restarts: i64,
    /// edasd: how its previous run ended (`OOMKilled`, an exit status …), or empty.
    #[serde(deserialize_with = "lenient::text")]
    pub last_exit_reason: String,
    /// edasd: why the runtime gave up on it, or empty.
    #[serde(deserialize_with = "lenient::text")]
    pub failed: String,
    /// edasd: its address.
    #[serde(deserialize_with = "lenient::text")]
    pub ip: String,
    /// edasd: its port on `local` (its `$PORT`), else 0.
    #[serde(deserialize_with = "lenient::int")]
    pub port: i64,
}

/// The body of ListHistoryDeployVersion: `PackageVersionList.PackageVersion[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HistoryBody {
    pub package_version_list: PackageVersionList,
}

/// The wrapper object of the versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PackageVersionList {
    pub package_version: Vec<PackageVersion>,
}

/// One deployed version: one revision of the application, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PackageVersion {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    /// What the change was (`ChangeOrderDesc`, else the operation).
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    /// The revision number: what a rollback names (`RollbackToRevision`).
    #[serde(deserialize_with = "lenient::text")]
    pub id: String,
    /// The image, the package's `PackageVersion`, or `r<N>`.
    #[serde(deserialize_with = "lenient::text")]
    pub package_version: String,
    /// The package URL or image.
    #[serde(deserialize_with = "lenient::text")]
    pub public_url: String,
    /// `image`, `url` (a package) or `command`.
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
    /// The same as `PublicUrl`.
    #[serde(deserialize_with = "lenient::text")]
    pub war_url: String,
    /// edasd: the revision number as a number.
    #[serde(deserialize_with = "lenient::int")]
    pub revision: i64,
    /// edasd: the change order that made it, or empty.
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_id: String,
    /// edasd: its outcome (the change order's status text: `success`, `failed`, `aborted` …).
    #[serde(deserialize_with = "lenient::text")]
    pub outcome: String,
    /// edasd: who asked for it.
    #[serde(deserialize_with = "lenient::text")]
    pub creator: String,
    /// edasd: whether the application is at this revision now.
    #[serde(deserialize_with = "lenient::boolean")]
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_keys_and_wrapper_objects_are_exact() {
        let body = HistoryBody {
            package_version_list: PackageVersionList {
                package_version: vec![PackageVersion {
                    id: "3".into(),
                    revision: 3,
                    ..Default::default()
                }],
            },
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["PackageVersionList"]["PackageVersion"][0]["Id"], "3");
        assert_eq!(v["PackageVersionList"]["PackageVersion"][0]["WarUrl"], "");
        let list: InstanceListBody = serde_json::from_str(
            r#"{"InstanceList":[{"Restarts":"2","Ready":"true","Port":4000}]}"#,
        )
        .unwrap();
        assert_eq!(list.instance_list[0].restarts, 2);
        assert!(list.instance_list[0].ready);
        let v = serde_json::to_value(&list).unwrap();
        assert!(v["InstanceList"][0].get("PodRaw").is_some());
    }
}
