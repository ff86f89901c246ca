//! How a [`RoomChange`] is stored in a backend's event log: one JSON object, the same for
//! every backend. The field names are the log's own, not Tencent's: the log is read back only
//! by liveroom, and a later webhook or real-time format is rendered from the decoded change.

use std::collections::BTreeSet;

use liveroom_domain::{
    Account, AppId, Ban, FeedEntry, FeedItem, ListOp, MemberCause, MemberChange, Metadata,
    Position, Profile, ProfileTag, ProfileValue, Room, RoomChange, RoomChanges, RoomEvent,
    RoomFields, RoomId, RoomPeople, TakeSeatMode,
};
use serde_json::{Map, Value, json};

/// Why a stored change could not be read back: the log was written by something else, or
/// damaged.
#[derive(Debug, thiserror::Error)]
#[error("malformed event in the log: {0}")]
pub(crate) struct Malformed(pub(crate) &'static str);

pub(crate) fn encode(change: &RoomChange) -> String {
    // Metadata changes, the common case, serialize straight from the domain's values; maps and
    // lists of strings always serialize.
    let tagged = |tag: &str, body: serde_json::Result<String>| {
        format!("{{\"{tag}\":{}}}", body.unwrap_or_default())
    };
    match change {
        RoomChange::MetadataSet(pairs) => tagged("set", serde_json::to_string(pairs)),
        RoomChange::MetadataDeleted(keys) => tagged("deleted", serde_json::to_string(keys)),
        RoomChange::Created(room) => json!({"created": encode_room(room)}).to_string(),
        RoomChange::InfoUpdated(changes) => {
            json!({"info": encode_changes(changes.requested())}).to_string()
        }
        RoomChange::Destroyed => json!({"destroyed": {}}).to_string(),
        RoomChange::Muted { accounts, until } => {
            json!({"muted": {"accounts": names(accounts), "until": until}}).to_string()
        }
        RoomChange::Banned {
            accounts,
            until,
            reason,
        } => json!({"banned": {"accounts": names(accounts), "until": until, "reason": reason}})
            .to_string(),
        RoomChange::Unbanned(accounts) => json!({"unbanned": names(accounts)}).to_string(),
        RoomChange::Admins { op, accounts } => {
            json!({"admins": {"op": op.as_str(), "accounts": names(accounts)}}).to_string()
        }
        RoomChange::Robots { op, accounts } => {
            json!({"robots": {"op": op.as_str(), "accounts": names(accounts)}}).to_string()
        }
        RoomChange::OwnerChanged(owner) => json!({"owner": owner.as_str()}).to_string(),
    }
}

fn names<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Vec<&'a str> {
    accounts.into_iter().map(Account::as_str).collect()
}

fn decode_account(value: &Value) -> Result<Account, Malformed> {
    let name = value.as_str().ok_or(Malformed("account"))?;
    Account::parse("account", name.to_owned()).map_err(|_| Malformed("account"))
}

fn decode_accounts<C: FromIterator<Account>>(value: Option<&Value>) -> Result<C, Malformed> {
    value
        .and_then(Value::as_array)
        .ok_or(Malformed("accounts"))?
        .iter()
        .map(decode_account)
        .collect()
}

/// `{"op","accounts"}` of a list change.
fn decode_list_change(body: &Value) -> Result<(ListOp, Vec<Account>), Malformed> {
    let op = body
        .get("op")
        .and_then(Value::as_str)
        .and_then(ListOp::parse)
        .ok_or(Malformed("op"))?;
    Ok((op, decode_accounts(body.get("accounts"))?))
}

fn u64_field(body: &Value, field: &'static str) -> Result<u64, Malformed> {
    body.get(field)
        .and_then(Value::as_u64)
        .ok_or(Malformed(field))
}

/// A room's people as a backend stores them beside the room: one JSON object.
pub(crate) fn encode_people(people: &RoomPeople) -> String {
    let muted: Map<String, Value> = people
        .muted
        .iter()
        .map(|(a, until)| (a.as_str().to_owned(), Value::from(*until)))
        .collect();
    let banned: Map<String, Value> = people
        .banned
        .iter()
        .map(|(a, ban)| {
            let ban = json!({"until": ban.until, "reason": ban.reason});
            (a.as_str().to_owned(), ban)
        })
        .collect();
    json!({
        "admins": names(&people.admins),
        "muted": muted,
        "banned": banned,
        "robots": names(&people.robots),
    })
    .to_string()
}

