//! `--output json|table|yaml`: every read prints the server's answer as JSON or YAML (the whole
//! body, `RequestId` included, so scripts see exactly the API), or a human table of the fields
//! people look at.

use std::io::Write as _;

use anyhow::Context as _;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How a read prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A human table (the default).
    #[default]
    Table,
    /// The API's JSON body, pretty-printed.
    Json,
    /// The API's body as YAML.
    Yaml,
    /// The values at a path of the JSON body, one a line (`jsonpath=EXPR`; the expression
    /// lives as long as the process).
    JsonPath(&'static str),
}

/// `--output`: `table`, `json`, `yaml` or `jsonpath=EXPR` (EXPR checked now).
pub fn parse_format(text: &str) -> Result<Format, String> {
    match text {
        "table" => Ok(Format::Table),
        "json" => Ok(Format::Json),
        "yaml" => Ok(Format::Yaml),
        _ => match text.strip_prefix("jsonpath=") {
            Some(expr) => {
                path_segments(expr)?;
                Ok(Format::JsonPath(Box::leak(
                    expr.to_owned().into_boxed_str(),
                )))
            }
            None => Err(format!(
                "`{text}` is not an output format: table, json, yaml or jsonpath=EXPR"
            )),
        },
    }
}

/// One step of a path: a key, an index, or every item.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// `{.A.B[0].C}`, `.A.B[*]` or `A.B` as steps.
fn path_segments(expr: &str) -> Result<Vec<Step>, String> {
    let inner = expr.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(inner);
    let inner = inner.strip_prefix('.').unwrap_or(inner);
    let mut steps = Vec::new();
    for part in inner.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        while !rest.is_empty() {
            let (index, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("jsonpath `{expr}`: `[` without `]`"))?;
            steps.push(match index {
                "*" => Step::All,
                n => Step::Index(
                    n.parse()
                        .map_err(|_| format!("jsonpath `{expr}`: `[{n}]` is not an index or *"))?,
                ),
            });
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    if steps.is_empty() {
        return Err(format!("jsonpath `{expr}` names nothing"));
    }
    Ok(steps)
}

/// The values at `expr` in `body`, one a line (strings without quotes; objects as JSON).
fn json_path(body: &Value, expr: &str) -> Result<String, String> {
    let mut values = vec![body];
    for step in path_segments(expr)? {
        values = values
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (&step, v) {
                    (Step::Key(k), Value::Object(m)) => m.get(k).into_iter().collect(),
                    (Step::Index(i), Value::Array(a)) => a.get(*i).into_iter().collect(),
                    (Step::All, Value::Array(a)) => a.iter().collect(),
                    (Step::All, Value::Object(m)) => m.values().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    if values.is_empty() {
        return Err(format!("jsonpath `{expr}` matches nothing in the answer"));
    }
    Ok(values.iter().map(|v| cell(v) + "\n").collect())
}

/// A table with the given header, in the style every command uses.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// A JSON value as table cell text: strings without quotes, null as empty.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints `body` in `format`; `make_table` builds the table only when it is asked for.
pub fn print(
    format: Format,
    body: &Value,
    make_table: impl FnOnce(&Value) -> Table,
) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(body)? + "\n",
        Format::Yaml => serde_saphyr::to_string(body).context("writing YAML")?,
        Format::Table => make_table(body).to_string() + "\n",
        Format::JsonPath(expr) => json_path(body, expr).map_err(anyhow::Error::msg)?,
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("cannot write to standard output")
}

/// An answer as its typed body (edas-wire), for the table. An answer that does not decode
/// gives the empty body, so the table shows nothing; `--output json` shows the answer as is.
pub fn body<T: DeserializeOwned + Default>(answer: &Value) -> T {
    T::deserialize(answer).unwrap_or_default()
}

/// A key/value table of one typed object's fields, in key order; `text` renders each value.
fn key_value_table(object: &impl Serialize, text: impl Fn(&Value) -> String) -> Table {
    let mut t = table(&["Field", "Value"]);
    if let Ok(Value::Object(m)) = serde_json::to_value(object) {
        for (k, v) in &m {
            t.add_row(vec![k.clone(), text(v)]);
        }
    }
    t
}

/// A key/value table of one object's fields (nested values as JSON).
pub fn fields_table(object: &impl Serialize) -> Table {
    key_value_table(object, cell)
}

/// A key/value table of one object's fields, each nested object as its scalar fields one per
/// line (for the large application views).
pub fn summary_table(object: &impl Serialize) -> Table {
    key_value_table(object, summary)
}

/// A field for a table cell: scalars as they are, nested objects' scalar fields one per line.
fn summary(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, x)| !x.is_object() && !x.is_array())
            .map(|(k, x)| format!("{k}: {}", cell(x)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => cell(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_wire::application::{AppInfoBody, ChangeOrderIdBody};
    use serde_json::json;

    #[test]
    fn answers_decode_into_their_bodies_or_show_nothing() {
        let answer = json!({"Code": 200, "RequestId": "r", "ChangeOrderId": 7});
        assert_eq!(body::<ChangeOrderIdBody>(&answer).change_order_id, "7");
        let odd = json!({"ChangeOrderId": {"nested": true}});
        assert_eq!(
            body::<ChangeOrderIdBody>(&odd),
            ChangeOrderIdBody::default()
        );
    }

    #[test]
    fn a_summary_table_shows_nested_scalars_one_per_line() {
        let status = body::<AppInfoBody>(&json!({
            "AppInfo": {"Application": {"ApplicationId": "a1", "InstanceCount": 2}}
        }));
        let text = summary_table(&status.app_info).to_string();
        assert!(text.contains("ApplicationId: a1"), "{text}");
        assert!(text.contains("InstanceCount: 2"), "{text}");
        assert!(text.contains("EccList"), "{text}");
    }
}

#[cfg(test)]
mod jsonpath_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonpath_reads_keys_indexes_and_every_item() {
        let body = json!({"ApplicationList": {"Application": [
            {"AppId": "a", "Instances": 2}, {"AppId": "b", "Instances": 3}]}});
        let path = |e| json_path(&body, e);
        assert_eq!(
            path("{.ApplicationList.Application[1].AppId}").unwrap(),
            "b\n"
        );
        assert_eq!(
            path(".ApplicationList.Application[*].AppId").unwrap(),
            "a\nb\n"
        );
        assert_eq!(
            path("ApplicationList.Application[0].Instances").unwrap(),
            "2\n"
        );
        assert!(path("{.Nothing}").unwrap_err().contains("matches nothing"));
        assert_eq!(parse_format("json"), Ok(Format::Json));
        assert!(matches!(
            parse_format("jsonpath={.A}"),
            Ok(Format::JsonPath("{.A}"))
        ));
        assert!(parse_format("jsonpath={.A[x]}").is_err());
        assert!(
            parse_format("xml")
                .unwrap_err()
                .contains("table, json, yaml")
        );
    }
}
