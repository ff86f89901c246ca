//! `del_room_metadata`, the command liveroom started from: `{"RoomId","Keys":[…]}` deletes the
//! keys that exist (docs/behaviour.md §7).

use liveroom_domain::DeleteKeys;
use liveroom_domain::ops::DeleteMetadata;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, Conditional};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = Conditional<DeleteMetadata>;

    /// `Keys`: a non-empty array of strings; `ExpectedRevision` (optional) makes it a
    /// compare-and-set.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Conditional<DeleteMetadata>, ApiError> {
        let delete = DeleteMetadata {
            room: fields.room_id()?,
            keys: DeleteKeys::new(fields.required("Keys", Fields::string_array)?)?,
        };
        Conditional::parse(fields, delete)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        delete: Conditional<DeleteMetadata>,
    ) -> Result<Response, ApiError> {
        delete.acknowledge(state, call).await
    }
}
