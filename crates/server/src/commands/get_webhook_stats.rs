//! `get_webhook_stats` (liveroom's own, docs/webhooks.md §6): `{}` →
//! `{"Pending","Parked","OldestPendingAgeMs"}`, what the app's webhook has still to deliver.

use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, respond, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = ();

    fn parse(_: &Fields<'_>, _: &Call<'_>) -> Result<(), ApiError> {
        Ok(())
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        (): (),
    ) -> Result<Response, ApiError> {
        let backlog = state
            .store
            .backlog(call.app)
            .await
            .map_err(store_error)?;
        let now_ms = call.now.as_millis() as u64;
        let age = backlog
            .oldest_pending_ms
            .map_or(0, |ms| now_ms.saturating_sub(ms));
        Ok(respond(&serde_json::json!({
            "Pending": backlog.pending,
            "Parked": backlog.parked,
            "OldestPendingAgeMs": age,
        })))
    }
}
