//! `update_room_info`: `{"RoomInfo":{"RoomId",…}}`, only the fields present change
//! (docs/behaviour.md §6).

use liveroom_domain::ops::UpdateRoom;
use liveroom_protocol::{ApiError, Fields, Response, room_changes};
use liveroom_store::Store;

use super::{Call, acknowledge};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = UpdateRoom;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<UpdateRoom, ApiError> {
        let info = fields.required("RoomInfo", Fields::object)?;
        Ok(UpdateRoom {
            room: info.room_id()?,
            changes: room_changes(&info)?.validate()?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        update: UpdateRoom,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, update).await
    }
}
