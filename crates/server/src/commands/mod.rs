//! The command handlers, one file per command: its typed request (parsed once from the body,
//! every field named as Tencent names it, so a 100002 names the field), its handler, and its
//! `Response`. [`dispatch`] and the `mod` lines are generated from the one table of commands
//! (`liveroom_protocol::with_commands!`), so a new command is one table line and one file here.

use std::future::Future;
use std::time::Duration;

use liveroom_domain::ops::IfRevision;
use liveroom_domain::{Account, AppId, DomainError, ProfileTag, ProfileValue, RoomOperation};
use liveroom_protocol::{ApiError, Command, Fields, Response};
use liveroom_store::{Committed, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::gateway::State;

/// Who called, for which app, and when: an administrator over REST, a room member over the
/// real-time gateway.
pub(crate) struct Call<'a> {
    pub app: AppId,
    /// The caller's identifier.
    pub caller: &'a str,
    /// Since the Unix epoch, from the server's clock.
    pub now: Duration,
}

/// One command.
pub(crate) trait Handler {
    /// The request once every field is checked (docs/behaviour.md §2 row 18).
    type Request: Send;

    fn parse(fields: &Fields<'_>, call: &Call<'_>) -> Result<Self::Request, ApiError>;

    /// Runs the request; the command's own outcomes and codes (row 19).
    fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        request: Self::Request,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;
}

macro_rules! define_dispatch {
    ($($variant:ident = $module:ident: $service:ident, $family:ident, $rate:literal, $access:ident;)*) => {
        $(mod $module;)*

        /// Rows 18 and 19 of docs/behaviour.md §2 for `command`'s body.
        pub(crate) async fn dispatch<S: Store>(
            state: &State<S>,
            command: Command,
            call: &Call<'_>,
            body: &Map<String, Value>,
        ) -> Result<Response, ApiError> {
            let outcome = match command {
                $(Command::$variant => run::<$module::Handler, S>(state, call, body).await,)*
            };
            outcome.map_err(|e| e.in_service(command.service()))
        }

        /// Row 18 alone: whether `body` is a valid request of `command` from `caller`, without
        /// running it (for the fuzz targets).
        pub fn check_request(
            command: Command,
            body: &Map<String, Value>,
            caller: &str,
        ) -> Result<(), ApiError> {
            let call = Call {
                app: 0,
                caller,
                now: Duration::ZERO,
            };
            let fields = Fields::new(body);
            let outcome = match command {
                $(Command::$variant => <$module::Handler as Handler>::parse(&fields, &call).map(drop),)*
            };
            outcome.map_err(|e| e.in_service(command.service()))
        }
    };
}

liveroom_protocol::with_commands!(define_dispatch);

async fn run<H: Handler, S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let request = H::parse(&Fields::new(body), call)?;
    H::handle(state, call, request).await
}

/// An account field (`UserID`, `From_Account`, …), as liveroom bounds every account.
fn account(fields: &Fields<'_>, field: &'static str) -> Result<Account, ApiError> {
    Ok(Account::parse(
        field,
        fields.required(field, Fields::string)?,
    )?)
}

/// The accounts a moderation, administrator or robot request names in `field`: 1 to 20
/// strings, each a valid account (docs/behaviour.md §14).
fn request_accounts(
    fields: &Fields<'_>,
    field: &'static str,
) -> Result<std::collections::BTreeSet<Account>, ApiError> {
    let raw = fields.required(field, Fields::string_array)?;
    Ok(liveroom_domain::people::request_accounts(field, raw)?)
}

/// A profile `Value` of `tag`, of the JSON type it came in: a string, or a number that fits
/// an unsigned 32-bit integer (docs/behaviour.md §13).
fn profile_value(tag: ProfileTag, value: &Value) -> Result<ProfileValue, ApiError> {
    let value = match value {
        Value::String(text) => ProfileValue::Text(text.clone()),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(ProfileValue::Number)
            .ok_or_else(|| DomainError::invalid(tag.name(), "must be 0 to 4294967295"))?,
        _ => Err(DomainError::invalid(
            tag.name(),
            "must be a string or a number",
        ))?,
    };
    Ok(ProfileValue::check(tag, value)?)
}

/// A `Tag` name liveroom keeps.
fn profile_tag(name: &str) -> Result<ProfileTag, ApiError> {
    ProfileTag::parse(name)
        .ok_or_else(|| DomainError::invalid("Tag", format!("{name:?} is not supported")).into())
}

/// A `Response` object, serialized.
fn respond(response: &impl Serialize) -> Response {
    // Plain structs of strings and numbers always serialize.
    Some(serde_json::to_vec(response).unwrap_or_default())
}

