//! liveroom's HTTP server.
//!
//! [`serve`] accepts connections on a listener you bind ([`listener`]), and answers every
//! `/v4/…` request through one pipeline ([`gateway`]): parse the command, authenticate
//! ([`auth`]), rate-limit ([`limits`]), read and parse the body, then dispatch to the
//! command's handler ([`commands`], one file per command). Logs and metrics for
//! every request are written in the gateway, and only there. `GET /v1/realtime` upgrades to
//! the real-time gateway ([`realtime`], docs/protocol.md) on the same listener.

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
mod realtime;

use std::future::Future;
use std::sync::Arc;

use liveroom_domain::Clock;
use liveroom_store::Store;
use tokio::net::TcpListener;

pub use commands::check_request;
pub use config::{
    AppConfig, ConnectionLimits, RealtimeConfig, SecretKey, ServerConfig, ThrottleConfig,
    TlsConfig, TrustedProxies,
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
    // The recorder first: the webhook sender registers its metrics as it starts.
    metrics::handle();
    let connections = config.connections.clone();
    let tls = config.tls.clone();
    let webhooks = webhooks(&config.apps);
    let store = Arc::new(store);
    let (stop_webhooks, webhooks_stop) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(liveroom_webhooks::run(
        Arc::clone(&store),
        webhooks,
        clock.clone(),
        webhooks_stop,
    ));
    let node = config.node.clone();
    let state = Arc::new(gateway::State::new(store, config, clock));
    if !node.is_empty() {
        // Which node's metrics these are, for dashboards over a cluster (docs/cluster.md §6).
        ::metrics::gauge!("liveroom_node_info", "node" => node).set(1.0);
    }
    let upkeep = tokio::spawn(metrics::upkeep());
    // Subscribed before the first connection is accepted, so no client can miss an event.
    let fan_out = tokio::spawn(realtime::background(
        state.clone(),
        state.store.subscribe(),
        state.store.relayed(),
    ));
    let served = listener::run(listener, state.clone(), &connections, tls, shutdown).await;
    state.realtime.close_all(REALTIME_CLOSE_PATIENCE).await;
    state.realtime.recorder.flush().await;
    fan_out.abort();
    upkeep.abort();
    // Attempts in flight finish (within their timeout) and are recorded before the store
    // closes (docs/webhooks.md §5).
    let _ = stop_webhooks.send(true);
    let _ = sender.await;
    state.store.close().await;
    served
}

/// The apps' webhooks; the store serving them must be opened with
/// [`liveroom_webhooks::outboxes`] of these.
pub fn webhooks(apps: &[AppConfig]) -> Vec<liveroom_webhooks::AppWebhook> {
    apps.iter()
        .filter_map(|app| {
            Some(liveroom_webhooks::AppWebhook {
                app: app.sdkappid,
                admins: app.admins.clone(),
                config: app.webhook.clone()?,
            })
        })
        .collect()
}

/// How long a stop waits for real-time connections to take their close frame.
const REALTIME_CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `text` is a frame of the real-time protocol (docs/protocol.md); for the fuzz
/// target, which must never see it panic.
pub fn check_realtime_frame(text: &str) -> bool {
    realtime::frames::parse(text).is_ok()
}
