//! `send_text_msg`: `{"RoomId","Sender_Account","TextContent","ExtensionInfo"?}` sends a text
//! into the room as the sender, to the members connected now (docs/behaviour.md §15).

use liveroom_domain::{Account, RoomId};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, account};
use crate::gateway::State;
use crate::realtime::messages::Body;

pub(crate) struct Handler;

pub(crate) struct Send {
    pub room: RoomId,
    pub sender: Account,
    pub body: Body,
}

impl super::Handler for Handler {
    type Request = Send;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Send, ApiError> {
        Ok(Send {
            room: fields.room_id()?,
            sender: account(fields, "Sender_Account")?,
            body: Body::text(
                "TextContent",
                fields.required("TextContent", Fields::string)?,
                fields.string("ExtensionInfo")?,
            )?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        send: Send,
    ) -> Result<Response, ApiError> {
        send_as(state, call, send).await.map(|_| None)
    }
}

/// Sends as `send.sender`, shown with its nickname and avatar.
pub(super) async fn send_as<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    send: Send,
) -> Result<crate::realtime::messages::Sent, ApiError> {
    let sender = Call {
        app: call.app,
        caller: send.sender.as_str(),
        now: call.now,
    };
    let info = crate::realtime::member_info(state, call.app, send.sender.as_str()).await;
    crate::realtime::messages::send(state, &sender, call.caller, &send.room, &info, send.body).await
}