/// Runs a room operation at the call's time, on the caller's behalf.
pub(crate) async fn write<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    operation: impl RoomOperation,
) -> Result<Committed, ApiError> {
    let by = Account::parse("identifier", call.caller.to_owned())?;
    state
        .store
        .write(call.app, by, Box::new(operation), call.now)
        .await
        .map_err(store_error)
}

/// Runs a room operation whose command answers the bare envelope.
async fn acknowledge<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    operation: impl RoomOperation,
) -> Result<Response, ApiError> {
    write(state, call, operation).await.map(|_| None)
}

/// A metadata write, compare-and-set when the request names `ExpectedRevision` (a liveroom
/// extension: docs/behaviour.md §7, "Compare-and-set").
fn conditional<O>(fields: &Fields<'_>, operation: O) -> Result<IfRevision<O>, ApiError> {
    Ok(IfRevision {
        expected: fields.uint("ExpectedRevision")?,
        operation,
    })
}

/// A store failure as the client sees it. Storage trouble is logged here with its cause and
/// answered 100001 without details.
pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Rule(DomainError::OutOfOrder) => {
            tracing::error!("a room operation broke the event log's order; nothing applied");
            ApiError::internal()
        }
        StoreError::Rule(rule) => rule.into(),
        StoreError::Unavailable(cause) => {
            tracing::error!(%cause, "storage failed; request not applied");
            ApiError::internal()
        }
    }
}

/// Where a page of the feed starts and how long it is: `AfterSeq` (default 0) and `Limit`
/// (1 to 100, default 100), docs/webhooks.md §6.
pub(crate) struct FeedPage {
    after: u64,
    limit: usize,
}

impl FeedPage {
    const LIMIT_MAX: u64 = 100;

    fn parse(fields: &Fields<'_>) -> Result<Self, ApiError> {
        let limit = fields.uint("Limit")?.unwrap_or(Self::LIMIT_MAX);
        if !(1..=Self::LIMIT_MAX).contains(&limit) {
            return Err(DomainError::invalid("Limit", "must be 1 to 100").into());
        }
        Ok(Self {
            after: fields.uint("AfterSeq")?.unwrap_or(0),
            limit: limit as usize,
        })
    }
}

/// `{"Events":[…],"NextAfterSeq":next}` from events already serialized.
fn feed_page(events: impl Iterator<Item = Vec<u8>>, next: u64) -> Response {
    let mut page = b"{\"Events\":[".to_vec();
    for (i, event) in events.enumerate() {
        if i > 0 {
            page.push(b',');
        }
        page.extend_from_slice(&event);
    }
    page.extend_from_slice(format!("],\"NextAfterSeq\":{next}}}").as_bytes());
    Some(page)
}

/// A room's cumulative statistics, as `get_room_stats` and `destroy_room` answer them
/// (docs/behaviour.md §6, §14): `TotalViewers` is the room's entries and `TotalMsgCount` the
/// messages sent into it; gifts and likes count from 0 until liveroom records them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Totals {
    total_viewers: u64,
    total_gifts_sent: u64,
    total_gift_coins: u64,
    total_unique_gift_senders: u64,
    total_likes_received: u64,
    /// Only where the command answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_msg_count: Option<u64>,
}

impl Totals {
    /// The room's totals as the store counts them now, or 100004.
    async fn read<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        room: &liveroom_domain::RoomId,
    ) -> Result<Self, ApiError> {
        let stats = state
            .store
            .stats(call.app, room)
            .await
            .map_err(store_error)?
            .ok_or(DomainError::RoomNotFound)?;
        Ok(Self {
            total_viewers: stats.viewers,
            total_gifts_sent: 0,
            total_gift_coins: 0,
            total_unique_gift_senders: 0,
            total_likes_received: 0,
            total_msg_count: Some(stats.messages),
        })
    }
}

/// `{"<field>":[…]}`: one of the room's sets of accounts (its administrators, its robots),
/// in account order; 100004 if the room does not exist.
async fn account_list<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    room: &liveroom_domain::RoomId,
    field: &str,
    list: impl FnOnce(&liveroom_domain::RoomPeople) -> &std::collections::BTreeSet<Account>,
) -> Result<Response, ApiError> {
    let room = existing_room(state, call, room).await?;
    let accounts: Vec<&str> = list(&room.people).iter().map(Account::as_str).collect();
    Ok(respond(&serde_json::json!({ field: accounts })))
}

/// The room's state, or 100004.
pub(crate) async fn existing_room<S: Store>(
    state: &State<S>,
    call: &Call<'_>,
    room: &liveroom_domain::RoomId,
) -> Result<std::sync::Arc<liveroom_domain::RoomState>, ApiError> {
    state
        .store
        .room(call.app, room)
        .await
        .map_err(store_error)?
        .ok_or_else(|| DomainError::RoomNotFound.into())
}
