//! `modify_admin`: `{"RoomId","Admin_Account":[…],"OpType":"add"|"delete"}` adds or removes
//! room administrators, at most 5 per room (docs/behaviour.md §14).

use liveroom_domain::ops::{ModifyList, PeopleList};
use liveroom_domain::{DomainError, ListOp};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge, request_accounts};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = ModifyList;

    /// `Admin_Account`: 1 to 20 accounts; `OpType`: `add` or `delete`.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<ModifyList, ApiError> {
        let room = fields.room_id()?;
        let accounts = request_accounts(fields, "Admin_Account")?;
        let op = ListOp::parse(&fields.required("OpType", Fields::string)?)
            .ok_or_else(|| DomainError::invalid("OpType", "must be \"add\" or \"delete\""))?;
        Ok(ModifyList {
            room,
            list: PeopleList::Admins,
            op,
            accounts,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        modify: ModifyList,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, modify).await
    }
}
