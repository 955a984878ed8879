//! Verification errors and the POP error-code table.

use crate::form::FormDecodeError;

/// The error codes this crate (and the server, for key look-ups) answers with, as POP clients know
/// them, with their HTTP status. One table, so the server and docs/ERRORS.md cannot drift apart.
///
/// Statuses follow Alibaba Cloud's generic client-error table (`IncompleteSignature`,
/// `IllegalTimestamp` 400; `InvalidAccessKeyId.NotFound` 404) and the classic SDK, which only
/// recognises a bad signature as HTTP **400** + `SignatureDoesNotMatch`. No reference gives
/// EDAS's status for a stale date or a reused nonce; both are request errors the client must fix
/// by re-signing, so they are 400 like `IllegalTimestamp` in the generic table.
pub mod codes {
    /// The Authorization header is missing, malformed, uses an unsupported algorithm, or a header
    /// that must be signed is not.
    pub const INCOMPLETE_SIGNATURE: &str = "IncompleteSignature";
    /// The signature does not match the server's computation.
    pub const SIGNATURE_DOES_NOT_MATCH: &str = "SignatureDoesNotMatch";
    /// `Date` / `x-acs-date` is missing or more than the allowed skew away from the server clock.
    pub const ILLEGAL_TIMESTAMP: &str = "IllegalTimestamp";
    /// `Date` / `x-acs-date` is present but not in the expected format.
    pub const INVALID_TIMESTAMP_FORMAT: &str = "InvalidTimeStamp.Format";
    /// The `x-acs-signature-nonce` was already used within the replay window.
    pub const SIGNATURE_NONCE_USED: &str = "SignatureNonceUsed";
    /// `Content-MD5` does not match the body.
    pub const CONTENT_MD5_NOT_MATCHED: &str = "ContentMD5NotMatched";
    /// `x-acs-content-sha256` does not match the body.
    pub const CONTENT_SHA256_NOT_MATCHED: &str = "ContentSHA256NotMatched";
    /// STS security tokens are not supported by this server.
    pub const SECURITY_TOKEN_NOT_SUPPORTED: &str = "InvalidSecurityToken.NotSupported";
    /// The access key id is unknown (decided by the server after [`crate::parse`]).
    pub const INVALID_ACCESS_KEY_ID_NOT_FOUND: &str = "InvalidAccessKeyId.NotFound";
    /// The access key exists but is disabled (decided by the server).
    pub const INVALID_ACCESS_KEY_ID_INACTIVE: &str = "InvalidAccessKeyId.Inactive";
    /// The query string could not be decoded.
    pub const INVALID_PARAMETER: &str = "InvalidParameter";
    /// The nonce cache is full of live nonces: fail closed rather than forget one.
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";

    /// Every code above with its HTTP status, for the server's error table.
    pub const TABLE: &[(&str, u16)] = &[
        (INCOMPLETE_SIGNATURE, 400),
        (SIGNATURE_DOES_NOT_MATCH, 400),
        (ILLEGAL_TIMESTAMP, 400),
        (INVALID_TIMESTAMP_FORMAT, 400),
        (SIGNATURE_NONCE_USED, 400),
        (CONTENT_MD5_NOT_MATCHED, 400),
        (CONTENT_SHA256_NOT_MATCHED, 400),
        (SECURITY_TOKEN_NOT_SUPPORTED, 400),
        (INVALID_ACCESS_KEY_ID_NOT_FOUND, 404),
        (INVALID_ACCESS_KEY_ID_INACTIVE, 400),
        (INVALID_PARAMETER, 400),
        (SERVICE_UNAVAILABLE, 503),
    ];

    /// The HTTP status of a code in [`TABLE`].
    pub fn http_status(code: &str) -> Option<u16> {
        TABLE.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
    }
}

