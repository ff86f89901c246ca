//! `ban_member`: `{"RoomId","MemberList_Account":[…],"Duration":secs,"Reason"?}` bars the
//! accounts from the room for `Duration` seconds from now (docs/behaviour.md §14). Removing
//! their live connections is the real-time gateway's, on the `member.banned` event.

use liveroom_domain::DomainError;
use liveroom_domain::ops::BanMembers;
use liveroom_domain::people::{MODERATION_MAX_SECS, ban_reason, moderation_secs};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, request_accounts};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = BanMembers;

    /// `MemberList_Account`: 1 to 20 accounts; `Duration`: 1 second to ten years; `Reason`:
    /// an optional string of at most 200 bytes.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<BanMembers, ApiError> {
        let room = fields.room_id()?;
        let accounts = request_accounts(fields, "MemberList_Account")?;
        let secs = moderation_secs("Duration", fields.required("Duration", Fields::int)?)?;
        if secs == 0 {
            return Err(DomainError::invalid(
                "Duration",
                format!("must be 1 to {MODERATION_MAX_SECS} seconds"),
            )
            .into());
        }
        let reason = ban_reason(fields.string("Reason")?)?;
        Ok(BanMembers {
            room,
            accounts,
            secs,
            reason,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        ban: BanMembers,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, ban).await
    }
}
