//! `replay_webhooks` (liveroom's own, docs/webhooks.md §6): `{"Seqs":[…]}` or `{"All":true}`
//! → `{"Replayed":n}`: parked entries go back to their rooms' queues, due at once.

use liveroom_domain::DomainError;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde_json::Value;

use super::{Call, respond, store_error};
use crate::gateway::State;

/// Most entries one request names.
const SEQS_MAX: usize = 1000;

pub(crate) struct Handler;

impl super::Handler for Handler {
    /// `None`: every parked entry.
    type Request = Option<Vec<u64>>;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Option<Vec<u64>>, ApiError> {
        let all = fields.bool("All")?.unwrap_or(false);
        let seqs = fields.array("Seqs")?;
        match (all, seqs) {
            (true, None) => Ok(None),
            (false, Some(seqs)) if !seqs.is_empty() && seqs.len() <= SEQS_MAX => seqs
                .iter()
                .map(|seq| {
                    seq.as_u64()
                        .ok_or_else(|| DomainError::invalid("Seqs", "must hold sequence numbers"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(Into::into),
            _ => Err(DomainError::invalid(
                "Seqs",
                format!("name 1 to {SEQS_MAX} entries in Seqs, or set All to true (not both)"),
            )
            .into()),
        }
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        seqs: Option<Vec<u64>>,
    ) -> Result<Response, ApiError> {
        let replayed = state
            .store
            .replay(call.app, seqs)
            .await
            .map_err(store_error)?;
        Ok(respond(&serde_json::json!({ "Replayed": Value::from(replayed) })))
    }
}
