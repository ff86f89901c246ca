//! liveroom's domain: what a room is, what room metadata may hold, and the rules every
//! backend applies inside its write transaction.
//!
//! This crate knows nothing of Tencent's JSON, HTTP, storage or the wall clock: callers pass
//! validated inputs and the current time in, and get new state or a [`DomainError`] out. The
//! protocol layer maps each error to its wire code; the store layer calls these rules so that
//! limits hold inside the same transaction that writes the data.

pub mod account;
mod clock;
mod error;
pub mod feed;
pub mod limits;
mod listing;
mod log;
mod metadata;
pub mod ops;
pub mod people;
mod room;

pub use account::{IfExists, NewAccounts, Profile, ProfileTag, ProfileValue, accounts_to_create};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::DomainError;
pub use feed::{FeedEntry, FeedItem, Hook, Hooks, MemberCause, MemberChange};
pub use listing::{ListPosition, page_size};
pub use log::{Position, RoomChange, RoomEvent, RoomSlot, RoomState, Tombstone};
pub use metadata::{
    DeleteKeys, Metadata, MetadataEntries, MetadataEntry, check_delete, check_set, delete_metadata,
    select_metadata, set_metadata, total_bytes,
};
pub use ops::RoomOperation;
pub use people::{Ban, ListOp, RoomPeople};
pub use room::{
    Account, NewRoom, Room, RoomChanges, RoomFields, RoomId, RoomStats, TakeSeatMode, ValidChanges,
};

/// An application's `SDKAppID`: every room belongs to exactly one app.
pub type AppId = u32;