/// Why a request's signature was refused. Every variant maps to a POP error [`code`](Self::code)
/// and an [`http_status`](Self::http_status); its `Display` text is meant for the `Message` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization` header.
    #[error(
        "the request is not signed: the Authorization header is missing (expected `acs <AccessKeyId>:<Signature>` or `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`)"
    )]
    MissingAuthorization,
    /// The `Authorization` header cannot be parsed.
    #[error("the Authorization header is malformed: {reason}")]
    MalformedAuthorization {
        /// What was wrong.
        reason: String,
    },
    /// A signature algorithm other than `acs` (HMAC-SHA1) or `ACS3-HMAC-SHA256`.
    #[error(
        "the signature algorithm `{algorithm}` is not supported; use `acs` (HMAC-SHA1) or `ACS3-HMAC-SHA256`"
    )]
    UnsupportedAlgorithm {
        /// The algorithm named by the client.
        algorithm: String,
    },
    /// A header that takes part in the signature appears more than once.
    #[error("the header `{name}` appears more than once; a signed header must appear once")]
    DuplicateHeader {
        /// Lower-cased header name.
        name: String,
    },
    /// V3: a header this server relies on is present (or required) but not listed in SignedHeaders.
    #[error("the header `{name}` must be signed: add it to SignedHeaders (signed here: {signed})")]
    UnsignedHeader {
        /// Lower-cased header name.
        name: String,
        /// The SignedHeaders list received.
        signed: String,
    },
    /// V3: a header listed in SignedHeaders is not in the request.
    #[error("the header `{name}` is listed in SignedHeaders but is not in the request")]
    SignedHeaderAbsent {
        /// Lower-cased header name.
        name: String,
    },
    /// V3: a header the scheme requires is missing.
    #[error("the header `{name}` is required for ACS3-HMAC-SHA256: {why}")]
    MissingHeader {
        /// Lower-cased header name.
        name: &'static str,
        /// Why it is required.
        why: &'static str,
    },
    /// V3: `x-acs-content-sha256` is not the SHA-256 of the body received.
    #[error("x-acs-content-sha256 is `{received}` but the body received hashes to `{computed}`")]
    ContentSha256Mismatch {
        /// The header value.
        received: String,
        /// Lowercase hex SHA-256 of the body.
        computed: String,
    },
    /// V1: `Content-MD5` is not the MD5 of the body received.
    #[error("Content-MD5 is `{received}` but the body received hashes to `{computed}`")]
    ContentMd5Mismatch {
        /// The header value.
        received: String,
        /// base64 MD5 of the body.
        computed: String,
    },
    /// The date header the scheme requires is missing.
    #[error(
        "the `{header}` header is required ({format}); the request cannot be checked for freshness without it"
    )]
    MissingDate {
        /// `Date` (V1) or `x-acs-date` (V3).
        header: &'static str,
        /// The expected format.
        format: &'static str,
    },
    /// The date header is not in the expected format.
    #[error("the `{header}` header `{value}` is not a valid date; expected {format}")]
    MalformedDate {
        /// `Date` (V1) or `x-acs-date` (V3).
        header: &'static str,
        /// The value received (truncated to 100 characters).
        value: String,
        /// The expected format.
        format: &'static str,
    },
    /// The request date is too far from the server clock.
    #[error(
        "the `{header}` header `{value}` is {skew_seconds} s away from the server time {server_time}; at most {limit_seconds} s are allowed in that direction (check the client clock)"
    )]
    StaleDate {
        /// `Date` (V1) or `x-acs-date` (V3).
        header: &'static str,
        /// The value received.
        value: String,
        /// Absolute distance to `now`, in seconds.
        skew_seconds: i64,
        /// The limit, in seconds.
        limit_seconds: i64,
        /// The server time, RFC 3339.
        server_time: String,
    },
    /// The nonce was already used within the replay window.
    #[error(
        "the x-acs-signature-nonce `{nonce}` was already used; send a fresh random nonce with every request"
    )]
    NonceUsed {
        /// The nonce received.
        nonce: String,
    },
    /// The nonce is empty, too long or not printable ASCII.
    #[error("the x-acs-signature-nonce is invalid: {reason}")]
    InvalidNonce {
        /// What was wrong.
        reason: String,
    },
    /// Under a load beyond the nonce cache's capacity, the request is dated as early as nonces
    /// already forgotten, so a replay could not be detected.
    #[error(
        "too many signed requests within the replay window ({capacity} nonces) to check this one for replay; sign it again with the current time and retry"
    )]
    NonceCacheFull {
        /// The cache capacity.
        capacity: usize,
    },
    /// The request carries an STS security token.
    #[error(
        "STS security tokens (x-acs-security-token) are not supported by this server; sign with a plain access key pair"
    )]
    SecurityTokenNotSupported,
    /// The query string cannot be decoded.
    #[error("the query string is malformed: {0}")]
    MalformedQuery(#[from] FormDecodeError),
    /// The signature does not match. The message carries the server's string-to-sign (as
    /// Alibaba's gateway does) so SDK users can compare it with theirs.
    #[error(
        "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}{}",
        canonical_request.as_ref().map(|c| format!("\ncanonical request is:\n{c}")).unwrap_or_default()
    )]
    SignatureDoesNotMatch {
        /// The server's string-to-sign (the first candidate when several were tried).
        string_to_sign: String,
        /// V3 only: the server's canonical request.
        canonical_request: Option<String>,
    },
}

