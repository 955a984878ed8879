//! The change-order operations (edas-api.md §1.2, §2): GetChangeOrderInfo's `changeOrderInfo`,
//! ListRecentChangeOrder and the control operations' `Data`.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of GetChangeOrderInfo (besides the envelope): `{"changeOrderInfo": {...}}`, the
/// key in camelCase unlike every other.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeOrderInfoBody {
    #[serde(rename = "changeOrderInfo")]
    pub change_order_info: ChangeOrderInfo,
}

/// What GetChangeOrderInfo and ListRecentChangeOrder both say of a change order (flattened
/// into each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderHead {
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_id: String,
    /// The EDAS status code (edas-api.md §2.2).
    #[serde(deserialize_with = "lenient::int")]
    pub status: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub batch_count: i64,
    /// `Manual` or `Automatic`.
    #[serde(deserialize_with = "lenient::text")]
    pub batch_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_description: String,
    #[serde(deserialize_with = "lenient::text")]
    pub co_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub co_type_code: String,
    /// GetChangeOrderInfo: epoch milliseconds as a string; ListRecentChangeOrder:
    /// `yyyy-MM-dd HH:mm:ss`.
    #[serde(deserialize_with = "lenient::text")]
    pub create_time: String,
    /// As `create_time`; empty while it runs.
    #[serde(deserialize_with = "lenient::text")]
    pub finish_time: String,
    #[serde(deserialize_with = "lenient::text")]
    pub create_user_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
}

/// One change order with its batches (pipelines), their stages, tasks and instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderInfo {
    #[serde(flatten)]
    pub head: ChangeOrderHead,
    #[serde(deserialize_with = "lenient::text")]
    pub desc: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub support_rollback: bool,
    pub targets: Targets,
    pub pipeline_info_list: PipelineInfoList,
    /// edasd: while the order waits for its next automatic batch (status 9), when that batch
    /// starts, epoch milliseconds as a string (the console's countdown); absent otherwise.
    #[serde(
        deserialize_with = "lenient::text",
        skip_serializing_if = "String::is_empty"
    )]
    pub next_batch_time: String,
}

/// `Targets.Items[]`: the application names the change order acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Targets {
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineInfoList {
    #[serde(rename = "PipelineInfo")]
    pub pipeline_info: Vec<PipelineInfo>,
}

/// One batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PipelineInfo {
    #[serde(deserialize_with = "lenient::text")]
    pub pipeline_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub pipeline_name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub pipeline_status: i64,
    /// Epoch milliseconds, as a string (empty before it starts).
    #[serde(deserialize_with = "lenient::text")]
    pub start_time: String,
    /// Epoch milliseconds, as a string.
    #[serde(deserialize_with = "lenient::text")]
    pub update_time: String,
    pub stage_detail_list: StageDetailList,
    pub stage_list: StageList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageDetailList {
    #[serde(rename = "StageDetailDTO")]
    pub stage_detail_dto: Vec<StageDetail>,
}

/// A stage with its tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StageDetail {
    #[serde(deserialize_with = "lenient::text")]
    pub stage_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub stage_name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub stage_status: i64,
    pub task_list: TaskList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskList {
    #[serde(rename = "TaskInfoDTO")]
    pub task_info_dto: Vec<TaskInfo>,
}

/// A task of a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskInfo {
    #[serde(deserialize_with = "lenient::text")]
    pub task_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub task_name: String,
    /// The status code as a string: the one status EDAS answers as text.
    #[serde(deserialize_with = "lenient::text")]
    pub task_status: String,
    #[serde(deserialize_with = "lenient::text")]
    pub task_message: String,
    #[serde(deserialize_with = "lenient::text")]
    pub task_error_code: String,
    #[serde(deserialize_with = "lenient::text")]
    pub task_error_message: String,
    #[serde(deserialize_with = "lenient::int")]
    pub task_error_ignorance: i64,
    /// 0: none, 2: manual (RetryChangeOrderTask).
    #[serde(deserialize_with = "lenient::int")]
    pub retry_type: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub show_manual_ignorance: bool,
}

impl TaskInfo {
    /// `TaskStatus` as a code, when it is one.
    pub fn status_code(&self) -> Option<i64> {
        self.task_status.trim().parse().ok()
    }
}

/// `StageId`, `StageName` and `Status`: how a stage, its result and an instance's part in it
/// name the stage (flattened into each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StageRef {
    #[serde(deserialize_with = "lenient::text")]
    pub stage_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub stage_name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub status: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageList {
    #[serde(rename = "StageInfoDTO")]
    pub stage_info_dto: Vec<StageInfo>,
}

/// A stage with its result and the instances it concerns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StageInfo {
    #[serde(flatten)]
    pub stage: StageRef,
    #[serde(rename = "StageResultDTO")]
    pub stage_result_dto: StageResult,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StageResult {
    pub service_stage: ServiceStage,
    #[serde(rename = "InstanceDTOList")]
    pub instance_dto_list: InstanceList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceStage {
    #[serde(flatten)]
    pub stage: StageRef,
    #[serde(deserialize_with = "lenient::text")]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceList {
    #[serde(rename = "InstanceDTO")]
    pub instance_dto: Vec<Instance>,
}

/// An instance (pod) as a stage sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Instance {
    #[serde(deserialize_with = "lenient::text")]
    pub instance_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub pod_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub instance_ip: String,
    /// `Running`, `Pending` or `Failed`.
    #[serde(deserialize_with = "lenient::text")]
    pub pod_status: String,
    #[serde(deserialize_with = "lenient::int")]
    pub status: i64,
    #[serde(rename = "InstanceStageDTOList")]
    pub instance_stage_dto_list: InstanceStageList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStageList {
    #[serde(rename = "InstanceStageDTO")]
    pub instance_stage_dto: Vec<InstanceStage>,
}

/// An instance's part in one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceStage {
    #[serde(flatten)]
    pub stage: StageRef,
    #[serde(deserialize_with = "lenient::text")]
    pub stage_message: String,
    /// ISO-8601 (unlike the pipeline's epoch-millisecond strings).
    #[serde(deserialize_with = "lenient::text")]
    pub start_time: String,
    /// ISO-8601.
    #[serde(deserialize_with = "lenient::text")]
    pub finish_time: String,
}

