//! `application/x-www-form-urlencoded` decoding and the two POP percent-encodings.
//!
//! Both Python SDKs put parameters on the wire with `quote_plus` (space → `+`), while the V3
//! canonical query re-encodes the *decoded* values with RFC 3986 rules (space → `%20`). The
//! verifier therefore always works from decoded values and re-encodes them itself.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

/// Everything except the RFC 3986 unreserved characters `A–Z a–z 0–9 - _ . ~` is escaped.
/// This is Python's `quote(value, safe='~')`, which the V3 canonical query uses.
pub const POP_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A form-encoded string (a raw query string or a form body) that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} of form field #{index} (`{raw}`) is not valid UTF-8 once percent-decoded")]
pub struct FormDecodeError {
    /// 1-based position of the `&`-separated field.
    pub index: usize,
    /// `"the name"` or `"the value"`.
    pub part: &'static str,
    /// The field as received (lossily shown, truncated to 200 characters).
    pub raw: String,
}

/// Decodes a raw query string or form body into `(name, value)` pairs in wire order.
///
/// Follows the WHATWG/`urllib.parse.parse_qsl` rules that the SDKs' `quote_plus` output needs:
/// fields are split on `&`, empty fields are skipped, a field without `=` has an empty value, `+`
/// is a space and `%XX` is a byte. A malformed escape such as `%ZZ` is kept literally (as every
/// mainstream decoder does); bytes that are not UTF-8 after decoding are an error, because no
/// SDK can have signed them.
pub fn decode_form(raw: &[u8]) -> Result<Vec<(String, String)>, FormDecodeError> {
    let mut pairs = Vec::new();
    for (position, field) in raw.split(|&b| b == b'&').enumerate() {
        if field.is_empty() {
            continue;
        }
        let (name, value) = match field.iter().position(|&b| b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..]),
            None => (field, &field[field.len()..]),
        };
        let error = |part| FormDecodeError {
            index: position + 1,
            part,
            raw: String::from_utf8_lossy(field).chars().take(200).collect(),
        };
        let name = decode_component(name).ok_or_else(|| error("the name"))?;
        let value = decode_component(value).ok_or_else(|| error("the value"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn decode_component(raw: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

/// RFC 3986 encoding of one value (`%20` for a space, uppercase hex), as in the V3 canonical query.
pub fn rfc3986_encode(value: &str) -> String {
    utf8_percent_encode(value, POP_ENCODE_SET).to_string()
}

/// Python's `quote_plus` (space → `+`, `~` kept, `*` → `%2A`): how both SDKs put a value on the wire.
pub fn form_encode_component(value: &str) -> String {
    rfc3986_encode(value).replace("%20", "+")
}

/// Encodes pairs the way the SDKs' `urlencode` does (`name=value&…`, in the given order).
pub fn encode_form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                form_encode_component(name),
                form_encode_component(value)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_plus_percent_empty_and_bare_fields() {
        let decoded = decode_form(b"a=deploy+v1+~%2A&&b=&c&d=%5B%7B%7D%5D&e=100%25&f=%ZZ").unwrap();
        assert_eq!(
            decoded,
            pairs(&[
                ("a", "deploy v1 ~*"),
                ("b", ""),
                ("c", ""),
                ("d", "[{}]"),
                ("e", "100%"),
                ("f", "%ZZ"),
            ])
        );
    }

    #[test]
    fn decodes_unicode_and_keeps_equals_in_values() {
        let decoded = decode_form("k=%E4%BD%A0%E5%A5%BD&j=a%3Db=c".as_bytes()).unwrap();
        assert_eq!(decoded, pairs(&[("k", "你好"), ("j", "a=b=c")]));
    }

    #[test]
    fn rejects_invalid_utf8_naming_the_field() {
        let error = decode_form(b"ok=1&bad=%FF").unwrap_err();
        assert_eq!(error.index, 2);
        assert_eq!(error.part, "the value");
        assert!(error.to_string().contains("bad=%FF"), "{error}");
    }

    #[test]
    fn encodings_match_python_quote_and_quote_plus() {
        assert_eq!(rfc3986_encode("deploy v1 ~*/:"), "deploy%20v1%20~%2A%2F%3A");
        assert_eq!(form_encode_component("deploy v1 ~*"), "deploy+v1+~%2A");
        assert_eq!(
            encode_form(&pairs(&[("Data.a b", "c&d"), ("k", "你")])),
            "Data.a+b=c%26d&k=%E4%BD%A0"
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let original = pairs(&[("x y", "a+b c%d&e=f"), ("", "")]);
        assert_eq!(
            decode_form(encode_form(&original).as_bytes()).unwrap()[0],
            original[0]
        );
    }
}
