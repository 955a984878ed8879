//! Parsing the Authorization header and verifying a request against a secret.

use std::time::SystemTime;

use jiff::fmt::rfc2822::DateTimeParser;
use jiff::{SignedDuration, Timestamp};
use subtle::ConstantTimeEq;

use crate::nonce::NonceCache;
use crate::v1::{self, EmptyValueForm};
use crate::v3::{self, KeyEncoding};
use crate::{Request, VerifyError};

/// The largest accepted distance between a request's signed date and the server clock.
/// EDAS does not document one; other ROA products document 15 minutes.
pub const MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(15);

/// How far ahead of the server clock a request may be dated. Much less than
/// [`MAX_CLOCK_SKEW`]: a request dated ahead occupies a nonce entry for its date plus the skew
/// limit, so a far-future date would let a caller pin entries for up to 30 minutes; 5 minutes
/// covers real clock drift (NTP-synchronised clients are within seconds).
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Access key ids longer than this are refused while parsing.
const MAX_ACCESS_KEY_ID_LEN: usize = 128;

/// `x-acs-signature-nonce`.
pub const NONCE_HEADER: &str = "x-acs-signature-nonce";
/// `x-acs-security-token` (STS), refused.
pub const SECURITY_TOKEN_HEADER: &str = "x-acs-security-token";

const RFC1123_FORMAT: &str = "RFC 1123 in GMT, e.g. `Thu, 01 Jan 2026 00:00:00 GMT`";
const ISO8601_FORMAT: &str = "ISO 8601 in UTC, e.g. `2026-01-01T00:00:00Z`";

/// Headers that must be in a V3 request's SignedHeaders whenever they are in the request:
/// the verifier or the server acts on them, so an unsigned one could be swapped by a replayer.
/// `host`, `x-acs-date` and `x-acs-content-sha256` are additionally required to be present.
pub const V3_SIGNED_WHEN_PRESENT: &[&str] = &[
    "host",
    "x-acs-date",
    "x-acs-content-sha256",
    NONCE_HEADER,
    "x-acs-action",
    "x-acs-version",
    "content-type",
    "content-md5",
];

/// Which signature scheme a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `acs <AK>:<SIG>`, HMAC-SHA1 (classic SDK; Tea SDK with `signature_algorithm='v2'`).
    V1HmacSha1,
    /// `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` (Tea SDK default).
    V3HmacSha256,
}

/// A syntactically valid Authorization header, before the secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    access_key_id: String,
    scheme: Scheme,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    V1 {
        signature: String,
    },
    V3 {
        signed_headers: Vec<String>,
        signature: [u8; 32],
    },
}

impl ParsedSignature {
    /// The access key id the client claims; look its secret up, then call [`verify`].
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The scheme used.
    pub fn version(&self) -> SignatureVersion {
        match self.scheme {
            Scheme::V1 { .. } => SignatureVersion::V1HmacSha1,
            Scheme::V3 { .. } => SignatureVersion::V3HmacSha256,
        }
    }

    /// Whether the signature covers this header's value, i.e. whether the server may act on it
    /// (V1 covers Accept, Content-MD5, Content-Type, Date and every `x-acs-*` header; V3 covers
    /// what SignedHeaders lists). Meaningful once [`verify`] succeeded.
    pub fn covers_header(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match &self.scheme {
            Scheme::V1 { .. } => {
                name.starts_with("x-acs-") || v1::LEADING_HEADERS.contains(&name.as_str())
            }
            Scheme::V3 { signed_headers, .. } => signed_headers.contains(&name),
        }
    }

    /// V3: the lower-cased, sorted SignedHeaders list; V1: empty (V1 signs a fixed set).
    pub fn signed_headers(&self) -> &[String] {
        match &self.scheme {
            Scheme::V1 { .. } => &[],
            Scheme::V3 { signed_headers, .. } => signed_headers,
        }
    }
}

/// Phase one: reads the Authorization header (and refuses STS tokens) without any secret.
pub fn parse(request: &Request) -> Result<ParsedSignature, VerifyError> {
    if request.header(SECURITY_TOKEN_HEADER).is_some() {
        return Err(VerifyError::SecurityTokenNotSupported);
    }
    let authorization = request
        .single_header("authorization")?
        .ok_or(VerifyError::MissingAuthorization)?
        .trim();
    if let Some(credentials) = authorization.strip_prefix("acs ") {
        return parse_v1(credentials.trim());
    }
    match authorization.split_once(' ') {
        Some((algorithm, fields)) if algorithm == v3::ALGORITHM => parse_v3(fields.trim()),
        Some((algorithm, _)) if !algorithm.is_empty() && !algorithm.contains([',', '=', ':']) => {
            Err(VerifyError::UnsupportedAlgorithm {
                algorithm: truncate(algorithm, 40),
            })
        }
        _ => Err(malformed(
            "expected `acs <AccessKeyId>:<Signature>` or `ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2>,Signature=<hex>`",
        )),
    }
}

