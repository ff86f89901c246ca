//! Wire shapes shared by several room commands: the `RoomInfo` fields a request sets, the
//! room as answered, and the room list's cursor.

use std::fmt::Write as _;

use liveroom_domain::{ListPosition, Room, RoomChanges, RoomId, ValidChanges, limits};
use serde::Serialize;

use crate::fields::Fields;
use crate::{ApiError, ErrorCode};

/// The settable fields of a `RoomInfo` object, as `create_room` and `update_room_info` send
/// them.
pub fn room_changes(info: &Fields) -> Result<RoomChanges, ApiError> {
    Ok(RoomChanges {
        name: info.string("RoomName")?,
        cover_url: info.string("CoverURL")?,
        notice: info.string("Notice")?,
        category: info.int_array("Category")?,
        activity_status: info.int("ActivityStatus")?,
        max_seat_count: info.int("MaxSeatCount")?,
        max_member_count: info.int("MaxMemberCount")?,
        take_seat_mode: info.string("TakeSeatMode")?,
        is_message_disabled: info.bool("IsMessageDisabled")?,
        is_public_visible: info.bool("IsPublicVisible")?,
        is_seat_enabled: info.bool("IsSeatEnabled")?,
        seat_template: info.string("SeatTemplate")?,
        is_unlimited_room_enabled: info.bool("IsUnlimitedRoomEnabled")?,
    })
}

/// The opaque `Next` cursor: `<CreateTime>-<ViewCount>-<hex of RoomId>`, the position of the
/// last room of the page.
pub fn encode_cursor(position: &ListPosition) -> String {
    let mut cursor = format!("{}-{}-", position.create_time, position.view_count);
    push_hex(&mut cursor, position.room_id.as_str());
    cursor
}

/// The opaque `Next` of `get_member_list`: `m` and the hex of the page's last account.
pub fn encode_member_cursor(account: &str) -> String {
    let mut cursor = String::from("m");
    push_hex(&mut cursor, account);
    cursor
}

pub fn decode_member_cursor(cursor: &str) -> Result<String, ApiError> {
    cursor
        .strip_prefix('m')
        .and_then(|hex| text_of_hex(hex, limits::ACCOUNT_MAX_BYTES))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "invalid Next: not a cursor from get_member_list",
            )
        })
}

fn push_hex(out: &mut String, text: &str) {
    for byte in text.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
}

/// The UTF-8 text of at most `max_bytes` bytes that `hex` spells, two lowercase or uppercase
/// digits a byte.
fn text_of_hex(hex: &str, max_bytes: usize) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * max_bytes {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

pub fn decode_cursor(cursor: &str) -> Result<ListPosition, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "invalid Next: not a cursor from get_room_list",
        )
    };
    let mut parts = cursor.split('-');
    let (Some(create_time), Some(view_count), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    let (Some(create_time), Some(view_count)) = (number(create_time), number(view_count)) else {
        return Err(invalid());
    };
    let room_id = text_of_hex(hex, limits::ROOM_ID_MAX_BYTES)
        .and_then(|id| RoomId::parse(id).ok())
        .ok_or_else(invalid)?;
    Ok(ListPosition {
        view_count,
        create_time,
        room_id,
    })
}

/// `get_room_info`'s `Response.RoomInfo`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoomInfoWire<'a> {
    room_id: &'a str,
    room_name: &'a str,
    room_type: &'static str,
    #[serde(rename = "Owner_Account")]
    owner_account: &'a str,
    create_time: u64,
    is_seat_enabled: bool,
    take_seat_mode: &'static str,
    max_seat_count: u32,
    max_member_count: u32,
    is_message_disabled: bool,
    #[serde(rename = "CoverURL")]
    cover_url: &'a str,
    category: &'a [i64],
    activity_status: i64,
    view_count: u64,
    is_public_visible: bool,
    notice: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_template: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_unlimited_room_enabled: Option<bool>,
}

