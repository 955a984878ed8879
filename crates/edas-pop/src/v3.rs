//! V3 `ACS3-HMAC-SHA256` canonical request and signature, edas-api.md §4.2.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use crate::form::rfc3986_encode;
use crate::{Request, VerifyError};

/// The algorithm name in the Authorization header and the string-to-sign.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Whether query parameter names are percent-encoded in the canonical query. The Python SDK
/// does not encode them; other SDKs encode them like values. Both agree for plain names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyEncoding {
    Raw,
    Rfc3986,
}

/// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED_HEADERS\nHASHED_PAYLOAD` (HEADERS ends with its own `\n`).
///
/// `signed_headers` must be lower-cased, sorted and free of duplicates.
pub(crate) fn canonical_request(
    request: &Request,
    signed_headers: &[String],
    hashed_payload: &str,
    keys: KeyEncoding,
) -> Result<String, VerifyError> {
    let uri = if request.path().is_empty() {
        "/"
    } else {
        request.path()
    };
    let mut headers = String::new();
    for name in signed_headers {
        let mut values: Vec<&str> = request.header_values(name).map(str::trim).collect();
        if values.is_empty() {
            return Err(VerifyError::SignedHeaderAbsent { name: name.clone() });
        }
        values.sort_unstable();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    Ok(format!(
        "{method}\n{uri}\n{query}\n{headers}\n{signed}\n{hashed_payload}",
        method = request.method(),
        query = canonical_query(request.query(), keys),
        signed = signed_headers.join(";"),
    ))
}

/// Decoded parameters sorted by name, values RFC 3986-encoded (`%20` for a space), `&`-joined.
pub(crate) fn canonical_query(query: &[(String, String)], keys: KeyEncoding) -> String {
    let mut sorted: Vec<&(String, String)> = query.iter().collect();
    sorted.sort();
    sorted
        .into_iter()
        .map(|(name, value)| {
            let name = match keys {
                KeyEncoding::Raw => name.clone(),
                KeyEncoding::Rfc3986 => rfc3986_encode(name),
            };
            format!("{name}={}", rfc3986_encode(value))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether encoding the names changes anything (so a second candidate is worth trying).
pub(crate) fn keys_need_encoding(query: &[(String, String)]) -> bool {
    query
        .iter()
        .any(|(name, _)| rfc3986_encode(name) != name.as_str())
}

/// `ACS3-HMAC-SHA256\n` + hex(SHA-256(canonical request)).
pub(crate) fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Raw HMAC-SHA256(secret, string_to_sign).
pub(crate) fn signature(secret: &str, string_to_sign: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Lowercase hex SHA-256, the `x-acs-content-sha256` value.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_query_uses_percent_20_and_sorts() {
        let q = vec![
            ("b".to_string(), "deploy v1 ~*".to_string()),
            ("a".to_string(), String::new()),
        ];
        assert_eq!(
            canonical_query(&q, KeyEncoding::Raw),
            "a=&b=deploy%20v1%20~%2A"
        );
        assert!(!keys_need_encoding(&q));
        let spaced = vec![("Condition.a b".to_string(), "x".to_string())];
        assert!(keys_need_encoding(&spaced));
        assert_eq!(
            canonical_query(&spaced, KeyEncoding::Rfc3986),
            "Condition.a%20b=x"
        );
    }

    #[test]
    fn sha256_of_empty_body() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
