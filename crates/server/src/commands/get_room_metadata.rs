//! `get_room_metadata`: `{"RoomId","Keys":[…]}` (`[]` = all) → `{"Metadata":[{"Key","Value"}]}`
//! (docs/behaviour.md §7).

use liveroom_domain::{RoomId, select_metadata};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

pub(crate) struct Handler;

pub(crate) struct Get {
    room: RoomId,
    keys: Vec<String>,
    /// `WithRevision: true` (a liveroom extension) adds the metadata revision to the answer.
    with_revision: bool,
}

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "Metadata")]
    metadata: Vec<Pair<'a>>,
    #[serde(rename = "Revision", skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Pair<'a> {
    key: &'a str,
    value: &'a str,
}

impl super::Handler for Handler {
    type Request = Get;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Get, ApiError> {
        Ok(Get {
            room: fields.room_id()?,
            keys: fields.required("Keys", Fields::string_array)?,
            with_revision: fields.bool("WithRevision")?.unwrap_or(false),
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        get: Get,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &get.room).await?;
        let metadata = select_metadata(&room.metadata, &get.keys)
            .into_iter()
            .map(|(key, value)| Pair { key, value })
            .collect();
        let revision = get.with_revision.then_some(room.room.revision);
        Ok(respond(&Answer { metadata, revision }))
    }
}
