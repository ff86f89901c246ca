//! `get_admin_list`: `{"RoomId"}` → `{"Admin_Account":[…]}`, the room's administrators in
//! account order (docs/behaviour.md §14).

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, account_list};
use crate::gateway::State;

pub(crate) struct Handler;

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
        account_list(state, call, &room, "Admin_Account", |people| &people.admins).await
    }
}
