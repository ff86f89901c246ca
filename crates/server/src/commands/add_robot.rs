//! `add_robot`: `{"RoomId","RobotList_Account":[…]}` adds imported accounts to the room's
//! robots, at most 3 per room; robots already there are left as they are (docs/behaviour.md
//! §14).

use liveroom_domain::ops::{ModifyList, PeopleList};
use liveroom_domain::{DomainError, ListOp};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, existing_room, request_accounts, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

/// The request of `add_robot` and `del_robot`: `RobotList_Account`, 1 to 20 accounts.
pub(super) fn robots(fields: &Fields<'_>, op: ListOp) -> Result<ModifyList, ApiError> {
    Ok(ModifyList {
        room: fields.room_id()?,
        list: PeopleList::Robots,
        op,
        accounts: request_accounts(fields, "RobotList_Account")?,
    })
}

impl super::Handler for Handler {
    type Request = ModifyList;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<ModifyList, ApiError> {
        robots(fields, ListOp::Add)
    }

    /// A missing room is 100004 first; then every robot must be an imported account (accounts
    /// are never removed, so this holds when the write runs); then the write decides the
    /// limit.
    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        add: ModifyList,
    ) -> Result<Response, ApiError> {
        existing_room(state, call, &add.room).await?;
        let accounts: Vec<_> = add.accounts.iter().cloned().collect();
        let profiles = state
            .store
            .profiles(call.app, accounts.clone())
            .await
            .map_err(store_error)?;
        if let Some((account, _)) = accounts.iter().zip(&profiles).find(|(_, p)| p.is_none()) {
            return Err(DomainError::invalid(
                "RobotList_Account",
                format!("{:?} is not an imported account", account.as_str()),
            )
            .into());
        }
        acknowledge(state, call, add).await
    }
}