impl VerifyError {
    /// The POP error code for the response body's `Code`.
    pub fn code(&self) -> &'static str {
        use VerifyError::*;
        match self {
            MissingAuthorization
            | MalformedAuthorization { .. }
            | UnsupportedAlgorithm { .. }
            | DuplicateHeader { .. }
            | UnsignedHeader { .. }
            | SignedHeaderAbsent { .. }
            | MissingHeader { .. }
            | InvalidNonce { .. } => codes::INCOMPLETE_SIGNATURE,
            ContentSha256Mismatch { .. } => codes::CONTENT_SHA256_NOT_MATCHED,
            ContentMd5Mismatch { .. } => codes::CONTENT_MD5_NOT_MATCHED,
            MissingDate { .. } | StaleDate { .. } => codes::ILLEGAL_TIMESTAMP,
            MalformedDate { .. } => codes::INVALID_TIMESTAMP_FORMAT,
            NonceUsed { .. } => codes::SIGNATURE_NONCE_USED,
            NonceCacheFull { .. } => codes::SERVICE_UNAVAILABLE,
            SecurityTokenNotSupported => codes::SECURITY_TOKEN_NOT_SUPPORTED,
            MalformedQuery(_) => codes::INVALID_PARAMETER,
            SignatureDoesNotMatch { .. } => codes::SIGNATURE_DOES_NOT_MATCH,
        }
    }

    /// The HTTP status to answer with (from [`codes::TABLE`]).
    pub fn http_status(&self) -> u16 {
        codes::http_status(self.code()).unwrap_or(400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_signature_mismatch_is_400() {
        let errors = [
            VerifyError::MissingAuthorization,
            VerifyError::SecurityTokenNotSupported,
            VerifyError::NonceCacheFull { capacity: 1 },
            VerifyError::SignatureDoesNotMatch {
                string_to_sign: "GET\n".into(),
                canonical_request: None,
            },
        ];
        for error in &errors {
            assert!(codes::http_status(error.code()).is_some(), "{error:?}");
        }
        assert_eq!(errors[3].http_status(), 400);
        assert_eq!(errors[2].http_status(), 503);
        assert_eq!(
            codes::http_status(codes::INVALID_ACCESS_KEY_ID_NOT_FOUND),
            Some(404)
        );
    }

    #[test]
    fn mismatch_message_has_the_colon_the_classic_sdk_splits_on() {
        // aliyunsdkcore does `Message.split(':')[1]` on HTTP 400 SignatureDoesNotMatch and would
        // crash with an IndexError on a message without a colon.
        let error = VerifyError::SignatureDoesNotMatch {
            string_to_sign: "POST\napplication/json".into(),
            canonical_request: None,
        };
        let message = error.to_string();
        assert_eq!(message.split(':').nth(1), Some("POST\napplication/json"));
    }
}
