//! The EDAS 2017-08-01 response bodies as typed structs, with the exact keys and quirks the
//! official SDK models read (edas-api.md): XML-style wrapper objects around every list
//! (`PipelineInfoList.PipelineInfo[]`), `TaskStatus` as a string while every other status is
//! a number, pipeline times as epoch-millisecond strings but instance-stage times as ISO-8601.
//!
//! edas-api builds these and encodes them; edasctl decodes them. Decoding is lenient the way
//! EDAS itself is inconsistent: every field defaults when absent, and numeric fields accept a
//! number or a numeric string (and the string fields a number), so edasctl reads answers of
//! real EDAS too. Encoding is exact. Depends on serde only: both ends share it without
//! sharing anything else.

mod change_order;
mod lenient;

pub use change_order::*;
