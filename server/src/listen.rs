//! The accept loop: what `axum::serve` does, plus what a server facing untrusted clients needs —
//! a bound on the connections served at once, a header read timeout (a slow-loris client that
//! trickles its headers, or holds an idle connection, is cut off), and a graceful stop: no new
//! connection once stopping, in-flight requests finish (event streams end at once), then the
//! connections close, waiting at most [`GRACE`].

use crate::tls::Tls;
use crate::Stopping;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers, and how long an idle connection is
/// kept between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for in-flight requests.
pub const GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` (over TLS when given) until `stopping` fires, then stops
/// gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Tls>,
    mut stopping: Stopping,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, tls = tls.is_some(), "HTTP API listening");
    }
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stopping.wait() => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine; pause a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(Tls(acceptor)) => {
                    // The handshake is bounded like the headers: a client that stalls in it
                    // holds a slot no longer.
                    let stream =
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = served {
                // A client that went away or timed out: routine, not the server's failure.
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => {
            tracing::warn!(grace = ?GRACE, "requests still in flight after the grace period; closing their connections");
        }
    }
    tracing::info!("HTTP API stopped");
    Ok(())
}
