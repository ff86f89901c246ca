//! `group_open_http_svc/send_group_msg`, how Tencent's console posts into a room as a given
//! user: `{"GroupId":<RoomId>,"From_Account"?,"Random","MsgBody":[{"MsgType","MsgContent"}],
//! "CloudCustomData"?}` → `{"MsgTime","MsgSeq"}` beside the envelope (docs/behaviour.md §15).
//! One element: a `TIMTextElem` (`Text`) or a `TIMCustomElem` (`Data`, and `Desc` as its
//! business id).

use liveroom_domain::{Account, DomainError, RoomId};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::send_text_msg::{Send, send_as};
use super::{Call, respond};
use crate::gateway::State;
use crate::realtime::messages::Body;

pub(crate) struct Handler;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    msg_time: u64,
    msg_seq: u64,
}

fn body(fields: &Fields<'_>) -> Result<Body, ApiError> {
    let elements = fields.required("MsgBody", Fields::array)?;
    let [element] = elements.as_slice() else {
        return Err(DomainError::invalid("MsgBody", "must hold exactly one element").into());
    };
    let element = element
        .as_object()
        .ok_or_else(|| DomainError::invalid("MsgBody", "must hold objects"))?;
    let element = Fields::new(element);
    let content = element
        .object("MsgContent")?
        .ok_or_else(|| DomainError::invalid("MsgContent", "is missing"))?;
    let kind = element.required("MsgType", Fields::string)?;
    Ok(match kind.as_str() {
        "TIMTextElem" => Body::text(
            "Text",
            content.required("Text", Fields::string)?,
            fields.string("CloudCustomData")?,
        )?,
        "TIMCustomElem" => Body::custom(
            (
                "Desc",
                content.string("Desc")?.filter(|d| !d.is_empty()).unwrap_or_else(|| "custom".into()),
            ),
            ("Data", content.string("Data")?.unwrap_or_default()),
        )?,
        _ => {
            return Err(DomainError::invalid(
                "MsgType",
                "must be TIMTextElem or TIMCustomElem",
            )
            .into());
        }
    })
}

impl super::Handler for Handler {
    type Request = Send;

    /// `From_Account` omitted: the calling administrator sends.
    fn parse(fields: &Fields<'_>, call: &Call<'_>) -> Result<Send, ApiError> {
        let room = RoomId::parse(fields.required("GroupId", Fields::string)?)
            .map_err(|_| DomainError::invalid("GroupId", "must be 1 to 48 bytes of printable ASCII"))?;
        let sender = fields.string("From_Account")?.unwrap_or_else(|| call.caller.to_owned());
        Ok(Send {
            room,
            sender: Account::parse("From_Account", sender)?,
            body: body(fields)?,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        send: Send,
    ) -> Result<Response, ApiError> {
        let sent = send_as(state, call, send).await?;
        Ok(respond(&Answer {
            msg_time: call.now.as_secs(),
            msg_seq: sent.seq,
        }))
    }
}
