//! The frames of docs/protocol.md: what a client may send, parsed without trusting any of it,
//! and the JSON of every reply and event the server sends.

use liveroom_domain::{Account, RoomChange, RoomEvent, RoomId};
use liveroom_protocol::{ApiError, ErrorCode, RoomChangesWire, RoomInfoWire};
use serde_json::{Map, Value, json};

use super::presence::MemberInfo;

/// An operation a client may ask for once its envelope is understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Hello,
    Enter,
    Watch,
    Exit,
    GetInfo,
    GetMetadata,
    SetMetadata,
    DelMetadata,
    GetMembers,
    SendText,
    SendCustom,
    Refresh,
}

impl Op {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "hello" => Op::Hello,
            "enter" => Op::Enter,
            "watch" => Op::Watch,
            "exit" => Op::Exit,
            "get_info" => Op::GetInfo,
            "get_metadata" => Op::GetMetadata,
            "set_metadata" => Op::SetMetadata,
            "del_metadata" => Op::DelMetadata,
            "get_members" => Op::GetMembers,
            "send_text" => Op::SendText,
            "send_custom" => Op::SendCustom,
            "refresh" => Op::Refresh,
            _ => return None,
        })
    }
}

/// One client frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// The client checks that the server is alive; answered `pong`.
    Ping,
    /// The answer to the server's `ping`.
    Pong,
    /// A request, answered with its `id`.
    Request {
        id: u32,
        op: Op,
        d: Map<String, Value>,
    },
    /// A well-formed request for an operation this server does not know (60009).
    Unknown { id: u32 },
}

/// Why a frame is not a frame of the protocol at all: the connection is closed (4500), since
/// there is no `id` to answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// Parses one text frame: a JSON object with `op` (a string), `id` (an unsigned 32-bit
/// integer, required except for `ping` and `pong`) and `d` (an object, optional).
pub(crate) fn parse(text: &str) -> Result<Frame, Malformed> {
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
        return Err(Malformed("a frame must be a JSON object"));
    };
    let Some(Value::String(op)) = frame.remove("op") else {
        return Err(Malformed("a frame must have a string op"));
    };
    let id = match frame.remove("id") {
        None => None,
        Some(id) => Some(
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or(Malformed("id must be an unsigned 32-bit integer"))?,
        ),
    };
    match op.as_str() {
        "ping" => return Ok(Frame::Ping),
        "pong" => return Ok(Frame::Pong),
        _ => {}
    }
    let id = id.ok_or(Malformed("a request must have an id"))?;
    let d = match frame.remove("d") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(Malformed("d must be an object")),
    };
    Ok(match Op::from_name(&op) {
        Some(op) => Frame::Request { id, op, d },
        None => Frame::Unknown { id },
    })
}

/// `{"id","ok":{…}}`.
pub(crate) fn ok(id: u32, answer: Value) -> String {
    json!({"id": id, "ok": answer}).to_string()
}

/// `{"id","err":{"code","msg"}}`.
pub(crate) fn err(id: u32, error: &ApiError) -> String {
    json!({"id": id, "err": {"code": error.code.number(), "msg": error.info}}).to_string()
}

pub(crate) fn unknown_op() -> ApiError {
    ApiError::new(ErrorCode::InvalidRes, "unknown op")
}

pub(crate) const PING: &str = r#"{"op":"ping"}"#;
pub(crate) const PONG: &str = r#"{"op":"pong"}"#;

/// `{"ev":"sub.reset","room"}`: the server could not continue the room's events; the client
/// enters again with `since`.
pub(crate) fn sub_reset(room: &str) -> String {
    json!({"ev": "sub.reset", "room": room}).to_string()
}

/// `{"ev":"sub.ended","room","d":{"reason"}}`: the connection is no longer in the room, and
/// why (`banned`, `entered_elsewhere`).
pub(crate) fn sub_ended(room: &str, reason: &str) -> String {
    json!({"ev": "sub.ended", "room": room, "d": {"reason": reason}}).to_string()
}

