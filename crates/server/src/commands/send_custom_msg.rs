//! `send_custom_msg`: `{"RoomId","Sender_Account","BusinessId","Data"}` sends an application's
//! message into the room as the sender (docs/behaviour.md §15).

use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::send_text_msg::Send;
use super::{Call, account};
use crate::gateway::State;
use crate::realtime::messages::Body;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = Send;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Send, ApiError> {
        Ok(Send {
            room: fields.room_id()?,
            sender: account(fields, "Sender_Account")?,
            body: Body::custom(
                ("BusinessId", fields.required("BusinessId", Fields::string)?),
                ("Data", fields.required("Data", Fields::string)?),
            )?,
        })
    }

    /// As `send_text_msg` sends.
    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        send: Send,
    ) -> Result<Response, ApiError> {
        <super::send_text_msg::Handler as super::Handler>::handle(state, call, send).await
    }
}
