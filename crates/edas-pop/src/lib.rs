//! Alibaba Cloud POP/ROA request signatures, as the official EDAS SDKs produce them: the server
//! side (parse, then verify) and a signer for edasd's own clients and tests.
//!
//! **What it is:** a sans-IO library. It sees a request only through [`Request`] (method, raw
//! path, decoded query, headers, body bytes), takes the time as a parameter and keeps replay
//! state in a [`NonceCache`] the caller owns. It never reads a clock, a socket or a file.
//!
//! **What it is not:** an HTTP server, a key store or a policy engine. Looking up the secret of an
//! access key id, answering `InvalidAccessKeyId.NotFound` and authorizing the action belong to
//! the server; [`codes`] holds the error-code table both share.
//!
//! # Where to start
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use edas_pop::{NonceCache, Request, parse, sign_v1, verify};
//!
//! // A client signs (edasctl, tests)…
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//! let mut request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps")
//!     .with_raw_query("AppId=a1&ChangeOrderDesc=deploy+v1")?
//!     .with_header("x-acs-action", "DeployK8sApplication")
//!     .with_header("x-acs-version", "2017-08-01");
//! for (name, value) in sign_v1(&request, "testid", "testsecret", now, Some("n-1"))? {
//!     request = request.with_header(name, value);
//! }
//!
//! // …the server verifies in two phases, looking the secret up in between.
//! let mut nonces = NonceCache::default();
//! let parsed = parse(&request)?;
//! assert_eq!(parsed.access_key_id(), "testid");
//! verify(&parsed, &request, "testsecret", now, &mut nonces)?;
//! // The same request again is a replay.
//! let replay = verify(&parsed, &request, "testsecret", now, &mut nonces).unwrap_err();
//! assert_eq!(replay.code(), "SignatureNonceUsed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The server shares one [`NonceCache`] between requests (behind a mutex: `verify` takes it by
//! `&mut`), passes HTTP/2's `:authority` as `host`, and acts only on headers the signature
//! covers ([`ParsedSignature::covers_header`]).
//!
//! On failure, answer with [`VerifyError::http_status`] and a body
//! `{"Code": err.code(), "Message": err.to_string(), "RequestId": …}`.
//!
//! # Schemes (edas-api.md §4)
//!
//! * **V1** `acs <AK>:<base64 HMAC-SHA1>`: the classic SDK and the Tea SDK's
//!   `signature_algorithm='v2'`. The string-to-sign is METHOD, Accept, Content-MD5, Content-Type,
//!   Date, the sorted `x-acs-*` headers, then path + `?` + the sorted *decoded* query as
//!   `key=value`. An empty value is `key=` for the classic SDK and `key` for Tea v2; a signature
//!   matching either form is accepted. The body is **not** signed in V1, only its `Content-MD5`
//!   header: when that header is present it must match the body (an empty body included); the
//!   Tea v2 form operations send none, so their body is unprotected by the protocol itself.
//! * **V3** `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=<hex>`: the canonical
//!   request is rebuilt from the headers the client lists in SignedHeaders (lower-cased, sorted),
//!   the query re-encoded with RFC 3986 (`%20` for a space) and the body's SHA-256, which must
//!   also equal `x-acs-content-sha256`.
//!
//! # Documented decisions
//!
//! * **Clock window:** a request whose `Date` (V1, RFC 1123) or `x-acs-date` (V3, ISO 8601) is
//!   more than [`MAX_CLOCK_SKEW`] (15 minutes) before `now`, or more than [`MAX_FUTURE_SKEW`]
//!   (5 minutes) after it, is refused with `IllegalTimestamp`. EDAS documents no limit; other
//!   ROA products document 15 minutes; the shorter future window stops a caller from dating
//!   requests ahead to keep their nonces remembered for up to 30 minutes. A
//!   missing date header is `IllegalTimestamp` too (Alibaba's meaning of that code), a malformed
//!   one `InvalidTimeStamp.Format`.
//! * **Nonces:** an `x-acs-signature-nonce` already accepted for the same access key within the
//!   window is refused with `SignatureNonceUsed`. The [`NonceCache`] forgets a nonce once its
//!   request date is outside the window (the date check then refuses a replay on its own).
//!   Every access key has its own share of the cache, so no key can evict or crowd out another
//!   key's nonces; a key whose share is full has its oldest-dated requests refused
//!   (`ServiceUnavailable`) rather than a live nonce of it forgotten.
//! * **Nonce-less V1:** the classic SDK sends no nonce, so a V1 request without one is accepted
//!   and relies on the date window alone: it can be replayed verbatim for up to 15 minutes.
//!   A nonce, when present, is part of the V1 string-to-sign (it is an `x-acs-*` header).
//! * **Mandatory V3 signed headers:** `host`, `x-acs-date` and `x-acs-content-sha256` must be
//!   present and signed; `x-acs-signature-nonce`, `x-acs-action`, `x-acs-version`,
//!   `content-type` and `content-md5` must be signed whenever present
//!   ([`V3_SIGNED_WHEN_PRESENT`]): the verifier or the server acts on them, so an unsigned one
//!   could be altered by whoever replays the request. Other headers are signed as the client
//!   lists them. Behind HTTP/2 the server must pass `:authority` as `host`.
//! * **STS:** a request with `x-acs-security-token` is refused with
//!   `InvalidSecurityToken.NotSupported`.
//! * **Comparison:** signatures are compared in constant time (`subtle`); when two
//!   canonical forms are possible (empty values in V1, names needing encoding in V3) both are
//!   computed and compared.
//! * **`SignatureDoesNotMatch`** is HTTP 400 and its message carries the server's string-to-sign
//!   after `server string to sign is:`, like Alibaba's gateway; the classic SDK splits that
//!   message on `:` and compares, so the message always contains a colon.

mod error;
mod form;
mod nonce;
mod request;
mod sign;
mod v1;
mod v3;
mod verify;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

pub use error::{VerifyError, codes};
pub use form::{
    FormDecodeError, POP_ENCODE_SET, decode_form, encode_form, form_encode_component,
    rfc3986_encode,
};
pub use nonce::{DEFAULT_NONCE_CAPACITY, MAX_NONCE_LEN, NonceCache};
pub use request::Request;
pub use sign::{SignError, SignatureHeaders, sign_v1, sign_v3};
pub use verify::{
    MAX_CLOCK_SKEW, MAX_FUTURE_SKEW, NONCE_HEADER, ParsedSignature, SECURITY_TOKEN_HEADER,
    SignatureVersion, V3_SIGNED_WHEN_PRESENT, parse, verify,
};
