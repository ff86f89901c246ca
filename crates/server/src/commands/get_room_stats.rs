//! `get_room_stats`: `{"RoomId"}` → the room's cumulative statistics (docs/behaviour.md §6).
//! Counts what liveroom records today: `TotalViewers` is the room's entries (`ViewCount`);
//! gifts, likes and messages count from 0 until liveroom records them.

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Stats {
    total_viewers: u64,
    total_gifts_sent: u64,
    total_gift_coins: u64,
    total_unique_gift_senders: u64,
    total_likes_received: u64,
    total_msg_count: u64,
}

impl super::Handler for Handler {
    type Request = RoomId;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<RoomId, ApiError> {
        fields.room_id()
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        room: RoomId,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &room).await?;
        Ok(respond(&Stats {
            total_viewers: room.room.view_count,
            total_gifts_sent: 0,
            total_gift_coins: 0,
            total_unique_gift_senders: 0,
            total_likes_received: 0,
            total_msg_count: 0,
        }))
    }
}
