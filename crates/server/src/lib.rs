//! liveroom's HTTP server.
//!
//! [`serve`] accepts connections on a listener you bind ([`listener`]), and answers every
//! `/v4/…` request through one pipeline ([`gateway`]): parse the command, authenticate
//! ([`auth`]), rate-limit ([`limits`]), read and parse the body, then dispatch to the
//! command's handler ([`commands`], one file per command). Logs and metrics for
//! every request are written in the gateway, and only there.

mod auth;
mod body;
mod commands;
mod config;
mod gateway;
mod limits;
mod linger;
mod listener;
mod logging;
mod metrics;

use std::future::Future;
use std::sync::Arc;

use liveroom_domain::Clock;
use liveroom_store::Store;
use tokio::net::TcpListener;

pub use commands::check_request;
pub use config::{
    AppConfig, ConnectionLimits, SecretKey, ServerConfig, ThrottleConfig, TlsConfig, TrustedProxies,
};
pub use logging::{LogGuard, init_logging};

/// Serves `store` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish, and closes the store (every accepted write is flushed).
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: S,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let connections = config.connections.clone();
    let tls = config.tls.clone();
    let state = Arc::new(gateway::State::new(store, config, clock));
    metrics::handle();
    let upkeep = tokio::spawn(metrics::upkeep());
    let served = listener::run(listener, state.clone(), &connections, tls, shutdown).await;
    upkeep.abort();
    state.store.close().await;
    served
}
