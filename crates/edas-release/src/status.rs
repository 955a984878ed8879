//! EDAS status codes, shared by change orders, pipelines, stages, tasks and instances.

use serde::{Deserialize, Serialize};

/// The status of a change order, pipeline (batch), stage, task or instance, with the numeric codes
/// EDAS puts on the wire (edas-api.md §2.2). Codes 4, 5 and 7 ("partially successful") are never
/// produced here: a batch either finishes or fails the whole order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 0: created, not started.
    Ready,
    /// 1: executing.
    InProgress,
    /// 2: finished successfully.
    Success,
    /// 3: failed (a batch timed out or an instance failed); retryable.
    Failed,
    /// 6: terminated by AbortChangeOrder / AbortAndRollbackChangeOrder.
    Terminated,
    /// 8: waiting for ContinuePipeline (manual phased release).
    WaitingForConfirmation,
    /// 9: waiting for the next automatic batch.
    WaitingForNextBatch,
    /// 10: failed because the system (runtime, engine) could not carry out a step; retryable.
    SystemFailure,
}

impl Status {
    /// The EDAS wire code.
    pub fn code(self) -> i32 {
        match self {
            Status::Ready => 0,
            Status::InProgress => 1,
            Status::Success => 2,
            Status::Failed => 3,
            Status::Terminated => 6,
            Status::WaitingForConfirmation => 8,
            Status::WaitingForNextBatch => 9,
            Status::SystemFailure => 10,
        }
    }

    /// The status for a wire code, if it is one this crate knows.
    pub fn from_code(code: i32) -> Option<Status> {
        Some(match code {
            0 => Status::Ready,
            1 => Status::InProgress,
            2 => Status::Success,
            3 => Status::Failed,
            6 => Status::Terminated,
            8 => Status::WaitingForConfirmation,
            9 => Status::WaitingForNextBatch,
            10 => Status::SystemFailure,
            _ => return None,
        })
    }

    /// True while a change order in this status holds the application: one active change order per
    /// application, so another change is refused meanwhile (HTTP 409).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Ready
                | Status::InProgress
                | Status::WaitingForConfirmation
                | Status::WaitingForNextBatch
        )
    }

    /// True for the failure statuses that RetryChangeOrderTask can resume from.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::SystemFailure)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Status::Ready => "ready",
            Status::InProgress => "in progress",
            Status::Success => "successful",
            Status::Failed => "failed",
            Status::Terminated => "terminated",
            Status::WaitingForConfirmation => "waiting for manual confirmation",
            Status::WaitingForNextBatch => "waiting for the next automatic batch",
            Status::SystemFailure => "failed due to a system exception",
        };
        write!(f, "{text} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_edas() {
        let all = [
            (Status::Ready, 0),
            (Status::InProgress, 1),
            (Status::Success, 2),
            (Status::Failed, 3),
            (Status::Terminated, 6),
            (Status::WaitingForConfirmation, 8),
            (Status::WaitingForNextBatch, 9),
            (Status::SystemFailure, 10),
        ];
        for (status, code) in all {
            assert_eq!(status.code(), code);
            assert_eq!(Status::from_code(code), Some(status));
        }
        for code in [-1, 4, 5, 7, 11] {
            assert_eq!(Status::from_code(code), None);
        }
    }
}
