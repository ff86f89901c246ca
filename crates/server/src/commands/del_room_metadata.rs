//! `del_room_metadata`, the command liveroom started from: `{"RoomId","Keys":[…]}` deletes the
//! keys that exist (docs/behaviour.md §7).

use liveroom_domain::DeleteKeys;
use liveroom_domain::ops::{DeleteMetadata, IfRevision};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, conditional};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = IfRevision<DeleteMetadata>;

    /// `Keys`: a non-empty array of strings; `ExpectedRevision` (optional) makes it a
    /// compare-and-set.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<IfRevision<DeleteMetadata>, ApiError> {
        let delete = DeleteMetadata {
            room: fields.room_id()?,
            keys: DeleteKeys::new(fields.required("Keys", Fields::string_array)?)?,
        };
        conditional(fields, delete)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        delete: IfRevision<DeleteMetadata>,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, delete).await
    }
}
