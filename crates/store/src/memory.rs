//! The in-memory backend: one map behind one mutex. Nothing survives the process; tests and
//! the conformance suite use it as the reference for what every backend must do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use liveroom_domain::{
    AppId, DomainError, ListPosition, Metadata, MetadataEntry, NewRoom, Room, RoomId, ValidChanges,
};

use crate::{Store, StoreError, StoreResult};

/// Rooms of every app, kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    apps: HashMap<AppId, BTreeMap<RoomId, Stored>>,
}

#[derive(Debug)]
struct Stored {
    room: Room,
    metadata: Metadata,
}

type Rooms = BTreeMap<RoomId, Stored>;

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads rooms exactly as given (times, counters and revision included), for tests and
    /// benchmarks. All or nothing: an existing RoomId, a repeated one or metadata over the
    /// limits rejects the whole call. Returns how many rooms were loaded.
    pub async fn import_rooms(
        &self,
        app: AppId,
        rooms: impl IntoIterator<Item = (Room, Metadata)>,
    ) -> StoreResult<usize> {
        let rooms: Vec<_> = rooms.into_iter().collect();
        self.write(app, |existing| {
            let mut added = BTreeMap::new();
            for (room, metadata) in rooms {
                crate::check_imported_metadata(&metadata)?;
                if let Some(taken) = existing.get(&room.id).or_else(|| added.get(&room.id)) {
                    return Err(DomainError::RoomExists {
                        same_owner: taken.room.owner == room.owner,
                    });
                }
                added.insert(room.id.clone(), Stored { room, metadata });
            }
            let count = added.len();
            existing.extend(added);
            Ok(count)
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write replaces state only after its rules passed, so a panic elsewhere cannot
        // leave half a change behind: the data stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<T>(
        &self,
        app: AppId,
        change: impl FnOnce(&mut Rooms) -> Result<T, DomainError>,
    ) -> StoreResult<T> {
        let mut state = self.lock();
        if state.closed {
            return Err(StoreError::Unavailable("store is closed".into()));
        }
        Ok(change(state.apps.entry(app).or_default())?)
    }

    fn read<T>(&self, app: AppId, view: impl FnOnce(Option<&Rooms>) -> T) -> T {
        view(self.lock().apps.get(&app))
    }
}

fn existing<'r>(rooms: &'r mut Rooms, id: &RoomId) -> Result<&'r mut Stored, DomainError> {
    rooms.get_mut(id).ok_or(DomainError::RoomNotFound)
}

impl Store for MemoryStore {
    async fn create_room(&self, app: AppId, room: NewRoom, now: u64) -> StoreResult<()> {
        self.write(app, |rooms| {
            if let Some(taken) = rooms.get(&room.id) {
                return Err(room.conflict_with(&taken.room));
            }
            let room = room.into_room(now);
            rooms.insert(
                room.id.clone(),
                Stored {
                    room,
                    metadata: Metadata::new(),
                },
            );
            Ok(())
        })
    }

    async fn destroy_room(&self, app: AppId, room: RoomId) -> StoreResult<()> {
        self.write(app, |rooms| {
            rooms
                .remove(&room)
                .map(drop)
                .ok_or(DomainError::RoomNotFound)
        })
    }

    async fn update_room(
        &self,
        app: AppId,
        room: RoomId,
        changes: ValidChanges,
    ) -> StoreResult<()> {
        self.write(app, |rooms| {
            changes.apply_to(&mut existing(rooms, &room)?.room.fields);
            Ok(())
        })
    }

    async fn room(&self, app: AppId, room: RoomId) -> StoreResult<Option<Room>> {
        Ok(self.read(app, |rooms| {
            rooms.and_then(|r| r.get(&room)).map(|s| s.room.clone())
        }))
    }

    async fn list_rooms(
        &self,
        app: AppId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> StoreResult<Vec<Room>> {
        Ok(self.read(app, |rooms| {
            let mut page: Vec<Room> = rooms
                .into_iter()
                .flat_map(|r| r.values())
                .map(|s| &s.room)
                .filter(|r| r.fields.is_public_visible)
                .filter(|r| after.as_ref().is_none_or(|p| p.precedes(r)))
                .cloned()
                .collect();
            page.sort_by(|a, b| {
                ListPosition::of(a)
                    .sort_key()
                    .cmp(&ListPosition::of(b).sort_key())
            });
            page.truncate(limit);
            page
        }))
    }

    async fn metadata(&self, app: AppId, room: RoomId) -> StoreResult<Metadata> {
        self.read(app, |rooms| {
            rooms
                .and_then(|r| r.get(&room))
                .map(|s| s.metadata.clone())
                .ok_or(DomainError::RoomNotFound.into())
        })
    }

    async fn set_metadata(
        &self,
        app: AppId,
        room: RoomId,
        entries: Vec<MetadataEntry>,
    ) -> StoreResult<()> {
        self.write(app, |rooms| {
            let stored = existing(rooms, &room)?;
            stored.metadata = liveroom_domain::set_metadata(&stored.metadata, &entries)?;
            stored.room.revision += 1;
            Ok(())
        })
    }

    async fn delete_metadata(
        &self,
        app: AppId,
        room: RoomId,
        keys: Vec<String>,
    ) -> StoreResult<()> {
        self.write(app, |rooms| {
            let stored = existing(rooms, &room)?;
            stored.metadata = liveroom_domain::delete_metadata(&stored.metadata, &keys)?;
            stored.room.revision += 1;
            Ok(())
        })
    }

    async fn close(&self) {
        self.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::conformance_tests!(Box::new(MemoryStore::new()));
}
