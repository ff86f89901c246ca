//! The room operations of a session: enter/watch and exit (subscriptions with their catch-up,
//! and membership), the reads and writes of a room's info and metadata, its member list and
//! its messages. Writes run the same domain operations as the REST commands
//! (`crate::commands`), so they follow the same rules, answer the same codes and reach every
//! subscriber as events.

use std::collections::BTreeSet;
use std::time::Instant;

use liveroom_domain::ops::{AsManager, DeleteMetadata, IfRevision, SetMetadata};
use liveroom_domain::{
    Account, AppId, DeleteKeys, DomainError, MetadataEntries, MetadataEntry, Position, ProfileTag,
    ProfileValue, RoomChange, RoomId, RoomState, RoomStats, select_metadata,
};
use liveroom_protocol::{ApiError, Command, ErrorCode, Fields, RoomInfoWire};
use liveroom_store::{Relay, Reported, Returning, Since, Store};
use serde_json::{Map, Value, json};

use super::frames::{self, Op};
use super::members;
use super::messages::{self, Body};
use super::presence::{Cause, MemberInfo};
use super::session::{Session, Subscription};
use crate::commands::{Call, existing_room, store_error, write};
use crate::gateway::State;

/// Members one `get_members` reply lists.
const MEMBERS_PER_PAGE: usize = 100;

/// Tells the room's subscribers on every node that `user` came or went (`ev`, `cause`), while
/// the room has at most `presence_events_max_members` members (docs/protocol.md, "Members and
/// presence").
pub(crate) fn announce<S: Store>(
    state: &State<S>,
    app: AppId,
    room: &RoomId,
    (user, info): (&str, &MemberInfo),
    (ev, cause): (&str, Cause),
    members: usize,
) {
    if members > state.realtime.config.presence_events_max_members {
        return;
    }
    let d = json!({
        "user": frames::user(user, info),
        "cause": cause.as_str(),
        "members": members,
    });
    let ts = state.clock.since_epoch().as_millis() as u64;
    members::publish_live(state, app, room, frames::live(ev, room, ts, d));
}

/// What others see of `user`: the nickname and avatar of its account, if it was imported.
/// A failed lookup shows the user without them rather than failing its entry.
pub(crate) async fn member_info<S: Store>(state: &State<S>, app: AppId, user: &str) -> MemberInfo {
    let Ok(account) = Account::parse("user", user.to_owned()) else {
        return MemberInfo::default();
    };
    let profile = match state.store.profiles(app, vec![account]).await {
        Ok(mut profiles) => profiles.pop().flatten(),
        Err(error) => {
            tracing::warn!(%error, "reading a member's profile failed");
            None
        }
    };
    let text = |tag| match profile.as_ref().and_then(|p| p.get(tag)) {
        Some(ProfileValue::Text(text)) if !text.is_empty() => Some(text.clone()),
        _ => None,
    };
    MemberInfo {
        nick: text(ProfileTag::Nick),
        avatar: text(ProfileTag::Image),
    }
}

/// `self` in an `enter` reply: the user's standing in the room.
fn standing(state: &RoomState, user: &str, now_secs: u64) -> Value {
    let role = if state.room.owner.as_str() == user {
        "owner"
    } else if state.people.is_admin(user) {
        "admin"
    } else {
        "member"
    };
    let muted_until = state.people.muted_until(user, now_secs).unwrap_or(0);
    json!({"role": role, "muted_until": muted_until})
}

/// A delta longer than this is answered with a snapshot instead: it is smaller by then, and
/// a reply stays a bounded frame (docs/protocol.md, "enter").
pub(crate) const MAX_DELTA_EVENTS: usize = 64;

fn room_field(d: &Fields<'_>) -> Result<RoomId, ApiError> {
    Ok(RoomId::parse(d.required("room", Fields::string)?)?)
}

fn invalid(info: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, info)
}

/// `since: {"epoch","rev"}`, both non-negative integers.
fn since_field(d: &Fields<'_>) -> Result<Option<Position>, ApiError> {
    let Some(since) = d.object("since")? else {
        return Ok(None);
    };
    let number = |field| {
        let value = since.required(field, Fields::int)?;
        u64::try_from(value)
            .map_err(|_| invalid(format!("invalid since.{field}: must not be negative")))
    };
    Ok(Some(Position {
        incarnation: number("epoch")?,
        seq: number("rev")?,
    }))
}

