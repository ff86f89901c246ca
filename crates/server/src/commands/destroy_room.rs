//! `destroy_room`: `{"RoomId"}` → `{"Statistic":{…}}` (docs/behaviour.md §6).

use liveroom_domain::RoomId;
use liveroom_domain::ops::DestroyRoom;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, respond, write};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Destroyed {
    #[serde(rename = "Statistic")]
    statistic: Statistic,
}

/// The room's totals: zeros until viewers, gifts and likes are counted.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Statistic {
    total_viewers: u64,
    total_gifts_sent: u64,
    total_gift_coins: u64,
    total_unique_gift_senders: u64,
    total_likes_received: u64,
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
        write(state, call, DestroyRoom(room)).await?;
        Ok(respond(&Destroyed {
            statistic: Statistic::default(),
        }))
    }
}
