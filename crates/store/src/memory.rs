//! The in-memory backend: one map behind one mutex. Nothing survives the process; tests and
//! the conformance suite use it as the reference for what every backend must do.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use liveroom_domain::{
    Account, AppId, DomainError, IfExists, ListPosition, Metadata, NewAccounts, Position, Profile,
    Room, RoomEvent, RoomId, RoomOperation, RoomPeople, RoomSlot, RoomState, RoomStats,
};
use tokio::sync::broadcast;

use crate::{
    AccountStore, Committed, EventBus, EventLog, Retention, RoomStore, Since, Store, StoreError,
    StoreResult,
};

/// Rooms of every app, kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    bus: EventBus,
    retention: Retention,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    apps: HashMap<AppId, Rooms>,
    /// When destroyed rooms were last swept; like the SQLite writer, at most once a minute.
    last_sweep: Duration,
    accounts: HashMap<AppId, BTreeMap<Account, Profile>>,
}

/// One app's RoomIds, live or destroyed, each with what its log still holds.
type Rooms = BTreeMap<RoomId, Stored>;

#[derive(Debug, Default)]
struct Stored {
    slot: RoomSlot,
    /// The newest events of the current (or last) incarnation, oldest first.
    log: VecDeque<RoomEvent>,
    /// The live incarnation's messages.
    messages: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_retention(retention: Retention) -> Self {
        Self {
            retention,
            ..Self::default()
        }
    }

    /// Loads rooms exactly as given (times, counters and revision included), for tests and
    /// benchmarks, each at position 0 of a new incarnation and with no events. All or nothing:
    /// an existing RoomId, a repeated one or metadata over the limits rejects the whole call.
    /// Returns how many rooms were loaded.
    pub async fn import_rooms(
        &self,
        app: AppId,
        rooms: impl IntoIterator<Item = (Room, Metadata)>,
    ) -> StoreResult<usize> {
        let mut state = self.open()?;
        let existing = state.apps.entry(app).or_default();
        let mut added = BTreeMap::new();
        for (room, metadata) in rooms {
            crate::check_imported_metadata(&metadata)?;
            let taken = existing
                .get(&room.id)
                .and_then(|s| s.slot.live.as_ref())
                .or_else(|| {
                    added
                        .get(&room.id)
                        .and_then(|s: &Stored| s.slot.live.as_ref())
                });
            if let Some(taken) = taken {
                return Err(DomainError::RoomExists {
                    same_owner: taken.room.owner == room.owner,
                }
                .into());
            }
            let position = crate::imported_position(&room);
            let slot = RoomSlot {
                live: Some(RoomState {
                    room: room.clone(),
                    metadata,
                    people: RoomPeople::default(),
                    position,
                }),
                tombstone: None,
            };
            added.insert(
                room.id,
                Stored {
                    slot,
                    ..Stored::default()
                },
            );
        }
        let count = added.len();
        existing.extend(added);
        Ok(count)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write replaces state only after its rules passed, so a panic elsewhere cannot
        // leave half a change behind: the data stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) -> StoreResult<MutexGuard<'_, State>> {
        let state = self.lock();
        if state.closed {
            return Err(StoreError::Unavailable("store is closed".into()));
        }
        Ok(state)
    }

    fn read<T>(&self, app: AppId, view: impl FnOnce(Option<&Rooms>) -> T) -> T {
        view(self.lock().apps.get(&app))
    }

    /// Forgets destroyed rooms whose retention has passed, once a minute at most.
    fn sweep(&self, state: &mut State, now: Duration) {
        if now.saturating_sub(state.last_sweep) < Duration::from_secs(60) {
            return;
        }
        state.last_sweep = now;
        let cutoff = now
            .saturating_sub(self.retention.destroyed_room)
            .as_millis() as u64;
        for rooms in state.apps.values_mut() {
            rooms.retain(|_, stored| {
                stored.slot.live.is_some()
                    || stored
                        .slot
                        .tombstone
                        .is_some_and(|t| t.destroyed_at_ms >= cutoff)
            });
        }
    }
}

