//! `--output json|table|yaml`: every read prints the server's answer as JSON or YAML (the whole
//! body, `RequestId` included, so scripts see exactly the API), or a human table of the fields
//! people look at.

use std::io::Write as _;

use anyhow::Context as _;
use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table};
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

/// Rows of a key/value table for one object's scalar fields (nested values as JSON).
pub fn fields_table(object: &Value) -> Table {
    let mut t = table(&["Field", "Value"]);
    if let Value::Object(m) = object {
        for (k, v) in m {
            t.add_row(vec![k.clone(), cell(v)]);
        }
    }
    t
}