/// The body of ListRecentChangeOrder: `{"ChangeOrderList": {"ChangeOrder": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeOrderListBody {
    #[serde(rename = "ChangeOrderList")]
    pub change_order_list: ChangeOrderList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeOrderList {
    #[serde(rename = "ChangeOrder")]
    pub change_order: Vec<ChangeOrderSummary>,
}

/// One change order of ListRecentChangeOrder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderSummary {
    #[serde(flatten)]
    pub head: ChangeOrderHead,
    #[serde(deserialize_with = "lenient::text")]
    pub group_id: String,
    /// `pop` for the API.
    #[serde(deserialize_with = "lenient::text")]
    pub source: String,
    #[serde(deserialize_with = "lenient::text")]
    pub user_id: String,
}

/// The body of AbortChangeOrder, AbortAndRollbackChangeOrder and RollbackChangeOrder:
/// `{"Data": {"ChangeOrderId": "..."}}`, the rollback's change order when one started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderDataBody {
    pub data: ChangeOrderRef,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeOrderRef {
    #[serde(deserialize_with = "lenient::text")]
    pub change_order_id: String,
    /// edasd, AbortChangeOrder of a release: where the traffic goes now and what stays (absent
    /// from every other answer).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::text"
    )]
    pub traffic: String,
}

/// `{"Data": "..."}`: RetryChangeOrderTask's account of the retry, ImportK8sCluster's cluster
/// id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DataTextBody {
    #[serde(deserialize_with = "lenient::text")]
    pub data: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_quirks_encode_exactly() {
        let mut info = ChangeOrderInfo::default();
        info.head.status = 8;
        info.targets.items.push("demo".into());
        info.pipeline_info_list.pipeline_info.push(PipelineInfo {
            update_time: "1583911702158".into(),
            stage_detail_list: StageDetailList {
                stage_detail_dto: vec![StageDetail {
                    task_list: TaskList {
                        task_info_dto: vec![TaskInfo {
                            task_status: "3".into(),
                            ..Default::default()
                        }],
                    },
                    ..Default::default()
                }],
            },
            ..Default::default()
        });
        let body = serde_json::to_value(ChangeOrderInfoBody {
            change_order_info: info,
        })
        .unwrap();
        let info = &body["changeOrderInfo"];
        assert_eq!(info["Status"], 8);
        assert_eq!(info["Targets"]["Items"][0], "demo");
        let p = &info["PipelineInfoList"]["PipelineInfo"][0];
        assert_eq!(p["UpdateTime"], "1583911702158");
        assert_eq!(
            p["StageDetailList"]["StageDetailDTO"][0]["TaskList"]["TaskInfoDTO"][0]["TaskStatus"],
            "3"
        );
        assert!(p["StageList"]["StageInfoDTO"].is_array());
    }

    #[test]
    fn captured_change_order_answers_round_trip() {
        use crate::fixture::round_trip;
        let info: ChangeOrderInfoBody =
            round_trip(include_str!("../fixtures/get_change_order_info.json"));
        assert_eq!(info.change_order_info.head.status, 2);
        let list: ChangeOrderListBody =
            round_trip(include_str!("../fixtures/list_recent_change_order.json"));
        assert_eq!(list.change_order_list.change_order[0].source, "pop");
        let aborted: ChangeOrderDataBody =
            round_trip(include_str!("../fixtures/abort_change_order.json"));
        assert!(!aborted.data.change_order_id.is_empty());
    }

    #[test]
    fn decoding_is_lenient_about_numbers_strings_and_missing_keys() {
        let body: ChangeOrderInfoBody = serde_json::from_value(json!({
            "changeOrderInfo": {
                "Status": "2",
                "SupportRollback": "true",
                "PipelineInfoList": {"PipelineInfo": [{
                    "PipelineStatus": 1,
                    "UpdateTime": 1583911702158_i64,
                    "StageDetailList": {"StageDetailDTO": [{
                        "TaskList": {"TaskInfoDTO": [{"TaskStatus": 10}]}
                    }]}
                }]}
            }
        }))
        .unwrap();
        let info = body.change_order_info;
        assert_eq!((info.head.status, info.support_rollback), (2, true));
        let p = &info.pipeline_info_list.pipeline_info[0];
        assert_eq!(p.update_time, "1583911702158");
        let task = &p.stage_detail_list.stage_detail_dto[0]
            .task_list
            .task_info_dto[0];
        assert_eq!(task.status_code(), Some(10));
        assert!(p.stage_list.stage_info_dto.is_empty());
        let list: ChangeOrderListBody = serde_json::from_value(json!({
            "ChangeOrderList": {"ChangeOrder": [{"Status": 2, "BatchCount": "3", "CreateUserId": 7}]}
        }))
        .unwrap();
        let item = &list.change_order_list.change_order[0];
        assert_eq!((item.head.status, item.head.batch_count), (2, 3));
        assert_eq!(item.head.create_user_id, "7");
        let bad = serde_json::from_value::<ChangeOrderInfo>(json!({"Status": "busy"}));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("`busy` is not an integer")
        );
    }
}
