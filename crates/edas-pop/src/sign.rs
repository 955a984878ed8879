//! Signing, for edasd's own clients and tests. The verifier is tested against the official
//! SDKs' output, not only against this signer.

use std::time::SystemTime;

use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimePrinter;

use crate::Request;
use crate::v1::{self, EmptyValueForm};
use crate::v3::{self, KeyEncoding};

/// Headers to add to a request, in the order they should be sent.
pub type SignatureHeaders = Vec<(&'static str, String)>;

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The clock value cannot be written as an HTTP date.
    #[error("the signing time {0} is outside the range an HTTP date can express")]
    TimeOutOfRange(String),
    /// The request already carries a header the signer sets.
    #[error("the request already has a `{0}` header; the signer sets it")]
    HeaderAlreadySet(&'static str),
    /// V3 signs `host`, so the request must carry it.
    #[error(
        "ACS3-HMAC-SHA256 signs the `host` header: add it (e.g. `127.0.0.1:8080`) before signing"
    )]
    MissingHost,
    /// A header that takes part in the signature appears twice.
    #[error("the header `{0}` appears more than once")]
    DuplicateHeader(String),
}

/// Signs like the classic SDK (`Authorization: acs <AK>:<SIG>`, HMAC-SHA1).
///
/// The request should already carry its own headers (`x-acs-action`, `x-acs-version`, a
/// `Content-Type` for a form body). Returns the headers to add: `Date`, `Accept` (JSON, unless
/// the request has one), `Content-MD5` (when there is a body), `x-acs-signature-method`,
/// `x-acs-signature-version`, `x-acs-signature-nonce` (when given) and `Authorization`.
pub fn sign_v1(
    request: &Request,
    access_key_id: &str,
    access_key_secret: &str,
    now: SystemTime,
    nonce: Option<&str>,
) -> Result<SignatureHeaders, SignError> {
    let now = to_timestamp(now)?;
    let date = DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&now)
        .map_err(|_| SignError::TimeOutOfRange(now.to_string()))?;
    let mut added: SignatureHeaders = vec![("Date", date)];
    if request.header("accept").is_none() {
        added.push(("Accept", "application/json".to_string()));
    }
    if !request.body().is_empty() {
        added.push(("Content-MD5", v1::content_md5(request.body())));
    }
    added.push(("x-acs-signature-method", "HMAC-SHA1".to_string()));
    added.push(("x-acs-signature-version", "1.0".to_string()));
    if let Some(nonce) = nonce {
        added.push(("x-acs-signature-nonce", nonce.to_string()));
    }
    let signed = with_headers(request, &added)?;
    let string_to_sign = v1::string_to_sign(&signed, EmptyValueForm::KeyEquals)
        .map_err(|_| duplicate_of(&signed))?;
    let signature = v1::signature(access_key_secret, &string_to_sign);
    added.push(("Authorization", format!("acs {access_key_id}:{signature}")));
    Ok(added)
}

/// Signs like the Tea SDK's default `ACS3-HMAC-SHA256`, signing every header of the request
/// (which must include `host`) plus the ones added here: `x-acs-date`,
/// `x-acs-signature-nonce`, `x-acs-content-sha256` and finally `Authorization`.
pub fn sign_v3(
    request: &Request,
    access_key_id: &str,
    access_key_secret: &str,
    now: SystemTime,
    nonce: &str,
) -> Result<SignatureHeaders, SignError> {
    if request.header("host").is_none() {
        return Err(SignError::MissingHost);
    }
    let now = to_timestamp(now)?;
    let date = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let hashed_payload = v3::sha256_hex(request.body());
    let mut added: SignatureHeaders = vec![
        ("x-acs-date", date),
        ("x-acs-signature-nonce", nonce.to_string()),
        ("x-acs-content-sha256", hashed_payload.clone()),
    ];
    let signed = with_headers(request, &added)?;
    let mut names: Vec<String> = signed.headers().iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    let canonical = v3::canonical_request(&signed, &names, &hashed_payload, KeyEncoding::Raw)
        .map_err(|_| duplicate_of(&signed))?;
    let signature = hex::encode(v3::signature(
        access_key_secret,
        &v3::string_to_sign(&canonical),
    ));
    added.push((
        "Authorization",
        format!(
            "{} Credential={access_key_id},SignedHeaders={},Signature={signature}",
            v3::ALGORITHM,
            names.join(";")
        ),
    ));
    Ok(added)
}

fn to_timestamp(now: SystemTime) -> Result<Timestamp, SignError> {
    Timestamp::try_from(now).map_err(|_| SignError::TimeOutOfRange(format!("{now:?}")))
}

/// The request plus the headers the signer adds, refusing to overwrite any.
fn with_headers(request: &Request, added: &SignatureHeaders) -> Result<Request, SignError> {
    let mut signed = request.clone();
    for (name, value) in added {
        if request.header(name).is_some() {
            return Err(SignError::HeaderAlreadySet(name));
        }
        signed = signed.with_header(name, value.clone());
    }
    if request.header("authorization").is_some() {
        return Err(SignError::HeaderAlreadySet("Authorization"));
    }
    Ok(signed)
}

fn duplicate_of(request: &Request) -> SignError {
    let mut names: Vec<&str> = request.headers().iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let repeated = names
        .windows(2)
        .find(|w| w[0] == w[1])
        .map_or("?", |w| w[0]);
    SignError::DuplicateHeader(repeated.to_string())
}
