//! The room operations of a session: enter/watch and exit (subscriptions with their
//! catch-up), and the reads and writes of a room's info and metadata. Writes run the same
//! domain operations as the REST commands (`crate::commands`), so they follow the same rules,
//! answer the same codes and reach every subscriber as events.

use liveroom_domain::ops::{AsManager, DeleteMetadata, SetMetadata};
use liveroom_domain::{
    DeleteKeys, MetadataEntries, MetadataEntry, Position, RoomChange, RoomId, select_metadata,
};
use liveroom_protocol::{ApiError, Command, ErrorCode, Fields, RoomInfoWire};
use liveroom_store::{Since, Store};
use serde_json::{Map, Value, json};

use super::frames::{self, Op};
use super::session::Session;
use crate::commands::{Call, existing_room, store_error, write};

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
        let d = Fields::new(d);
        match op {
            Op::Hello => Err(invalid("hello was already sent")),
            Op::Enter | Op::Watch => self.enter(&d).await,
            Op::Exit => {
                let room = room_field(&d)?;
                self.leave(&room);
                Ok(json!({}))
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
                Ok(json!({"metadata": metadata}))
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
                self.write_as_manager(set).await
            }
            Op::DelMetadata => {
                self.enabled(Command::DelRoomMetadata)?;
                let delete = DeleteMetadata {
                    room: room_field(&d)?,
                    keys: DeleteKeys::new(d.required("keys", Fields::string_array)?)?,
                };
                self.write_as_manager(delete).await
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

    /// A metadata write by a room member: the room's owner and administrators only (100006).
    /// Answers where the write put the room.
    async fn write_as_manager(
        &self,
        operation: impl liveroom_domain::RoomOperation,
    ) -> Result<Value, ApiError> {
        let operation = AsManager {
            caller: self.user.clone(),
            operation,
        };
        let committed = write(&self.state, &self.call(), operation).await?;
        let position = committed
            .events
            .last()
            .map(|e| e.position)
            .unwrap_or_default();
        Ok(json!({"epoch": position.incarnation, "rev": position.seq}))
    }

    /// `enter` (and `watch`): subscribe first, then read the catch-up, so that nothing
    /// committed in between is missed; the room's cursor then drops what the reply already
    /// holds (docs/protocol.md, "Ordering and resume").
    async fn enter(&mut self, d: &Fields<'_>) -> Result<Value, ApiError> {
        let room = room_field(d)?;
        let since = since_field(d)?;
        let max_rooms = self.state.realtime.config.max_rooms;
        if !self.rooms.contains_key(&room) && self.rooms.len() >= max_rooms {
            return Err(invalid(format!("at most {max_rooms} rooms per connection")));
        }
        self.state
            .realtime
            .hub
            .join(self.app, &room, self.id, self.mailbox.clone());
        match self.catch_up(&room, since).await {
            Ok(CatchUp { reply, head }) => {
                match head {
                    Some(head) => {
                        self.rooms.insert(room, head);
                    }
                    None => self.leave(&room),
                }
                Ok(reply)
            }
            Err(error) => {
                self.leave(&room);
                Err(error)
            }
        }
    }

    /// Ends the subscription to `room`, if any.
    pub(super) fn leave(&mut self, room: &RoomId) {
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
