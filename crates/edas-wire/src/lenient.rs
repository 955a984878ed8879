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
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(0),
        Some(NumberOrText::Int(n)) => Ok(n),
        Some(NumberOrText::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Some(NumberOrText::Text(s)) if s.trim().is_empty() => Ok(0),
        Some(NumberOrText::Text(s)) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("`{s}` is not an integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {}",
            describe(&other)
        ))),
    }
}

/// A string given as a JSON string or a number (`null`: empty).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<NumberOrText>::deserialize(d)? {
        None => String::new(),
        Some(NumberOrText::Text(s)) => s,
        Some(NumberOrText::Int(n)) => n.to_string(),
        Some(NumberOrText::Float(f)) => f.to_string(),
        Some(NumberOrText::Bool(b)) => b.to_string(),
    })
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
