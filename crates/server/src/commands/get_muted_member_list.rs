//! `get_muted_member_list`: `{"RoomId"}` → `{"MutedAccountList":[{"Member_Account",
//! "MutedUntil"}]}`, the mutes in force now, in account order (docs/behaviour.md §14). The
//! `Next`, `Count`, `Offset` and `Limit` that Tencent's console sends are ignored: the list is
//! bounded (1000) and answered whole.

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "MutedAccountList")]
    muted_account_list: Vec<Muted<'a>>,
}

#[derive(Serialize)]
struct Muted<'a> {
    #[serde(rename = "Member_Account")]
    member_account: &'a str,
    #[serde(rename = "MutedUntil")]
    muted_until: u64,
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
        let muted_account_list = room
            .people
            .muted_at(call.now.as_secs())
            .map(|(account, until)| Muted {
                member_account: account.as_str(),
                muted_until: until,
            })
            .collect();
        Ok(respond(&Answer { muted_account_list }))
    }
}
