//! An application's base information (description, owner, email, phone number): set by
//! UpdateK8sApplicationBaseInfo and UpdateApplicationBaseInfo beside its revisions, since
//! changing it is not a release. A description set here supersedes the revision's
//! `ApplicationDescription`.

use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{Application, AuditEntry, StoreError};
use serde_json::json;

pub use edas_store::BaseInfo;

use crate::{Actor, App, AppError};

/// The longest description (EDAS: 256 characters).
const MAX_DESCRIPTION: usize = 256;
/// The longest email address or phone number.
const MAX_CONTACT: usize = 128;

/// What one base-information operation changes: `None` keeps the stored value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseInfoChange {
    /// (`Description` or `Desc`).
    pub description: Option<String>,
    /// (`Owner`), with the longest owner the operation admits.
    pub owner: Option<(String, usize)>,
    /// (`Email`).
    pub email: Option<String>,
    /// (`PhoneNumber`).
    pub phone_number: Option<String>,
}

impl BaseInfoChange {
    /// Every violation of the change at once.
    fn validate(&self, description_parameter: &str) -> Result<(), AppError> {
        let mut violations = Vec::new();
        let mut bad = |parameter: &str, message: String| {
            violations.push(Violation {
                parameter: parameter.to_owned(),
                kind: ViolationKind::Invalid,
                message,
            })
        };
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            bad(
                description_parameter,
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        if let Some((owner, max)) = &self.owner
            && owner.chars().count() > *max
        {
            bad("Owner", format!("must be at most {max} characters"));
        }
        if let Some(email) = self.email.as_deref().filter(|e| !e.is_empty()) {
            let well_formed = email.len() <= MAX_CONTACT
                && !email.chars().any(char::is_whitespace)
                && email.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.contains('@')
                });
            if !well_formed {
                bad("Email", format!("`{email}` is not an email address"));
            }
        }
        if let Some(phone) = self.phone_number.as_deref().filter(|p| !p.is_empty()) {
            let well_formed = phone.len() <= 32
                && phone.chars().any(|c| c.is_ascii_digit())
                && phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+-() ".contains(c));
            if !well_formed {
                bad(
                    "PhoneNumber",
                    format!(
                        "`{phone}` is not a phone number (digits, `+`, `-`, `(`, `)` and spaces)"
                    ),
                );
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(Violations(violations)))
        }
    }
}

impl App {
    /// The base information of application `app_id` (empty when never set).
    pub async fn base_info(&self, app_id: &str) -> Result<BaseInfo, AppError> {
        Ok(self
            .store
            .base_info(app_id)
            .await
            .map_err(|e| AppError::internal("reading the base information", e))?
            .unwrap_or_default())
    }

    /// Applies `change` to the base information of `app` with the audit record of `action`;
    /// the information as stored now.
    pub async fn update_base_info(
        &self,
        app: &Application,
        change: BaseInfoChange,
        description_parameter: &str,
        action: &str,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<BaseInfo, AppError> {
        change.validate(description_parameter)?;
        let mut info = self.base_info(&app.id).await?;
        let changed: Vec<&str> = [
            ("description", change.description.is_some()),
            ("owner", change.owner.is_some()),
            ("email", change.email.is_some()),
            ("phone_number", change.phone_number.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if let Some(d) = change.description {
            info.description = Some(d);
        }
        if let Some((o, _)) = change.owner {
            info.owner = Some(o);
        }
        if let Some(e) = change.email {
            info.email = Some(e);
        }
        if let Some(p) = change.phone_number {
            info.phone_number = Some(p);
        }
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: action.to_owned(),
            resource: format!("application/{}", app.id),
            app_id: Some(app.id.clone()),
            request_id: Some(actor.request_id.clone()),
            detail: json!({ "changed": changed }),
        };
        self.store
            .put_base_info(&app.id, &info, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => AppError::no_application(&app.id),
                e => AppError::internal("storing the base information", e),
            })?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_and_lengths_are_checked_together() {
        let ok = BaseInfoChange {
            description: Some("shop".into()),
            owner: Some(("alice".into(), 128)),
            email: Some("a@example.com".into()),
            phone_number: Some("+86 571-1234".into()),
        };
        ok.validate("Description").unwrap();
        let bad = BaseInfoChange {
            description: Some("d".repeat(257)),
            owner: Some(("o".repeat(128), 127)),
            email: Some("not-an-address".into()),
            phone_number: Some("call me".into()),
        };
        let AppError::Invalid(Violations(v)) = bad.validate("Desc").unwrap_err() else {
            panic!("not a violation")
        };
        let names: Vec<&str> = v.iter().map(|v| v.parameter.as_str()).collect();
        assert_eq!(names, ["Desc", "Owner", "Email", "PhoneNumber"]);
        // Empty contacts clear them.
        BaseInfoChange {
            email: Some(String::new()),
            phone_number: Some(String::new()),
            ..Default::default()
        }
        .validate("Description")
        .unwrap();
    }
}