pub(crate) fn decode_people(text: &str) -> Result<RoomPeople, Malformed> {
    let value: Value = serde_json::from_str(text).map_err(|_| Malformed("people"))?;
    let object = |field: &'static str| {
        value
            .get(field)
            .and_then(Value::as_object)
            .ok_or(Malformed(field))
    };
    let account = |name: &String| decode_account(&Value::from(name.as_str()));
    let muted = object("muted")?
        .iter()
        .map(|(a, until)| Ok((account(a)?, until.as_u64().ok_or(Malformed("muted"))?)))
        .collect::<Result<_, Malformed>>()?;
    let banned = object("banned")?
        .iter()
        .map(|(a, ban)| {
            let reason = ban.get("reason").and_then(Value::as_str);
            let ban = Ban {
                until: u64_field(ban, "until")?,
                reason: reason.ok_or(Malformed("reason"))?.to_owned(),
            };
            Ok((account(a)?, ban))
        })
        .collect::<Result<_, Malformed>>()?;
    Ok(RoomPeople {
        admins: decode_accounts::<BTreeSet<_>>(value.get("admins"))?,
        muted,
        banned,
        robots: decode_accounts::<BTreeSet<_>>(value.get("robots"))?,
    })
}

/// One event as a log stores it among others: `{"seq","at","change"}`.
pub(crate) fn encode_entry(event: &RoomEvent) -> String {
    format!(
        r#"{{"seq":{},"at":{},"change":{}}}"#,
        event.position.seq,
        event.at_ms,
        encode(&event.change)
    )
}

/// The events of a JSON array of entries, all of one room and incarnation.
pub(crate) fn decode_entries(
    text: &str,
    app: AppId,
    room: &RoomId,
    incarnation: u64,
) -> Result<Vec<RoomEvent>, Malformed> {
    let entries: Vec<Value> = serde_json::from_str(text).map_err(|_| Malformed("not an array"))?;
    entries
        .iter()
        .map(|entry| {
            let number = |k: &'static str| entry.get(k).and_then(Value::as_u64).ok_or(Malformed(k));
            Ok(RoomEvent {
                app,
                room: room.clone(),
                position: Position {
                    incarnation,
                    seq: number("seq")?,
                },
                at_ms: number("at")?,
                change: decode(entry.get("change").ok_or(Malformed("change"))?)?,
            })
        })
        .collect()
}

/// A feed entry's body as a backend stores it beside its `seq`, room and time:
/// `{"by","inc","pos","change"[,"room"]}` for a room's change, `{"by","members":{"cause",
/// "accounts"}}` for presence.
pub(crate) fn encode_feed(by: &Account, item: &FeedItem) -> String {
    let body = match item {
        FeedItem::Room {
            position,
            change,
            room,
        } => {
            let mut body = json!({
                "by": by.as_str(),
                "inc": position.incarnation,
                "pos": position.seq,
            });
            // `encode` always produces an object.
            body["change"] = serde_json::from_str(&encode(change)).unwrap_or_default();
            if let Some(room) = room {
                body["room"] = encode_room(room);
            }
            body
        }
        FeedItem::Members(change) => json!({
            "by": by.as_str(),
            "members": {"cause": change.cause.as_str(), "accounts": names(&change.accounts)},
        }),
    };
    body.to_string()
}

/// The entry `encode_feed` stored for `seq` of `room`, committed at `at_ms`.
pub(crate) fn decode_feed(
    text: &str,
    seq: u64,
    room: RoomId,
    at_ms: u64,
) -> Result<FeedEntry, Malformed> {
    let body: Value = serde_json::from_str(text).map_err(|_| Malformed("not JSON"))?;
    let by = decode_account(body.get("by").ok_or(Malformed("by"))?)?;
    let item = if let Some(members) = body.get("members") {
        let cause = members
            .get("cause")
            .and_then(Value::as_str)
            .and_then(MemberCause::parse)
            .ok_or(Malformed("cause"))?;
        FeedItem::Members(MemberChange {
            cause,
            accounts: decode_accounts(members.get("accounts"))?,
        })
    } else {
        FeedItem::Room {
            position: Position {
                incarnation: u64_field(&body, "inc")?,
                seq: u64_field(&body, "pos")?,
            },
            change: decode(body.get("change").ok_or(Malformed("change"))?)?,
            room: body
                .get("room")
                .map(|r| decode_room(r).map(Box::new))
                .transpose()?,
        }
    };
    Ok(FeedEntry {
        seq,
        room,
        at_ms,
        by,
        item,
    })
}

