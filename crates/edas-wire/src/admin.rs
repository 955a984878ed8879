//! edasd's own admin API under `/edasd/v1/` (users, access keys, policies, the audit trail):
//! the request bodies edasctl sends and edas-api reads strictly (unknown keys refused), and
//! the response bodies. Times are epoch milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient;

/// `POST /edasd/v1/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
}

/// `POST /edasd/v1/users/{name}/keys`: both or neither (then generated); no body is neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NewAccessKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<String>,
}

/// `PUT /edasd/v1/keys/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessKeyUpdate {
    pub enabled: bool,
}

/// `PUT /edasd/v1/policies/{name}`: a RAM policy document, validated by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PolicyPut {
    pub document: Value,
}

/// `{"Users": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsersBody {
    pub users: Vec<User>,
}

/// `{"User": {...}}`, the user created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserBody {
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct User {
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub admin: bool,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
}

/// `{"AccessKeys": [...]}`: never a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AccessKeysBody {
    pub access_keys: Vec<AccessKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AccessKey {
    #[serde(deserialize_with = "lenient::text")]
    pub access_key_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub user: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
}

/// `{"AccessKey": {...}}`: the key created, with its secret (the one time it is shown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreatedKeyBody {
    pub access_key: CreatedKey,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreatedKey {
    #[serde(deserialize_with = "lenient::text")]
    pub access_key_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub access_key_secret: String,
    #[serde(deserialize_with = "lenient::text")]
    pub user: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enabled: bool,
}

/// `{"Policies": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PoliciesBody {
    pub policies: Vec<Policy>,
}

/// `{"Policy": {...}}`, the policy stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PolicyBody {
    pub policy: Policy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Policy {
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    pub document: Value,
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
}

/// `GET /edasd/v1/audit`: one page of records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuditBody {
    pub records: Vec<AuditRecord>,
    #[serde(deserialize_with = "lenient::int")]
    pub total_count: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub page_number: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub page_size: i64,
}

/// Who did what, when, from which request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuditRecord {
    #[serde(deserialize_with = "lenient::int")]
    pub id: i64,
    /// RFC 3339.
    #[serde(deserialize_with = "lenient::text")]
    pub time: String,
    #[serde(deserialize_with = "lenient::int")]
    pub time_millis: i64,
    /// The access key (or the engine) that acted.
    #[serde(deserialize_with = "lenient::text")]
    pub actor: String,
    #[serde(deserialize_with = "lenient::text")]
    pub action: String,
    #[serde(deserialize_with = "lenient::text")]
    pub resource: String,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub app_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_text")]
    pub request_id: Option<String>,
    /// What the action recorded (never a secret), opaque here.
    pub detail: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;
    use serde_json::json;

    #[test]
    fn captured_admin_answers_round_trip() {
        let users: UsersBody = round_trip(include_str!("../fixtures/admin_list_users.json"));
        assert!(users.users[0].admin);
        let user: UserBody = round_trip(include_str!("../fixtures/admin_create_user.json"));
        assert_eq!(user.user.name, "carol");
        let key: CreatedKeyBody = round_trip(include_str!("../fixtures/admin_create_key.json"));
        assert!(key.access_key.enabled);
        let keys: AccessKeysBody = round_trip(include_str!("../fixtures/admin_list_keys.json"));
        assert_eq!(keys.access_keys[0].user, "carol");
        let policy: PolicyBody = round_trip(include_str!("../fixtures/admin_put_policy.json"));
        assert_eq!(policy.policy.document["Version"], "1");
        let policies: PoliciesBody =
            round_trip(include_str!("../fixtures/admin_list_policies.json"));
        assert_eq!(policies.policies.len(), 1);
        let audit: AuditBody = round_trip(include_str!("../fixtures/admin_audit.json"));
        assert_eq!(audit.records[0].app_id, None, "null stays null");
        assert_eq!(audit.page_size, 3);
    }

    #[test]
    fn request_bodies_are_strict_and_optional_keys_are_left_out() {
        let user: NewUser = serde_json::from_value(json!({"Name": "carol"})).unwrap();
        assert!(!user.admin);
        let unknown = serde_json::from_value::<NewUser>(json!({"Name": "c", "Role": "x"}));
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `Role`")
        );
        let key = serde_json::to_value(NewAccessKey::default()).unwrap();
        assert_eq!(key, json!({}));
        let update = serde_json::to_value(AccessKeyUpdate { enabled: false }).unwrap();
        assert_eq!(update, json!({"Enabled": false}));
    }
}

/// One version of an application's release policy (issue 21): `GET`/`PUT`/`DELETE
/// /edasd/v1/applications/{app}/policy` answer `{"ReleasePolicy": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReleasePolicy {
    pub app_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub version: i64,
    /// The policy as stored (camelCase keys, as written); `null` for a version that deleted it.
    pub document: Value,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    /// Who set it (the access key's user).
    pub creator: String,
}

/// `{"ReleasePolicy": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReleasePolicyBody {
    pub release_policy: ReleasePolicy,
}

/// `GET /edasd/v1/applications/{app}/policy/history`: every version, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReleasePolicyHistoryBody {
    pub versions: Vec<ReleasePolicy>,
}
