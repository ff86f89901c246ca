//! `get_parked_webhooks` (liveroom's own, docs/webhooks.md §6): `{"AfterSeq"?,"Limit"?}` →
//! `{"Events":[{"Seq","RoomId","CallbackCommand","Error","Body"}],"NextAfterSeq"}`, the
//! entries whose delivery was given up, with the reason of their last failure.

use liveroom_protocol::webhook::{callback_body, callback_command};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, FeedPage, feed_page, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

/// An event's fields before its `Body`, in the documented order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParkedHead<'a> {
    seq: u64,
    room_id: &'a str,
    callback_command: &'a str,
    error: &'a str,
}

impl super::Handler for Handler {
    type Request = FeedPage;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<FeedPage, ApiError> {
        FeedPage::parse(fields)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        FeedPage { after, limit }: FeedPage,
    ) -> Result<Response, ApiError> {
        let parked = state
            .store
            .parked(call.app, after, limit)
            .await
            .map_err(store_error)?;
        let next = parked.last().map_or(after, |p| p.entry.seq);
        let events = parked.iter().map(|p| {
            let head = ParkedHead {
                seq: p.entry.seq,
                room_id: p.entry.room.as_str(),
                callback_command: callback_command(p.entry.item.hook()),
                error: &p.error,
            };
            // `head` is an object: its fields, then `Body`.
            let mut event = serde_json::to_vec(&head).unwrap_or_default();
            event.pop();
            event.extend_from_slice(b",\"Body\":");
            event.extend_from_slice(&callback_body(&p.entry));
            event.push(b'}');
            event
        });
        Ok(feed_page(events, next))
    }
}
