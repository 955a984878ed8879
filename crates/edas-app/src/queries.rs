//! Queries: reads of applications, change orders and the audit trail.

use edas_store::{
    Application, ApplicationFilter, AuditQuery, AuditRecord, Page, PageRequest, StoreError,
};

use crate::{App, AppError, OrderState, StoredChangeOrder};

/// A change order as stored (status, creator, times, and its state: the release state
/// machine's order with stages, pipelines and tasks), and its application.
#[derive(Debug)]
pub struct OrderView {
    /// The stored record.
    pub stored: StoredChangeOrder,
    /// The application it changes (possibly deleted since).
    pub app: Application,
}

impl App {
    /// A live application, or `ApplicationNotFound` (deleted ones too).
    pub async fn application(&self, id: &str) -> Result<Application, AppError> {
        match self.application_with_history(id).await? {
            app if app.deleted => Err(AppError::no_application(id)),
            app => Ok(app),
        }
    }

    /// An application, deleted or not: deleted applications keep their change orders and
    /// audit trail, and those stay readable.
    pub async fn application_with_history(&self, id: &str) -> Result<Application, AppError> {
        match self.store.get_application(id).await {
            Ok(app) => Ok(app),
            Err(StoreError::NotFound { .. }) => Err(AppError::no_application(id)),
            Err(e) => Err(AppError::internal("reading the application", e)),
        }
    }

    /// Every live application the filter matches.
    pub async fn applications(
        &self,
        filter: &ApplicationFilter,
    ) -> Result<Vec<Application>, AppError> {
        self.application_page(filter, 1, None, |_| true).await
    }

    /// Page `number` (from 1) of `size` applications (`None`: every one, on page 1 only) among
    /// the live applications `filter` matches and `keep` accepts, by name. `keep` is what the
    /// store cannot decide (e.g. the caller's right to read each one), so the store is read a
    /// page at a time, and only until this page is full: an early page never reads every
    /// application.
    pub async fn application_page(
        &self,
        filter: &ApplicationFilter,
        number: u32,
        size: Option<u32>,
        mut keep: impl FnMut(&Application) -> bool,
    ) -> Result<Vec<Application>, AppError> {
        let (skip, take) = match size {
            Some(size) => (
                (number.saturating_sub(1) as usize).saturating_mul(size as usize),
                size as usize,
            ),
            None if number == 1 => (0, usize::MAX),
            None => return Ok(Vec::new()),
        };
        // Enough rows for the page when `keep` accepts them all, within the store's bound.
        let read = u32::try_from(skip.saturating_add(take))
            .unwrap_or(u32::MAX)
            .clamp(1, PageRequest::MAX_SIZE);
        let (mut out, mut matched) = (Vec::new(), 0usize);
        for store_page in 1.. {
            let page = self
                .store
                .list_applications(filter, PageRequest::new(store_page, read))
                .await
                .map_err(|e| AppError::internal("listing applications", e))?;
            let last = page.items.len() < read as usize;
            for app in page.items.into_iter().filter(|app| keep(app)) {
                matched += 1;
                if matched > skip {
                    out.push(app);
                    if out.len() == take {
                        return Ok(out);
                    }
                }
            }
            if last {
                break;
            }
        }
        Ok(out)
    }

    /// A change order and its application.
    pub async fn change_order(&self, id: &str) -> Result<OrderView, AppError> {
        let stored = match self.store.get_change_order(id).await {
            Ok(order) => order,
            Err(StoreError::NotFound { .. }) => return Err(AppError::no_change_order(id)),
            Err(e) => return Err(AppError::internal("reading the change order", e)),
        };
        let app = self
            .store
            .get_application(&stored.app_id)
            .await
            .map_err(|e| AppError::internal("reading the change order's application", e))?;
        Ok(OrderView { stored, app })
    }

    /// An application's most recent change orders (one page of the largest size), newest
    /// first.
    pub async fn change_orders(&self, app_id: &str) -> Result<Vec<StoredChangeOrder>, AppError> {
        let page = self
            .store
            .list_change_orders(app_id, PageRequest::new(1, PageRequest::MAX_SIZE))
            .await
            .map_err(|e| AppError::internal("listing change orders", e))?;
        Ok(page.items)
    }

    /// One page of audit records, newest first.
    pub async fn audit(
        &self,
        query: &AuditQuery,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, AppError> {
        self.store
            .list_audit(query, page)
            .await
            .map_err(|e| AppError::internal("listing the audit trail", e))
    }
}

/// EDAS's `CoType` of a change order (`CoBindSlb`, `CoDeploy`, …), from what it does.
pub fn change_order_type(state: &OrderState) -> &'static str {
    edas_engine::mapping::co_type(state.kind()).1
}
