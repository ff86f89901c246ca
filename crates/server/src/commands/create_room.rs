//! `create_room`: `{"RoomInfo":{"RoomId",…}}` → `{"RoomId"}` (docs/behaviour.md §6).

use liveroom_domain::NewRoom;
use liveroom_domain::ops::CreateRoom;
use liveroom_protocol::{ApiError, Fields, Response, room_changes};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, respond, write};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Created<'a> {
    #[serde(rename = "RoomId")]
    room_id: &'a str,
}

impl super::Handler for Handler {
    type Request = NewRoom;

    /// `Owner_Account` defaults to the calling administrator.
    fn parse(fields: &Fields<'_>, call: &Call<'_>) -> Result<NewRoom, ApiError> {
        let info = fields.required("RoomInfo", Fields::object)?;
        Ok(NewRoom::validate(
            info.required("RoomId", Fields::string)?,
            info.string("RoomType")?,
            info.string("Owner_Account")?,
            call.caller,
            room_changes(&info)?,
        )?)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        room: NewRoom,
    ) -> Result<Response, ApiError> {
        let id = room.id.clone();
        write(state, call, CreateRoom(room)).await?;
        Ok(respond(&Created {
            room_id: id.as_str(),
        }))
    }
}
