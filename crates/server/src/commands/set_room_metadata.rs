//! `set_room_metadata`: `{"RoomId","Metadata":[{"Key","Value"}]}`, an upsert under the
//! metadata limits (docs/behaviour.md §7).

use liveroom_domain::ops::{IfRevision, SetMetadata};
use liveroom_domain::{MetadataEntries, MetadataEntry};
use liveroom_protocol::{ApiError, ErrorCode, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, conditional};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = IfRevision<SetMetadata>;

    /// `Metadata`: a non-empty array of `{"Key": string, "Value": string}`; `ExpectedRevision`
    /// (optional) makes it a compare-and-set.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<IfRevision<SetMetadata>, ApiError> {
        let room = fields.room_id()?;
        let entries = fields
            .required("Metadata", Fields::array)?
            .iter()
            .map(|item| {
                let item = item.as_object().ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidParameter,
                        "invalid Metadata: every item must be an object",
                    )
                })?;
                let item = Fields::new(item);
                let key = item.required("Key", Fields::string)?;
                let value = item.required("Value", Fields::string)?;
                Ok(MetadataEntry::new(key, value)?)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let set = SetMetadata {
            room,
            entries: MetadataEntries::new(entries)?,
        };
        conditional(fields, set)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        set: IfRevision<SetMetadata>,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, set).await
    }
}
