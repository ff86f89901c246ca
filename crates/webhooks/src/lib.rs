//! What liveroom sends to an app's backend (docs/webhooks.md): the webhook sender, which
//! delivers the app's feed entries as Tencent's callbacks, signed with Standard Webhooks,
//! at least once and in order per room; and the before-send hook, which asks the backend
//! about each room message before it is delivered.

mod before_send;
mod config;
mod sender;
mod sign;

pub use before_send::{BeforeSend, Verdict};
pub use config::{BeforeSendConfig, OnFailure, SigningKey, Target, WebhookConfig};
pub use sender::{AppWebhook, outboxes, run};
pub use sign::{Signed, message_id, sign};

/// The one HTTP client of webhooks and hooks: HTTPS verified against Mozilla's root
/// certificates, no redirects followed (docs/webhooks.md §2), no proxy from the environment.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(1024);
    match tls {
        Ok(tls) => builder.tls_backend_preconfigured(tls),
        // The ring provider supports the default versions; without TLS only http works.
        Err(_) => builder,
    }
    .build()
}

/// Most bytes of a receiver's answer that are read (to look at its `ErrorCode`).
const ANSWER_MAX_BYTES: usize = 64 * 1024;

/// The `ErrorCode` of a JSON answer, when it has one; reads at most [`ANSWER_MAX_BYTES`].
pub(crate) async fn error_code(mut response: reqwest::Response) -> Option<i64> {
    let mut answer = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        answer.extend_from_slice(&chunk);
        if answer.len() > ANSWER_MAX_BYTES {
            return None;
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&answer).ok()?;
    value.get("ErrorCode")?.as_i64()
}
