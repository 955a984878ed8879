//! V1 "ROA" HMAC-SHA1 string-to-sign (`Authorization: acs <AK>:<SIG>`), edas-api.md §4.1 and §4.3.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest as _, Md5};
use sha1::Sha1;

use crate::{Request, VerifyError};

/// How an empty query value appears in the canonicalized resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmptyValueForm {
    /// `key=`: the classic SDK (aliyunsdkcore).
    KeyEquals,
    /// `key`: the Tea SDK with `signature_algorithm='v2'`.
    BareKey,
}

/// The headers whose values open the string-to-sign, in order.
pub(crate) const LEADING_HEADERS: [&str; 4] = ["accept", "content-md5", "content-type", "date"];

/// METHOD, Accept, Content-MD5, Content-Type, Date, sorted `x-acs-*` headers, then the
/// canonicalized resource (path + `?` + sorted raw `key=value` pairs).
pub(crate) fn string_to_sign(
    request: &Request,
    empty_values: EmptyValueForm,
) -> Result<String, VerifyError> {
    let mut sts = String::with_capacity(256);
    sts.push_str(request.method());
    sts.push('\n');
    for name in LEADING_HEADERS {
        sts.push_str(request.single_header(name)?.unwrap_or(""));
        sts.push('\n');
    }
    let mut acs_headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.starts_with("x-acs-"))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    acs_headers.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(pair) = acs_headers.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(VerifyError::DuplicateHeader {
            name: pair[0].0.to_string(),
        });
    }
    for (name, value) in acs_headers {
        sts.push_str(name);
        sts.push(':');
        sts.push_str(value);
        sts.push('\n');
    }
    sts.push_str(&canonicalized_resource(
        request.path(),
        request.query(),
        empty_values,
    ));
    Ok(sts)
}

/// Path, then `?` and the decoded parameters sorted by name (then value, for determinism), raw.
pub(crate) fn canonicalized_resource(
    path: &str,
    query: &[(String, String)],
    empty_values: EmptyValueForm,
) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut sorted: Vec<&(String, String)> = query.iter().collect();
    sorted.sort();
    let pairs: Vec<String> = sorted
        .into_iter()
        .map(|(name, value)| match (value.is_empty(), empty_values) {
            (true, EmptyValueForm::BareKey) => name.clone(),
            _ => format!("{name}={value}"),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// Whether the two empty-value forms give different strings-to-sign for this query.
pub(crate) fn has_empty_value(query: &[(String, String)]) -> bool {
    query.iter().any(|(_, value)| value.is_empty())
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub(crate) fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// `base64(md5(body))`, the `Content-MD5` header value.
pub(crate) fn content_md5(body: &[u8]) -> String {
    BASE64.encode(Md5::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn resource_sorts_raw_values_and_renders_both_empty_forms() {
        let q = query(&[("b", "x y"), ("a", ""), ("c", "*~")]);
        assert_eq!(
            canonicalized_resource("/p", &q, EmptyValueForm::KeyEquals),
            "/p?a=&b=x y&c=*~"
        );
        assert_eq!(
            canonicalized_resource("/p", &q, EmptyValueForm::BareKey),
            "/p?a&b=x y&c=*~"
        );
        assert_eq!(
            canonicalized_resource("/p", &[], EmptyValueForm::KeyEquals),
            "/p"
        );
    }

    #[test]
    fn duplicated_acs_header_is_refused() {
        let request = Request::new("GET", "/")
            .with_header("x-acs-action", "A")
            .with_header("X-Acs-Action", "B");
        assert_eq!(
            string_to_sign(&request, EmptyValueForm::KeyEquals),
            Err(VerifyError::DuplicateHeader {
                name: "x-acs-action".into()
            })
        );
    }

    #[test]
    fn md5_of_the_empty_body_is_the_well_known_value() {
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
