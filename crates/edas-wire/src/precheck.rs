//! StartK8sAppPrecheck (`{"Data": {"Jobs": [...]}}`) and GetK8sAppPrecheckResult
//! (`{"Data": {"Status", "Reason", "JobResults": [...]}}`).

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of StartK8sAppPrecheck.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrecheckJobsBody {
    pub data: PrecheckJobs,
}

/// The jobs a precheck runs, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrecheckJobs {
    pub jobs: Vec<String>,
}

/// The body of GetK8sAppPrecheckResult.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrecheckResultBody {
    pub data: PrecheckResult,
}

/// A precheck's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrecheckResult {
    pub job_results: Vec<PrecheckJobResult>,
    /// Empty when it passed.
    #[serde(deserialize_with = "lenient::text")]
    pub reason: String,
    /// `checking`, `pass` or `failed`.
    #[serde(deserialize_with = "lenient::text")]
    pub status: String,
}

/// One job's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrecheckJobResult {
    #[serde(deserialize_with = "lenient::boolean")]
    pub interrupted: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub pass: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;

    #[test]
    fn captured_precheck_answers_round_trip() {
        let jobs: PrecheckJobsBody =
            round_trip(include_str!("../fixtures/start_k8s_app_precheck.json"));
        assert_eq!(jobs.data.jobs[0], "ParameterCheck");
        let result: PrecheckResultBody =
            round_trip(include_str!("../fixtures/get_k8s_app_precheck_result.json"));
        assert_eq!(result.data.status, "failed");
        let capacity = result
            .data
            .job_results
            .iter()
            .find(|j| j.name == "CapacityCheck")
            .unwrap();
        assert!(!capacity.pass && capacity.reason.contains("insufficient capacity"));
    }
}
