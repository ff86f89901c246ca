//! A room's messages: sent by a member over its connection or by an administrator over REST
//! (`send_text_msg`, `send_custom_msg`, `send_group_msg`), checked by the same rules, counted
//! durably in the room's statistics, then delivered to the members connected now. Messages
//! are live-only: nothing keeps them for later (docs/protocol.md, "Messages").

use std::sync::atomic::{AtomicU64, Ordering};

use liveroom_domain::limits::{BUSINESS_ID_MAX_BYTES, MESSAGE_MAX_BYTES};
use liveroom_domain::ops::check_sender;
use liveroom_domain::{DomainError, RoomId, RoomStats};
use liveroom_protocol::webhook::{MsgElement, before_send_body};
use liveroom_protocol::{ApiError, ErrorCode};
use liveroom_store::Store;
use liveroom_webhooks::Verdict;
use serde_json::{Map, Value};

use super::frames;
use super::presence::MemberInfo;
use crate::commands::{Call, existing_room, store_error};
use crate::gateway::State;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A text, and the sender's `ExtensionInfo` (`CloudCustomData`), delivered as given.
    Text {
        text: String,
        extension: Option<String>,
    },
    /// An application's message: a kind and its data.
    Custom { business_id: String, data: String },
}

fn bounded(field: &'static str, text: &str, max: usize) -> Result<(), DomainError> {
    if text.len() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    Ok(())
}

impl Body {
    /// A text message: 1 to [`MESSAGE_MAX_BYTES`] of text, at most as much extension.
    pub fn text(
        field: &'static str,
        text: String,
        extension: Option<String>,
    ) -> Result<Self, DomainError> {
        if text.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        bounded(field, &text, MESSAGE_MAX_BYTES)?;
        if let Some(extension) = &extension {
            bounded("ExtensionInfo", extension, MESSAGE_MAX_BYTES)?;
        }
        Ok(Body::Text { text, extension })
    }

    /// A custom message: a `BusinessId` of 1 to [`BUSINESS_ID_MAX_BYTES`], data of at most
    /// [`MESSAGE_MAX_BYTES`].
    pub fn custom(
        (id_field, business_id): (&'static str, String),
        (data_field, data): (&'static str, String),
    ) -> Result<Self, DomainError> {
        if business_id.is_empty() {
            return Err(DomainError::invalid(id_field, "must not be empty"));
        }
        bounded(id_field, &business_id, BUSINESS_ID_MAX_BYTES)?;
        bounded(data_field, &data, MESSAGE_MAX_BYTES)?;
        Ok(Body::Custom { business_id, data })
    }
}

/// Messages this server sent since it started, numbering them.
static SENT: AtomicU64 = AtomicU64::new(0);
/// When the server sent its first message (Unix milliseconds): with the number, an id no
/// other run of the server gives.
static FIRST_SENT_MS: AtomicU64 = AtomicU64::new(0);

/// A message sent: its number on this server (from 1) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub seq: u64,
    pub mid: String,
}

fn number(now_ms: u64) -> Sent {
    let _ = FIRST_SENT_MS.compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
    let seq = SENT.fetch_add(1, Ordering::Relaxed) + 1;
    let mid = format!("{:x}-{seq}", FIRST_SENT_MS.load(Ordering::Relaxed));
    Sent { seq, mid }
}

/// Sends `body` into `room` from `call.caller`: refused when the room does not exist
/// (100004), the sender may not speak (muted, or messages disabled: 10017), or the app's
/// before-send hook blocks it (10016, docs/webhooks.md §7). Counted before
/// it is delivered, so a message a member saw is always in the statistics. `operator` made
/// the request: the sender itself, or the administrator sending on its behalf.
pub(crate) async fn send<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    operator: &str,
    room: &RoomId,
    sender_info: &MemberInfo,
    body: Body,
) -> Result<Sent, ApiError> {
    let room_state = existing_room(state, call, room).await?;
    check_sender(&room_state, call.caller, call.now)?;
    if state.before_send.asks(call.app) {
        let element = match &body {
            Body::Text { text, .. } => MsgElement::Text(text),
            Body::Custom { business_id, data } => MsgElement::Custom {
                data,
                desc: business_id,
            },
        };
        // `Random` only tells questions apart.
        let random = call.now.subsec_nanos();
        let question = before_send_body(room.as_str(), call.caller, operator, random, element);
        if state.before_send.ask(call.app, question).await == Verdict::Block {
            return Err(ApiError::new(
                ErrorCode::MessageBlocked,
                "the app's before-send hook blocked the message",
            ));
        }
    }
    let counted = RoomStats {
        viewers: 0,
        messages: 1,
    };
    state
        .store
        .count(call.app, room, counted)
        .await
        .map_err(store_error)?;
    let now_ms = call.now.as_millis() as u64;
    let sent = number(now_ms);
    let mut d = Map::new();
    d.insert("mid".into(), sent.mid.as_str().into());
    d.insert("from".into(), frames::user(call.caller, sender_info));
    let ev = match body {
        Body::Text { text, extension } => {
            d.insert("text".into(), text.into());
            if let Some(extension) = extension {
                d.insert("ext".into(), extension.into());
            }
            "msg.text"
        }
        Body::Custom { business_id, data } => {
            d.insert("business_id".into(), business_id.into());
            d.insert("data".into(), data.into());
            "msg.custom"
        }
    };
    let frame = frames::live(ev, room, now_ms, Value::Object(d));
    super::members::publish_live(state, call.app, room, frame);
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded() {
        assert!(Body::text("t", String::new(), None).is_err());
        assert!(Body::text("t", "x".repeat(MESSAGE_MAX_BYTES + 1), None).is_err());
        assert!(Body::text("t", "hi".into(), Some("e".repeat(MESSAGE_MAX_BYTES + 1))).is_err());
        assert!(Body::text("t", "x".repeat(MESSAGE_MAX_BYTES), Some("{}".into())).is_ok());
        let id = |s: &str| ("BusinessId", s.to_owned());
        let data = |s: &str| ("Data", s.to_owned());
        assert!(Body::custom(id(""), data("")).is_err());
        assert!(Body::custom(id(&"b".repeat(129)), data("")).is_err());
        assert!(Body::custom(id("gift"), data("")).is_ok());
    }

    #[test]
    fn messages_are_numbered() {
        let (a, b) = (number(5), number(6));
        assert!(b.seq > a.seq);
        assert_ne!(a.mid, b.mid);
    }
}
