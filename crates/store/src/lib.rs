//! Where rooms and their metadata live.
//!
//! [`Store`] is the narrow interface the server uses. Every write applies liveroom's rules
//! (from `liveroom-domain`) inside the backend's own transaction, so limits hold whatever the
//! interleaving of requests, and a write's future resolves only once the change is durable.
//!
//! Backends: [`SqliteStore`] (the default: WAL, `synchronous=FULL`, one writer thread doing
//! group commit) and [`MemoryStore`] (for tests). `conformance` holds the one suite every
//! backend must pass.

use std::future::Future;

use liveroom_domain::{
    AppId, DomainError, ListPosition, Metadata, MetadataEntry, NewRoom, Room, RoomId, ValidChanges,
};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};

/// Why a store call failed. Nothing was applied in either case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The request breaks a rule (room missing, limits, …).
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// The storage itself failed (I/O, disk full, corruption, shutting down).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Rooms and room metadata of every app. Writes resolve only after their change is durable;
/// reads never wait for writes.
pub trait Store: Send + Sync + 'static {
    /// Creates `room` at `now` (Unix seconds). An existing RoomId answers
    /// [`DomainError::RoomExists`].
    fn create_room(
        &self,
        app: AppId,
        room: NewRoom,
        now: u64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes a room and everything it owns, metadata included, in one step.
    fn destroy_room(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn update_room(
        &self,
        app: AppId,
        room: RoomId,
        changes: ValidChanges,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn room(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<Option<Room>>> + Send;

    /// Up to `limit` publicly visible rooms of `app` in list order, starting strictly after
    /// `after` (or at the start).
    fn list_rooms(
        &self,
        app: AppId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Room>>> + Send;

    /// All metadata of a room; [`DomainError::RoomNotFound`] if there is no such room.
    fn metadata(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<Metadata>> + Send;

    /// Upserts entries under [`liveroom_domain::set_metadata`]'s rules; bumps the revision.
    fn set_metadata(
        &self,
        app: AppId,
        room: RoomId,
        entries: Vec<MetadataEntry>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes keys under [`liveroom_domain::delete_metadata`]'s rules; bumps the revision.
    fn delete_metadata(
        &self,
        app: AppId,
        room: RoomId,
        keys: Vec<String>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Finishes every write already accepted, then refuses new ones. Idempotent.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Imported metadata must be something [`liveroom_domain::set_metadata`] could have produced.
fn check_imported_metadata(metadata: &Metadata) -> Result<(), DomainError> {
    if metadata.is_empty() {
        return Ok(());
    }
    let entries = metadata
        .iter()
        .map(|(k, v)| MetadataEntry::new(k.clone(), v.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    liveroom_domain::set_metadata(&Metadata::new(), &entries).map(drop)
}
