//! The wire input of an operation (name → string value, exactly as it arrived) and the primitive
//! decoders every parameter is read with: integers, booleans, JSON inside strings, base64 YAML.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::Operation;
use crate::violation::{Violation, Violations};

/// The parameters of one request: wire name → decoded (percent-decoded, `+` as space) string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    entries: BTreeMap<String, String>,
}

impl Params {
    /// Builds the parameter map from name/value pairs. A name given twice is refused: the two
    /// SDKs never do it, and guessing which value was meant would silently ignore the other.
    /// A NUL byte in a name or value is refused: no parameter can carry one (a process
    /// argument or environment entry cannot hold it, so it would crash-loop the instance).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Params, Violations>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut entries = BTreeMap::new();
        let mut violations = Vec::new();
        for (k, v) in pairs {
            let k = k.into();
            let v = v.into();
            if k.contains('\0') || v.contains('\0') {
                violations.push(Violation::invalid(
                    &k.replace('\0', "\\0"),
                    "the parameter contains a NUL byte, which no parameter may carry",
                ));
                continue;
            }
            if entries.contains_key(&k) {
                violations.push(Violation::invalid(
                    &k,
                    "the parameter is given more than once",
                ));
                continue;
            }
            entries.insert(k, v);
        }
        if violations.is_empty() {
            Ok(Params { entries })
        } else {
            Err(Violations(violations))
        }
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    /// All parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds or replaces one parameter (for tests and for building requests in code).
    pub fn with(mut self, name: &str, value: &str) -> Params {
        self.entries.insert(name.to_owned(), value.to_owned());
        self
    }
}

/// What an optional parameter asks for: keep the current value, clear it, or set a new one.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch<T> {
    /// Absent: keep the application's current value.
    Keep,
    /// The documented empty form (`""`, `{}`, `[]`): clear the setting.
    Clear,
    /// A value: replace the setting.
    Set(T),
}

impl<T> Patch<T> {
    /// Applies the patch to an optional field.
    pub fn apply_to(self, field: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => *field = None,
            Patch::Set(v) => *field = Some(v),
        }
    }
}

impl<T> Patch<Vec<T>> {
    /// Applies the patch to a list field (clearing empties it).
    pub fn apply_to_list(self, field: &mut Vec<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => field.clear(),
            Patch::Set(v) => *field = v,
        }
    }
}

/// Reads parameters and collects every violation instead of stopping at the first.
pub(crate) struct Reader<'a> {
    params: &'a Params,
    operation: Option<Operation>,
    pub(crate) violations: Vec<Violation>,
}

impl<'a> Reader<'a> {
    /// A reader of every parameter.
    pub(crate) fn new(params: &'a Params) -> Self {
        Reader {
            params,
            operation: None,
            violations: Vec::new(),
        }
    }

    /// A reader that sees only `op`'s own parameters (others are reported once as unknown).
    pub(crate) fn for_operation(params: &'a Params, op: Operation) -> Self {
        Reader {
            params,
            operation: Some(op),
            violations: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, v: Violation) {
        self.violations.push(v);
    }

    pub(crate) fn raw(&self, name: &str) -> Option<&'a str> {
        match self.operation {
            Some(op) if !op.has_parameter(name) => None,
            _ => self.params.get(name),
        }
    }

    /// A required, non-empty string.
    pub(crate) fn required(&mut self, name: &str) -> Option<&'a str> {
        match self.raw(name) {
            None => {
                self.push(Violation::missing(name, "the parameter is required"));
                None
            }
            Some(v) if v.trim().is_empty() => {
                self.push(Violation::missing(
                    name,
                    "the parameter is required and must not be empty",
                ));
                None
            }
            Some(v) => Some(v),
        }
    }

    /// An optional string; `""` clears it.
    pub(crate) fn text(&mut self, name: &str) -> Patch<String> {
        match self.raw(name) {
            None => Patch::Keep,
            Some("") => Patch::Clear,
            Some(v) => Patch::Set(v.to_owned()),
        }
    }

    /// An integer from decimal text within `min..=max`.
    pub(crate) fn int(&mut self, name: &str, min: i64, max: i64, unit: &str) -> Option<i64> {
        let raw = self.raw(name)?;
        match parse_int(raw) {
            Some(n) if n >= min && n <= max => Some(n),
            Some(n) => {
                self.push(Violation::invalid(
                    name,
                    format!("{n} is out of range: it must be between {min} and {max}{unit}"),
                ));
                None
            }
            None => {
                self.push(Violation::invalid(
                    name,
                    format!("`{}` is not an integer", shorten(raw)),
                ));
                None
            }
        }
    }

    /// A boolean as the SDKs send it: `true`/`false` (Go) or `True`/`False` (Python).
    pub(crate) fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.raw(name)?;
        match parse_bool(raw) {
            Some(b) => Some(b),
            None => {
                self.push(Violation::invalid(
                    name,
                    format!("`{}` is not a boolean: use true or false", shorten(raw)),
                ));
                None
            }
        }
    }

    /// A JSON document inside a string, strictly decoded into `T`; `""` and the empty JSON value
    /// of the parameter's shape (`{}` or `[]`) clear it.
    pub(crate) fn json<T: DeserializeOwned + Serialize>(&mut self, name: &str) -> Patch<T> {
        let Some(raw) = self.raw(name) else {
            return Patch::Keep;
        };
        match parse_json_text(name, raw) {
            Err(v) => {
                self.push(v);
                Patch::Keep
            }
            Ok(None) => Patch::Clear,
            Ok(Some(value)) => match decode_value::<T>(name, "", value) {
                Ok(t) => Patch::Set(t),
                Err(v) => {
                    self.push(v);
                    Patch::Keep
                }
            },
        }
    }
}

