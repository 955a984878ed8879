//! The stored document of a revision ([`RevisionDoc`]): the spec plus what the release engine
//! decided when it released it. It lives in this pure crate so the store can keep it typed and
//! every reader (engine, application layer, server) shares one definition of its stored form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AppSpec;
use crate::model::ConfigKind;
use crate::release::TrafficControl;

/// `ConfigMap/<name>` or `Secret/<name>` (see [`copy_key`]) → the immutable copy the
/// revision's instances read.
pub type ConfigCopies = BTreeMap<String, String>;

/// The stored document of a revision: the spec, and the template revision its instances are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevisionDoc {
    /// The revision whose instances run this spec (instances belong to the last revision that
    /// changed what runs, so a scale, stop or start resizes instead of replacing).
    pub template_revision: String,
    /// The complete application spec.
    pub spec: AppSpec,
    /// Digest of the ConfigMap and Secret contents the template revision was released with.
    #[serde(default)]
    pub config_digest: String,
    /// The copies of the ConfigMaps and Secrets the spec references.
    #[serde(default)]
    pub config_copies: ConfigCopies,
    /// `TrafficControlStrategy` of the release that made this revision (the gray split, applied
    /// while that release is in its gray batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_control: Option<TrafficControl>,
}

impl RevisionDoc {
    /// A document whose template revision is `template_revision`, with no copies, digest or
    /// traffic split (tests and tools that store a spec as it is).
    pub fn new(template_revision: impl Into<String>, spec: AppSpec) -> RevisionDoc {
        RevisionDoc {
            template_revision: template_revision.into(),
            spec,
            config_digest: String::new(),
            config_copies: ConfigCopies::new(),
            traffic_control: None,
        }
    }

    /// The spec the runtime runs for this revision: its ConfigMap and Secret references
    /// pointing at the revision's copies (what the release steps apply). A reference without a
    /// copy is left as it is.
    pub fn running_spec(&self) -> AppSpec {
        let mut out = self.spec.clone();
        if !self.config_copies.is_empty() {
            out.rename_config_refs(|kind, name| {
                kind.is_copied()
                    .then(|| self.config_copies.get(&copy_key(kind, name)).cloned())
                    .flatten()
            });
        }
        out
    }
}

/// The key of a copied reference in [`ConfigCopies`]: a pull secret is a Secret too.
pub fn copy_key(kind: ConfigKind, name: &str) -> String {
    if kind.is_secret() {
        format!("Secret/{name}")
    } else {
        format!("ConfigMap/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_is_stable() {
        let mut doc = RevisionDoc::new("3", AppSpec::default());
        doc.config_copies
            .insert(copy_key(ConfigKind::Secret, "db"), "db.app.r3".into());
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(value["template_revision"], "3");
        assert_eq!(value["config_copies"]["Secret/db"], "db.app.r3");
        assert!(value.get("traffic_control").is_none());
        // Older documents without the optional fields still read.
        let old: RevisionDoc =
            serde_json::from_value(serde_json::json!({"template_revision": "1", "spec": {}}))
                .unwrap();
        assert_eq!(old, RevisionDoc::new("1", AppSpec::default()));
        assert_eq!(serde_json::from_value::<RevisionDoc>(value).unwrap(), doc);
    }

    #[test]
    fn running_spec_points_at_copies() {
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "env_froms": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "other"}}],
        }))
        .unwrap();
        let mut doc = RevisionDoc::new("2", spec);
        assert_eq!(doc.running_spec(), doc.spec);
        doc.config_copies
            .insert(copy_key(ConfigKind::ConfigMap, "cfg"), "cfg.app.r2".into());
        let running = doc.running_spec();
        let names: Vec<_> = running.config_refs().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["cfg.app.r2", "other"]);
    }
}
