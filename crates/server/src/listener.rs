//! The accept loop: caps concurrent connections, bounds how long a client may take to send
//! headers (which also ends idle keep-alive connections), and shuts down gracefully: stop
//! accepting, let in-flight requests finish, then return. A connection upgraded to a WebSocket
//! leaves the HTTP layer (and its slot) for the real-time gateway, which bounds its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::{ConnectionLimits, TlsConfig};
use liveroom_store::Store;

use crate::gateway::{self, ClientAddr, State};
use crate::linger::{CloseAnnounced, Lingering};

pub(crate) async fn run<S: Store>(
    listener: TcpListener,
    state: Arc<State<S>>,
    limits: &ConnectionLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let tls = tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.0));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Flipped once at shutdown; every connection then finishes its request in flight and ends.
    let (stopping, _) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut shutdown = pin!(shutdown);

    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let close_announced = CloseAnnounced::default();
        let stream = Lingering::new(stream, close_announced.clone(), limits.body_timeout);
        let state = Arc::clone(&state);
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ClientAddr(peer));
            let state = Arc::clone(&state);
            let close_announced = close_announced.clone();
            async move {
                let response = gateway::route(&state, request).await;
                close_announced.note(&response);
                Ok::<_, Infallible>(response)
            }
        });
        let stop = stopping.subscribe();
        let http = http.clone();
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        // Errors of a single connection (a client that goes away mid-request, a failed TLS
        // handshake) are routine, not errors of the server.
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&http, TokioIo::new(stream), service, stop).await,
                Some(tls) => {
                    // The handshake is bounded like the headers, so a silent client cannot hold
                    // the slot; a stop abandons it, as no request has started yet.
                    let mut stopped = stop.clone();
                    let handshake = tokio::time::timeout(handshake_timeout, tls.accept(stream));
                    tokio::select! {
                        accepted = handshake => if let Ok(Ok(stream)) = accepted {
                            serve_connection(&http, TokioIo::new(stream), service, stop).await;
                        },
                        _ = async { stopped.wait_for(|stopping| *stopping).await.is_ok() } => {}
                    }
                }
            }
            drop(slot);
        });
    }

    drop(listener);
    stopping.send_replace(true);
    // Every connection holds a slot until it ends: all slots back means all connections done.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Serves one connection; WebSocket upgrades leave it for the real-time gateway. When `stop`
/// flips, the connection finishes the request in flight and ends.
async fn serve_connection<I, S>(
    http: &http1::Builder,
    io: I,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(http.serve_connection(io, service).with_upgrades());
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { stop.wait_for(|stopping| *stopping).await.is_ok() } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
