//! Violations: what is wrong with a request, one entry per problem, each naming its parameter.

use std::fmt;

/// The class of a violation; it decides the EDAS error code the API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A required parameter is absent (or empty where a value is required).
    Missing,
    /// A parameter's value is malformed or out of range.
    Invalid,
    /// A well-formed value that this server deliberately does not support.
    NotSupported,
    /// A parameter the operation does not have.
    Unknown,
}

impl ViolationKind {
    /// The EDAS error code for this class of violation (HTTP 400 for all of them).
    pub fn code(self) -> &'static str {
        match self {
            ViolationKind::Missing => "MissingParameter",
            ViolationKind::Invalid => "InvalidParameter",
            ViolationKind::NotSupported => "InvalidParameter.NotSupported",
            ViolationKind::Unknown => "InvalidParameter.Unknown",
        }
    }
}

/// One problem with one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The wire name of the parameter, e.g. `Envs` (a JSON path inside it follows in the message).
    pub parameter: String,
    /// The class of problem.
    pub kind: ViolationKind,
    /// What is wrong, for a human.
    pub message: String,
}

impl Violation {
    pub(crate) fn new(parameter: &str, kind: ViolationKind, message: impl Into<String>) -> Self {
        Violation {
            parameter: parameter.to_owned(),
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(parameter, ViolationKind::Invalid, message)
    }
    pub(crate) fn missing(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(parameter, ViolationKind::Missing, message)
    }
    pub(crate) fn unsupported(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(parameter, ViolationKind::NotSupported, message)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.message)
    }
}

/// Every violation of one request, in parameter order. Never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// The EDAS code of the whole request: the first violation's code, so a missing required
    /// parameter is reported as `MissingParameter` as clients expect.
    pub fn code(&self) -> &'static str {
        self.0
            .iter()
            .map(|v| v.kind)
            .min_by_key(|k| match k {
                ViolationKind::Missing => 0,
                ViolationKind::Invalid => 1,
                ViolationKind::Unknown => 2,
                ViolationKind::NotSupported => 3,
            })
            .unwrap_or(ViolationKind::Invalid)
            .code()
    }

    /// Whether any violation names `parameter`.
    pub fn names(&self, parameter: &str) -> bool {
        self.0.iter().any(|v| v.parameter == parameter)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}
