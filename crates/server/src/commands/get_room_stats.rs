//! `get_room_stats`: `{"RoomId"}` → the room's cumulative statistics (docs/behaviour.md §6,
//! §14).

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, Totals, respond};
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
        Ok(respond(&Totals::read(state, call, &room).await?))
    }
}