/// The change [`encode`] stored.
pub(crate) fn decode_change(text: &str) -> Result<RoomChange, Malformed> {
    decode(&serde_json::from_str(text).map_err(|_| Malformed("change is not JSON"))?)
}

fn decode(value: &Value) -> Result<RoomChange, Malformed> {
    let (kind, body) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or(Malformed("not an object"))?;
    Ok(match kind.as_str() {
        "created" => RoomChange::Created(Box::new(decode_room(body)?)),
        "info" => RoomChange::InfoUpdated(Box::new(
            decode_changes(body)?
                .validate()
                .map_err(|_| Malformed("room changes out of bounds"))?,
        )),
        "set" => RoomChange::MetadataSet(
            serde_json::from_value::<Metadata>(body.clone()).map_err(|_| Malformed("set"))?,
        ),
        "deleted" => RoomChange::MetadataDeleted(
            serde_json::from_value(body.clone()).map_err(|_| Malformed("deleted"))?,
        ),
        "destroyed" => RoomChange::Destroyed,
        "muted" => RoomChange::Muted {
            accounts: decode_accounts(body.get("accounts"))?,
            until: u64_field(body, "until")?,
        },
        "banned" => RoomChange::Banned {
            accounts: decode_accounts(body.get("accounts"))?,
            until: u64_field(body, "until")?,
            reason: body
                .get("reason")
                .and_then(Value::as_str)
                .ok_or(Malformed("reason"))?
                .to_owned(),
        },
        "unbanned" => RoomChange::Unbanned(decode_accounts(Some(body))?),
        "admins" => {
            let (op, accounts) = decode_list_change(body)?;
            RoomChange::Admins { op, accounts }
        }
        "robots" => {
            let (op, accounts) = decode_list_change(body)?;
            RoomChange::Robots { op, accounts }
        }
        "owner" => RoomChange::OwnerChanged(decode_account(body)?),
        _ => return Err(Malformed("unknown change")),
    })
}

/// A whole room (its fields, counters and revision) as one JSON object.
pub(crate) fn encode_room_text(room: &Room) -> String {
    encode_room(room).to_string()
}

pub(crate) fn decode_room_text(text: &str) -> Result<Room, Malformed> {
    decode_room(&serde_json::from_str(text).map_err(|_| Malformed("room is not JSON"))?)
}

