//! An application's base information (UpdateK8sApplicationBaseInfo, UpdateApplicationBaseInfo):
//! description, owner and contact, kept beside its revisions because changing them is not a
//! release.

use super::*;

/// What the base-information operations set; `None` is "never set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseInfo {
    pub description: Option<String>,
    pub owner: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
}

impl Store {
    /// The base information of application `app_id`, if any was ever set.
    pub async fn base_info(&self, app_id: &str) -> Result<Option<BaseInfo>, StoreError> {
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Fields> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT description, owner, email, phone_number FROM application_base_info \
                 WHERE app_id = $1",
            )
            .bind(app_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(description, owner, email, phone_number)| BaseInfo {
                description,
                owner,
                email,
                phone_number,
            }),
        )
    }

    /// Replaces the base information of live application `app_id` with its audit record, in
    /// one transaction; [`StoreError::NotFound`] when it does not exist or was deleted.
    pub async fn put_base_info(
        &self,
        app_id: &str,
        info: &BaseInfo,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let changed = write_audited!(self, Some((audit, now)), tx => {
            let live: Option<String> = sqlx::query_scalar(
                "SELECT id FROM applications WHERE id = $1 AND deleted = FALSE",
            )
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Err(StoreError::not_found("application", app_id));
            }
            sqlx::query(
                "INSERT INTO application_base_info (app_id, description, owner, email, \
                 phone_number, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (app_id) DO UPDATE SET description = excluded.description, \
                 owner = excluded.owner, email = excluded.email, \
                 phone_number = excluded.phone_number, updated_at = excluded.updated_at",
            )
            .bind(app_id)
            .bind(&info.description)
            .bind(&info.owner)
            .bind(&info.email)
            .bind(&info.phone_number)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        debug_assert!(changed > 0);
        Ok(())
    }
}