impl<'a> From<&'a Room> for RoomInfoWire<'a> {
    fn from(room: &'a Room) -> Self {
        let f = &room.fields;
        Self {
            room_id: room.id.as_str(),
            room_name: &f.name,
            room_type: "Live",
            owner_account: room.owner.as_str(),
            create_time: room.create_time,
            is_seat_enabled: f.is_seat_enabled,
            take_seat_mode: f.take_seat_mode.as_str(),
            max_seat_count: f.max_seat_count,
            max_member_count: f.max_member_count,
            is_message_disabled: f.is_message_disabled,
            cover_url: &f.cover_url,
            category: &f.category,
            activity_status: f.activity_status,
            view_count: room.view_count,
            is_public_visible: f.is_public_visible,
            notice: &f.notice,
            seat_template: f.seat_template.as_deref(),
            is_unlimited_room_enabled: f.is_unlimited_room_enabled,
        }
    }
}

/// The fields an `update_room_info` set, under their `RoomInfo` names; the others are left
/// out. What the real-time gateway's `room.info` event carries (docs/protocol.md).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoomChangesWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    room_name: Option<&'a str>,
    #[serde(rename = "CoverURL", skip_serializing_if = "Option::is_none")]
    cover_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a [i64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activity_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_seat_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_member_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    take_seat_mode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_message_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_public_visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_seat_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_template: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_unlimited_room_enabled: Option<bool>,
}

impl<'a> From<&'a ValidChanges> for RoomChangesWire<'a> {
    fn from(changes: &'a ValidChanges) -> Self {
        let c: &'a RoomChanges = changes.requested();
        Self {
            room_name: c.name.as_deref(),
            cover_url: c.cover_url.as_deref(),
            notice: c.notice.as_deref(),
            category: c.category.as_deref(),
            activity_status: c.activity_status,
            max_seat_count: c.max_seat_count,
            max_member_count: c.max_member_count,
            take_seat_mode: c.take_seat_mode.as_deref(),
            is_message_disabled: c.is_message_disabled,
            is_public_visible: c.is_public_visible,
            is_seat_enabled: c.is_seat_enabled,
            seat_template: c.seat_template.as_deref(),
            is_unlimited_room_enabled: c.is_unlimited_room_enabled,
        }
    }
}

/// One entry of `get_room_list`'s `Response.RoomList`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoomListEntry<'a> {
    room_id: &'a str,
    room_name: &'a str,
    #[serde(rename = "Owner_Account")]
    owner_account: &'a str,
    #[serde(rename = "CoverURL")]
    cover_url: &'a str,
    category: &'a [i64],
    create_time: u64,
    activity_status: i64,
    view_count: u64,
}

impl<'a> From<&'a Room> for RoomListEntry<'a> {
    fn from(room: &'a Room) -> Self {
        Self {
            room_id: room.id.as_str(),
            room_name: &room.fields.name,
            owner_account: room.owner.as_str(),
            cover_url: &room.fields.cover_url,
            category: &room.fields.category,
            create_time: room.create_time,
            activity_status: room.fields.activity_status,
            view_count: room.view_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let position = ListPosition {
            view_count: 7,
            create_time: 1_700_000_000,
            room_id: RoomId::parse("live room-1 ~".into()).unwrap(),
        };
        let cursor = encode_cursor(&position);
        assert_eq!(decode_cursor(&cursor).unwrap(), position);
    }

    #[test]
    fn member_cursors_round_trip_and_junk_is_refused() {
        for account in ["a", "user 1", "é🎉"] {
            let cursor = encode_member_cursor(account);
            assert_eq!(decode_member_cursor(&cursor).unwrap(), account);
        }
        for junk in ["x", "m1", "mzz", "mff", &format!("m{}", "61".repeat(33))] {
            assert!(decode_member_cursor(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn bad_cursors() {
        for bad in [
            "",
            "x",
            "1-2",
            "1-2-3-4",
            "a-2-61",
            "1-b-61",
            "1-2-6",
            "1-2-zz",
            "1-2-",
            "1-2-00",
            "-1-2-61",
            "99999999999999999999-2-61",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
