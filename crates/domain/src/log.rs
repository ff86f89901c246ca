//! A room's history as an event log (docs/behaviour.md §11).
//!
//! Every successful write to a room is a list of [`RoomChange`]s; committing them numbers each
//! one with the room's next [`Position`] and applies it to the room's [`RoomSlot`]. The same
//! [`RoomSlot::apply`] serves the writer deciding a new state and any reader (a cache, a
//! subscriber) that follows the log, so a state rebuilt from events equals the stored one.

use std::time::Duration;

use crate::people::{Ban, ListOp, RoomPeople};
use crate::{Account, AppId, DomainError, Metadata, Room, RoomId, ValidChanges};

/// Where a room stands in its log. `incarnation` changes whenever a RoomId is created again
/// after a destroy; `seq` counts the incarnation's events from 1, without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub incarnation: u64,
    pub seq: u64,
}

/// A live room: its fields, its metadata, its people, and the position of its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    pub room: Room,
    pub metadata: Metadata,
    pub people: RoomPeople,
    pub position: Position,
}

/// What remains of a destroyed room: enough to number the next incarnation and to refuse a
/// create within the same second (100012).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub incarnation: u64,
    /// Unix milliseconds.
    pub destroyed_at_ms: u64,
}

/// Everything the store knows of one RoomId.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSlot {
    pub live: Option<RoomState>,
    /// The last destroyed incarnation, if any.
    pub tombstone: Option<Tombstone>,
}

/// One change to a room, as the log records it. Each carries what a follower needs to apply
/// it without reading the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// A new incarnation, as created.
    Created(Box<Room>),
    /// The fields a request set (the others are as they were).
    InfoUpdated(Box<ValidChanges>),
    /// Keys set to values, in key order.
    MetadataSet(Metadata),
    /// Keys that existed and were removed, in key order.
    MetadataDeleted(Vec<String>),
    /// The room and everything it owned are gone.
    Destroyed,
    /// Accounts muted until `until` (Unix seconds), or unmuted when it is 0.
    Muted { accounts: Vec<Account>, until: u64 },
    /// Accounts removed from the room and barred from it until `until` (Unix seconds).
    Banned {
        accounts: Vec<Account>,
        until: u64,
        reason: String,
    },
    /// Accounts whose ban was lifted.
    Unbanned(Vec<Account>),
    /// Room administrators added or removed.
    Admins { op: ListOp, accounts: Vec<Account> },
    /// Robots added or removed.
    Robots { op: ListOp, accounts: Vec<Account> },
    /// The room has a new owner.
    OwnerChanged(Account),
}

/// One committed change of one room of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub app: AppId,
    pub room: RoomId,
    pub position: Position,
    /// Unix milliseconds of the commit's decision.
    pub at_ms: u64,
    pub change: RoomChange,
}

impl RoomEvent {
    pub fn kind(&self) -> &'static str {
        match self.change {
            RoomChange::Created(_) => "room.created",
            RoomChange::InfoUpdated(_) => "room.info",
            RoomChange::MetadataSet(_) => "room.metadata.set",
            RoomChange::MetadataDeleted(_) => "room.metadata.deleted",
            RoomChange::Destroyed => "room.destroyed",
            RoomChange::Muted { .. } => "member.muted",
            RoomChange::Banned { .. } => "member.banned",
            RoomChange::Unbanned(_) => "member.unbanned",
            RoomChange::Admins { .. } => "room.admins",
            RoomChange::Robots { .. } => "room.robots",
            RoomChange::OwnerChanged(_) => "room.owner",
        }
    }
}

/// The event log does not continue where the state stands: a bug in an operation, or (for a
/// follower) an event it missed.
fn out_of_order() -> DomainError {
    DomainError::OutOfOrder
}

impl RoomSlot {
    /// The position the next event gets. A new incarnation is numbered after the last one, and
    /// at least with the creation's Unix milliseconds, so numbers stay unique even after old
    /// tombstones are swept away.
    fn next_position(&self, change: &RoomChange, at_ms: u64) -> Result<Position, DomainError> {
        match (change, &self.live) {
            (RoomChange::Created(_), None) => {
                let last = self.tombstone.map_or(0, |t| t.incarnation);
                Ok(Position {
                    incarnation: (last + 1).max(at_ms),
                    seq: 1,
                })
            }
            (RoomChange::Created(_), Some(_)) | (_, None) => Err(out_of_order()),
            (_, Some(live)) => Ok(Position {
                incarnation: live.position.incarnation,
                seq: live.position.seq + 1,
            }),
        }
    }

