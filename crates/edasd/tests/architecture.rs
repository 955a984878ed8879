//! ARCHITECTURE.md's dependency rules hold: no crate depends, directly or through another
//! workspace crate, on one its row forbids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The workspace crates and their internal normal/build dependencies, from the manifests.
fn workspace() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let name = doc["package"]["name"].as_str().unwrap().to_owned();
        let mut deps = BTreeSet::new();
        for section in ["dependencies", "build-dependencies"] {
            if let Some(table) = doc.get(section).and_then(|t| t.as_table()) {
                deps.extend(table.keys().cloned());
            }
        }
        crates.insert(name, deps);
    }
    let names: BTreeSet<String> = crates.keys().cloned().collect();
    for deps in crates.values_mut() {
        deps.retain(|d| names.contains(d));
    }
    crates
}

/// Every workspace crate `name` depends on, through any path.
fn closure(crates: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_owned()];
    while let Some(next) = stack.pop() {
        for dep in &crates[&next] {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

/// What one row forbids: crates never reached through any path, and crates never depended on
/// directly (written `` `crate` (directly) ``: reached only through a layer below, such as
/// edas-api reaching the engine only through edas-app).
#[derive(Default)]
struct Rule {
    anywhere: BTreeSet<String>,
    directly: BTreeSet<String>,
}

/// The rows of ARCHITECTURE.md's "Dependency rules" table: crate → what it must not depend on.
fn rules(all: &BTreeSet<String>) -> BTreeMap<String, Rule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text
        .split("## Dependency rules")
        .nth(1)
        .expect("ARCHITECTURE.md has a Dependency rules section");
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let mut rule = Rule::default();
        if cells[2] == "`*`" {
            rule.anywhere = all.iter().filter(|c| **c != name).cloned().collect();
        } else {
            for cell in cells[2].split(',').map(str::trim) {
                match cell.strip_suffix("(directly)") {
                    Some(direct) => rule
                        .directly
                        .insert(direct.trim().trim_matches('`').to_owned()),
                    None => rule.anywhere.insert(cell.trim_matches('`').to_owned()),
                };
            }
        }
        for crate_name in rule.anywhere.iter().chain(&rule.directly).chain([&name]) {
            assert!(
                all.contains(crate_name),
                "ARCHITECTURE.md names `{crate_name}`, which is not a workspace crate"
            );
        }
        out.insert(name, rule);
    }
    out
}

#[test]
fn no_crate_depends_on_what_architecture_md_forbids() {
    let crates = workspace();
    let all: BTreeSet<String> = crates.keys().cloned().collect();
    let rules = rules(&all);
    let mut broken = Vec::new();
    for (name, rule) in &rules {
        let reached = closure(&crates, name);
        for bad in reached.intersection(&rule.anywhere) {
            broken.push(format!("{name} depends on {bad}"));
        }
        for bad in crates[name].intersection(&rule.directly) {
            broken.push(format!("{name} depends directly on {bad}"));
        }
    }
    assert!(broken.is_empty(), "forbidden dependencies: {broken:#?}");
    // Every crate has a row, so a new crate states its rules.
    let missing: Vec<&String> = all
        .iter()
        .filter(|c| !rules.contains_key(*c) && *c != "edas-bench")
        .collect();
    assert!(
        missing.is_empty(),
        "crates without a dependency rule: {missing:?}"
    );
}

#[test]
fn the_check_sees_a_forbidden_dependency() {
    let mut crates = workspace();
    crates
        .get_mut("edas-spec")
        .unwrap()
        .insert("edas-store".to_owned());
    assert!(closure(&crates, "edas-spec").contains("edas-store"));
    // Through another crate too.
    assert!(closure(&crates, "edas-render").contains("edas-store"));
    // A `(directly)` entry is read as a direct-only rule.
    let all: BTreeSet<String> = crates.keys().cloned().collect();
    let api = &rules(&all)["edas-api"];
    assert!(api.directly.contains("edas-engine") && !api.anywhere.contains("edas-engine"));
}
