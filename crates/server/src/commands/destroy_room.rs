//! `destroy_room`: `{"RoomId"}` → `{"Statistic":{…}}`, the room's totals as it goes
//! (docs/behaviour.md §6).

use liveroom_domain::RoomId;
use liveroom_domain::ops::DestroyRoom;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, Totals, existing_room, respond, write};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Destroyed {
    #[serde(rename = "Statistic")]
    statistic: Totals,
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
        // The totals as the room was just before; the destroy itself decides 100004.
        let last = existing_room(state, call, &room).await?;
        write(state, call, DestroyRoom(room)).await?;
        let statistic = Totals {
            total_msg_count: None,
            ..Totals::of(&last.room)
        };
        Ok(respond(&Destroyed { statistic }))
    }
}
