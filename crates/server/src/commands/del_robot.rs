//! `del_robot`: `{"RoomId","RobotList_Account":[…]}` removes those accounts that are robots of
//! the room; the others are ignored (docs/behaviour.md §14).

use liveroom_domain::ListOp;
use liveroom_domain::ops::ModifyList;
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, acknowledge};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = ModifyList;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<ModifyList, ApiError> {
        super::add_robot::robots(fields, ListOp::Delete)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        delete: ModifyList,
    ) -> Result<Response, ApiError> {
        acknowledge(state, call, delete).await
    }
}
