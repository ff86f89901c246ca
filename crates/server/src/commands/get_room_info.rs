//! `get_room_info`: `{"RoomId"}` → `{"RoomInfo":{…}}` (docs/behaviour.md §6).

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response, RoomInfoWire};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "RoomInfo")]
    room_info: RoomInfoWire<'a>,
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
        Ok(respond(&Info {
            room_info: RoomInfoWire::from(&room.room),
        }))
    }
}
