//! Feed entries as Tencent's callbacks (docs/webhooks.md §3): each [`Hook`]'s
//! `CallbackCommand`, and each entry's JSON body, field by field in the documented order.

use liveroom_domain::{Account, FeedEntry, FeedItem, Hook, Metadata, Room, RoomChange};
use serde::Serialize;

use crate::RoomInfoWire;

/// Tencent's name of each callback, and liveroom's for its own.
pub fn callback_command(hook: Hook) -> &'static str {
    match hook {
        Hook::CreateRoom => "Live.CallbackAfterCreateRoom",
        Hook::DestroyRoom => "Live.CallbackAfterDestroyRoom",
        Hook::UpdateRoomInfo => "Live.CallbackAfterUpdateRoomInfo",
        Hook::MemberStateChanged => "Live.CallbackAfterMemberStateChanged",
        Hook::SetMetadata => "Live.CallbackAfterSetMetadata",
        Hook::DelMetadata => "Live.CallbackAfterDelMetadata",
        Hook::ModifyAdmin => "Live.CallbackAfterModifyAdmin",
        Hook::MuteMember => "Liveroom.CallbackAfterMuteMember",
        Hook::BanMember => "Liveroom.CallbackAfterBanMember",
        Hook::UnbanMember => "Liveroom.CallbackAfterUnbanMember",
        Hook::ModifyRobot => "Liveroom.CallbackAfterModifyRobot",
        Hook::ChangeRoomOwner => "Liveroom.CallbackAfterChangeRoomOwner",
    }
}

/// The hook a `CallbackCommand` names.
pub fn parse_callback_command(name: &str) -> Option<Hook> {
    Hook::ALL.into_iter().find(|&h| callback_command(h) == name)
}

/// The JSON body of the callback for `entry`.
pub fn callback_body(entry: &FeedEntry) -> Vec<u8> {
    let command = callback_command(entry.item.hook());
    let operator = entry.by.as_str();
    let room_id = entry.room.as_str();
    let event_time = entry.at_ms;
    let change = match &entry.item {
        FeedItem::Members(members) => {
            let member_list = members
                .accounts
                .iter()
                .map(|a| MemberWire {
                    member_account: a.as_str(),
                })
                .collect();
            return to_vec(&MemberState {
                callback_command: command,
                room_id,
                event_type: if members.cause.online() {
                    "Online"
                } else {
                    "Offline"
                },
                event_cause: members.cause.as_str(),
                member_list,
                event_time,
            });
        }
        FeedItem::Room { change, room, .. } => (change, room.as_deref()),
    };
    match change {
        (RoomChange::Created(room), _) => to_vec(&Created {
            callback_command: command,
            operator_account: operator,
            room_info: RoomInfoWire::from(&**room),
            event_time,
        }),
        (RoomChange::Destroyed, room) => to_vec(&Destroyed {
            callback_command: command,
            operator_account: operator,
            room_id,
            event_type: "DestroyByUser",
            room_info: room.map(RoomInfoWire::from),
            statistic: room.map(Statistic::of),
            event_time,
        }),
        (RoomChange::InfoUpdated(_), room) => to_vec(&Updated {
            callback_command: command,
            operator_account: operator,
            room_info: room.map(RoomInfoWire::from),
            event_time,
        }),
        (RoomChange::MetadataSet(pairs), _) => to_vec(&MetadataSet {
            callback_command: command,
            operator_account: operator,
            room_id,
            metadata: key_values(pairs),
            event_time,
        }),
        (RoomChange::MetadataDeleted(keys), _) => to_vec(&MetadataDeleted {
            callback_command: command,
            operator_account: operator,
            room_id,
            keys,
            event_time,
        }),
        (RoomChange::Admins { op, accounts }, _) => to_vec(&AdminsModified {
            callback_command: command,
            room_id,
            event_time,
            operator_account: operator,
            admin_account: names(accounts),
            op_type: op.as_str(),
        }),
        (RoomChange::Muted { accounts, until }, _) => to_vec(&Muted {
            callback_command: command,
            operator_account: operator,
            room_id,
            member_list_account: names(accounts),
            muted_until: *until,
            event_time,
        }),
        (
            RoomChange::Banned {
                accounts,
                until,
                reason,
            },
            _,
        ) => to_vec(&Banned {
            callback_command: command,
            operator_account: operator,
            room_id,
            member_list_account: names(accounts),
            banned_until: *until,
            reason,
            event_time,
        }),
        (RoomChange::Unbanned(accounts), _) => to_vec(&Unbanned {
            callback_command: command,
            operator_account: operator,
            room_id,
            member_list_account: names(accounts),
            event_time,
        }),
        (RoomChange::Robots { op, accounts }, _) => to_vec(&RobotsModified {
            callback_command: command,
            operator_account: operator,
            room_id,
            robot_list_account: names(accounts),
            op_type: op.as_str(),
            event_time,
        }),
        (RoomChange::OwnerChanged(owner), _) => to_vec(&OwnerChanged {
            callback_command: command,
            operator_account: operator,
            room_id,
            new_owner_account: owner.as_str(),
            event_time,
        }),
    }
}

