//! EDAS namespaces: the default one (the region id) and those of edasd's configuration file
//! (fixed: the API cannot change them), merged with those created through the API (stored).
//! The commands validate what they are given (every violation at once), store the change with
//! its audit record, and refuse to delete a namespace a live application uses.

use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{AuditEntry, EdasNamespace, NamespaceFields, StoreError};
use serde_json::json;

use crate::{Actor, App, AppError};

/// The longest `RegionName` (EDAS: 63 characters).
const MAX_NAME: usize = 63;
/// The longest `Description` (EDAS: 128 characters).
const MAX_DESCRIPTION: usize = 128;

/// The namespaces edasd's configuration defines: the default one (the region id) and the
/// configured ones. The API lists them but cannot change them.
#[derive(Clone, Copy, Debug)]
pub struct FixedNamespaces<'a> {
    /// The region id, which is also the default namespace.
    pub region_id: &'a str,
    /// The configured namespaces (`region:identifier`).
    pub configured: &'a [String],
}

impl FixedNamespaces<'_> {
    pub(crate) fn contains(&self, region_tag: &str) -> bool {
        region_tag == self.region_id || self.configured.iter().any(|n| n == region_tag)
    }
}

/// One EDAS namespace as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// EDAS's numeric `Id`: 0 for a namespace of the configuration.
    pub id: i64,
    /// The namespace id (`RegionTag`).
    pub region_tag: String,
    /// `RegionName`.
    pub name: String,
    /// `Description`.
    pub description: String,
    /// `DebugEnable`.
    pub debug_enable: bool,
    /// Who created it (`None` for a namespace of the configuration).
    pub creator: Option<String>,
}

impl From<EdasNamespace> for Namespace {
    fn from(n: EdasNamespace) -> Namespace {
        Namespace {
            id: n.id,
            region_tag: n.region_tag,
            name: n.name,
            description: n.description,
            debug_enable: n.debug_enable,
            creator: Some(n.creator),
        }
    }
}

/// What InsertOrUpdateRegion asks for, as decoded from the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceRequest {
    /// `Id`: `None` or 0 creates, any other value changes that namespace.
    pub id: Option<i64>,
    /// `RegionTag`.
    pub region_tag: String,
    /// `RegionName`.
    pub name: String,
    /// `Description` (`None`: empty on create, kept on update).
    pub description: Option<String>,
    /// `DebugEnable` (`None`: false on create, kept on update).
    pub debug_enable: Option<bool>,
}

/// Which namespace DeleteUserDefineRegion names: `Id`, `RegionTag` or both (they must agree).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceKey {
    pub id: Option<i64>,
    pub region_tag: Option<String>,
}

fn violation(parameter: &str, message: String) -> Violation {
    Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::Invalid,
        message,
    }
}

fn fixed_refusal(parameter: &str, region_tag: &str, fixed: &FixedNamespaces<'_>) -> AppError {
    let what = if region_tag == fixed.region_id {
        "the default namespace of this region"
    } else {
        "defined in edasd's configuration file (`namespaces`); change it there"
    };
    AppError::invalid(
        parameter,
        format!("the namespace `{region_tag}` is {what}, not through the API"),
    )
}

/// Whether `identifier` is 1-64 letters, digits, `-` or `_` (the configuration's rule).
fn simple_id(identifier: &str) -> bool {
    (1..=64).contains(&identifier.len())
        && identifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the fields of `request` against the rules of EDAS and this region, every violation
/// at once.
fn validate(request: &NamespaceRequest, region_id: &str) -> Result<(), AppError> {
    let mut violations = Vec::new();
    let tag = &request.region_tag;
    match tag.strip_prefix(&format!("{region_id}:")) {
        Some(identifier) if simple_id(identifier) => {}
        Some(_) => violations.push(violation(
            "RegionTag",
            format!("`{tag}`: the identifier after `{region_id}:` must be 1-64 letters, digits, `-` or `_`"),
        )),
        None => violations.push(violation(
            "RegionTag",
            format!("`{tag}` must be `{region_id}:<identifier>` (EDAS namespace ids start with this server's region id)"),
        )),
    }
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        violations.push(violation(
            "RegionName",
            format!("must be 1-{MAX_NAME} characters"),
        ));
    }
    if let Some(d) = &request.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        violations.push(violation(
            "Description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(Violations(violations)))
    }
}

fn audit_entry(
    action: &str,
    region_tag: &str,
    actor: &Actor,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        actor: actor.name.clone(),
        action: action.to_owned(),
        resource: format!("namespace/{region_tag}"),
        app_id: None,
        request_id: Some(actor.request_id.clone()),
        detail,
    }
}

impl App {
    /// Every EDAS namespace: the default one, the configured ones (`Id` 0), then the stored
    /// ones by id.
    pub async fn namespaces(&self, fixed: FixedNamespaces<'_>) -> Result<Vec<Namespace>, AppError> {
        let fixed_one = |tag: &str, name: &str| Namespace {
            id: 0,
            region_tag: tag.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            debug_enable: false,
            creator: None,
        };
        let mut all = vec![fixed_one(fixed.region_id, fixed.region_id)];
        for tag in fixed.configured {
            let name = tag.split_once(':').map_or(tag.as_str(), |(_, n)| n);
            all.push(fixed_one(tag, name));
        }
        let stored = self
            .store
            .list_namespaces()
            .await
            .map_err(|e| AppError::internal("listing namespaces", e))?;
        all.extend(stored.into_iter().map(Namespace::from));
        Ok(all)
    }

