//! `get_admin_list`: `{"RoomId"}` → `{"Admin_Account":[…]}`, the room's administrators in
//! account order (docs/behaviour.md §14).

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "Admin_Account")]
    admin_account: Vec<&'a str>,
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
        let admin_account = room.people.admins.iter().map(|a| a.as_str()).collect();
        Ok(respond(&Answer { admin_account }))
    }
}
