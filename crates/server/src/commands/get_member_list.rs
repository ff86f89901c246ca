//! `get_member_list`: `{"RoomId","Next"}` → `{"Next","MemberCount","MemberList":[…]}`: the
//! room's members connected to this server and its robots, in account order, at most 1,000 a
//! page (docs/behaviour.md §15).

use liveroom_domain::RoomId;
use liveroom_protocol::{ApiError, ErrorCode, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

/// Members one page lists (Tencent's bound).
const PAGE: usize = 1000;

pub(crate) struct Handler;

pub(crate) struct Page {
    room: RoomId,
    /// The last account of the previous page.
    after: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct List<'a> {
    next: String,
    member_count: usize,
    member_list: Vec<Member<'a>>,
}

#[derive(Serialize)]
struct Member<'a> {
    #[serde(rename = "Member_Account")]
    account: &'a str,
    #[serde(rename = "Nick", skip_serializing_if = "Option::is_none")]
    nick: Option<&'a str>,
    #[serde(rename = "FaceUrl", skip_serializing_if = "Option::is_none")]
    face_url: Option<&'a str>,
}

/// The opaque `Next`: `m` and the hex of the page's last account.
fn encode_cursor(account: &str) -> String {
    let mut cursor = String::with_capacity(1 + 2 * account.len());
    cursor.push('m');
    for byte in account.bytes() {
        cursor.push_str(&format!("{byte:02x}"));
    }
    cursor
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "invalid Next: not a cursor from get_member_list",
        )
    };
    let hex = cursor.strip_prefix('m').ok_or_else(invalid)?;
    if hex.len() % 2 != 0 || hex.len() > 2 * liveroom_domain::limits::ACCOUNT_MAX_BYTES {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).ok_or_else(invalid)?, 16).map_err(|_| invalid()))
        .collect::<Result<Vec<u8>, _>>()?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

impl super::Handler for Handler {
    type Request = Page;

    /// `Next` of `""`, `"0"` or absent is the first page, as for `get_room_list`.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Page, ApiError> {
        let room = fields.room_id()?;
        let after = match fields.string("Next")?.as_deref() {
            None | Some("" | "0") => None,
            Some(cursor) => Some(decode_cursor(cursor)?),
        };
        Ok(Page { room, after })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        page: Page,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &page.room).await?;
        let (mut members, member_count) = state.realtime.presence.list(
            call.app,
            &page.room,
            &room.people.robots,
            page.after.as_deref(),
            PAGE + 1,
        );
        let more = members.len() > PAGE;
        members.truncate(PAGE);
        let next = match members.last() {
            Some(last) if more => encode_cursor(&last.account),
            _ => String::new(),
        };
        Ok(respond(&List {
            next,
            member_count,
            member_list: members
                .iter()
                .map(|m| Member {
                    account: &m.account,
                    nick: m.info.nick.as_deref(),
                    face_url: m.info.avatar.as_deref(),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for account in ["a", "user 1", "é🎉"] {
            assert_eq!(decode_cursor(&encode_cursor(account)).unwrap(), account);
        }
        for junk in ["x", "m1", "mzz", "mff", &format!("m{}", "61".repeat(33))] {
            assert!(decode_cursor(junk).is_err(), "{junk}");
        }
    }
}