fn parse_v1(credentials: &str) -> Result<ParsedSignature, VerifyError> {
    let (access_key_id, signature) = credentials
        .split_once(':')
        .ok_or_else(|| malformed("`acs` must be followed by `<AccessKeyId>:<Signature>`"))?;
    validate_access_key_id(access_key_id)?;
    if signature.is_empty() || signature.len() > 64 || !signature.bytes().all(is_base64_byte) {
        return Err(malformed(
            "the signature after `acs <AccessKeyId>:` must be base64 (28 characters for HMAC-SHA1)",
        ));
    }
    Ok(ParsedSignature {
        access_key_id: access_key_id.to_string(),
        scheme: Scheme::V1 {
            signature: signature.to_string(),
        },
    })
}

fn parse_v3(fields: &str) -> Result<ParsedSignature, VerifyError> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let (name, value) = field.trim().split_once('=').ok_or_else(|| {
            malformed("ACS3-HMAC-SHA256 fields must be `Name=value`, comma-separated")
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(malformed(&format!(
                    "unknown ACS3-HMAC-SHA256 field `{}`; expected Credential, SignedHeaders and Signature",
                    truncate(other, 40)
                )));
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed(&format!(
                "the field `{name}` appears more than once"
            )));
        }
    }
    let missing =
        |name: &str| malformed(&format!("the ACS3-HMAC-SHA256 field `{name}` is missing"));
    let access_key_id = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    validate_access_key_id(access_key_id)?;

    let mut names = Vec::new();
    for name in signed_headers.split(';') {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_header_name_byte) {
            return Err(malformed(&format!(
                "SignedHeaders `{}` must be header names separated by `;`",
                truncate(signed_headers, 200)
            )));
        }
        names.push(name);
    }
    names.sort();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(malformed(&format!(
            "SignedHeaders lists `{}` more than once",
            pair[0]
        )));
    }
    let mut signature_bytes = [0u8; 32];
    hex::decode_to_slice(signature, &mut signature_bytes)
        .map_err(|_| malformed("Signature must be 64 hexadecimal characters (HMAC-SHA256)"))?;
    Ok(ParsedSignature {
        access_key_id: access_key_id.to_string(),
        scheme: Scheme::V3 {
            signed_headers: names,
            signature: signature_bytes,
        },
    })
}

/// Phase two: checks the signature with the secret of [`ParsedSignature::access_key_id`], the
/// body digests, the date window around `now`, and the nonce (recorded in `nonces` on success).
pub fn verify(
    parsed: &ParsedSignature,
    request: &Request,
    secret: &str,
    now: SystemTime,
    nonces: &mut NonceCache,
) -> Result<(), VerifyError> {
    if request.header(SECURITY_TOKEN_HEADER).is_some() {
        return Err(VerifyError::SecurityTokenNotSupported);
    }
    let now = Timestamp::try_from(now).map_err(|_| VerifyError::MalformedDate {
        header: "server clock",
        value: format!("{now:?}"),
        format: "a time between the years -9999 and 9999",
    })?;
    let (date_header, date_value, request_time) = match &parsed.scheme {
        Scheme::V1 { signature } => verify_v1(request, secret, signature)?,
        Scheme::V3 {
            signed_headers,
            signature,
        } => verify_v3(request, secret, signed_headers, signature)?,
    };
    let ahead = request_time > now;
    let skew = now.duration_since(request_time).abs();
    let limit = if ahead {
        MAX_FUTURE_SKEW
    } else {
        MAX_CLOCK_SKEW
    };
    if skew > limit {
        return Err(VerifyError::StaleDate {
            header: date_header,
            value: truncate(date_value, 100),
            skew_seconds: skew.as_secs(),
            limit_seconds: limit.as_secs(),
            server_time: now.to_string(),
        });
    }
    if let Some(nonce) = request.single_header(NONCE_HEADER)? {
        nonces.check_and_insert(
            &parsed.access_key_id,
            nonce,
            request_time,
            now,
            MAX_CLOCK_SKEW,
        )?;
    }
    Ok(())
}

