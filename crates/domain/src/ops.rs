//! Room writes as domain operations: each looks at the room as it is now and decides the
//! changes to record, or the rule that refuses it. Backends run any [`RoomOperation`] the
//! same way (load the slot, decide, commit the changes with the events, in one transaction),
//! so a new room-scoped command adds an operation here and nothing in the backends.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::log::{RoomChange, RoomSlot};
use crate::metadata::{DeleteKeys, MetadataEntries, check_delete, check_set};
use crate::people::{ADMINS_MAX, ListOp, MODERATED_MAX, ROBOTS_MAX};
use crate::{Account, DomainError, NewRoom, RoomId, ValidChanges};

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
/// App administrator: allowed only to the room's owner and its administrators
/// (docs/behaviour.md §7, 100006). Who they are is read from the slot the operation runs on,
/// so the check holds inside the write's own transaction.
#[derive(Debug)]
pub struct AsManager<O> {
    pub caller: String,
    pub operation: O,
}

impl<O: RoomOperation> RoomOperation for AsManager<O> {
    fn room(&self) -> &RoomId {
        self.operation.room()
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let live = live(slot)?;
        if live.room.owner.as_str() != self.caller && !live.people.is_admin(&self.caller) {
            return Err(DomainError::NoPermission);
        }
        self.operation.decide(slot, now)
    }
}

/// Compare-and-set: with an `expected` revision, `operation` runs only while the room's
/// metadata is at it (docs/behaviour.md §7, "Compare-and-set"); otherwise nothing changes.
/// Without one, `operation` runs as it is.
#[derive(Debug)]
pub struct IfRevision<O> {
    pub expected: Option<u64>,
    pub operation: O,
}

impl<O: RoomOperation> RoomOperation for IfRevision<O> {
    fn room(&self) -> &RoomId {
        self.operation.room()
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        if let Some(expected) = self.expected {
            let current = live(slot)?.room.revision;
            if current != expected {
                return Err(DomainError::RevisionMismatch { current });
            }
        }
        self.operation.decide(slot, now)
    }
}

/// Accounts of `asked` for which `keep` holds, as a list for an event.
fn those(asked: &BTreeSet<Account>, keep: impl Fn(&Account) -> bool) -> Vec<Account> {
    asked.iter().filter(|a| keep(a)).cloned().collect()
}

/// That a room would hold at most `max` of something.
fn at_most(field: &'static str, count: usize, max: usize, what: &str) -> Result<(), DomainError> {
    if count > max {
        return Err(DomainError::invalid(
            field,
            format!("a room holds at most {max} {what}"),
        ));
    }
    Ok(())
}

/// `mute_member`: mutes `accounts` for `secs` seconds from now, or unmutes them when 0.
#[derive(Debug)]
pub struct MuteMembers {
    pub room: RoomId,
    pub accounts: BTreeSet<Account>,
    pub secs: u64,
}

impl RoomOperation for MuteMembers {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let people = &live(slot)?.people;
        let now = now.as_secs();
        if self.secs == 0 {
            let accounts = those(&self.accounts, |a| {
                people.muted_until(a.as_str(), now).is_some()
            });
            return Ok(if accounts.is_empty() {
                Vec::new()
            } else {
                vec![RoomChange::Muted { accounts, until: 0 }]
            });
        }
        let added = those(&self.accounts, |a| {
            people.muted_until(a.as_str(), now).is_none()
        });
        let muted = people.muted_at(now).count() + added.len();
        at_most("MemberList_Account", muted, MODERATED_MAX, "muted members")?;
        Ok(vec![RoomChange::Muted {
            accounts: self.accounts.iter().cloned().collect(),
            until: now + self.secs,
        }])
    }
}

/// `ban_member`: removes `accounts` from the room and bars them for `secs` seconds.
#[derive(Debug)]
pub struct BanMembers {
    pub room: RoomId,
    pub accounts: BTreeSet<Account>,
    pub secs: u64,
    pub reason: String,
}

impl RoomOperation for BanMembers {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let people = &live(slot)?.people;
        let now = now.as_secs();
        let added = those(&self.accounts, |a| people.ban(a.as_str(), now).is_none());
        let banned = people.banned_at(now).count() + added.len();
        at_most(
            "MemberList_Account",
            banned,
            MODERATED_MAX,
            "banned members",
        )?;
        Ok(vec![RoomChange::Banned {
            accounts: self.accounts.iter().cloned().collect(),
            until: now + self.secs,
            reason: self.reason.clone(),
        }])
    }
}

/// `unban_member`: lifts the bans of those of `accounts` that are banned.
#[derive(Debug)]
pub struct UnbanMembers {
    pub room: RoomId,
    pub accounts: BTreeSet<Account>,
}

impl RoomOperation for UnbanMembers {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, now: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let people = &live(slot)?.people;
        let accounts = those(&self.accounts, |a| {
            people.ban(a.as_str(), now.as_secs()).is_some()
        });
        Ok(if accounts.is_empty() {
            Vec::new()
        } else {
            vec![RoomChange::Unbanned(accounts)]
        })
    }
}

