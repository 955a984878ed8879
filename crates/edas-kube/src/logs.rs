//! An instance's output through the pod log API (`GET …/pods/<name>/log`): the application's
//! container (named after the application, lowercased, as `edas-render` names it), with the
//! request's follow, previous, tailLines and sinceSeconds. The pod must be in the cache and
//! labelled with the application's id, so no other application's pod can be read.

use edas_runtime::{AppRef, LogChunks, LogError, LogRequest, RuntimeError, log_channel};
use futures_util::AsyncReadExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::{KubeRuntime, LABEL_APP_ID, label};

/// The largest chunk sent at once.
const CHUNK: usize = 64 * 1024;

impl KubeRuntime {
    pub(crate) async fn pod_logs(
        &self,
        app: &AppRef,
        instance: &str,
        request: &LogRequest,
    ) -> Result<LogChunks, LogError> {
        self.ready().await?;
        let pod = self
            .inner
            .pods
            .state()
            .into_iter()
            .find(|p| {
                p.metadata.name.as_deref() == Some(instance)
                    && label(p.as_ref(), LABEL_APP_ID) == Some(app.id.as_str())
            })
            .ok_or_else(|| {
                LogError::NoInstance(format!(
                    "the application has no pod `{instance}` in cluster `{}`",
                    self.inner.options.cluster_id
                ))
            })?;
        let container = app.name.to_ascii_lowercase();
        if request.previous && !has_terminated(&pod, &container) {
            return Err(LogError::NoPrevious(format!(
                "pod `{instance}` has not restarted: there is no previous run to read"
            )));
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &namespace);
        let params = LogParams {
            container: Some(container),
            follow: request.follow,
            previous: request.previous,
            tail_lines: request
                .tail_lines
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            since_seconds: request
                .since_seconds
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            ..LogParams::default()
        };
        let mut body = api.log_stream(instance, &params).await.map_err(|e| {
            let message = format!("reading the log of pod `{instance}`: {e}");
            // The kubelet refuses with 400 (404 for a pod gone meanwhile): no previous run, or
            // a container that has not started yet; anything else may pass.
            match &e {
                kube::Error::Api(status) if status.code == 400 || status.code == 404 => {
                    if request.previous {
                        LogError::NoPrevious(message)
                    } else {
                        LogError::NoInstance(message)
                    }
                }
                _ => LogError::Runtime(RuntimeError::Unavailable(message)),
            }
        })?;
        let (tx, rx) = log_channel();
        tokio::spawn(async move {
            let mut buf = vec![0; CHUNK];
            loop {
                let read = tokio::select! {
                    read = body.read(&mut buf) => read,
                    () = tx.closed() => return,
                };
                let chunk = match read {
                    Ok(0) => return,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) => Err(RuntimeError::Unavailable(format!(
                        "the pod log stream broke: {e}"
                    ))),
                };
                let last = chunk.is_err();
                if tx.send(chunk).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// Whether `container` of the pod has a terminated run before the current one.
fn has_terminated(pod: &Pod, container: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == container)
        .any(|c| {
            c.restart_count > 0
                || c.last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
        })
}
