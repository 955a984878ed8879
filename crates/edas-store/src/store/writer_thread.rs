//! The SQLite writer's own thread: the hot write transactions (deploy, transition, creation)
//! run whole on a single-threaded runtime of their own, so the ~10 round trips of a transaction
//! to sqlx's connection worker are not each queued behind the API's request tasks on the
//! server's runtime (what held the one writer connection for milliseconds under load). The
//! caller pays one hand-off per transaction instead of one wait in the run queue per statement.

use crate::error::StoreError;

/// The writer thread; it stops when this is dropped (the runtime is dropped on its own thread,
/// never inside the caller's).
pub(crate) struct WriterThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WriterThread {
    pub(crate) fn start() -> Result<WriterThread, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("edas-store-writer")
            .build()
            .map_err(|source| StoreError::Io {
                path: "edas-store-writer".into(),
                source,
            })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("edas-store-writer".into())
            // A transaction's future is polled on this stack (debug builds need room).
            .stack_size(8 << 20)
            .spawn(move || {
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })
            .map_err(|source| StoreError::Io {
                path: "edas-store-writer".into(),
                source,
            })?;
        Ok(WriterThread {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `work` (a whole write transaction) on the writer thread and answers its result.
    pub(crate) async fn run<T>(&self, work: super::BoxedWrite<T>) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Io {
                path: "edas-store-writer".into(),
                source: std::io::Error::other(format!("the writer thread stopped: {e}")),
            }),
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
