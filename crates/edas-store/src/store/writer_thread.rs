//! The SQLite writer's own thread: a single-threaded runtime on which the group writer of the
//! hot write transactions (`sync_sqlite`) runs, so its groups are never queued behind the
//! API's request tasks on the server's runtime.

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

    /// Runs `task` on the writer thread until it ends or the thread stops.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        drop(self.handle.spawn(task));
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
