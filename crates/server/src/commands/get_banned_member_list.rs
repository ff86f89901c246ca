//! `get_banned_member_list`: `{"RoomId","Offset"?,"Limit"?}` → `{"BannedAccountList":[{
//! "Member_Account","BannedUntil"}],"NextOffset"}`, the bans in force now in account order, a
//! page at a time; `NextOffset` 0 means the last page (docs/behaviour.md §14).

use liveroom_domain::{DomainError, RoomId};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, existing_room, respond};
use crate::gateway::State;

/// The most entries one page holds (Tencent's bound), and a page's size when `Limit` is
/// omitted.
const LIMIT_MAX: u64 = 100;

pub(crate) struct Handler;

pub(crate) struct Get {
    room: RoomId,
    offset: u64,
    limit: u64,
}

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "BannedAccountList")]
    banned_account_list: Vec<Banned<'a>>,
    #[serde(rename = "NextOffset")]
    next_offset: u64,
}

#[derive(Serialize)]
struct Banned<'a> {
    #[serde(rename = "Member_Account")]
    member_account: &'a str,
    #[serde(rename = "BannedUntil")]
    banned_until: u64,
}

impl super::Handler for Handler {
    type Request = Get;

    /// `Offset`: 0 or more, 0 when omitted; `Limit`: 1 to 100, 100 when omitted.
    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Get, ApiError> {
        let room = fields.room_id()?;
        let offset = match fields.int("Offset")? {
            None => 0,
            Some(offset) => u64::try_from(offset)
                .map_err(|_| DomainError::invalid("Offset", "must be 0 or more"))?,
        };
        let limit = match fields.int("Limit")? {
            None => LIMIT_MAX,
            Some(limit) => u64::try_from(limit)
                .ok()
                .filter(|limit| (1..=LIMIT_MAX).contains(limit))
                .ok_or_else(|| {
                    DomainError::invalid("Limit", format!("must be 1 to {LIMIT_MAX}"))
                })?,
        };
        Ok(Get {
            room,
            offset,
            limit,
        })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        get: Get,
    ) -> Result<Response, ApiError> {
        let room = existing_room(state, call, &get.room).await?;
        let total = room.people.banned_at(call.now.as_secs()).count() as u64;
        // Both fit a usize: the offset is compared with a bounded count first.
        let start = get.offset.min(total);
        let banned_account_list = room
            .people
            .banned_at(call.now.as_secs())
            .skip(start as usize)
            .take(get.limit as usize)
            .map(|(account, ban)| Banned {
                member_account: account.as_str(),
                banned_until: ban.until,
            })
            .collect::<Vec<_>>();
        let end = start + banned_account_list.len() as u64;
        let next_offset = if end < total { end } else { 0 };
        Ok(respond(&Answer {
            banned_account_list,
            next_offset,
        }))
    }
}
