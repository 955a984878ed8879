//! Generates `docs/PARAMETERS.md` from the [`catalog`](crate::catalog).

use std::fmt::Write as _;

use crate::catalog::{COMMON, Operation, Scope, doc, runtime_status};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The whole of `docs/PARAMETERS.md`.
pub fn parameters_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Parameters of the application operations\n\n");
    out.push_str(
        "Generated from `crates/edas-spec/src/catalog.rs` (a test keeps this file identical; \
         regenerate with `EDAS_UPDATE_DOCS=1 cargo test -p edas-spec docs`).\n\n\
         Every optional parameter is a tri-state: **absent** keeps the application's current \
         value, its **clear form** resets it, a **value** replaces it. For every JSON parameter \
         `\"\"`, JSON `null` and the empty JSON value (`{}` or `[]`) all clear it. No \
         parameter may carry a NUL byte, raw or as `\\u0000` inside JSON (an environment entry \
         or argument cannot hold one): it is refused naming the parameter and the JSON path. \
         JSON values are decoded strictly: a field the documented shape does not have is refused, so a misspelt setting \
         is never silently dropped. Booleans accept `true`/`false` in any case (the Python SDKs \
         send `True`/`False`). Integers are decimal. A parameter the operation does not have is \
         refused (`InvalidParameter.Unknown`), except `RegionId`, which the classic SDK adds to \
         every request. All violations of a request are reported at once, and an invalid \
         request changes nothing.\n\n\
         Scope: **application** parameters become part of the next revision; **release** \
         parameters are kept with that release's change order only; **request** parameters \
         identify what the request acts on.\n\n\
         The `local` and Kubernetes columns say how each runtime carries the parameter: on \
         `local` instances are sandboxed processes of this machine (README, \"Local runtime \
         isolation\"); what a runtime cannot carry is refused when the change is submitted, \
         naming the parameter (`RuntimeRefused`), and on `local` what this host cannot enforce \
         is refused unless `[local] unenforceable = \"record\"` (then the change order's \
         description and the log say what is not applied).\n\n\
         Error codes: `MissingParameter`, `InvalidParameter`, `InvalidParameter.NotSupported` \
         (a well-formed value this self-hosted server deliberately does not support), \
         `InvalidParameter.Unknown`; all with HTTP 400.\n",
    );
    for op in Operation::ALL {
        let params = op.parameters();
        let _ = write!(
            out,
            "\n## {} ({} parameters)\n\n",
            op.action(),
            params.len()
        );
        out.push_str("| Parameter | Type | Req | Scope | Meaning and unit | Clear form | Validation | Status | `local` | Kubernetes |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for (name, required) in params {
            let Some(d) = doc(name) else { continue };
            let scope = match d.scope {
                Scope::Application => "application",
                Scope::Release => "release",
                Scope::Request => "request",
            };
            let (local, kube) = runtime_status(d);
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                d.name,
                cell(d.ty),
                if *required { "yes" } else { "no" },
                scope,
                cell(d.meaning),
                cell(d.clear),
                cell(d.validation),
                cell(d.status),
                cell(local),
                cell(kube),
            );
        }
    }
    out.push_str("\n## Common parameters\n\n| Parameter | Meaning |\n|---|---|\n");
    for name in COMMON {
        if let Some(d) = doc(name) {
            let _ = writeln!(out, "| `{}` | {} |", d.name, cell(d.meaning));
        }
    }
    out.push_str(OPERATOR_VIEWS);
    out
}

/// The parameters of the operations edas-api decodes itself (they change no spec), kept here
/// so that every parameter edasd takes is in one document.
const OPERATOR_VIEWS: &str = "
## Instances, history, rollback and logs (decoded by edas-api)

| Operation | Parameter | Type | Req | Meaning | Validation |
|---|---|---|---|---|---|
| DeployK8sApplication | `RollbackToRevision` | integer | no | edasd extension: release revision N's whole spec again, as a new revision (EDAS: ListHistoryDeployVersion, then DeployK8sApplication with that version). Only release and request parameters (`UpdateStrategy`, `BatchTimeout`, `ChangeOrderDesc`, `TrafficControlStrategy`, `AppId`) may come with it. | 1 or more, a revision the application has (ListHistoryDeployVersion `Id`); an application parameter beside it is refused, naming it |
| DescribeAppInstanceList | `AppId` | string | yes | The application. | an application the caller may read |
| DescribeAppInstanceList | `WithNodeInfo` | boolean | no | Fill `NodeLabels` with the node's labels. | `true` only on `local` (edasd does not track the nodes of a Kubernetes cluster's pods): refused as `InvalidParameter.NotSupported` elsewhere |
| ListHistoryDeployVersion | `AppId` | string | yes | The application. | an application the caller may read |
| `GET /edasd/v1/logs` | `AppId` | string | yes | The application (signed like every request; `edas:ReadApplication`). | an application the caller may read |
| `GET /edasd/v1/logs` | `InstanceName` | string | yes | The instance (DescribeAppInstanceList `InstanceName`); on `local` also a stopped instance whose logs are kept. | an instance of the application |
| `GET /edasd/v1/logs` | `Follow` | boolean | no | Keep sending what the instance writes until its run ends. | `true` or `false` |
| `GET /edasd/v1/logs` | `Previous` | boolean | no | The run before the last restart. | the instance must have restarted (refused naming `Previous`) |
| `GET /edasd/v1/logs` | `TailLines` | integer | no | Only the last N lines (on `local`: of stdout and of stderr each). | 0 or more |
| `GET /edasd/v1/logs` | `SinceSeconds` | integer | no | Only what was written in the last N seconds (on `local` lines carry no time: rotated files last written before the cutoff are left out, the current file always counts). | 0 or more |
";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every per-runtime entry names a documented parameter.
    #[test]
    fn runtime_statuses_name_documented_parameters() {
        for (name, local, kube) in crate::catalog::RUNTIMES {
            assert!(doc(name).is_some(), "{name} is not in the catalog");
            assert!(!local.is_empty() && !kube.is_empty(), "{name}");
        }
    }

    /// docs/PARAMETERS.md must be exactly what the catalog generates.
    #[test]
    fn docs_parameters_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PARAMETERS.md");
        let want = parameters_markdown();
        if std::env::var_os("EDAS_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/PARAMETERS.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/PARAMETERS.md is stale: run EDAS_UPDATE_DOCS=1 cargo test -p edas-spec docs"
        );
    }
}