/// The change feed's form of an entry (docs/webhooks.md §6): its callback body with `Seq`
/// first, then `RoomId` where the body names the room only inside `RoomInfo`.
pub fn feed_event(entry: &FeedEntry) -> Vec<u8> {
    let body = callback_body(entry);
    let mut event = format!("{{\"Seq\":{},", entry.seq);
    if matches!(entry.item.hook(), Hook::CreateRoom | Hook::UpdateRoomInfo) {
        let room = serde_json::to_string(entry.room.as_str()).unwrap_or_default();
        event.push_str(&format!("\"RoomId\":{room},"));
    }
    let mut event = event.into_bytes();
    // A body is always a non-empty object: `{` then its fields.
    event.extend_from_slice(body.get(1..).unwrap_or(b"}"));
    event
}

/// What a room message carries, as Tencent IM's `MsgBody` describes it.
#[derive(Debug, Clone, Copy)]
pub enum MsgElement<'a> {
    Text(&'a str),
    Custom { data: &'a str, desc: &'a str },
}

/// The body of IM's `Group.CallbackBeforeSendMsg` for a message of `from` into `room`
/// (docs/webhooks.md §7).
pub fn before_send_body(
    room: &str,
    from: &str,
    operator: &str,
    random: u32,
    element: MsgElement<'_>,
) -> Vec<u8> {
    let msg = match element {
        MsgElement::Text(text) => serde_json::json!({
            "MsgType": "TIMTextElem", "MsgContent": {"Text": text}
        }),
        MsgElement::Custom { data, desc } => serde_json::json!({
            "MsgType": "TIMCustomElem", "MsgContent": {"Data": data, "Desc": desc}
        }),
    };
    to_vec(&BeforeSendMsg {
        callback_command: "Group.CallbackBeforeSendMsg",
        group_id: room,
        kind: "AVChatRoom",
        from_account: from,
        operator_account: operator,
        random,
        msg_body: [msg],
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BeforeSendMsg<'a> {
    callback_command: &'a str,
    group_id: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "From_Account")]
    from_account: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    random: u32,
    msg_body: [serde_json::Value; 1],
}

fn names(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(Account::as_str).collect()
}

fn key_values(pairs: &Metadata) -> Vec<KeyValue<'_>> {
    pairs
        .iter()
        .map(|(key, value)| KeyValue { key, value })
        .collect()
}

fn to_vec(body: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(body).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct MemberWire<'a> {
    #[serde(rename = "Member_Account")]
    member_account: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MemberState<'a> {
    callback_command: &'a str,
    room_id: &'a str,
    event_type: &'a str,
    event_cause: &'a str,
    member_list: Vec<MemberWire<'a>>,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Created<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_info: RoomInfoWire<'a>,
    event_time: u64,
}

/// `destroy_room`'s totals: gifts and likes count from 0 until liveroom records them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statistic {
    total_viewers: u64,
    total_gifts_sent: u64,
    total_gift_coins: u64,
    total_unique_gift_senders: u64,
    total_likes_received: u64,
}