impl RoomStore for MemoryStore {
    async fn write(
        &self,
        app: AppId,
        operation: Box<dyn RoomOperation>,
        now: Duration,
    ) -> StoreResult<Committed> {
        let mut state = self.open()?;
        let rooms = state.apps.entry(app).or_default();
        let id = operation.room().clone();
        let stored = rooms.entry(id.clone()).or_default();
        // Committed on a copy: a refused write leaves the slot as it was.
        let mut slot = stored.slot.clone();
        let decided = operation
            .decide(&slot, now)
            .and_then(|changes| slot.commit(app, &id, changes, now));
        let events = match decided {
            Ok(events) => events,
            Err(error) => {
                if stored.slot == RoomSlot::default() {
                    rooms.remove(&id);
                }
                return Err(error.into());
            }
        };
        stored.slot = slot;
        if let Some(first) = events.first()
            && stored
                .log
                .front()
                .is_some_and(|e| e.position.incarnation != first.position.incarnation)
        {
            stored.log.clear();
        }
        if stored.slot.live.is_none() {
            stored.messages = 0;
        }
        stored.log.extend(events.iter().cloned());
        let keep = self.retention.events_per_room as usize;
        while stored.log.len() > keep {
            stored.log.pop_front();
        }
        let live = stored.slot.live.clone().map(Arc::new);
        self.sweep(&mut state, now);
        // Published under the lock: the next write of the room cannot publish before this one
        // (docs/events.md, subscribers get batches in commit order).
        self.bus.publish(events.clone());
        drop(state);
        Ok(Committed {
            events,
            state: live,
        })
    }

    async fn room(&self, app: AppId, room: &RoomId) -> StoreResult<Option<Arc<RoomState>>> {
        Ok(self.read(app, |rooms| {
            rooms
                .and_then(|r| r.get(room))
                .and_then(|s| s.slot.live.clone())
                .map(Arc::new)
        }))
    }

    async fn count(&self, app: AppId, room: &RoomId, counted: RoomStats) -> StoreResult<()> {
        let mut state = self.open()?;
        let stored = state
            .apps
            .get_mut(&app)
            .and_then(|rooms| rooms.get_mut(room))
            .ok_or(DomainError::RoomNotFound)?;
        let live = stored.slot.live.as_mut().ok_or(DomainError::RoomNotFound)?;
        live.room.view_count += counted.viewers;
        stored.messages += counted.messages;
        Ok(())
    }

    async fn stats(&self, app: AppId, room: &RoomId) -> StoreResult<Option<RoomStats>> {
        Ok(self.read(app, |rooms| {
            let stored = rooms.and_then(|r| r.get(room))?;
            let live = stored.slot.live.as_ref()?;
            Some(RoomStats {
                viewers: live.room.view_count,
                messages: stored.messages,
            })
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
                .filter_map(|s| s.slot.live.as_ref().map(|live| &live.room))
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
}

impl EventLog for MemoryStore {
    async fn events_after(
        &self,
        app: AppId,
        room: &RoomId,
        after: Position,
        limit: usize,
    ) -> StoreResult<Since> {
        Ok(self.read(app, |rooms| {
            let Some(stored) = rooms.and_then(|r| r.get(room)) else {
                return Since::Expired;
            };
            let held = stored
                .log
                .iter()
                .filter(|e| {
                    e.position.incarnation == after.incarnation && e.position.seq > after.seq
                })
                .take(limit)
                .cloned()
                .collect();
            let head = stored.slot.live.as_ref().map(|live| live.position);
            crate::since(after, held, head)
        }))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<[RoomEvent]>> {
        self.bus.subscribe()
    }
}

impl AccountStore for MemoryStore {
    async fn import_accounts(
        &self,
        app: AppId,
        accounts: NewAccounts,
        if_exists: IfExists,
    ) -> StoreResult<()> {
        let mut state = self.open()?;
        let known = state.accounts.entry(app).or_default();
        let create =
            liveroom_domain::accounts_to_create(&accounts, if_exists, |a| known.contains_key(a))?;
        known.extend(create.into_iter().cloned());
        Ok(())
    }

    async fn profiles(
        &self,
        app: AppId,
        accounts: Vec<Account>,
    ) -> StoreResult<Vec<Option<Profile>>> {
        let state = self.lock();
        let known = state.accounts.get(&app);
        Ok(accounts
            .iter()
            .map(|a| known.and_then(|k| k.get(a)).cloned())
            .collect())
    }

    async fn set_profile(&self, app: AppId, account: Account, changes: Profile) -> StoreResult<()> {
        let mut state = self.open()?;
        let profile = state
            .accounts
            .get_mut(&app)
            .and_then(|k| k.get_mut(&account))
            .ok_or(DomainError::AccountNotFound)?;
        profile.merge(&changes);
        Ok(())
    }
}

impl Store for MemoryStore {
    async fn close(&self) {
        self.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::conformance_tests!(Box::new(MemoryStore::new()));

    #[tokio::test]
    async fn retention_bounds_the_log() {
        let retention = crate::Retention {
            events_per_room: 50,
            destroyed_room: std::time::Duration::from_secs(30),
        };
        let store = MemoryStore::with_retention(retention);
        crate::conformance::retention_bounds_the_log(&store, retention).await;
    }
}
