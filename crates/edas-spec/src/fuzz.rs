//! Property tests of parameter decoding as a whole (beside `tests.rs`, whose properties cover
//! single arbitrary values): generated *valid* requests are accepted and land in the spec as
//! sent; *garbage* in any typed parameter (JSON string, integer, boolean) of any operation is
//! refused with a violation naming that parameter; nesting far beyond the JSON parser's
//! recursion limit and megabyte values are refused the same way; arbitrary parameter maps never
//! panic and every violation names a parameter. Fixed case counts and no failure files, so CI
//! runs the same cases every time.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::catalog::{self, Operation};
use crate::{AppSpec, Params, RESERVED_LABELS, apply};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The application the non-insert operations are applied to.
fn current() -> AppSpec {
    let p = Params::default()
        .with("AppName", "base")
        .with("ClusterId", "local")
        .with("ImageUrl", "registry.example.com/team/app:v1")
        .with("Replicas", "3");
    apply(Operation::InsertK8sApplication, None, &p)
        .expect("the base application")
        .spec
}

/// The minimal parameters of `op`, to which the property adds its own.
fn base_params(op: Operation) -> Params {
    match op {
        Operation::InsertK8sApplication => Params::default()
            .with("AppName", "fuzz")
            .with("ClusterId", "local")
            .with("ImageUrl", "registry.example.com/team/app:v1"),
        _ => Params::default().with("AppId", "a"),
    }
}

fn current_for(op: Operation, spec: &AppSpec) -> Option<&AppSpec> {
    (op != Operation::InsertK8sApplication).then_some(spec)
}

/// Every (operation, parameter) pair whose documented wire type is typed, with that type.
fn typed_parameters() -> Vec<(Operation, &'static str, &'static str)> {
    let mut out = Vec::new();
    for op in Operation::ALL {
        for (name, _) in op.parameters() {
            let Some(doc) = catalog::doc(name) else {
                continue;
            };
            let ty = if doc.ty.starts_with("JSON") {
                "json"
            } else if doc.ty.starts_with("integer") {
                "integer"
            } else if doc.ty == "boolean" {
                "boolean"
            } else {
                continue;
            };
            out.push((op, *name, ty));
        }
    }
    out
}

/// Values no typed parameter can accept: a control character first (never valid JSON, never a
/// number or a boolean), unbalanced JSON, or a JSON document of the wrong shape.
fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| format!("\u{1}{s}")),
        "[\\[{][\\[{\":,a-z0-9 ]{0,40}".prop_map(|s| format!("{s}\u{7f}")),
        Just("{\"unterminated".to_owned()),
        Just("[1, 2,".to_owned()),
        Just("nul".to_owned()),
    ]
}

/// Valid `Envs` entries: unique names, any values.
fn envs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,15}", any::<String>(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

