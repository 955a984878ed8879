//! The envelope every answer shares (edas-api.md §3.1, §3.3): `Code`, `Message` and `RequestId`
//! beside the operation's keys. `Code` is the integer 200 on success and the error's code, a
//! string, on failure; an error is never a 2xx.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The envelope of a success, the operation's keys beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Success {
    /// 200.
    #[serde(deserialize_with = "lenient::int")]
    pub code: i64,
    /// `success`.
    #[serde(deserialize_with = "lenient::text")]
    pub message: String,
    #[serde(deserialize_with = "lenient::text")]
    pub request_id: String,
}

impl Success {
    /// The envelope edasd answers with.
    pub fn new(request_id: &str) -> Success {
        Success {
            code: 200,
            message: "success".to_owned(),
            request_id: request_id.to_owned(),
        }
    }
}

/// The whole body of an error, which the SDKs parse into their exceptions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorBody {
    /// The error code (`InvalidParameter`, …); a number from some EDAS servers, read as text.
    #[serde(deserialize_with = "lenient::text")]
    pub code: String,
    #[serde(deserialize_with = "lenient::text")]
    pub message: String,
    #[serde(deserialize_with = "lenient::text")]
    pub request_id: String,
}

/// The body of an operation that answers with the envelope only (ContinuePipeline, the
/// ConfigMap and Secret changes, the admin API's deletions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_captured_error_round_trips_and_a_numeric_code_is_read_as_text() {
        let text = include_str!("../fixtures/error.json");
        let answer: serde_json::Value = serde_json::from_str(text).unwrap();
        let error: ErrorBody = serde_json::from_value(answer.clone()).unwrap();
        assert_eq!(error.code, "InvalidAppId.NotFound");
        assert_eq!(serde_json::to_value(&error).unwrap(), answer);
        let numeric: ErrorBody = serde_json::from_value(json!({"Code": 601})).unwrap();
        assert_eq!(numeric.code, "601");
        let success = serde_json::to_value(Success::new("r-1")).unwrap();
        assert_eq!(
            success,
            json!({"Code": 200, "Message": "success", "RequestId": "r-1"})
        );
        assert_eq!(serde_json::to_value(Empty {}).unwrap(), json!({}));
    }
}