/// A room's metadata: one JSON object of strings.
pub(crate) fn encode_metadata(metadata: &Metadata) -> String {
    // A map of strings always serializes.
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn decode_metadata(text: &str) -> Result<Metadata, Malformed> {
    serde_json::from_str(text).map_err(|_| Malformed("metadata is not an object of strings"))
}

/// `{"<tag name>": <string or number>}`, each value of the JSON type it was given in.
pub(crate) fn encode_profile(profile: &Profile) -> String {
    let object: Map<String, Value> = profile
        .iter()
        .map(|(tag, value)| {
            let value = match value {
                ProfileValue::Text(text) => Value::from(text.as_str()),
                ProfileValue::Number(number) => Value::from(*number),
            };
            (tag.name().to_owned(), value)
        })
        .collect();
    Value::Object(object).to_string()
}

pub(crate) fn decode_profile(text: &str) -> Result<Profile, Malformed> {
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|_| Malformed("profile is not an object"))?;
    let items = object
        .into_iter()
        .map(|(name, value)| {
            let tag = ProfileTag::parse(&name).ok_or(Malformed("unknown profile tag"))?;
            let value = match value {
                Value::String(text) => ProfileValue::Text(text),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(ProfileValue::Number)
                    .ok_or(Malformed("profile number out of range"))?,
                _ => return Err(Malformed("profile value neither string nor number")),
            };
            Ok((tag, value))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Profile::new(items).map_err(|_| Malformed("profile breaks its rules"))
}

fn encode_room(room: &Room) -> Value {
    let f = &room.fields;
    json!({
        "id": room.id.as_str(),
        "owner": room.owner.as_str(),
        "create_time": room.create_time,
        "view_count": room.view_count,
        "revision": room.revision,
        "fields": encode_changes(&RoomChanges {
            name: Some(f.name.clone()),
            cover_url: Some(f.cover_url.clone()),
            notice: Some(f.notice.clone()),
            category: Some(f.category.clone()),
            activity_status: Some(f.activity_status),
            max_seat_count: Some(f.max_seat_count.into()),
            max_member_count: Some(f.max_member_count.into()),
            take_seat_mode: Some(f.take_seat_mode.as_str().to_owned()),
            is_message_disabled: Some(f.is_message_disabled),
            is_public_visible: Some(f.is_public_visible),
            is_seat_enabled: Some(f.is_seat_enabled),
            seat_template: f.seat_template.clone(),
            is_unlimited_room_enabled: f.is_unlimited_room_enabled,
        }),
    })
}

fn decode_room(value: &Value) -> Result<Room, Malformed> {
    let o = value.as_object().ok_or(Malformed("room"))?;
    let text = |k: &'static str| o.get(k).and_then(Value::as_str).ok_or(Malformed(k));
    let number = |k: &'static str| o.get(k).and_then(Value::as_u64).ok_or(Malformed(k));
    let c = decode_changes(o.get("fields").ok_or(Malformed("fields"))?)?;
    let narrow = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let fields = RoomFields {
        name: c.name.ok_or(Malformed("name"))?,
        cover_url: c.cover_url.ok_or(Malformed("cover_url"))?,
        notice: c.notice.ok_or(Malformed("notice"))?,
        category: c.category.ok_or(Malformed("category"))?,
        activity_status: c.activity_status.ok_or(Malformed("activity_status"))?,
        max_seat_count: narrow(c.max_seat_count).ok_or(Malformed("max_seat_count"))?,
        max_member_count: narrow(c.max_member_count).ok_or(Malformed("max_member_count"))?,
        take_seat_mode: TakeSeatMode::parse(c.take_seat_mode.as_deref().unwrap_or_default())
            .map_err(|_| Malformed("take_seat_mode"))?,
        is_message_disabled: c
            .is_message_disabled
            .ok_or(Malformed("is_message_disabled"))?,
        is_public_visible: c.is_public_visible.ok_or(Malformed("is_public_visible"))?,
        is_seat_enabled: c.is_seat_enabled.ok_or(Malformed("is_seat_enabled"))?,
        seat_template: c.seat_template,
        is_unlimited_room_enabled: c.is_unlimited_room_enabled,
    };
    Ok(Room {
        id: RoomId::parse(text("id")?.to_owned()).map_err(|_| Malformed("id"))?,
        owner: Account::parse("owner", text("owner")?.to_owned())
            .map_err(|_| Malformed("owner"))?,
        create_time: number("create_time")?,
        view_count: number("view_count")?,
        revision: number("revision")?,
        fields,
    })
}

/// Only the fields that are set, so an update's event names exactly what it changed.
fn encode_changes(c: &RoomChanges) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.to_owned(), v);
        }
    };
    put("name", c.name.clone().map(Value::from));
    put("cover_url", c.cover_url.clone().map(Value::from));
    put("notice", c.notice.clone().map(Value::from));
    put("category", c.category.clone().map(Value::from));
    put("activity_status", c.activity_status.map(Value::from));
    put("max_seat_count", c.max_seat_count.map(Value::from));
    put("max_member_count", c.max_member_count.map(Value::from));
    put("take_seat_mode", c.take_seat_mode.clone().map(Value::from));
    put(
        "is_message_disabled",
        c.is_message_disabled.map(Value::from),
    );
    put("is_public_visible", c.is_public_visible.map(Value::from));
    put("is_seat_enabled", c.is_seat_enabled.map(Value::from));
    put("seat_template", c.seat_template.clone().map(Value::from));
    put(
        "is_unlimited_room_enabled",
        c.is_unlimited_room_enabled.map(Value::from),
    );
    Value::Object(o)
}