/// `{"ev":"session.sig_expiring","d":{"expires_in"}}`: send `refresh` before it runs out.
pub(crate) fn sig_expiring(expires_in_secs: u64) -> String {
    json!({"ev": "session.sig_expiring", "d": {"expires_in": expires_in_secs}}).to_string()
}

/// A live-only event: `{"ev","room","ts","d"}`, without a position.
pub(crate) fn live(ev: &str, room: &RoomId, ts_ms: u64, d: Value) -> String {
    json!({"ev": ev, "room": room.as_str(), "ts": ts_ms, "d": d}).to_string()
}

/// A member as others see it: `{"id","nick"?,"avatar"?}`.
pub(crate) fn user(id: &str, info: &MemberInfo) -> Value {
    let mut user = Map::new();
    user.insert("id".into(), id.into());
    if let Some(nick) = &info.nick {
        user.insert("nick".into(), nick.as_str().into());
    }
    if let Some(avatar) = &info.avatar {
        user.insert("avatar".into(), avatar.as_str().into());
    }
    Value::Object(user)
}

/// `room.count`: a big room's members, sent at most once a second when it changed.
pub(crate) fn room_count(room: &RoomId, members: usize) -> String {
    json!({"ev": "room.count", "room": room.as_str(), "d": {"members": members}}).to_string()
}

/// A room event as every subscriber receives it: `{"ev","room","epoch","rev","ts","d"}`.
pub(crate) fn event(event: &RoomEvent) -> Value {
    let d = match &event.change {
        RoomChange::Created(room) => json!({"info": RoomInfoWire::from(&**room)}),
        RoomChange::InfoUpdated(changes) => json!({"info": RoomChangesWire::from(&**changes)}),
        RoomChange::MetadataSet(pairs) => json!({"metadata": pairs}),
        RoomChange::MetadataDeleted(keys) => json!({"keys": keys}),
        RoomChange::Destroyed => json!({}),
        RoomChange::Muted { accounts, until } => {
            json!({"users": names(accounts), "until": until})
        }
        RoomChange::Banned {
            accounts,
            until,
            reason,
        } => json!({"users": names(accounts), "until": until, "reason": reason}),
        RoomChange::Unbanned(accounts) => json!({"users": names(accounts)}),
        RoomChange::Admins { op, accounts } | RoomChange::Robots { op, accounts } => {
            json!({"op": op.as_str(), "users": names(accounts)})
        }
        RoomChange::OwnerChanged(owner) => json!({"owner": owner.as_str()}),
    };
    json!({
        "ev": event.kind(),
        "room": event.room.as_str(),
        "epoch": event.position.incarnation,
        "rev": event.position.seq,
        "ts": event.at_ms,
        "d": d,
    })
}

fn names(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(Account::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_an_id_and_an_object() {
        assert_eq!(
            parse(r#"{"id":7,"op":"enter","d":{"room":"r"}}"#),
            Ok(Frame::Request {
                id: 7,
                op: Op::Enter,
                d: json!({"room": "r"}).as_object().unwrap().clone()
            })
        );
        assert_eq!(parse(r#"{"op":"ping"}"#), Ok(Frame::Ping));
        assert_eq!(parse(r#"{"id":3,"op":"pong"}"#), Ok(Frame::Pong));
        assert_eq!(
            parse(r#"{"id":1,"op":"nope"}"#),
            Ok(Frame::Unknown { id: 1 })
        );
        for junk in [
            "",
            "null",
            "[]",
            "{",
            r#"{"op":1,"id":1}"#,
            r#"{"op":"enter"}"#,
            r#"{"op":"enter","id":-1}"#,
            r#"{"op":"enter","id":4294967296}"#,
            r#"{"op":"enter","id":1.5}"#,
            r#"{"op":"enter","id":1,"d":[]}"#,
        ] {
            assert!(parse(junk).is_err(), "{junk}");
        }
    }
}
