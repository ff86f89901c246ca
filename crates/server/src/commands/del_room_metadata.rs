//! `del_room_metadata`, the command liveroom started from: `{"RoomId","Keys":[…]}` deletes the
//! keys that exist (docs/behaviour.md §7).

use liveroom_domain::DeleteKeys;
use liveroom_domain::ops::DeleteMetadata;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = DeleteMetadata;

    /// `Keys`: a non-empty array of strings.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<DeleteMetadata, ApiError> {
        Ok(DeleteMetadata {
            room: fields.room_id()?,
            keys: DeleteKeys::new(fields.required("Keys", Fields::string_array)?)?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        delete: DeleteMetadata,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, delete).await
    }
}
