//! Room writes as domain operations: each looks at the room as it is now and decides the
//! changes to record, or the rule that refuses it. Backends run any [`RoomOperation`] the
//! same way (load the slot, decide, commit the changes with the events, in one transaction),
//! so a new room-scoped command adds an operation here and nothing in the backends.

use std::time::Duration;

use crate::log::{RoomChange, RoomSlot};
use crate::metadata::{DeleteKeys, MetadataEntries, check_delete, check_set};
use crate::{DomainError, NewRoom, RoomId, ValidChanges};

/// One write to one room.
pub trait RoomOperation: Send + Sync + std::fmt::Debug + 'static {
    /// The room it writes.
    fn room(&self) -> &RoomId;

    /// The changes to record, given the room's slot at `now`; none means nothing to write.
    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError>;
}

fn live(slot: &RoomSlot) -> Result<&crate::RoomState, DomainError> {
    slot.live.as_ref().ok_or(DomainError::RoomNotFound)
}

/// `create_room`.
#[derive(Debug)]
pub struct CreateRoom(pub NewRoom);

impl RoomOperation for CreateRoom {
    fn room(&self) -> &RoomId {
        &self.0.id
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        if let Some(existing) = &slot.live {
            return Err(self.0.conflict_with(&existing.room));
        }
        // Once per second per RoomId, counted from its destruction (docs/behaviour.md §5). A
        // clock that went back since the destroy does not hold the RoomId hostage.
        let now_ms = now.as_millis() as u64;
        if slot.tombstone.is_some_and(|t| {
            now_ms
                .checked_sub(t.destroyed_at_ms)
                .is_some_and(|since| since < 1000)
        }) {
            return Err(DomainError::CreatedTooSoon);
        }
        let room = self.0.clone().into_room(now.as_secs());
        Ok(vec![RoomChange::Created(Box::new(room))])
    }
}

/// `destroy_room`.
#[derive(Debug)]
pub struct DestroyRoom(pub RoomId);

impl RoomOperation for DestroyRoom {
    fn room(&self) -> &RoomId {
        &self.0
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        live(slot)?;
        Ok(vec![RoomChange::Destroyed])
    }
}

/// `update_room_info`.
#[derive(Debug)]
pub struct UpdateRoom {
    pub room: RoomId,
    pub changes: ValidChanges,
}

impl RoomOperation for UpdateRoom {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        live(slot)?;
        Ok(vec![RoomChange::InfoUpdated(Box::new(
            self.changes.clone(),
        ))])
    }
}

/// `set_room_metadata`.
#[derive(Debug)]
pub struct SetMetadata {
    pub room: RoomId,
    pub entries: MetadataEntries,
}

impl RoomOperation for SetMetadata {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        check_set(&live(slot)?.metadata, &self.entries)?;
        Ok(vec![RoomChange::MetadataSet(self.entries.pairs().clone())])
    }
}

/// `del_room_metadata`.
#[derive(Debug)]
pub struct DeleteMetadata {
    pub room: RoomId,
    pub keys: DeleteKeys,
}

impl RoomOperation for DeleteMetadata {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let deleted = check_delete(&live(slot)?.metadata, &self.keys)?;
        Ok(vec![RoomChange::MetadataDeleted(deleted)])
    }
}

/// An operation asked for by a room member through a client connection rather than by an
/// App administrator: allowed only to the room's owner (docs/behaviour.md §7, 100006). The
/// owner is read from the slot the operation runs on, so the check holds inside the write's
/// own transaction.
#[derive(Debug)]
pub struct AsOwner<O> {
    pub caller: String,
    pub operation: O,
}

impl<O: RoomOperation> RoomOperation for AsOwner<O> {
    fn room(&self) -> &RoomId {
        self.operation.room()
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        if live(slot)?.room.owner.as_str() != self.caller {
            return Err(DomainError::NoPermission);
        }
        self.operation.decide(slot, now)
    }
}