/// The answer to `enter`, and where the subscription continues from (`None`: the room's
/// events ended in the delta itself, with `room.destroyed`).
struct CatchUp {
    reply: Value,
    head: Option<Position>,
}

impl<S: Store> Session<S> {
    /// One request, answered; `Err` is the error reply.
    pub(super) async fn request(
        &mut self,
        op: Op,
        d: &Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let raw = d;
        let d = Fields::new(raw);
        match op {
            Op::Hello => Err(invalid("hello was already sent")),
            Op::Refresh => self.refresh(raw),
            Op::Enter => self.enter(&d, true).await,
            Op::Watch => self.enter(&d, false).await,
            Op::Exit => {
                let room = room_field(&d)?;
                self.leave(&room, Cause::Leave).await;
                Ok(json!({}))
            }
            Op::GetMembers => {
                self.enabled(Command::GetMemberList)?;
                let room = room_field(&d)?;
                let after = d.string("after")?;
                let state = existing_room(&self.state, &self.call(), &room).await?;
                let (page, members) = members::listing(
                    &self.state,
                    self.app,
                    &room,
                    &state.people.robots,
                    after.as_deref(),
                    MEMBERS_PER_PAGE,
                )
                .await?;
                let next = (page.len() == MEMBERS_PER_PAGE)
                    .then(|| page.last().map(|m| m.account.clone()))
                    .flatten();
                let users: Vec<Value> = page
                    .iter()
                    .map(|m| frames::user(&m.account, &m.info))
                    .collect();
                Ok(json!({"members": members, "users": users, "next": next}))
            }
            Op::SendText => {
                self.enabled(Command::SendTextMsg)?;
                let room = room_field(&d)?;
                let text = d.required("text", Fields::string)?;
                let body = Body::text("text", text, d.string("ext")?)?;
                self.send_message(&room, body).await
            }
            Op::SendCustom => {
                self.enabled(Command::SendCustomMsg)?;
                let room = room_field(&d)?;
                let body = Body::custom(
                    ("business_id", d.required("business_id", Fields::string)?),
                    ("data", d.string("data")?.unwrap_or_default()),
                )?;
                self.send_message(&room, body).await
            }
            Op::GetInfo => {
                self.enabled(Command::GetRoomInfo)?;
                let state = existing_room(&self.state, &self.call(), &room_field(&d)?).await?;
                Ok(json!({"info": RoomInfoWire::from(&state.room)}))
            }
            Op::GetMetadata => {
                self.enabled(Command::GetRoomMetadata)?;
                let room = room_field(&d)?;
                let keys = d.string_array("keys")?.unwrap_or_default();
                let state = existing_room(&self.state, &self.call(), &room).await?;
                let metadata: Map<String, Value> = select_metadata(&state.metadata, &keys)
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), Value::from(value)))
                    .collect();
                Ok(json!({"metadata": metadata, "revision": state.room.revision}))
            }
            Op::SetMetadata => {
                self.enabled(Command::SetRoomMetadata)?;
                let room = room_field(&d)?;
                let entries = d
                    .required("metadata", Fields::string_map)?
                    .into_iter()
                    .map(|(key, value)| MetadataEntry::new(key, value))
                    .collect::<Result<Vec<_>, _>>()?;
                let set = SetMetadata {
                    room,
                    entries: MetadataEntries::new(entries)?,
                };
                self.write_as_manager(&d, set).await
            }
            Op::DelMetadata => {
                self.enabled(Command::DelRoomMetadata)?;
                let delete = DeleteMetadata {
                    room: room_field(&d)?,
                    keys: DeleteKeys::new(d.required("keys", Fields::string_array)?)?,
                };
                self.write_as_manager(&d, delete).await
            }
        }
    }

    /// A command the app turned off (`disabled_commands`) is off here too (100007).
    fn enabled(&self, command: Command) -> Result<(), ApiError> {
        let disabled = self
            .state
            .apps
            .get(self.app)
            .is_some_and(|app| app.disabled_commands.contains(&command));
        if disabled {
            return Err(ApiError::new(
                ErrorCode::NotEnabled,
                format!("{} is not enabled for this app", command.name()),
            ));
        }
        Ok(())
    }

    fn call(&self) -> Call<'_> {
        Call {
            app: self.app,
            caller: &self.user,
            now: self.state.clock.since_epoch(),
        }
    }

    /// A metadata write by a room member: the room's owner and administrators only (100006),
    /// and with `if_revision` only while the metadata is at that revision (190001). Answers
    /// where the write put the room and its metadata revision.
    async fn write_as_manager(
        &self,
        d: &Fields<'_>,
        operation: impl liveroom_domain::RoomOperation,
    ) -> Result<Value, ApiError> {
        let operation = AsManager {
            caller: self.user.clone(),
            operation: IfRevision {
                expected: d.uint("if_revision")?,
                operation,
            },
        };
        let committed = write(&self.state, &self.call(), operation).await?;
        let position = committed
            .events
            .last()
            .map(|e| e.position)
            .unwrap_or_default();
        let revision = committed.state.map(|s| s.room.revision);
        Ok(json!({"epoch": position.incarnation, "rev": position.seq, "revision": revision}))
    }

    /// A message from this connection's member of `room` (100005 when it has not entered).
    async fn send_message(&self, room: &RoomId, body: Body) -> Result<Value, ApiError> {
        if !self.rooms.get(room).is_some_and(|s| s.member) {
            return Err(DomainError::NotAMember.into());
        }
        let info = self
            .state
            .realtime
            .presence
            .info(self.app, room, &self.user);
        let sent = messages::send(&self.state, &self.call(), &self.user, room, &info, body).await?;
        Ok(json!({"mid": sent.mid}))
    }

    /// `enter` and `watch` (`member` false): subscribe first, then read the catch-up, so that
    /// nothing committed in between is missed; the room's cursor then drops what the reply
    /// already holds (docs/protocol.md, "Ordering and resume"). Entering also makes the user a
    /// member: refused while it is banned (10007) or when the room is full (10014).
    async fn enter(&mut self, d: &Fields<'_>, member: bool) -> Result<Value, ApiError> {
        let room = room_field(d)?;
        let since = since_field(d)?;
        let max_rooms = self.state.realtime.config.max_rooms;
        let subscribed = self.rooms.get(&room).map(|s| s.member);
        if subscribed.is_none() && self.rooms.len() >= max_rooms {
            return Err(invalid(format!("at most {max_rooms} rooms per connection")));
        }
        let now_secs = self.call().now.as_secs();
        let state = self
            .state
            .store
            .room(self.app, &room)
            .await
            .map_err(store_error)?;
        if let Some(ban) = state
            .as_ref()
            .and_then(|s| s.people.ban(&self.user, now_secs))
        {
            return Err(DomainError::Banned { until: ban.until }.into());
        }
        let realtime = &self.state.realtime;
        realtime
            .hub
            .join(self.app, &room, self.id, self.mailbox.clone());
        // A room that no longer exists has no members: its catch-up alone answers (a delta
        // that ends with its destruction, or 100004).
        let becomes_member = member && subscribed != Some(true) && state.is_some();
        let joined = match &state {
            Some(state) if becomes_member => self.join_members(&room, state).await,
            _ => Ok(()),
        };
        let joined_ok = joined.is_ok();
        let caught_up = match joined {
            Ok(()) => self.catch_up(&room, since).await,
            Err(error) => Err(error),
        };
        let head = match caught_up {
            Ok(CatchUp {
                reply,
                head: Some(head),
            }) => (reply, head),
            outcome => {
                // Undone: a new membership (a failed join undid itself), a new subscription.
                if becomes_member && joined_ok {
                    self.depart(&room, Cause::Leave).await;
                }
                if subscribed.is_none() {
                    realtime.hub.leave(self.app, &room, self.id);
                }
                return outcome.map(|c| c.reply);
            }
        };
        let (mut reply, position) = head;
        let member = member || subscribed == Some(true);
        self.rooms
            .insert(room.clone(), Subscription { position, member });
        if let (Some(reply), Some(state)) = (reply.as_object_mut(), &state) {
            let members = members::count(&self.state, self.app, &room, &state.people.robots)
                .await
                .unwrap_or_else(|_| {
                    realtime
                        .presence
                        .count(self.app, &room, &state.people.robots)
                });
            reply.insert("members".into(), members.into());
            reply.insert("self".into(), standing(state, &self.user, now_secs));
        }
        Ok(reply)
    }

    /// Makes the user a member of `room`: in presence (the newer connection wins), announced,
    /// and counted in the room's viewers when it is a new entry. With presence shared by the
    /// nodes, the room's limit counts every node's members, and the others see the member
    /// before the entry is answered.
    async fn join_members(&self, room: &RoomId, state: &RoomState) -> Result<(), ApiError> {
        let info = member_info(&self.state, self.app, &self.user).await;
        let realtime = &self.state.realtime;
        let robots = &state.people.robots;
        let mut max_members = state.room.fields.max_member_count;
        if self.state.store.shares_presence() && max_members > 0 {
            let here = realtime.presence.is_member(self.app, room, &self.user)
                || robots.contains(self.user.as_str());
            let members = members::count(&self.state, self.app, room, robots).await?;
            if !here && members >= max_members as usize {
                return Err(DomainError::RoomFull.into());
            }
            max_members = 0;
        }
        let entered = realtime.presence.enter(
            self.app,
            room,
            &self.user,
            self.id,
            info.clone(),
            max_members,
            robots,
            Instant::now(),
        )?;
        if let Some(older) = entered.replaced {
            realtime.hub.replace(self.app, room, older);
        }
        let Some(mut cause) = entered.cause else {
            return Ok(());
        };
        let mut elsewhere = false;
        if cause == Cause::Enter && self.state.store.shares_presence() {
            // In the room through another node already, or back within the grace period
            // through another node (docs/cluster.md §4).
            let now_ms = self.call().now.as_millis() as u64;
            let grace_ms = realtime.config.presence_grace.as_millis() as u64;
            let since = now_ms.saturating_sub(grace_ms);
            let store = &self.state.store;
            match store.returning(self.app, room, &self.user, since).await {
                Ok(Returning::New) => {}
                Ok(Returning::Recovered) => cause = Cause::HeartbeatRecover,
                Ok(Returning::Elsewhere) => elsewhere = true,
                Err(error) => {
                    self.depart_silently(room);
                    return Err(store_error(error));
                }
            }
        }
        let reported = members::report(&self.state, vec![self.reported_in(room, &info)]).await;
        if let Err(error) = reported {
            self.depart_silently(room);
            return Err(error);
        }
        if elsewhere {
            // The newer connection wins: the other node's is told, and the user stays a
            // member, neither announced nor counted again.
            let account = self.user.clone();
            self.state
                .store
                .relay(self.app, room, Relay::Replace { account });
            return Ok(());
        }
        if cause == Cause::Enter {
            let counted = RoomStats {
                viewers: 1,
                messages: 0,
            };
            let outcome = self.state.store.count(self.app, room, counted).await;
            if let Err(error) = outcome {
                self.depart_silently(room);
                let _ = members::report(&self.state, vec![self.reported_out(room)]).await;
                return Err(store_error(error));
            }
        }
        realtime.recorder.record(self.app, room, &self.user, cause);
        let members = self.members_now(room, robots, entered.members).await;
        self.announce(room, "member.enter", &info, cause, members);
        Ok(())
    }

    fn reported_in(&self, room: &RoomId, info: &MemberInfo) -> Reported {
        Reported::In {
            app: self.app,
            room: room.clone(),
            account: self.user.clone(),
            info: info.clone(),
        }
    }

    fn reported_out(&self, room: &RoomId) -> Reported {
        Reported::Out {
            app: self.app,
            room: room.clone(),
            account: self.user.clone(),
        }
    }

    /// The room's member count to announce: every node's when presence is shared (this node's,
    /// `here`, if they cannot be read).
    async fn members_now(&self, room: &RoomId, robots: &BTreeSet<Account>, here: usize) -> usize {
        if !self.state.store.shares_presence() {
            return here;
        }
        members::count(&self.state, self.app, room, robots)
            .await
            .unwrap_or(here)
    }

    /// Tells the room's subscribers that this connection's member came or went, while the
    /// room is small enough to announce each (docs/protocol.md, "Members and presence").
    fn announce(&self, room: &RoomId, ev: &str, info: &MemberInfo, cause: Cause, members: usize) {
        announce(
            &self.state,
            self.app,
            room,
            (&self.user, info),
            (ev, cause),
            members,
        );
    }

    /// Ends the connection's membership of `room`, announcing it with `cause`.
    pub(super) async fn depart(&self, room: &RoomId, cause: Cause) {
        let presence = &self.state.realtime.presence;
        let info = presence.info(self.app, room, &self.user);
        let left = presence.leave(self.app, room, &self.user, self.id, cause, Instant::now());
        let Some(members) = left else {
            return;
        };
        self.state
            .realtime
            .recorder
            .record(self.app, room, &self.user, cause);
        let reported = match cause {
            Cause::HeartbeatInterrupt => Reported::Interrupted {
                app: self.app,
                room: room.clone(),
                account: self.user.clone(),
                at_ms: self.call().now.as_millis() as u64,
            },
            _ => self.reported_out(room),
        };
        if let Err(error) = members::report(&self.state, vec![reported]).await {
            tracing::warn!(error = %error.info, "a departure not reported to the other nodes");
        }
        let robots = match self.state.store.room(self.app, room).await {
            Ok(Some(state)) => state.people.robots.clone(),
            _ => BTreeSet::new(),
        };
        let members = self.members_now(room, &robots, members).await;
        self.announce(room, "member.leave", &info, cause, members);
    }

    /// Undoes an entry that could not be completed: nobody was told of it.
    fn depart_silently(&self, room: &RoomId) {
        let presence = &self.state.realtime.presence;
        presence.leave(
            self.app,
            room,
            &self.user,
            self.id,
            Cause::Leave,
            Instant::now(),
        );
    }

    /// Ends the subscription to `room`, if any, and the membership with it.
    pub(super) async fn leave(&mut self, room: &RoomId, cause: Cause) {
        if let Some(subscription) = self.rooms.remove(room)
            && subscription.member
        {
            self.depart(room, cause).await;
        }
        self.state.realtime.hub.leave(self.app, room, self.id);
    }

    /// Ends the subscription to `room` without a departure: the room is gone.
    pub(super) fn unsubscribe(&mut self, room: &RoomId) {
        self.rooms.remove(room);
        self.state.realtime.hub.leave(self.app, room, self.id);
    }

    /// A delta from `since` when the log still continues it (and it is short), otherwise a
    /// snapshot of the room as it is.
    async fn catch_up(&self, room: &RoomId, since: Option<Position>) -> Result<CatchUp, ApiError> {
        let store = &self.state.store;
        if let Some(since) = since {
            let read = store
                .events_after(self.app, room, since, MAX_DELTA_EVENTS + 1)
                .await
                .map_err(store_error)?;
            if let Since::Events(events) = read
                && events.len() <= MAX_DELTA_EVENTS
            {
                let last = events.last().map_or(since, |e| e.position);
                let ended = events
                    .last()
                    .is_some_and(|e| matches!(e.change, RoomChange::Destroyed));
                let events: Vec<Value> = events.iter().map(frames::event).collect();
                return Ok(CatchUp {
                    reply: json!({
                        "mode": "delta",
                        "epoch": last.incarnation,
                        "rev": last.seq,
                        "events": events,
                    }),
                    head: (!ended).then_some(last),
                });
            }
        }
        let state = existing_room(&self.state, &self.call(), room).await?;
        Ok(CatchUp {
            reply: json!({
                "mode": "snapshot",
                "epoch": state.position.incarnation,
                "rev": state.position.seq,
                "state": {
                    "info": RoomInfoWire::from(&state.room),
                    "metadata": state.metadata,
                },
            }),
            head: Some(state.position),
        })
    }
}
