//! `mute_member`: `{"RoomId","MemberList_Account":[…],"MuteTime":secs}` mutes the accounts for
//! `MuteTime` seconds from now, or unmutes them when it is 0 (docs/behaviour.md §14).

use liveroom_domain::ops::MuteMembers;
use liveroom_domain::people::moderation_secs;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, request_accounts};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = MuteMembers;

    /// `MemberList_Account`: 1 to 20 accounts; `MuteTime`: 0 to ten years, in seconds.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<MuteMembers, ApiError> {
        Ok(MuteMembers {
            room: fields.room_id()?,
            accounts: request_accounts(fields, "MemberList_Account")?,
            secs: moderation_secs("MuteTime", fields.required("MuteTime", Fields::int)?)?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        mute: MuteMembers,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, mute).await
    }
}
