//! What liveroom sends to an app's backend (docs/webhooks.md): the webhook sender, which
//! delivers the app's feed entries as Tencent's callbacks, signed with Standard Webhooks,
//! at least once and in order per room; and the before-send hook, which asks the backend
//! about each room message before it is delivered.

mod before_send;
mod config;
mod http;
mod sender;
mod sign;

pub use before_send::{BeforeSend, Verdict};
pub use config::{BeforeSendConfig, OnFailure, SigningKey, Target, WebhookConfig};
pub use sender::{AppWebhook, outboxes, run};
pub use sign::{Signed, message_id, sign};
