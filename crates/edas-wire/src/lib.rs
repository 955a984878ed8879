//! The EDAS 2017-08-01 response bodies as typed structs, with the exact keys and quirks the
//! official SDK models read (edas-api.md): XML-style wrapper objects around most lists
//! (`PipelineInfoList.PipelineInfo[]`), `TaskStatus` as a string while every other status is
//! a number, pipeline times as epoch-millisecond strings but instance-stage times as ISO-8601,
//! GetK8sApplication's `Applcation` and GetChangeOrderInfo's `changeOrderInfo`. Plus edasd's
//! own admin API's request and response bodies ([`admin`]).
//!
//! One module per area; each `…Body` struct is what an operation answers beside the envelope
//! ([`envelope`]). edas-api builds these and encodes them; edasctl decodes them. Decoding is
//! lenient the way EDAS itself is inconsistent: every field defaults when absent, and numeric
//! fields accept a number or a numeric string (and the string fields a number), so edasctl
//! reads answers of real EDAS too. Encoding is exact: an optional field is `null` where edasd
//! has always answered `null`. Depends on serde (and serde_json for the documents it carries
//! opaque: policy documents, audit details, the parameters' own JSON): both ends share it
//! without sharing anything else.

pub mod admin;
pub mod application;
pub mod catalog;
pub mod change_order;
pub mod cluster;
pub mod configuration;
pub mod envelope;
pub mod ingress;
pub mod instances;
mod lenient;
pub mod notify;
pub mod precheck;
pub mod scaling;
pub mod service;

pub use change_order::*;

/// Captured answers of edasd (`fixtures/`, one per operation) decoded and encoded again.
#[cfg(test)]
pub(crate) mod fixture {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use crate::envelope::Success;

    /// Decodes a captured success answer into its body `T` and encodes the envelope and `T`
    /// again: the very same JSON must come back, so `T` neither drops, renames nor retypes a
    /// key (and `null` stays `null`).
    pub fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
        let answer: Value = serde_json::from_str(text).expect("the fixture is JSON");
        let envelope: Success = serde_json::from_value(answer.clone()).expect("an envelope");
        assert_eq!((envelope.code, envelope.message.as_str()), (200, "success"));
        let body: T = serde_json::from_value(answer.clone()).expect("the body decodes");
        let Value::Object(mut encoded) = serde_json::to_value(&body).expect("encodes") else {
            panic!("a body is a JSON object");
        };
        let Value::Object(head) = serde_json::to_value(&envelope).expect("encodes") else {
            panic!("the envelope is a JSON object");
        };
        encoded.extend(head);
        assert_eq!(Value::Object(encoded), answer);
        body
    }
}
