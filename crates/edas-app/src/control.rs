//! Commands that control a change order: continue a pipeline, abort, roll back, retry a task.
//! Each is one step of the order's state machine stored in one transaction with its audit
//! record (the engine's `control`); AbortAndRollback stores the aborted order and its rollback
//! together.

use edas_engine::ControlError;
use edas_release::Input;

use crate::{Actor, App, AppError, OrderView};

/// How a change order is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// AbortChangeOrder: stop it where it is.
    Only,
    /// AbortAndRollbackChangeOrder: stop it and roll back to the previous revision.
    AndRollback,
    /// RollbackChangeOrder: roll a finished or failed order back.
    Rollback,
}

impl From<ControlError> for AppError {
    fn from(error: ControlError) -> AppError {
        match error {
            ControlError::NotFound(m) => AppError::ChangeOrderNotFound(m),
            ControlError::Invalid(m) => AppError::InvalidStatus(m),
            ControlError::Conflict(m) => AppError::Conflict(m),
            ControlError::Internal(m) => AppError::internal("controlling the change order", m),
        }
    }
}

impl App {
    /// The change order in progress that has pipeline `pipeline_id` (ContinuePipeline names
    /// only the pipeline; the caller is authorized on the order's application).
    pub async fn order_of_pipeline(&self, pipeline_id: &str) -> Result<OrderView, AppError> {
        match self.engine.change_order_of_pipeline(pipeline_id).await? {
            Some(id) => self.change_order(&id).await,
            None => Err(AppError::ChangeOrderNotFound(format!(
                "no change order in progress has the pipeline `{pipeline_id}`"
            ))),
        }
    }

    /// The open change order that has task `task_id` (RetryChangeOrderTask names only the task).
    pub async fn order_of_task(&self, task_id: &str) -> Result<OrderView, AppError> {
        match self.engine.change_order_of_task(task_id).await? {
            Some(id) => self.change_order(&id).await,
            None => Err(AppError::ChangeOrderNotFound(format!(
                "no open change order has the task `{task_id}`"
            ))),
        }
    }

    /// ContinuePipeline on change order `order_id`: confirms (or refuses) its next batch.
    pub async fn continue_pipeline(
        &self,
        order_id: &str,
        pipeline_id: &str,
        confirm: bool,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let input = Input::Continue {
            pipeline_id: pipeline_id.to_owned(),
            confirm,
        };
        self.engine
            .control(order_id, input, &actor.name, &actor.request_id)
            .await?;
        Ok(())
    }

    /// ContinuePipeline with `SkipAnalysis=true` on change order `order_id`: the batch waiting
    /// for (or held by) its release analysis moves on without a verdict. The transition's
    /// audit record names the input (`SkipAnalysis`) and the caller.
    pub async fn skip_analysis(
        &self,
        order_id: &str,
        pipeline_id: &str,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let input = Input::SkipAnalysis {
            pipeline_id: pipeline_id.to_owned(),
        };
        self.engine
            .control(order_id, input, &actor.name, &actor.request_id)
            .await?;
        Ok(())
    }

    /// Aborts or rolls back change order `order_id`; returns the order the caller follows:
    /// the rollback's when one was started, else `order_id`.
    pub async fn abort(
        &self,
        order_id: &str,
        how: Abort,
        actor: &Actor,
    ) -> Result<String, AppError> {
        let (engine, who, request_id) = (&self.engine, &actor.name, &actor.request_id);
        let outcome = match how {
            Abort::Only => engine.abort(order_id, who, request_id).await,
            Abort::AndRollback => engine.rollback(order_id, true, who, request_id).await,
            Abort::Rollback => engine.rollback(order_id, false, who, request_id).await,
        }?;
        Ok(outcome
            .rollback_change_order
            .unwrap_or_else(|| order_id.to_owned()))
    }

    /// Retries the failed task `task_id` (of the order [`App::order_of_task`] found); returns
    /// the order's status afterwards.
    pub async fn retry_task(&self, task_id: &str, actor: &Actor) -> Result<i32, AppError> {
        let outcome = self
            .engine
            .retry_task(task_id, &actor.name, &actor.request_id)
            .await?;
        Ok(outcome.status)
    }
}
