//! `unban_member`: `{"RoomId","MemberList_Account":[…]}` lifts the bans of those accounts that
//! are banned; the others are left as they are (docs/behaviour.md §14).

use liveroom_domain::ops::UnbanMembers;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, request_accounts};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = UnbanMembers;

    /// `MemberList_Account`: 1 to 20 accounts.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<UnbanMembers, ApiError> {
        Ok(UnbanMembers {
            room: fields.room_id()?,
            accounts: request_accounts(fields, "MemberList_Account")?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        unban: UnbanMembers,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, unban).await
    }
}