    /// `Ok` when `namespace` (given as `parameter`) is an EDAS namespace, else the violation
    /// listing those there are.
    pub async fn known_namespace(
        &self,
        fixed: FixedNamespaces<'_>,
        parameter: &str,
        namespace: &str,
    ) -> Result<(), AppError> {
        if fixed.contains(namespace) {
            return Ok(());
        }
        let all = self.namespaces(fixed).await?;
        if all.iter().any(|n| n.region_tag == namespace) {
            return Ok(());
        }
        let tags: Vec<&str> = all.iter().map(|n| n.region_tag.as_str()).collect();
        Err(AppError::invalid(
            parameter,
            format!(
                "`{namespace}` is not an EDAS namespace of this server; namespaces: {}",
                tags.join(", ")
            ),
        ))
    }

    /// InsertOrUpdateRegion: creates the namespace (`Id` absent or 0) or changes the stored
    /// namespace `Id` (whose `RegionTag` cannot change).
    pub async fn put_namespace(
        &self,
        fixed: FixedNamespaces<'_>,
        request: &NamespaceRequest,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<Namespace, AppError> {
        if fixed.contains(&request.region_tag) {
            return Err(fixed_refusal("RegionTag", &request.region_tag, &fixed));
        }
        validate(request, fixed.region_id)?;
        let id = request.id.filter(|id| *id != 0);
        let action = "InsertOrUpdateRegion";
        let stored = match id {
            None => {
                let fields = NamespaceFields {
                    region_tag: request.region_tag.clone(),
                    name: request.name.trim().to_owned(),
                    description: request.description.clone().unwrap_or_default(),
                    debug_enable: request.debug_enable.unwrap_or(false),
                };
                let entry = audit_entry(
                    action,
                    &fields.region_tag,
                    actor,
                    json!({ "created": true }),
                );
                self.store
                    .insert_namespace(&fields, &actor.name, &entry, now)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict { .. } => AppError::AlreadyExists(format!(
                            "the namespace `{}` exists already; give its Id to change it",
                            fields.region_tag
                        )),
                        e => AppError::internal("storing the namespace", e),
                    })?
            }
            Some(id) => {
                let current = self
                    .store
                    .list_namespaces()
                    .await
                    .map_err(|e| AppError::internal("listing namespaces", e))?
                    .into_iter()
                    .find(|n| n.id == id)
                    .ok_or_else(|| no_namespace_id(id))?;
                let fields = NamespaceFields {
                    region_tag: request.region_tag.clone(),
                    name: request.name.trim().to_owned(),
                    description: request.description.clone().unwrap_or(current.description),
                    debug_enable: request.debug_enable.unwrap_or(current.debug_enable),
                };
                let entry = audit_entry(action, &fields.region_tag, actor, json!({ "id": id }));
                self.store
                    .update_namespace(id, &fields, &entry, now)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound { .. } => no_namespace_id(id),
                        StoreError::Conflict { reason, .. } => AppError::invalid(
                            "RegionTag",
                            format!(
                                "the namespace with Id {id} is not `{}`: {reason}",
                                fields.region_tag
                            ),
                        ),
                        e => AppError::internal("storing the namespace", e),
                    })?
            }
        };
        Ok(stored.into())
    }

    /// DeleteUserDefineRegion: deletes a stored namespace no live application is in.
    pub async fn delete_namespace(
        &self,
        fixed: FixedNamespaces<'_>,
        key: &NamespaceKey,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<Namespace, AppError> {
        if let Some(tag) = &key.region_tag
            && fixed.contains(tag)
        {
            return Err(fixed_refusal("RegionTag", tag, &fixed));
        }
        let stored = self
            .store
            .list_namespaces()
            .await
            .map_err(|e| AppError::internal("listing namespaces", e))?;
        let found = match (key.id.filter(|id| *id != 0), &key.region_tag) {
            (None, None) => {
                return Err(AppError::Invalid(Violations(vec![Violation {
                    parameter: "Id".into(),
                    kind: ViolationKind::Missing,
                    message: "Id or RegionTag is required".into(),
                }])));
            }
            (Some(id), tag) => {
                let n = stored
                    .into_iter()
                    .find(|n| n.id == id)
                    .ok_or_else(|| no_namespace_id(id))?;
                if let Some(tag) = tag
                    && *tag != n.region_tag
                {
                    return Err(AppError::invalid(
                        "RegionTag",
                        format!("`{tag}` contradicts Id {id}, which is `{}`", n.region_tag),
                    ));
                }
                n
            }
            (None, Some(tag)) => stored
                .into_iter()
                .find(|n| n.region_tag == *tag)
                .ok_or_else(|| {
                    AppError::EntityNotFound(format!("the namespace `{tag}` does not exist"))
                })?,
        };
        let entry = audit_entry(
            "DeleteUserDefineRegion",
            &found.region_tag,
            actor,
            json!({ "id": found.id }),
        );
        let deleted = self
            .store
            .delete_namespace(found.id, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => no_namespace_id(found.id),
                StoreError::Conflict { reason, .. } => AppError::InUse(format!(
                    "the namespace `{}` is {reason}: delete them first",
                    found.region_tag
                )),
                e => AppError::internal("deleting the namespace", e),
            })?;
        Ok(deleted.into())
    }
}

fn no_namespace_id(id: i64) -> AppError {
    AppError::EntityNotFound(format!("no namespace has the Id {id}"))
}
