//! Plain TCP forwarding: each client connection is spliced to one ready instance.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::Shared;

/// How long connecting to an instance may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to a picked instance (another one once if that fails; nothing was sent yet) and
/// copies both ways until either side closes. With no instance the client is disconnected.
pub(crate) async fn forward(mut inbound: TcpStream, shared: Arc<Shared>) {
    let _ = inbound.set_nodelay(true);
    let mut exclude = None;
    for _attempt in 0..2 {
        let Some((target, guard)) = shared.pick(None, exclude) else {
            tracing::debug!(
                port = shared.listen.port(),
                "no ready instance; closing connection"
            );
            return;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(mut outbound)) => {
                let _ = outbound.set_nodelay(true);
                if let Err(error) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
                {
                    tracing::debug!(%target, %error, "forwarded connection ended with an error");
                }
                drop(guard);
                return;
            }
            Ok(Err(error)) => tracing::debug!(%target, %error, "instance refused the connection"),
            Err(_) => tracing::debug!(%target, "connecting to the instance timed out"),
        }
        exclude = Some(target);
    }
}
