//! The before-send moderation hook (docs/webhooks.md §7): Tencent IM's
//! `Group.CallbackBeforeSendMsg`, asked about each room message before it is delivered.

use std::collections::HashMap;
use std::sync::Arc;

use liveroom_domain::{AppId, Clock};
use tokio::sync::Semaphore;

use crate::http::HttpClient;
use crate::sign::sign;
use crate::{BeforeSendConfig, OnFailure};

/// What the hook decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Block,
}

/// The before-send hooks of every app that has one.
pub struct BeforeSend {
    client: HttpClient,
    clock: Arc<dyn Clock>,
    apps: HashMap<AppId, (BeforeSendConfig, Arc<Semaphore>)>,
}

impl std::fmt::Debug for BeforeSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeforeSend")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Questions answered by `ErrorCode` 1 block the message; 0 allows it.
const BLOCK: i64 = 1;
const ALLOW: i64 = 0;

impl BeforeSend {
    pub fn new(
        hooks: impl IntoIterator<Item = (AppId, BeforeSendConfig)>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let apps: HashMap<_, _> = hooks
            .into_iter()
            .map(|(app, config)| {
                let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
                (app, (config, permits))
            })
            .collect();
        let client = HttpClient::new();
        Self {
            client,
            clock,
            apps,
        }
    }

    /// Whether `app` has a hook to ask.
    pub fn asks(&self, app: AppId) -> bool {
        self.apps.contains_key(&app)
    }

    /// Asks `app`'s hook about a message whose callback body is `body` (see
    /// `liveroom_protocol::webhook::before_send_body`). Without a hook: allowed.
    pub async fn ask(&self, app: AppId, body: Vec<u8>) -> Verdict {
        let Some((config, permits)) = self.apps.get(&app) else {
            return Verdict::Allow;
        };
        let on_failure = match config.on_failure {
            OnFailure::Allow => Verdict::Allow,
            OnFailure::Block => Verdict::Block,
        };
        // Bounded: beyond `max_in_flight` questions, the policy answers without asking.
        let Ok(_permit) = permits.try_acquire() else {
            metrics::counter!("liveroom_before_send_total", "app" => app.to_string(), "outcome" => "busy")
                .increment(1);
            return on_failure;
        };
        let (verdict, outcome) = match self.request(app, config, body).await {
            Ok(BLOCK) => (Verdict::Block, "blocked"),
            Ok(ALLOW) => (Verdict::Allow, "allowed"),
            Ok(code) => {
                tracing::warn!(
                    app,
                    code,
                    "before-send hook: unknown ErrorCode; on_failure decides"
                );
                (on_failure, "failed")
            }
            Err(error) => {
                tracing::warn!(app, %error, "before-send hook failed; on_failure decides");
                (on_failure, "failed")
            }
        };
        metrics::counter!("liveroom_before_send_total", "app" => app.to_string(), "outcome" => outcome)
            .increment(1);
        verdict
    }

    async fn request(
        &self,
        app: AppId,
        config: &BeforeSendConfig,
        body: Vec<u8>,
    ) -> Result<i64, String> {
        let url = config
            .url
            .callback_url(app, "Group.CallbackBeforeSendMsg", "RESTAPI");
        let headers = config.secret.as_ref().map_or_else(Vec::new, |key| {
            let id = format!("msg_{app}_{}", rand::random::<u64>());
            sign(key, &id, self.clock.unix_secs(), &body).headers()
        });
        let answer = self
            .client
            .post_json(&url, headers, body, config.timeout)
            .await
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("HTTP {}", answer.status));
        }
        answer
            .error_code
            .ok_or_else(|| "the answer is not JSON with an ErrorCode".to_owned())
    }
}