/// Which list of a room's people a [`ModifyList`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeopleList {
    /// `modify_admin`: at most [`ADMINS_MAX`].
    Admins,
    /// `add_robot` / `del_robot`: at most [`ROBOTS_MAX`].
    Robots,
}

/// Adds accounts to, or removes them from, a room's administrators or robots. Accounts
/// already there (or already absent) are left as they are; nothing to change writes nothing.
#[derive(Debug)]
pub struct ModifyList {
    pub room: RoomId,
    pub list: PeopleList,
    pub op: ListOp,
    pub accounts: BTreeSet<Account>,
}

impl RoomOperation for ModifyList {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        let people = &live(slot)?.people;
        let (held, field, max, what) = match self.list {
            PeopleList::Admins => (
                &people.admins,
                "Admin_Account",
                ADMINS_MAX,
                "administrators",
            ),
            PeopleList::Robots => (&people.robots, "RobotList_Account", ROBOTS_MAX, "robots"),
        };
        let accounts = those(&self.accounts, |a| match self.op {
            ListOp::Add => !held.contains(a),
            ListOp::Delete => held.contains(a),
        });
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        if self.op == ListOp::Add {
            at_most(field, held.len() + accounts.len(), max, what)?;
        }
        let (op, accounts) = (self.op, accounts);
        Ok(vec![match self.list {
            PeopleList::Admins => RoomChange::Admins { op, accounts },
            PeopleList::Robots => RoomChange::Robots { op, accounts },
        }])
    }
}

/// `change_room_owner`. Whether the new owner is in the room is presence, which the caller
/// checks before (docs/behaviour.md §14).
#[derive(Debug)]
pub struct ChangeOwner {
    pub room: RoomId,
    pub owner: Account,
}

impl RoomOperation for ChangeOwner {
    fn room(&self) -> &RoomId {
        &self.room
    }

    fn decide(&self, slot: &RoomSlot, _: Duration) -> Result<Vec<RoomChange>, DomainError> {
        if live(slot)?.room.owner == self.owner {
            return Ok(Vec::new());
        }
        Ok(vec![RoomChange::OwnerChanged(self.owner.clone())])
    }
}