/// Returns the date header's name, value and instant once the signature matched.
fn verify_v1<'r>(
    request: &'r Request,
    secret: &str,
    provided: &str,
) -> Result<(&'static str, &'r str, Timestamp), VerifyError> {
    let date = request
        .single_header("date")?
        .ok_or(VerifyError::MissingDate {
            header: "Date",
            format: RFC1123_FORMAT,
        })?;
    let request_time = parse_rfc1123(date)?;
    if let Some(received) = request.single_header("content-md5")? {
        let computed = v1::content_md5(request.body());
        if received != computed {
            return Err(VerifyError::ContentMd5Mismatch {
                received: truncate(received, 100),
                computed,
            });
        }
    }
    let mut forms = vec![EmptyValueForm::KeyEquals];
    if v1::has_empty_value(request.query()) {
        forms.push(EmptyValueForm::BareKey);
    }
    let mut first_string_to_sign = None;
    let mut matched = subtle::Choice::from(0);
    for form in forms {
        let string_to_sign = v1::string_to_sign(request, form)?;
        let expected = v1::signature(secret, &string_to_sign);
        matched |= expected.as_bytes().ct_eq(provided.as_bytes());
        first_string_to_sign.get_or_insert(string_to_sign);
    }
    if bool::from(matched) {
        Ok(("Date", date, request_time))
    } else {
        Err(VerifyError::SignatureDoesNotMatch {
            string_to_sign: first_string_to_sign.unwrap_or_default(),
            canonical_request: None,
        })
    }
}

fn verify_v3<'r>(
    request: &'r Request,
    secret: &str,
    signed_headers: &[String],
    provided: &[u8; 32],
) -> Result<(&'static str, &'r str, Timestamp), VerifyError> {
    let date = request
        .single_header("x-acs-date")?
        .ok_or(VerifyError::MissingDate {
            header: "x-acs-date",
            format: ISO8601_FORMAT,
        })?;
    let request_time: Timestamp = date
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedDate {
            header: "x-acs-date",
            value: truncate(date, 100),
            format: ISO8601_FORMAT,
        })?;
    let content_sha256 =
        request
            .single_header("x-acs-content-sha256")?
            .ok_or(VerifyError::MissingHeader {
                name: "x-acs-content-sha256",
                why: "it carries the hex SHA-256 of the body",
            })?;
    if request.header("host").is_none() {
        return Err(VerifyError::MissingHeader {
            name: "host",
            why: "it binds the signature to this server",
        });
    }
    for name in V3_SIGNED_WHEN_PRESENT {
        if request.header(name).is_some() && !signed_headers.iter().any(|s| s == name) {
            return Err(VerifyError::UnsignedHeader {
                name: (*name).to_string(),
                signed: signed_headers.join(";"),
            });
        }
    }
    let hashed_payload = v3::sha256_hex(request.body());
    if !content_sha256.trim().eq_ignore_ascii_case(&hashed_payload) {
        return Err(VerifyError::ContentSha256Mismatch {
            received: truncate(content_sha256, 100),
            computed: hashed_payload,
        });
    }
    let mut encodings = vec![KeyEncoding::Raw];
    if v3::keys_need_encoding(request.query()) {
        encodings.push(KeyEncoding::Rfc3986);
    }
    let mut first = None;
    let mut matched = subtle::Choice::from(0);
    for keys in encodings {
        let canonical = v3::canonical_request(request, signed_headers, &hashed_payload, keys)?;
        let string_to_sign = v3::string_to_sign(&canonical);
        matched |= v3::signature(secret, &string_to_sign).ct_eq(provided);
        first.get_or_insert((string_to_sign, canonical));
    }
    if bool::from(matched) {
        Ok(("x-acs-date", date, request_time))
    } else {
        let (string_to_sign, canonical) = first.unwrap_or_default();
        Err(VerifyError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request: Some(canonical),
        })
    }
}

fn parse_rfc1123(value: &str) -> Result<Timestamp, VerifyError> {
    DateTimeParser::new()
        .parse_timestamp(value.trim())
        .map_err(|_| VerifyError::MalformedDate {
            header: "Date",
            value: truncate(value, 100),
            format: RFC1123_FORMAT,
        })
}

fn validate_access_key_id(access_key_id: &str) -> Result<(), VerifyError> {
    if access_key_id.is_empty()
        || access_key_id.len() > MAX_ACCESS_KEY_ID_LEN
        || !access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b",;:=".contains(&b))
    {
        return Err(malformed(&format!(
            "the AccessKeyId must be 1 to {MAX_ACCESS_KEY_ID_LEN} printable ASCII characters without `,;:=`"
        )));
    }
    Ok(())
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn malformed(reason: &str) -> VerifyError {
    VerifyError::MalformedAuthorization {
        reason: reason.to_string(),
    }
}

/// Echoing client input into messages: cap its length, on a character boundary.
fn truncate(value: &str, max_chars: usize) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
