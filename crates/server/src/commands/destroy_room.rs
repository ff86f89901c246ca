//! `destroy_room`: `{"RoomId"}` → `{"Statistic":{…}}`, the room's totals as it goes
//! (docs/behaviour.md §6).

use liveroom_domain::RoomId;
use liveroom_domain::ops::DestroyRoom;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, Totals, respond, write};
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
        // The totals as the room was just before (docs/behaviour.md §14); the destroy itself
        // decides 100004 too, should the room go in between.
        let last = Totals::read(state, call, &room).await?;
        write(state, call, DestroyRoom(room)).await?;
        let statistic = Totals {
            total_msg_count: None,
            ..last
        };
        Ok(respond(&Destroyed { statistic }))
    }
}