/// Parses a decimal integer; a leading `+`, surrounding spaces and non-ASCII digits are refused.
pub fn parse_int(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Parses `true`/`True`/`false`/`False` (any ASCII case, as the Python SDKs send `True`).
pub fn parse_bool(raw: &str) -> Option<bool> {
    if raw.eq_ignore_ascii_case("true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses JSON text; `Ok(None)` for the clear forms `""`, `{}`, `[]` and `null`. A string
/// holding a NUL character (`\u0000`) anywhere in the value is refused, naming its path: no
/// environment entry, argument, path or name of an application can carry one.
pub(crate) fn parse_json_text(name: &str, raw: &str) -> Result<Option<Value>, Violation> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| Violation::invalid(name, format!("the value is not valid JSON ({e})")))?;
    if let Some(at) = nul_path(&value, "") {
        return Err(Violation::invalid(
            name,
            format!(
                "the value contains a NUL character (\\u0000) at {at}, which no setting may carry"
            ),
        ));
    }
    Ok(match &value {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        _ => Some(value),
    })
}

/// The JSON path of the first string (or object key) holding a NUL character.
fn nul_path(value: &Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "the top level".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(child.replace('\0', "\\0"))
            } else {
                nul_path(v, &child)
            }
        }),
        _ => None,
    }
}

/// Decodes a JSON value into `T` and refuses fields that `T` does not have, so a misspelt key
/// (`initialDelaySecond`) is an error instead of a setting silently dropped.
pub(crate) fn decode_value<T: DeserializeOwned + Serialize>(
    name: &str,
    path: &str,
    value: Value,
) -> Result<T, Violation> {
    let decoded: T = serde_json::from_value(value.clone()).map_err(|e| {
        let at = if path.is_empty() {
            String::new()
        } else {
            format!(" at {path}")
        };
        Violation::invalid(
            name,
            format!("the value does not have the expected shape{at}: {e}"),
        )
    })?;
    let back =
        serde_json::to_value(&decoded).map_err(|e| Violation::invalid(name, e.to_string()))?;
    if let Some(unknown) = first_unknown_field(&value, &back, path) {
        return Err(Violation::invalid(
            name,
            format!("unknown field `{unknown}`: the setting it carries would be ignored"),
        ));
    }
    Ok(decoded)
}

/// The JSON path of the first key present in `input` but absent from `decoded` (ignoring nulls).
fn first_unknown_field(input: &Value, decoded: &Value, path: &str) -> Option<String> {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    None => return Some(here),
                    Some(dv) => {
                        if let Some(u) = first_unknown_field(v, dv, &here) {
                            return Some(u);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(i), Value::Array(d)) => i
            .iter()
            .zip(d)
            .enumerate()
            .find_map(|(n, (iv, dv))| first_unknown_field(iv, dv, &format!("{path}[{n}]"))),
        _ => None,
    }
}

/// Decodes base64 YAML (the `yamlEncoded` form of `Sidecars`, `InitContainers`,
/// `SecurityContext`) into a JSON value.
pub(crate) fn decode_yaml_encoded(
    name: &str,
    path: &str,
    encoded: &str,
) -> Result<Value, Violation> {
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| {
            Violation::invalid(
                name,
                format!("{path}.yamlEncoded is not valid base64 ({e})"),
            )
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Violation::invalid(
            name,
            format!("{path}.yamlEncoded does not decode to UTF-8 text"),
        )
    })?;
    serde_saphyr::from_str::<Value>(&text).map_err(|e| {
        Violation::invalid(name, format!("{path}.yamlEncoded is not valid YAML ({e})"))
    })
}

/// Cuts a value for quoting in an error message.
pub(crate) fn shorten(raw: &str) -> String {
    const MAX: usize = 64;
    if raw.chars().count() <= MAX {
        raw.to_owned()
    } else {
        let cut: String = raw.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

impl From<Violation> for Violations {
    fn from(v: Violation) -> Self {
        Violations(vec![v])
    }
}
