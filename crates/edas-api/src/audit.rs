//! `GET /edasd/v1/audit`: who did what, when, from which request. An operation of edasd's own
//! (EDAS has none), signed like the admin API. Administrators may read the whole trail; other
//! users only an application's (`AppId`), when allowed `edas:ReadApplication` on it.

use edas_app::{AuditQuery, AuditRecord, PageRequest};
use edas_spec::Params;
use edas_wire::admin::{AuditBody, AuditRecord as Record};

use crate::Api;
use crate::apps::arn;
use crate::caller::Caller;
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, only, page_number};

/// The query parameters of the audit operation.
pub const PARAMETERS: &[&str] = &["AppId", "From", "To", "PageNumber", "PageSize"];

/// A time bound: RFC 3339 (`2026-11-28T01:00:00Z`) or Unix milliseconds.
fn time(params: &Params, name: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
    let Some(raw) = params.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Some(ms) = edas_spec::parse_int(raw) {
        return jiff::Timestamp::from_millisecond(ms)
            .map(Some)
            .map_err(|e| invalid(name, format!("`{raw}` is out of range: {e}")));
    }
    raw.parse::<jiff::Timestamp>().map(Some).map_err(|e| {
        invalid(
            name,
            format!("`{raw}` is neither an RFC 3339 time (2026-11-28T01:00:00Z) nor Unix milliseconds: {e}"),
        )
    })
}

fn record(r: &AuditRecord) -> Record {
    Record {
        id: r.id,
        time: r.at.to_string(),
        time_millis: r.at.as_millisecond(),
        actor: r.entry.actor.clone(),
        action: r.entry.action.clone(),
        resource: r.entry.resource.clone(),
        app_id: r.entry.app_id.clone(),
        request_id: r.entry.request_id.clone(),
        detail: r.entry.detail.clone(),
    }
}

/// Lists audit records, newest first, filtered by application and `[From, To)`.
pub(crate) async fn list(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<AuditBody, ApiError> {
    only(params, "audit", PARAMETERS)?;
    let app_id = params.get("AppId").filter(|v| !v.is_empty());
    match app_id {
        Some(id) => {
            let app = api.app().application_with_history(id).await?;
            // Deleted applications keep their trail; it stays readable.
            caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
        }
        None if !caller.user.admin => {
            return Err(ApiError::new(
                codes::AUTH_ERROR,
                format!(
                    "user `{}` is not an administrator: only administrators may read the whole audit trail; give AppId to read one application's",
                    caller.user.name
                ),
            ));
        }
        None => {}
    }
    let from = time(params, "From")?;
    let to = time(params, "To")?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(invalid("To", format!("`{t}` is before From `{f}`")));
    }
    let number = page_number(params, "PageNumber", i64::from(u32::MAX))?.unwrap_or(1);
    let size = page_number(params, "PageSize", i64::from(PageRequest::MAX_SIZE))?.unwrap_or(100);
    let query = AuditQuery {
        app_id: app_id.map(str::to_owned),
        from,
        to,
    };
    let page = api
        .app()
        .audit(&query, PageRequest::new(number, size))
        .await?;
    Ok(AuditBody {
        records: page.items.iter().map(record).collect(),
        total_count: i64::try_from(page.total).unwrap_or(i64::MAX),
        page_number: i64::from(number),
        page_size: i64::from(size),
    })
}
