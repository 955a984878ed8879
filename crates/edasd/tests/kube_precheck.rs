//! Black-box test of StartK8sAppPrecheck and GetK8sAppPrecheckResult on the fake Kubernetes API
//! server (issue 24): a deploy that cannot fit the node's room (its allocatable CPU less the
//! requests of the pods on it) reports the capacity shortfall, and one beyond the namespace's
//! ResourceQuota the quota shortfall; invalid parameters interrupt the
//! other jobs; a missing ConfigMap fails the reference check; a precheck stores nothing.
//! GetAppDeployment answers the revision's Deployment.

mod kube_support;

use std::time::Duration;

use kube_support::*;
use serde_json::Value;

const PRECHECK: &str = "/pop/v5/k8s/app_precheck";

async fn precheck(edasd: &Edasd, params: &[(&str, &str)]) -> Value {
    let started = edasd
        .call("POST", PRECHECK, "StartK8sAppPrecheck", params)
        .await;
    assert_eq!(
        started["Data"]["Jobs"].as_array().map(Vec::len),
        Some(6),
        "{started}"
    );
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let name = get("AppName").unwrap();
    let (cluster, namespace) = (get("ClusterId").unwrap(), get("Namespace").unwrap());
    edasd
        .call(
            "GET",
            PRECHECK,
            "GetK8sAppPrecheckResult",
            &[
                ("AppName", &name),
                ("ClusterId", &cluster),
                ("Namespace", &namespace),
            ],
        )
        .await["Data"]
        .clone()
}

/// Creates `object` (with its status, as the fake stores it) through `api`.
async fn create<K>(api: kube::Api<K>, object: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    bounded(
        "creating an object",
        api.create(&kube::api::PostParams::default(), &object),
    )
    .await
    .unwrap();
}