/// Whether `sender` may send a message into the room now: not muted, and, when the room's
/// messages are disabled, its owner or one of its administrators (docs/behaviour.md §14).
pub fn check_sender(
    state: &crate::RoomState,
    sender: &str,
    now: Duration,
) -> Result<(), DomainError> {
    if let Some(until) = state.people.muted_until(sender, now.as_secs()) {
        return Err(DomainError::Muted { until });
    }
    let manager = state.room.owner.as_str() == sender || state.people.is_admin(sender);
    if state.room.fields.is_message_disabled && !manager {
        return Err(DomainError::MessagesDisabled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomChanges;

    fn id() -> RoomId {
        RoomId::parse("r".into()).unwrap()
    }

    fn accounts(names: &[&str]) -> BTreeSet<Account> {
        names
            .iter()
            .map(|n| Account::parse("a", (*n).into()).unwrap())
            .collect()
    }

    /// A live room owned by "owner", at `secs`.
    fn room_at(secs: u64) -> RoomSlot {
        let new =
            NewRoom::validate("r".into(), None, None, "owner", RoomChanges::default()).unwrap();
        let mut slot = RoomSlot::default();
        let changes = CreateRoom(new)
            .decide(&slot, Duration::from_secs(secs))
            .unwrap();
        slot.commit(1, &id(), changes, Duration::from_secs(secs))
            .unwrap();
        slot
    }

    fn run(slot: &mut RoomSlot, op: &dyn RoomOperation, secs: u64) -> Result<usize, DomainError> {
        let now = Duration::from_secs(secs);
        let changes = op.decide(slot, now)?;
        Ok(slot.commit(1, &id(), changes, now)?.len())
    }

    #[test]
    fn mutes_unmute_and_expire() {
        let mut slot = room_at(10);
        let mute = MuteMembers {
            room: id(),
            accounts: accounts(&["a", "b"]),
            secs: 60,
        };
        assert_eq!(run(&mut slot, &mute, 10), Ok(1));
        let state = slot.live.as_ref().unwrap();
        assert_eq!(
            check_sender(state, "a", Duration::from_secs(69)),
            Err(DomainError::Muted { until: 70 })
        );
        assert_eq!(check_sender(state, "a", Duration::from_secs(70)), Ok(()));
        let unmute = MuteMembers {
            room: id(),
            accounts: accounts(&["a", "c"]),
            secs: 0,
        };
        assert_eq!(run(&mut slot, &unmute, 20), Ok(1));
        // Nobody of these is muted any more: nothing to write.
        assert_eq!(run(&mut slot, &unmute, 20), Ok(0));
        let people = &slot.live.as_ref().unwrap().people;
        assert_eq!(
            people
                .muted_at(20)
                .map(|(a, _)| a.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn bans_and_unbans() {
        let mut slot = room_at(10);
        let ban = BanMembers {
            room: id(),
            accounts: accounts(&["x"]),
            secs: 100,
            reason: "spam".into(),
        };
        assert_eq!(run(&mut slot, &ban, 10), Ok(1));
        assert_eq!(
            slot.live
                .as_ref()
                .unwrap()
                .people
                .ban("x", 50)
                .map(|b| b.until),
            Some(110)
        );
        let unban = UnbanMembers {
            room: id(),
            accounts: accounts(&["x", "y"]),
        };
        assert_eq!(run(&mut slot, &unban, 20), Ok(1));
        assert_eq!(run(&mut slot, &unban, 20), Ok(0));
    }

    #[test]
    fn admins_and_robots_are_bounded_sets() {
        let mut slot = room_at(10);
        let add = |list, names: &[&str]| ModifyList {
            room: id(),
            list,
            op: ListOp::Add,
            accounts: accounts(names),
        };
        assert_eq!(
            run(&mut slot, &add(PeopleList::Robots, &["r1", "r2", "r3"]), 10),
            Ok(1)
        );
        assert!(matches!(
            run(&mut slot, &add(PeopleList::Robots, &["r4"]), 10),
            Err(DomainError::InvalidField { .. })
        ));
        // Already there: nothing to write, and no limit to break.
        assert_eq!(run(&mut slot, &add(PeopleList::Robots, &["r1"]), 10), Ok(0));
        assert_eq!(
            run(
                &mut slot,
                &add(PeopleList::Admins, &["a1", "a2", "a3", "a4", "a5"]),
                10
            ),
            Ok(1)
        );
        assert!(run(&mut slot, &add(PeopleList::Admins, &["a6"]), 10).is_err());
        let delete = ModifyList {
            room: id(),
            list: PeopleList::Admins,
            op: ListOp::Delete,
            accounts: accounts(&["a1", "zz"]),
        };
        assert_eq!(run(&mut slot, &delete, 10), Ok(1));
        assert_eq!(slot.live.as_ref().unwrap().people.admins.len(), 4);
    }

    #[test]
    fn managers_may_write_and_others_may_not() {
        let mut slot = room_at(10);
        let set = |caller: &str| AsManager {
            caller: caller.into(),
            operation: DeleteMetadata {
                room: id(),
                keys: DeleteKeys::new(vec!["k".into()]).unwrap(),
            },
        };
        assert_eq!(
            run(&mut slot, &set("alice"), 10),
            Err(DomainError::NoPermission)
        );
        let add = ModifyList {
            room: id(),
            list: PeopleList::Admins,
            op: ListOp::Add,
            accounts: accounts(&["alice"]),
        };
        run(&mut slot, &add, 10).unwrap();
        // Allowed now: the delete itself then finds no key.
        assert_eq!(
            run(&mut slot, &set("alice"), 10),
            Err(DomainError::NoSuchKeys)
        );
        assert_eq!(
            run(&mut slot, &set("owner"), 10),
            Err(DomainError::NoSuchKeys)
        );
        let owner = ChangeOwner {
            room: id(),
            owner: Account::parse("o", "bob".into()).unwrap(),
        };
        assert_eq!(run(&mut slot, &owner, 10), Ok(1));
        assert_eq!(run(&mut slot, &owner, 10), Ok(0));
        assert_eq!(
            run(&mut slot, &set("owner"), 10),
            Err(DomainError::NoPermission)
        );
    }

    #[test]
    fn a_stale_revision_changes_nothing() {
        let mut slot = room_at(10);
        let set = |expected| IfRevision {
            expected: Some(expected),
            operation: SetMetadata {
                room: id(),
                entries: MetadataEntries::new(vec![
                    crate::MetadataEntry::new("k".into(), "v".into()).unwrap(),
                ])
                .unwrap(),
            },
        };
        assert_eq!(
            run(&mut slot, &set(1), 10),
            Err(DomainError::RevisionMismatch { current: 0 })
        );
        assert_eq!(run(&mut slot, &set(0), 10), Ok(1));
        assert_eq!(
            run(&mut slot, &set(0), 10),
            Err(DomainError::RevisionMismatch { current: 1 })
        );
        assert_eq!(run(&mut slot, &set(1), 10), Ok(1));
    }

    #[test]
    fn disabled_messages_leave_managers_their_voice() {
        let mut slot = room_at(10);
        let changes = RoomChanges {
            is_message_disabled: Some(true),
            ..RoomChanges::default()
        };
        let update = UpdateRoom {
            room: id(),
            changes: changes.validate().unwrap(),
        };
        run(&mut slot, &update, 10).unwrap();
        let state = slot.live.as_ref().unwrap();
        let now = Duration::from_secs(11);
        assert_eq!(
            check_sender(state, "viewer", now),
            Err(DomainError::MessagesDisabled)
        );
        assert_eq!(check_sender(state, "owner", now), Ok(()));
    }
}
