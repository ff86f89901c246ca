//! `get_member_list`: `{"RoomId","Next"}` → `{"Next","MemberCount","MemberList":[…]}`: the
//! room's members connected to this server and its robots, in account order, at most 1,000 a
//! page (docs/behaviour.md §15).

use liveroom_domain::RoomId;
use liveroom_protocol::{
    ApiError, Fields, Response, decode_member_cursor, encode_member_cursor,
};
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

impl super::Handler for Handler {
    type Request = Page;

    /// `Next` of `""`, `"0"` or absent is the first page, as for `get_room_list`.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Page, ApiError> {
        let room = fields.room_id()?;
        let after = match fields.string("Next")?.as_deref() {
            None | Some("" | "0") => None,
            Some(cursor) => Some(decode_member_cursor(cursor)?),
        };
        Ok(Page { room, after })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        page: Page,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &page.room).await?;
        let (mut members, member_count) = crate::realtime::members::listing(
            state,
            call.app,
            &page.room,
            &room.people.robots,
            page.after.as_deref(),
            PAGE + 1,
        )
        .await?;
        let more = members.len() > PAGE;
        members.truncate(PAGE);
        let next = match members.last() {
            Some(last) if more => encode_member_cursor(&last.account),
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