fn job<'a>(data: &'a Value, name: &str) -> &'a Value {
    data["JobResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["Name"] == name)
        .unwrap_or_else(|| panic!("no job {name}: {data:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_cannot_fit_reports_the_capacity_shortfall() {
    let backend = Backend::fake("precheck", Duration::from_millis(100)).await;
    // The fake places every pod on `edas-fake-node`: 2 CPUs, 4 GiB.
    create::<k8s_openapi::api::core::v1::Node>(
        kube::Api::all(backend.client.clone()),
        serde_json::json!({
            "metadata": {"name": "edas-fake-node"},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start(&dir.path().join("a"), &backend.kubeconfig, None);
    // One instance requesting 500 mCPU runs: 1500 mCPU are left.
    let (app, order) = edasd
        .insert(
            &backend,
            "fits",
            1,
            &[("RequestsmCpu", "500"), ("RequestsMem", "256")],
        )
        .await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    backend
        .wait_pods(&app, "one pod", |pods| {
            pods.values().map(|(_, total)| total).sum::<u32>() == 1
        })
        .await;
    let ns = backend.namespace.clone();
    // GetAppDeployment: the revision's Deployment as the cluster has it.
    let deployment = edasd
        .call(
            "GET",
            "/pop/v5/oam/app_deployment",
            "GetAppDeployment",
            &[("AppId", &app)],
        )
        .await;
    let object: Value = serde_json::from_str(deployment["Data"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            &object["kind"],
            &object["metadata"]["name"],
            &object["spec"]["replicas"]
        ),
        (
            &Value::from("Deployment"),
            &Value::from("fits-r1"),
            &Value::from(1)
        ),
        "{object:#}"
    );

    // 3 more instances of 500 mCPU fit beside it; 4 do not.
    let fits = precheck(
        &edasd,
        &[
            ("AppId", &app),
            ("AppName", "fits"),
            ("ClusterId", CLUSTER),
            ("Namespace", &ns),
            ("Replicas", "3"),
            ("ImageUrl", "registry.example.com/app:v2"),
        ],
    )
    .await;
    assert_eq!(fits["Status"], "pass", "{fits:#}");
    let short = precheck(
        &edasd,
        &[
            ("AppId", &app),
            ("AppName", "fits"),
            ("ClusterId", CLUSTER),
            ("Namespace", &ns),
            ("Replicas", "4"),
        ],
    )
    .await;
    assert_eq!(short["Status"], "failed", "{short:#}");
    let capacity = job(&short, "CapacityCheck");
    assert_eq!(capacity["Pass"], false, "{capacity:#}");
    let reason = capacity["Reason"].as_str().unwrap();
    assert!(
        reason.contains("insufficient capacity") && reason.contains("only 3 fit; short by 1"),
        "{reason}"
    );
    assert!(reason.contains("edas-fake-node 1500 mCPU"), "{reason}");
    assert!(
        short["Reason"]
            .as_str()
            .unwrap()
            .starts_with("CapacityCheck"),
        "{short:#}"
    );
    for passed in [
        "ParameterCheck",
        "RightsCheck",
        "RenderCheck",
        "ReferenceCheck",
        "QuotaCheck",
    ] {
        assert_eq!(job(&short, passed)["Pass"], true, "{short:#}");
    }

    // A ResourceQuota of the namespace that leaves 2 pods: 3 instances exceed it.
    create::<k8s_openapi::api::core::v1::ResourceQuota>(
        kube::Api::namespaced(backend.client.clone(), &ns),
        serde_json::json!({
            "metadata": {"name": "team-quota", "namespace": ns},
            "spec": {"hard": {"pods": "3"}},
            "status": {"hard": {"pods": "3"}, "used": {"pods": "1"}}
        }),
    )
    .await;
    let over = precheck(
        &edasd,
        &[
            ("AppId", &app),
            ("AppName", "fits"),
            ("ClusterId", CLUSTER),
            ("Namespace", &ns),
            ("Replicas", "3"),
        ],
    )
    .await;
    let quota = job(&over, "QuotaCheck");
    assert_eq!(quota["Pass"], false, "{over:#}");
    assert!(
        quota["Reason"]
            .as_str()
            .unwrap()
            .contains("team-quota): pods: 3 instance(s) need 3, 2 left"),
        "{quota:#}"
    );
    assert_eq!(job(&over, "CapacityCheck")["Pass"], true, "{over:#}");

    // A new application referencing a missing ConfigMap; invalid parameters interrupt the rest.
    let missing = precheck(
        &edasd,
        &[
            ("AppName", "newapp"),
            ("ClusterId", CLUSTER),
            ("Namespace", &ns),
            ("ImageUrl", "busybox:1.36"),
            ("Replicas", "1"),
            ("EnvFroms", r#"[{"configMapRef":{"name":"nowhere"}}]"#),
        ],
    )
    .await;
    let references = job(&missing, "ReferenceCheck");
    assert_eq!(references["Pass"], false, "{missing:#}");
    assert!(
        references["Reason"]
            .as_str()
            .unwrap()
            .contains("`nowhere` does not exist")
    );
    let invalid = precheck(
        &edasd,
        &[
            ("AppName", "badapp"),
            ("ClusterId", CLUSTER),
            ("Namespace", &ns),
            ("ImageUrl", "busybox:1.36"),
            ("Replicas", "-2"),
        ],
    )
    .await;
    assert_eq!(
        job(&invalid, "ParameterCheck")["Pass"],
        false,
        "{invalid:#}"
    );
    assert_eq!(
        job(&invalid, "CapacityCheck")["Interrupted"],
        true,
        "{invalid:#}"
    );

    // Nothing was stored: one application, one change order, one revision's pods.
    let apps = edasd
        .call("POST", "/pop/v5/app/app_list", "ListApplication", &[])
        .await;
    assert_eq!(
        apps["ApplicationList"]["Application"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(edasd.api.recent_change_orders(&app).await.len(), 1);
    let (status, unknown) = edasd
        .call_raw(
            "GET",
            PRECHECK,
            "GetK8sAppPrecheckResult",
            &[
                ("AppName", "never"),
                ("ClusterId", CLUSTER),
                ("Namespace", &ns),
            ],
        )
        .await;
    assert_eq!(
        (status, &unknown["Code"]),
        (404, &Value::from("EntityNotExist")),
        "{unknown}"
    );
    backend.cleanup().await;
}