fn decode_changes(value: &Value) -> Result<RoomChanges, Malformed> {
    let o = value.as_object().ok_or(Malformed("changes"))?;
    let string = |k| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let int = |k| o.get(k).and_then(Value::as_i64);
    let bool = |k| o.get(k).and_then(Value::as_bool);
    let category = match o.get("category") {
        None => None,
        Some(v) => Some(
            v.as_array()
                .and_then(|items| items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .ok_or(Malformed("category"))?,
        ),
    };
    Ok(RoomChanges {
        name: string("name"),
        cover_url: string("cover_url"),
        notice: string("notice"),
        category,
        activity_status: int("activity_status"),
        max_seat_count: int("max_seat_count"),
        max_member_count: int("max_member_count"),
        take_seat_mode: string("take_seat_mode"),
        is_message_disabled: bool("is_message_disabled"),
        is_public_visible: bool("is_public_visible"),
        is_seat_enabled: bool("is_seat_enabled"),
        seat_template: string("seat_template"),
        is_unlimited_room_enabled: bool("is_unlimited_room_enabled"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use liveroom_domain::NewRoom;

    #[test]
    fn every_change_round_trips() {
        let changes = RoomChanges {
            name: Some("n\"é".into()),
            category: Some(vec![1, -2]),
            take_seat_mode: Some("ApplyToTake".into()),
            seat_template: Some("VideoDynamicGrid9Seats".into()),
            is_unlimited_room_enabled: Some(true),
            ..Default::default()
        };
        let room = NewRoom::validate("r 1".into(), None, Some("o".into()), "a", changes.clone())
            .unwrap()
            .into_room(1_700_000_000);
        for change in [
            RoomChange::Created(Box::new(room.clone())),
            RoomChange::InfoUpdated(Box::new(changes.validate().unwrap())),
            RoomChange::MetadataSet(Metadata::from([("k".into(), "v\n".into())])),
            RoomChange::MetadataDeleted(vec!["a".into(), "b".into()]),
            RoomChange::Destroyed,
            RoomChange::Muted {
                accounts: vec![account("a"), account("b")],
                until: 0,
            },
            RoomChange::Banned {
                accounts: vec![account("c")],
                until: 1_700_000_100,
                reason: "spam \"x\"".into(),
            },
            RoomChange::Unbanned(vec![account("c")]),
            RoomChange::Admins {
                op: ListOp::Add,
                accounts: vec![account("d")],
            },
            RoomChange::Robots {
                op: ListOp::Delete,
                accounts: vec![account("e")],
            },
            RoomChange::OwnerChanged(account("f")),
        ] {
            let event = RoomEvent {
                app: 7,
                room: RoomId::parse("r 1".into()).unwrap(),
                position: Position {
                    incarnation: 9,
                    seq: 3,
                },
                at_ms: 1_700_000_000_123,
                change,
            };
            let text = format!("[{},{}]", encode_entry(&event), encode_entry(&event));
            let decoded = decode_entries(&text, 7, &event.room, 9).unwrap();
            assert_eq!(decoded, [event.clone(), event.clone()]);
            for kept in [None, Some(Box::new(room.clone()))] {
                let entry = FeedEntry {
                    seq: 11,
                    room: event.room.clone(),
                    at_ms: event.at_ms,
                    by: account("op"),
                    item: FeedItem::Room {
                        position: event.position,
                        change: event.change.clone(),
                        room: kept,
                    },
                };
                let text = encode_feed(&entry.by, &entry.item);
                let back = decode_feed(&text, 11, entry.room.clone(), entry.at_ms).unwrap();
                assert_eq!(back, entry);
            }
        }
        let members = FeedItem::Members(MemberChange {
            cause: MemberCause::HeartbeatInterrupt,
            accounts: vec![account("m1"), account("m2")],
        });
        let text = encode_feed(&account("m1"), &members);
        let back = decode_feed(&text, 2, RoomId::parse("r".into()).unwrap(), 5).unwrap();
        assert_eq!((back.item, back.by), (members, account("m1")));
        assert!(
            decode_feed(
                r#"{"by":"x","members":{"cause":"Nope","accounts":[]}}"#,
                1,
                RoomId::parse("r".into()).unwrap(),
                1
            )
            .is_err()
        );
        let room = RoomId::parse("r".into()).unwrap();
        for junk in [
            "",
            "{}",
            "[1]",
            r#"[{"seq":1,"at":2}]"#,
            r#"[{"seq":1,"at":2,"change":{"nope":1}}]"#,
            r#"[{"seq":1,"at":2,"change":{"created":{}}}]"#,
            r#"[{"seq":1,"at":2,"change":{"set":[1]}}]"#,
        ] {
            assert!(decode_entries(junk, 7, &room, 1).is_err(), "{junk}");
        }
        assert_eq!(decode_entries("[]", 7, &room, 1).unwrap(), []);
    }

    fn account(name: &str) -> Account {
        Account::parse("a", name.into()).unwrap()
    }

    #[test]
    fn people_round_trip() {
        let mut people = RoomPeople::default();
        assert_eq!(decode_people(&encode_people(&people)).unwrap(), people);
        people.admins.insert(account("a"));
        people.robots.insert(account("r"));
        people.muted.insert(account("m"), 5);
        let ban = Ban {
            until: 9,
            reason: "é\n".into(),
        };
        people.banned.insert(account("b"), ban);
        assert_eq!(decode_people(&encode_people(&people)).unwrap(), people);
        for junk in [
            "",
            "[]",
            "{}",
            r#"{"admins":[1],"muted":{},"banned":{},"robots":[]}"#,
        ] {
            assert!(decode_people(junk).is_err(), "{junk}");
        }
    }
}