prop_compose! {
    /// A valid InsertK8sApplication: name, image, replicas, envs, arguments, labels, resources
    /// and (for at least one replica) a BatchUpdate strategy that fits the replica count, for the
    /// DeployK8sApplication that follows.
    fn valid_insert()(
        name in "[a-z]([a-z0-9-]{0,34}[a-z0-9])?",
        image in "registry\\.example\\.com/[a-z]{1,8}/[a-z]{1,8}:v[0-9]{1,3}",
        replicas in 0u32..50,
        envs in envs(),
        args in proptest::collection::vec(any::<String>(), 0..4),
        labels in proptest::collection::btree_map("[a-z]{1,10}", "([a-z0-9]{0,10})", 0..4),
        limit_mem in 0u32..8192,
        limit_cpu in 0u32..16,
        batch_seed in any::<u32>(),
        manual in any::<bool>(),
        wait in 0u32..10,
    ) -> (Vec<(&'static str, String)>, u32, Vec<(String, String)>, Vec<String>, Option<String>) {
        let mut p = vec![
            ("AppName", name),
            ("ClusterId", "local".to_owned()),
            ("ImageUrl", image),
            ("Replicas", replicas.to_string()),
            (
                "Envs",
                Value::from(
                    envs.iter()
                        .map(|(k, v)| json!({"name": k, "value": v}))
                        .collect::<Vec<_>>(),
                )
                .to_string(),
            ),
            (
                "CommandArgs",
                Value::from(
                    args.iter().map(|a| json!({"argument": a})).collect::<Vec<_>>(),
                )
                .to_string(),
            ),
            ("LimitMem", limit_mem.to_string()),
            ("RequestsMem", (limit_mem / 2).to_string()),
            ("LimitCpu", limit_cpu.to_string()),
            ("RequestsCpu", (limit_cpu / 2).to_string()),
        ];
        let labels: serde_json::Map<String, Value> = labels
            .into_iter()
            .filter(|(k, _)| !RESERVED_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        p.push(("Labels", Value::Object(labels).to_string()));
        let strategy = (replicas > 0).then(|| {
            let batch = 1 + batch_seed % replicas;
            if manual {
                format!(r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{batch},"releaseType":"manual"}}}}"#)
            } else {
                format!(
                    r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{batch},"releaseType":"auto","batchWaitTime":{wait}}}}}"#
                )
            }
        });
        (p, replicas, envs, args, strategy)
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A valid request is accepted, and what it asked for is what the spec holds.
    #[test]
    fn valid_requests_are_accepted_as_sent((pairs, replicas, envs, args, strategy) in valid_insert()) {
        let params = Params::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        let change = match apply(Operation::InsertK8sApplication, None, &params) {
            Ok(c) => c,
            Err(v) => return Err(TestCaseError::fail(format!("refused: {v}; params {pairs:?}"))),
        };
        prop_assert_eq!(change.spec.replicas, replicas);
        let got: Vec<(String, String)> = change
            .spec
            .envs
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        prop_assert_eq!(got, envs);
        prop_assert_eq!(&change.spec.args, &args);
        // Deploying the values Deploy also takes on top of it, with a new image, is accepted.
        let again: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, _)| {
                Operation::DeployK8sApplication.parameters().iter().any(|(n, _)| n == k)
                    && !matches!(*k, "Replicas")
            })
            .map(|(k, v)| (*k, v.as_str()))
            .chain([("AppId", "a"), ("Image", "registry.example.com/team/app:v2")])
            .chain(strategy.as_deref().map(|s| ("UpdateStrategy", s)))
            .collect();
        let params = Params::from_pairs(again).unwrap();
        let deployed = apply(Operation::DeployK8sApplication, Some(&change.spec), &params);
        prop_assert!(deployed.is_ok(), "deploy refused: {:?}", deployed.err());
    }

    /// Garbage in any typed parameter of any operation is refused, naming the parameter.
    #[test]
    fn garbage_is_refused_naming_the_parameter(index in any::<prop::sample::Index>(), value in garbage()) {
        let all = typed_parameters();
        let (op, name, ty) = all[index.index(all.len())];
        let spec = current();
        let params = base_params(op).with(name, &value);
        match apply(op, current_for(op, &spec), &params) {
            Ok(_) => return Err(TestCaseError::fail(format!("{op:?} accepted {name} ({ty}) = {value:?}"))),
            Err(v) => prop_assert!(v.names(name), "{:?} {} ({}) = {:?}: {}", op, name, ty, value, v),
        }
    }

    /// JSON nested far beyond the parser's recursion limit, in every JSON parameter: refused,
    /// naming it (no stack overflow).
    #[test]
    fn deep_nesting_is_refused_naming_the_parameter(
        index in any::<prop::sample::Index>(),
        depth in 129usize..20_000,
        objects in any::<bool>(),
    ) {
        let all: Vec<_> = typed_parameters().into_iter().filter(|(_, _, ty)| *ty == "json").collect();
        let (op, name, _) = all[index.index(all.len())];
        let value = if objects {
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
        } else {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        };
        let spec = current();
        let params = base_params(op).with(name, &value);
        match apply(op, current_for(op, &spec), &params) {
            Ok(_) => return Err(TestCaseError::fail(format!("{op:?} accepted {name} nested {depth} deep"))),
            Err(v) => prop_assert!(v.names(name), "{:?} {} nested {}: {}", op, name, depth, v),
        }
    }

    /// Arbitrary maps of known and unknown names to arbitrary values, in every operation: no
    /// panic; a refusal has violations, each naming a parameter with a message.
    #[test]
    fn arbitrary_parameter_maps_never_panic(
        op_index in 0usize..Operation::ALL.len(),
        known in proptest::collection::vec((any::<prop::sample::Index>(), any::<String>()), 0..8),
        unknown in proptest::collection::vec(("\\PC{0,12}", any::<String>()), 0..3),
        with_current in any::<bool>(),
    ) {
        let op = Operation::ALL[op_index];
        let names: Vec<&str> = catalog::DOCS.iter().map(|d| d.name).collect();
        let mut params = Params::default();
        for (i, v) in &known {
            params = params.with(names[i.index(names.len())], v);
        }
        for (k, v) in &unknown {
            params = params.with(k, v);
        }
        let spec = current();
        let cur = with_current.then_some(&spec);
        if let Err(v) = apply(op, cur, &params) {
            prop_assert!(!v.0.is_empty());
            for x in &v.0 {
                prop_assert!(!x.message.is_empty(), "{:?}", x);
            }
            let _ = v.to_string();
            let _ = v.code();
        }
    }
}

/// Megabyte values in every parameter of every operation: refused or accepted, never a panic,
/// and a refusal's message does not echo the megabyte back.
#[test]
fn megabyte_values_are_handled_without_echoing_them() {
    let spec = current();
    let huge = "x".repeat(1024 * 1024);
    for op in Operation::ALL {
        for (name, _) in op.parameters() {
            let params = base_params(op).with(name, &huge);
            if let Err(v) = apply(op, current_for(op, &spec), &params) {
                for x in &v.0 {
                    assert!(
                        x.message.len() < 64 * 1024,
                        "{op:?} {name}: a {} byte message for {}",
                        x.message.len(),
                        x.parameter
                    );
                }
            }
        }
    }
}

/// Every typed parameter of every operation, not just a sample: a control character, unbalanced
/// JSON and a 200-deep nesting are each refused naming the parameter.
#[test]
fn every_typed_parameter_refuses_garbage_by_name() {
    let spec = current();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (op, name, ty) in typed_parameters() {
        for value in ["\u{1}garbage", "{\"a\":", deep.as_str()] {
            let params = base_params(op).with(name, value);
            match apply(op, current_for(op, &spec), &params) {
                Ok(_) => panic!("{op:?} accepted {name} ({ty}) = {value:.20}"),
                Err(v) => assert!(v.names(name), "{op:?} {name} ({ty}) = {value:.20}: {v}"),
            }
        }
    }
}
