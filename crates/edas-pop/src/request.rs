//! The transport-neutral view of an HTTP request that signing and verification work on.

use crate::form::{FormDecodeError, decode_form};

/// What the signature schemes need from an HTTP request: method, raw path, *decoded* query
/// parameters, headers (case-insensitive names) and the raw body bytes.
///
/// Build it from whatever HTTP stack receives the request:
///
/// ```
/// use edas_pop::Request;
/// let request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps")
///     .with_raw_query("AppId=a1&ChangeOrderDesc=deploy+v1")?
///     .with_header("Date", "Thu, 01 Jan 2026 00:00:00 GMT")
///     .with_body(Vec::new());
/// assert_eq!(request.query()[1].1, "deploy v1");
/// assert_eq!(request.header("date"), Some("Thu, 01 Jan 2026 00:00:00 GMT"));
/// # Ok::<(), edas_pop::FormDecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    /// Lower-cased name, value exactly as received; wire order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with no query, no headers and an empty body. `path` is the path exactly as it
    /// appeared on the request line (not percent-decoded), without the query string.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends the parameters of a raw (still encoded) query string, `+` decoding as a space.
    pub fn with_raw_query(mut self, raw_query: &str) -> Result<Self, FormDecodeError> {
        self.query.extend(decode_form(raw_query.as_bytes())?);
        Ok(self)
    }

    /// Appends one already-decoded query parameter.
    pub fn with_query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Appends one header; a repeated name keeps every value.
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.as_ref().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the raw body bytes (a form body stays encoded: it is hashed as sent).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The HTTP method as received (`POST`, `GET`, …).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The raw path, without the query string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The decoded query parameters in wire order.
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// Every header as `(lower-cased name, value)` in wire order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The raw body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The first value of a header, matching the name case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Every value of a header, matching the name case-insensitively.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header that must not be repeated (signature inputs are ambiguous otherwise).
    pub(crate) fn single_header(&self, name: &str) -> Result<Option<&str>, crate::VerifyError> {
        let mut values = self.header_values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(crate::VerifyError::DuplicateHeader {
                name: name.to_ascii_lowercase(),
            });
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_keeps_repeats() {
        let request = Request::new("GET", "/")
            .with_header("X-Acs-Action", "A")
            .with_header("x-acs-action", "B");
        assert_eq!(request.header("X-ACS-ACTION"), Some("A"));
        assert_eq!(
            request.header_values("x-acs-action").collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert!(request.single_header("x-acs-action").is_err());
        assert_eq!(request.single_header("date").unwrap(), None);
    }

    #[test]
    fn raw_query_is_decoded_and_appended() {
        let request = Request::new("GET", "/p")
            .with_query_param("A", "1")
            .with_raw_query("B=x+y&C=%2A")
            .unwrap();
        let names: Vec<_> = request
            .query()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(names, ["A=1", "B=x y", "C=*"]);
    }
}
