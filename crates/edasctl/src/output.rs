//! `--output json|table|yaml`: every read prints the server's answer as JSON or YAML (the whole
//! body, `RequestId` included, so scripts see exactly the API), or a human table of the fields
//! people look at.

use std::io::Write as _;

use anyhow::Context as _;
use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How a read prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// A human table (the default).
    #[default]
    Table,
    /// The API's JSON body, pretty-printed.
    Json,
    /// The API's body as YAML.
    Yaml,
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
