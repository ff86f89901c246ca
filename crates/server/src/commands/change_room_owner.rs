//! `change_room_owner`: `{"RoomId","NewOwner_Account"}` hands the room to a member
//! (docs/behaviour.md §15): one connected to the room, or one of its robots; anyone else is
//! 100005.

use liveroom_domain::ops::ChangeOwner;
use liveroom_domain::DomainError;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, account, acknowledge, existing_room};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = ChangeOwner;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<ChangeOwner, ApiError> {
        Ok(ChangeOwner {
            room: fields.room_id()?,
            owner: account(fields, "NewOwner_Account")?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        change: ChangeOwner,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &change.room).await?;
        let owner = change.owner.as_str();
        let member = room.people.robots.contains(owner)
            || room.room.owner == change.owner
            || crate::realtime::members::is_member(state, call.app, &change.room, &change.owner)
                .await?;
        if !member {
            return Err(DomainError::NotAMember.into());
        }
        acknowledge(state, call, change).await
    }
}