    /// Numbers `changes` and applies them in place; returns the events to append to the log.
    /// An error means the changes do not follow the slot (an operation's bug): the slot is then
    /// half changed and must be discarded, as a failed transaction discards its writes.
    pub fn commit(
        &mut self,
        app: AppId,
        room: &RoomId,
        changes: Vec<RoomChange>,
        now: Duration,
    ) -> Result<Vec<RoomEvent>, DomainError> {
        let at_ms = now.as_millis() as u64;
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let event = RoomEvent {
                app,
                room: room.clone(),
                position: self.next_position(&change, at_ms)?,
                at_ms,
                change,
            };
            self.apply(&event)?;
            events.push(event);
        }
        Ok(events)
    }

    /// Applies one event that must directly follow the slot's last one.
    pub fn apply(&mut self, event: &RoomEvent) -> Result<(), DomainError> {
        if self.next_position(&event.change, event.at_ms)? != event.position
            && !matches!(event.change, RoomChange::Created(_))
        {
            return Err(out_of_order());
        }
        match &event.change {
            RoomChange::Created(room) => {
                self.live = Some(RoomState {
                    room: (**room).clone(),
                    metadata: Metadata::new(),
                    people: RoomPeople::default(),
                    position: event.position,
                });
                return Ok(());
            }
            RoomChange::Destroyed => {
                self.live = None;
                self.tombstone = Some(Tombstone {
                    incarnation: event.position.incarnation,
                    destroyed_at_ms: event.at_ms,
                });
                return Ok(());
            }
            _ => {}
        }
        let live = self.live.as_mut().ok_or_else(out_of_order)?;
        match &event.change {
            RoomChange::InfoUpdated(changes) => changes.apply_to(&mut live.room.fields),
            RoomChange::MetadataSet(pairs) => {
                live.metadata
                    .extend(pairs.iter().map(|(k, v)| (k.clone(), v.clone())));
                live.room.revision += 1;
            }
            RoomChange::MetadataDeleted(keys) => {
                for key in keys {
                    live.metadata.remove(key);
                }
                live.room.revision += 1;
            }
            RoomChange::Muted { accounts, until } => {
                live.people.prune(event.at_ms / 1000);
                for account in accounts {
                    match until {
                        0 => live.people.muted.remove(account),
                        until => live.people.muted.insert(account.clone(), *until),
                    };
                }
            }
            RoomChange::Banned {
                accounts,
                until,
                reason,
            } => {
                live.people.prune(event.at_ms / 1000);
                for account in accounts {
                    let ban = Ban {
                        until: *until,
                        reason: reason.clone(),
                    };
                    live.people.banned.insert(account.clone(), ban);
                }
            }
            RoomChange::Unbanned(accounts) => {
                for account in accounts {
                    live.people.banned.remove(account);
                }
            }
            RoomChange::Admins { op, accounts } => {
                change_set(&mut live.people.admins, *op, accounts)
            }
            RoomChange::Robots { op, accounts } => {
                change_set(&mut live.people.robots, *op, accounts)
            }
            RoomChange::OwnerChanged(owner) => live.room.owner = owner.clone(),
            RoomChange::Created(_) | RoomChange::Destroyed => {}
        }
        live.position = event.position;
        Ok(())
    }
}

fn change_set(set: &mut std::collections::BTreeSet<Account>, op: ListOp, accounts: &[Account]) {
    for account in accounts {
        match op {
            ListOp::Add => set.insert(account.clone()),
            ListOp::Delete => set.remove(account),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewRoom, RoomChanges};

    fn id() -> RoomId {
        RoomId::parse("r".into()).unwrap()
    }

    fn created(now_secs: u64) -> RoomChange {
        let room = NewRoom::validate("r".into(), None, None, "admin", RoomChanges::default())
            .unwrap()
            .into_room(now_secs);
        RoomChange::Created(Box::new(room))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn sequence_is_gap_free_and_incarnations_change() {
        let mut slot = RoomSlot::default();
        let first = slot.commit(1, &id(), vec![created(10)], secs(10)).unwrap();
        assert_eq!(
            first[0].position,
            Position {
                incarnation: 10_000,
                seq: 1
            }
        );
        let set = RoomChange::MetadataSet(Metadata::from([("k".into(), "v".into())]));
        let more = slot
            .commit(1, &id(), vec![set.clone(), RoomChange::Destroyed], secs(10))
            .unwrap();
        let seqs: Vec<_> = more.iter().map(|e| e.position.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert!(slot.live.is_none());
        // Created again within the same millisecond: still a new incarnation.
        let again = slot.commit(1, &id(), vec![created(10)], secs(10)).unwrap();
        assert_eq!(
            again[0].position,
            Position {
                incarnation: 10_001,
                seq: 1
            }
        );
    }

    #[test]
    fn a_follower_rebuilds_the_same_state_and_refuses_gaps() {
        let mut writer = RoomSlot::default();
        let mut events = writer.commit(1, &id(), vec![created(5)], secs(5)).unwrap();
        for i in 0..3 {
            let set = RoomChange::MetadataSet(Metadata::from([(format!("k{i}"), "v".into())]));
            events.extend(writer.commit(1, &id(), vec![set], secs(6)).unwrap());
        }
        events.extend(
            writer
                .commit(
                    1,
                    &id(),
                    vec![RoomChange::MetadataDeleted(vec!["k0".into()])],
                    secs(7),
                )
                .unwrap(),
        );
        let mut follower = RoomSlot::default();
        for event in &events {
            follower.apply(event).unwrap();
        }
        assert_eq!(follower.live, writer.live);

        let mut behind = RoomSlot::default();
        behind.apply(&events[0]).unwrap();
        assert_eq!(behind.apply(&events[2]), Err(DomainError::OutOfOrder));
    }

    #[test]
    fn changes_that_do_not_follow_the_slot_are_refused() {
        let mut slot = RoomSlot::default();
        slot.commit(1, &id(), vec![created(5)], secs(5)).unwrap();
        assert!(
            slot.commit(
                1,
                &id(),
                vec![RoomChange::Destroyed, RoomChange::Destroyed],
                secs(6)
            )
            .is_err()
        );
        let mut empty = RoomSlot::default();
        let update = RoomChange::MetadataDeleted(vec!["k".into()]);
        assert_eq!(
            empty.commit(1, &id(), vec![update], secs(6)),
            Err(DomainError::OutOfOrder)
        );
    }
}