impl Statistic {
    fn of(room: &Room) -> Self {
        Self {
            total_viewers: room.view_count,
            total_gifts_sent: 0,
            total_gift_coins: 0,
            total_unique_gift_senders: 0,
            total_likes_received: 0,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Destroyed<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_info: Option<RoomInfoWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statistic: Option<Statistic>,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Updated<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_info: Option<RoomInfoWire<'a>>,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataSet<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    metadata: Vec<KeyValue<'a>>,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataDeleted<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    keys: &'a [String],
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AdminsModified<'a> {
    callback_command: &'a str,
    room_id: &'a str,
    event_time: u64,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    #[serde(rename = "Admin_Account")]
    admin_account: Vec<&'a str>,
    /// Tencent spells it with a lower-case `o`.
    #[serde(rename = "opType")]
    op_type: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Muted<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    #[serde(rename = "MemberList_Account")]
    member_list_account: Vec<&'a str>,
    muted_until: u64,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Banned<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    #[serde(rename = "MemberList_Account")]
    member_list_account: Vec<&'a str>,
    banned_until: u64,
    reason: &'a str,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Unbanned<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    #[serde(rename = "MemberList_Account")]
    member_list_account: Vec<&'a str>,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RobotsModified<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    #[serde(rename = "RobotList_Account")]
    robot_list_account: Vec<&'a str>,
    #[serde(rename = "opType")]
    op_type: &'a str,
    event_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OwnerChanged<'a> {
    callback_command: &'a str,
    #[serde(rename = "Operator_Account")]
    operator_account: &'a str,
    room_id: &'a str,
    #[serde(rename = "NewOwner_Account")]
    new_owner_account: &'a str,
    event_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use liveroom_domain::{
        ListOp, MemberCause, MemberChange, NewRoom, Position, RoomChanges, RoomId,
    };

    fn account(name: &str) -> Account {
        Account::parse("a", name.into()).unwrap()
    }

    fn entry(item: FeedItem) -> FeedEntry {
        FeedEntry {
            seq: 7,
            room: RoomId::parse("live_1".into()).unwrap(),
            at_ms: 1_764_662_400_123,
            by: account("administrator"),
            item,
        }
    }

    fn change(change: RoomChange, room: Option<Room>) -> FeedEntry {
        entry(FeedItem::Room {
            position: Position {
                incarnation: 1,
                seq: 2,
            },
            change,
            room: room.map(Box::new),
        })
    }

    fn text(body: Vec<u8>) -> String {
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn tencent_bodies_byte_for_byte() {
        let set = change(
            RoomChange::MetadataSet(Metadata::from([("topic".into(), "music".into())])),
            None,
        );
        assert_eq!(
            text(callback_body(&set)),
            r#"{"CallbackCommand":"Live.CallbackAfterSetMetadata","Operator_Account":"administrator","RoomId":"live_1","Metadata":[{"Key":"topic","Value":"music"}],"EventTime":1764662400123}"#
        );
        let deleted = change(
            RoomChange::MetadataDeleted(vec!["a".into(), "b".into()]),
            None,
        );
        assert_eq!(
            text(callback_body(&deleted)),
            r#"{"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"administrator","RoomId":"live_1","Keys":["a","b"],"EventTime":1764662400123}"#
        );
        let admins = change(
            RoomChange::Admins {
                op: ListOp::Add,
                accounts: vec![account("u1"), account("u2")],
            },
            None,
        );
        assert_eq!(
            text(callback_body(&admins)),
            r#"{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"live_1","EventTime":1764662400123,"Operator_Account":"administrator","Admin_Account":["u1","u2"],"opType":"add"}"#
        );
        let members = entry(FeedItem::Members(MemberChange {
            cause: MemberCause::HeartbeatInterrupt,
            accounts: vec![account("m")],
        }));
        assert_eq!(
            text(callback_body(&members)),
            r#"{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"live_1","EventType":"Offline","EventCause":"HeartbeatInterrupt","MemberList":[{"Member_Account":"m"}],"EventTime":1764662400123}"#
        );
    }

    #[test]
    fn room_bodies_carry_the_room() {
        let room = NewRoom::validate(
            "live_1".into(),
            None,
            Some("owner".into()),
            "administrator",
            RoomChanges::default(),
        )
        .unwrap()
        .into_room(1_764_662_400);
        let info =
            String::from_utf8(serde_json::to_vec(&RoomInfoWire::from(&room)).unwrap()).unwrap();
        let created = change(RoomChange::Created(Box::new(room.clone())), None);
        assert_eq!(
            text(callback_body(&created)),
            format!(
                r#"{{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"administrator","RoomInfo":{info},"EventTime":1764662400123}}"#
            )
        );
        let destroyed = change(RoomChange::Destroyed, Some(room));
        assert_eq!(
            text(callback_body(&destroyed)),
            format!(
                r#"{{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"administrator","RoomId":"live_1","EventType":"DestroyByUser","RoomInfo":{info},"Statistic":{{"TotalViewers":0,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0}},"EventTime":1764662400123}}"#
            )
        );
    }

    #[test]
    fn feed_events_put_seq_and_room_first() {
        let set = change(RoomChange::MetadataDeleted(vec!["k".into()]), None);
        assert_eq!(
            text(feed_event(&set)),
            r#"{"Seq":7,"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"administrator","RoomId":"live_1","Keys":["k"],"EventTime":1764662400123}"#
        );
        let updated = change(RoomChange::Destroyed, None);
        assert!(text(feed_event(&updated)).starts_with(r#"{"Seq":7,"CallbackCommand""#));
    }

    #[test]
    fn every_hook_has_a_distinct_name() {
        for hook in Hook::ALL {
            assert_eq!(parse_callback_command(callback_command(hook)), Some(hook));
        }
        assert_eq!(
            parse_callback_command("Live.CallbackMemberStateChanged"),
            None
        );
    }
}
