//! `get_room_list`: `{"Next","Count"}` → `{"Next","RoomList":[…]}` (docs/behaviour.md §6).

use liveroom_domain::{ListPosition, page_size};
use liveroom_protocol::{ApiError, Fields, Response, RoomListEntry, decode_cursor, encode_cursor};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, respond, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

pub(crate) struct Page {
    after: Option<ListPosition>,
    count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct List<'a> {
    next: String,
    room_list: Vec<RoomListEntry<'a>>,
}

impl super::Handler for Handler {
    type Request = Page;

    /// `Next` of `""`, `"0"` (what Tencent's console sends) or absent is the first page.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Page, ApiError> {
        let after = match fields.string("Next")?.as_deref() {
            None | Some("" | "0") => None,
            Some(cursor) => Some(decode_cursor(cursor)?),
        };
        let count = page_size(fields.int("Count")?)?;
        Ok(Page { after, count })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        page: Page,
    ) -> Result<Response, ApiError> {
        // One room more than asked tells whether another page exists, so that the last page
        // answers `Next: ""` instead of sending the caller for an empty one.
        let mut rooms = state
            .store
            .list_rooms(call.app, page.after, page.count + 1)
            .await
            .map_err(store_error)?;
        let next = if rooms.len() > page.count {
            rooms.truncate(page.count);
            rooms.last().map(ListPosition::of)
        } else {
            None
        };
        Ok(respond(&List {
            next: next.as_ref().map(encode_cursor).unwrap_or_default(),
            room_list: rooms.iter().map(RoomListEntry::from).collect(),
        }))
    }
}
