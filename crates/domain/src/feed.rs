//! An app's change feed (docs/webhooks.md): every committed change of its rooms, and every
//! member who came or went, numbered per app in commit order. It is what webhooks deliver and
//! what a polling backend reads; each entry says who caused it and carries what a receiver
//! needs without reading the room again.

use crate::{Account, Position, Room, RoomChange, RoomId};

/// Why a member came or went, in Tencent's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberCause {
    Enter,
    Leave,
    /// The connection died (no `pong`, lost, too slow) without exiting.
    HeartbeatInterrupt,
    /// Back within the grace period after an interrupt.
    HeartbeatRecover,
    /// Removed by a ban.
    Kicked,
}

impl MemberCause {
    pub const ALL: [MemberCause; 5] = [
        MemberCause::Enter,
        MemberCause::Leave,
        MemberCause::HeartbeatInterrupt,
        MemberCause::HeartbeatRecover,
        MemberCause::Kicked,
    ];

    /// Tencent's `EventCause` name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberCause::Enter => "Enter",
            MemberCause::Leave => "Leave",
            MemberCause::HeartbeatInterrupt => "HeartbeatInterrupt",
            MemberCause::HeartbeatRecover => "HeartbeatRecover",
            MemberCause::Kicked => "Kicked",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the members are in the room afterwards.
    pub fn online(self) -> bool {
        matches!(self, MemberCause::Enter | MemberCause::HeartbeatRecover)
    }
}

/// Members who came or went for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub cause: MemberCause,
    pub accounts: Vec<Account>,
}

/// What one feed entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// A change from the room's event log, at its position there. `room` is the room as the
    /// change left it (as it was just before, for a destroy), for the changes whose webhook
    /// describes the whole room.
    Room {
        position: Position,
        change: RoomChange,
        room: Option<Box<Room>>,
    },
    /// Presence: never in the room's log, but recorded here like a change.
    Members(MemberChange),
}

/// One entry of an app's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// From 1 per app, in commit order, without gaps.
    pub seq: u64,
    pub room: RoomId,
    /// Unix milliseconds of the commit.
    pub at_ms: u64,
    /// Who caused it: the REST caller, or the member whose connection did.
    pub by: Account,
    pub item: FeedItem,
}

/// The kinds of feed entries a webhook can be asked for: Tencent's seven callbacks, then
/// liveroom's own for the changes Tencent has none for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    CreateRoom,
    DestroyRoom,
    UpdateRoomInfo,
    MemberStateChanged,
    SetMetadata,
    DelMetadata,
    ModifyAdmin,
    MuteMember,
    BanMember,
    UnbanMember,
    ModifyRobot,
    ChangeRoomOwner,
}

impl Hook {
    pub const ALL: [Hook; 12] = [
        Hook::CreateRoom,
        Hook::DestroyRoom,
        Hook::UpdateRoomInfo,
        Hook::MemberStateChanged,
        Hook::SetMetadata,
        Hook::DelMetadata,
        Hook::ModifyAdmin,
        Hook::MuteMember,
        Hook::BanMember,
        Hook::UnbanMember,
        Hook::ModifyRobot,
        Hook::ChangeRoomOwner,
    ];

    /// Whether Tencent defines this callback (the others are liveroom's extensions).
    pub fn is_tencent(self) -> bool {
        (self as u8) <= Hook::ModifyAdmin as u8
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of [`Hook`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks(u16);

impl Hooks {
    /// Tencent's seven: what a webhook sends unless told otherwise.
    pub fn tencent() -> Self {
        Hook::ALL.into_iter().filter(|h| h.is_tencent()).collect()
    }

    pub fn contains(self, hook: Hook) -> bool {
        self.0 & hook.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Hook> for Hooks {
    fn from_iter<I: IntoIterator<Item = Hook>>(hooks: I) -> Self {
        Self(hooks.into_iter().fold(0, |bits, h| bits | h.bit()))
    }
}

impl FeedItem {
    /// The callback this entry is delivered as.
    pub fn hook(&self) -> Hook {
        match self {
            FeedItem::Members(_) => Hook::MemberStateChanged,
            FeedItem::Room { change, .. } => match change {
                RoomChange::Created(_) => Hook::CreateRoom,
                RoomChange::Destroyed => Hook::DestroyRoom,
                RoomChange::InfoUpdated(_) => Hook::UpdateRoomInfo,
                RoomChange::MetadataSet(_) => Hook::SetMetadata,
                RoomChange::MetadataDeleted(_) => Hook::DelMetadata,
                RoomChange::Admins { .. } => Hook::ModifyAdmin,
                RoomChange::Muted { .. } => Hook::MuteMember,
                RoomChange::Banned { .. } => Hook::BanMember,
                RoomChange::Unbanned(_) => Hook::UnbanMember,
                RoomChange::Robots { .. } => Hook::ModifyRobot,
                RoomChange::OwnerChanged(_) => Hook::ChangeRoomOwner,
            },
        }
    }

    /// Whether a feed entry keeps a copy of the room beside this change.
    pub fn keeps_room(change: &RoomChange) -> bool {
        matches!(change, RoomChange::InfoUpdated(_) | RoomChange::Destroyed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tencent_hooks_are_the_first_seven() {
        let tencent = Hooks::tencent();
        assert_eq!(
            Hook::ALL.iter().filter(|h| tencent.contains(**h)).count(),
            7
        );
        assert!(!tencent.contains(Hook::MuteMember));
        assert!(tencent.contains(Hook::ModifyAdmin));
    }

    #[test]
    fn causes_round_trip_and_say_whether_online() {
        for cause in MemberCause::ALL {
            assert_eq!(MemberCause::parse(cause.as_str()), Some(cause));
        }
        assert!(MemberCause::HeartbeatRecover.online());
        assert!(!MemberCause::Kicked.online());
    }
}
