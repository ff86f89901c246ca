//! `get_feed` (liveroom's own, docs/webhooks.md §6): `{"RoomId"?,"AfterSeq"?,"Limit"?}` →
//! `{"Events":[…],"NextAfterSeq"}`, the app's (or one room's) feed entries after `AfterSeq`,
//! each as its webhook body with `Seq` first.

use liveroom_domain::RoomId;
use liveroom_protocol::webhook::feed_event;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, FeedPage, feed_page, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

pub(crate) struct Request {
    room: Option<RoomId>,
    page: FeedPage,
}

impl super::Handler for Handler {
    type Request = Request;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Request, ApiError> {
        let room = fields
            .string("RoomId")?
            .map(RoomId::parse)
            .transpose()?;
        Ok(Request {
            room,
            page: FeedPage::parse(fields)?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        request: Request,
    ) -> Result<Response, ApiError> {
        let FeedPage { after, limit } = request.page;
        let entries = state
            .store
            .feed(call.app, request.room.as_ref(), after, limit)
            .await
            .map_err(store_error)?;
        let next = entries.last().map_or(after, |e| e.seq);
        Ok(feed_page(entries.iter().map(feed_event), next))
    }
}
