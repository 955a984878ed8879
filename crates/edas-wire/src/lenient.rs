//! Deserializers that accept what EDAS answers in practice: a number where a string is
//! documented and the reverse.

use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// An integer given as a JSON number or a numeric string (`null` or `""`: 0).
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_int(d)?.unwrap_or(0))
}

/// Like [`int`], keeping `null` (and `""`) apart as `None`.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Int(n)) => Ok(Some(n)),
        Some(NumberOrText::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        Some(NumberOrText::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(NumberOrText::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("`{s}` is not an integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {}",
            describe(&other)
        ))),
    }
}

/// A string given as a JSON string or a number (`null`: empty).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_text(d)?.unwrap_or_default())
}

/// Like [`text`], keeping `null` apart as `None`.
pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<NumberOrText>::deserialize(d)?.map(|v| match v {
        NumberOrText::Text(s) => s,
        NumberOrText::Int(n) => n.to_string(),
        NumberOrText::Float(f) => f.to_string(),
        NumberOrText::Bool(b) => b.to_string(),
    }))
}

/// A boolean given as a JSON boolean or `"true"`/`"false"` (`null`: false).
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(false),
        Some(NumberOrText::Bool(b)) => Ok(b),
        Some(NumberOrText::Text(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(NumberOrText::Text(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
        Some(other) => Err(D::Error::custom(format!(
            "expected a boolean, got {}",
            describe(&other)
        ))),
    }
}

fn describe(v: &NumberOrText) -> String {
    match v {
        NumberOrText::Int(n) => format!("the number {n}"),
        NumberOrText::Float(f) => format!("the number {f}"),
        NumberOrText::Text(s) => format!("the string `{s}`"),
        NumberOrText::Bool(b) => format!("the boolean {b}"),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Optional {
        #[serde(default, deserialize_with = "super::opt_int")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::opt_text")]
        s: Option<String>,
    }

    #[test]
    fn optional_fields_keep_null_apart() {
        let got: Optional = serde_json::from_value(json!({"n": "7", "s": 3})).unwrap();
        assert_eq!(
            got,
            Optional {
                n: Some(7),
                s: Some("3".into())
            }
        );
        let got: Optional = serde_json::from_value(json!({"n": null})).unwrap();
        assert_eq!(got, Optional { n: None, s: None });
        let got: Optional = serde_json::from_value(json!({"n": ""})).unwrap();
        assert_eq!(got.n, None);
    }
}
