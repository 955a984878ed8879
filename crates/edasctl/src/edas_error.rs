//! The EDAS error shape `edasctl` prints on stderr when its input is invalid, so scripts read
//! the same `Code`/`Message` the API answers with.

use edas_spec::Violations;
use serde::Serialize;

/// Exit code for invalid input (parameters that the API would refuse with HTTP 400).
pub const INVALID_INPUT: u8 = 2;

/// `{"Code": …, "Message": …, "Violations": [{"Parameter", "Code", "Message"}…]}`: the API's
/// error body, plus every violation on its own so none is lost in the joined message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EdasError {
    /// The EDAS error code of the whole request.
    pub code: String,
    /// Every problem, joined with `; `.
    pub message: String,
    /// Each problem with the parameter it names.
    pub violations: Vec<ViolationBody>,
}

/// One violation in [`EdasError`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ViolationBody {
    /// The wire name of the parameter.
    pub parameter: String,
    /// The EDAS error code of this violation.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

impl EdasError {
    /// The error body of a request's violations.
    pub fn from_violations(v: &Violations) -> EdasError {
        EdasError {
            code: v.code().to_owned(),
            message: v.to_string(),
            violations: v
                .0
                .iter()
                .map(|x| ViolationBody {
                    parameter: x.parameter.clone(),
                    code: x.kind.code().to_owned(),
                    message: x.message.clone(),
                })
                .collect(),
        }
    }

    /// An error about one parameter (or about the input as a whole when `parameter` is empty).
    pub fn single(code: &str, parameter: &str, message: String) -> EdasError {
        let joined = if parameter.is_empty() {
            message.clone()
        } else {
            format!("{parameter}: {message}")
        };
        EdasError {
            code: code.to_owned(),
            message: joined,
            violations: vec![ViolationBody {
                parameter: parameter.to_owned(),
                code: code.to_owned(),
                message,
            }],
        }
    }

    /// Prints the body as one JSON line on stderr.
    pub fn print(&self) {
        match serde_json::to_string(self) {
            Ok(line) => eprintln!("{line}"),
            Err(e) => eprintln!("{{\"Code\":\"{}\",\"Message\":\"{e}\"}}", self.code),
        }
    }
}
