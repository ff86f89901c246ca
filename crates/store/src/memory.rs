//! The in-memory backend: one map behind one mutex. Nothing survives the process; tests and
//! the conformance suite use it as the reference for what every backend must do.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use liveroom_domain::{
    Account, AppId, DomainError, FeedEntry, FeedItem, IfExists, ListPosition, MemberChange,
    NewAccounts, Position, Profile, Room, RoomEvent, RoomId, RoomOperation, RoomSlot, RoomState,
    RoomStats,
};
use tokio::sync::broadcast;

use crate::{
    AccountStore, Backlog, Backup, Committed, EventBus, EventLog, Feed, Outbox, Outboxes, Outcome,
    Parked, Pending, Retention, RoomStore, Saved, Since, Store, StoreError, StoreResult,
};

/// Rooms of every app, kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    bus: EventBus,
    retention: Retention,
    outboxes: Outboxes,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    apps: HashMap<AppId, Rooms>,
    /// When destroyed rooms were last swept; like the SQLite writer, at most once a minute.
    last_sweep: Duration,
    accounts: HashMap<AppId, BTreeMap<Account, Profile>>,
    feeds: HashMap<AppId, AppFeed>,
}

/// One app's feed and webhook outbox, as the SQLite tables keep them.
#[derive(Debug, Default)]
struct AppFeed {
    last_seq: u64,
    entries: BTreeMap<u64, Kept>,
    /// Each room with entries waiting: the first of them.
    heads: BTreeMap<RoomId, Head>,
}

#[derive(Debug)]
struct Kept {
    entry: FeedEntry,
    state: EntryState,
    error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    Done,
    Waiting,
    Parked,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    attempts: u32,
    due_ms: u64,
}

impl AppFeed {
    fn append(&mut self, waiting: bool, mut entry: FeedEntry) {
        self.last_seq += 1;
        entry.seq = self.last_seq;
        if waiting {
            self.heads.entry(entry.room.clone()).or_insert(Head {
                seq: entry.seq,
                attempts: 0,
                due_ms: entry.at_ms,
            });
        }
        let state = if waiting {
            EntryState::Waiting
        } else {
            EntryState::Done
        };
        self.entries.insert(
            entry.seq,
            Kept {
                entry,
                state,
                error: String::new(),
            },
        );
    }

    fn settle(&mut self, seq: u64, outcome: Outcome) {
        let Some(kept) = self.entries.get_mut(&seq) else {
            return;
        };
        let room = kept.entry.room.clone();
        let Some(head) = self.heads.get_mut(&room).filter(|h| h.seq == seq) else {
            return;
        };
        let (state, error) = match outcome {
            Outcome::Retry { at_ms, error } => {
                head.attempts += 1;
                head.due_ms = at_ms;
                kept.error = error;
                return;
            }
            Outcome::Delivered => (EntryState::Done, String::new()),
            Outcome::Park { error } => (EntryState::Parked, error),
        };
        kept.state = state;
        kept.error = error;
        let next = self
            .entries
            .range(seq + 1..)
            .find(|(_, k)| k.entry.room == room && k.state == EntryState::Waiting)
            .map(|(&seq, k)| Head {
                seq,
                attempts: 0,
                due_ms: k.entry.at_ms,
            });
        match next {
            Some(next) => {
                self.heads.insert(room, next);
            }
            None => {
                self.heads.remove(&room);
            }
        }
    }

    fn replay(&mut self, seqs: Option<Vec<u64>>) -> u64 {
        let seqs: Vec<u64> = match seqs {
            Some(seqs) => seqs,
            None => self
                .entries
                .iter()
                .filter(|(_, k)| k.state == EntryState::Parked)
                .map(|(&seq, _)| seq)
                .collect(),
        };
        let mut count = 0;
        for seq in seqs {
            let Some(kept) = self
                .entries
                .get_mut(&seq)
                .filter(|k| k.state == EntryState::Parked)
            else {
                continue;
            };
            kept.state = EntryState::Waiting;
            kept.error.clear();
            count += 1;
            let fresh = Head {
                seq,
                attempts: 0,
                due_ms: 0,
            };
            let head = self.heads.entry(kept.entry.room.clone()).or_insert(fresh);
            if seq < head.seq {
                *head = fresh;
            }
        }
        count
    }

    /// Forgets entries past their retention, as the SQLite sweep does.
    fn sweep(&mut self, done_cutoff_ms: u64, parked_cutoff_ms: u64) {
        self.entries.retain(|_, k| match k.state {
            EntryState::Done => k.entry.at_ms >= done_cutoff_ms,
            EntryState::Parked => k.entry.at_ms >= parked_cutoff_ms,
            EntryState::Waiting => true,
        });
    }
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

    /// A store whose feed entries wait for the webhooks `outboxes` names.
    pub fn with_outboxes(outboxes: Outboxes) -> Self {
        Self {
            outboxes,
            ..Self::default()
        }
    }

    fn record_members_now(
        &self,
        app: AppId,
        room: &RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    ) -> StoreResult<()> {
        let mut state = self.open()?;
        let live = state
            .apps
            .get(&app)
            .and_then(|rooms| rooms.get(room))
            .is_some_and(|s| s.slot.live.is_some());
        if !live {
            return Err(DomainError::RoomNotFound.into());
        }
        let entry = FeedEntry {
            seq: 0,
            room: room.clone(),
            at_ms: now.as_millis() as u64,
            by,
            item: FeedItem::Members(change),
        };
        self.append(&mut state, app, entry);
        Ok(())
    }

    fn append(&self, state: &mut State, app: AppId, entry: FeedEntry) {
        let waiting = crate::queued(&self.outboxes, app, &entry.item);
        state.feeds.entry(app).or_default().append(waiting, entry);
    }

    /// Loads rooms exactly as given (times, counters and revision included), for tests and
    /// benchmarks, each at position 0 of a new incarnation and with no events. All or nothing:
    /// an existing RoomId, a repeated one or metadata over the limits rejects the whole call.
    /// Returns how many rooms were loaded.
    pub async fn import_rooms(
        &self,
        app: AppId,
        rooms: impl IntoIterator<Item = impl Into<Saved>>,
    ) -> StoreResult<usize> {
        let mut state = self.open()?;
        let existing = state.apps.entry(app).or_default();
        let mut added = BTreeMap::new();
        for saved in rooms {
            let Saved {
                room,
                metadata,
                people,
                messages,
            } = saved.into();
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
                    people,
                    position,
                }),
                tombstone: None,
            };
            added.insert(
                room.id,
                Stored {
                    slot,
                    messages,
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

    /// What `view` finds in the app's feed; the default when the app has none yet.
    fn read_feed<T: Default>(&self, app: AppId, view: impl FnOnce(&AppFeed) -> T) -> T {
        self.lock().feeds.get(&app).map(view).unwrap_or_default()
    }

    /// Forgets destroyed rooms whose retention has passed, once a minute at most.
    fn sweep(&self, state: &mut State, now: Duration) {
        if now.saturating_sub(state.last_sweep) < Duration::from_secs(60) {
            return;
        }
        state.last_sweep = now;
        let cutoff = |kept: Duration| now.saturating_sub(kept).as_millis() as u64;
        let (done, parked) = (cutoff(self.retention.feed), cutoff(self.retention.parked));
        for feed in state.feeds.values_mut() {
            feed.sweep(done, parked);
        }
        let cutoff = cutoff(self.retention.destroyed_room);
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
        by: Account,
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
        // The slot as it was stays for the feed: a destroy's entry keeps the room it ended.
        let previous = std::mem::replace(&mut stored.slot, slot);
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
        let after = live.as_ref().map(|l| &l.room);
        let before = previous.live.as_ref().map(|l| &l.room);
        for (event, item) in crate::feed_items(&events, before, after) {
            let entry = FeedEntry {
                seq: 0,
                room: id.clone(),
                at_ms: event.at_ms,
                by: by.clone(),
                item,
            };
            self.append(&mut state, app, entry);
        }
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

impl Feed for MemoryStore {
    fn record_members(
        &self,
        app: AppId,
        room: &RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        // Applied now, like the SQLite writer queues it now: in call order.
        std::future::ready(self.record_members_now(app, room, by, change, now))
    }

    async fn feed(
        &self,
        app: AppId,
        room: Option<&RoomId>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<FeedEntry>> {
        Ok(self.read_feed(app, |feed| {
            feed.entries
                .range(after.saturating_add(1)..)
                .map(|(_, k)| &k.entry)
                .filter(|e| room.is_none_or(|r| &e.room == r))
                .take(limit)
                .cloned()
                .collect()
        }))
    }
}

impl Outbox for MemoryStore {
    async fn due(
        &self,
        app: AppId,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<RoomId>,
    ) -> StoreResult<Vec<Pending>> {
        Ok(self.read_feed(app, |feed| {
            let mut due: Vec<&Head> = feed
                .heads
                .iter()
                .filter(|(room, h)| h.due_ms <= now_ms && !busy.contains(*room))
                .map(|(_, h)| h)
                .collect();
            due.sort_by_key(|h| h.due_ms);
            due.into_iter()
                .take(limit)
                .filter_map(|h| {
                    feed.entries.get(&h.seq).map(|k| Pending {
                        entry: k.entry.clone(),
                        attempts: h.attempts,
                    })
                })
                .collect()
        }))
    }

    async fn settle(&self, app: AppId, outcomes: Vec<(u64, Outcome)>) -> StoreResult<()> {
        let mut state = self.open()?;
        let feed = state.feeds.entry(app).or_default();
        for (seq, outcome) in outcomes {
            feed.settle(seq, outcome);
        }
        Ok(())
    }

    async fn parked(&self, app: AppId, after: u64, limit: usize) -> StoreResult<Vec<Parked>> {
        Ok(self.read_feed(app, |feed| {
            feed.entries
                .range(after.saturating_add(1)..)
                .map(|(_, k)| k)
                .filter(|k| k.state == EntryState::Parked)
                .take(limit)
                .map(|k| Parked {
                    entry: k.entry.clone(),
                    error: k.error.clone(),
                })
                .collect()
        }))
    }

    async fn replay(&self, app: AppId, seqs: Option<Vec<u64>>) -> StoreResult<u64> {
        let mut state = self.open()?;
        Ok(state.feeds.entry(app).or_default().replay(seqs))
    }

    async fn backlog(&self, app: AppId) -> StoreResult<Backlog> {
        Ok(self.read_feed(app, |feed| {
            let mut backlog = Backlog::default();
            for kept in feed.entries.values() {
                match kept.state {
                    EntryState::Waiting => {
                        backlog.pending += 1;
                        backlog.oldest_pending_ms.get_or_insert(kept.entry.at_ms);
                    }
                    EntryState::Parked => backlog.parked += 1,
                    EntryState::Done => {}
                }
            }
            backlog
        }))
    }
}

impl Backup for MemoryStore {
    fn restore_rooms(
        &self,
        app: AppId,
        rooms: Vec<Saved>,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.import_rooms(app, rooms)
    }

    async fn apps(&self) -> StoreResult<Vec<AppId>> {
        let state = self.lock();
        let mut apps: Vec<AppId> = state
            .apps
            .iter()
            .filter(|(_, rooms)| rooms.values().any(|s| s.slot.live.is_some()))
            .map(|(app, _)| *app)
            .chain(
                state
                    .accounts
                    .iter()
                    .filter(|(_, a)| !a.is_empty())
                    .map(|(app, _)| *app),
            )
            .collect();
        apps.sort_unstable();
        apps.dedup();
        Ok(apps)
    }

    async fn saved_rooms(
        &self,
        app: AppId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> StoreResult<Vec<Saved>> {
        Ok(self.read(app, |rooms| {
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            rooms
                .into_iter()
                .flat_map(|r| r.range::<RoomId, _>((start, Bound::Unbounded)))
                .filter_map(|(_, stored)| {
                    let live = stored.slot.live.as_ref()?;
                    Some(Saved {
                        room: live.room.clone(),
                        metadata: live.metadata.clone(),
                        people: live.people.clone(),
                        messages: stored.messages,
                    })
                })
                .take(limit)
                .collect()
        }))
    }

    async fn saved_accounts(
        &self,
        app: AppId,
        after: Option<&Account>,
        limit: usize,
    ) -> StoreResult<Vec<(Account, Profile)>> {
        let state = self.lock();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .accounts
            .get(&app)
            .into_iter()
            .flat_map(|a| a.range::<Account, _>((start, Bound::Unbounded)))
            .take(limit)
            .map(|(a, p)| (a.clone(), p.clone()))
            .collect())
    }
}

/// One process: presence and live frames stay in it.
impl crate::Shared for MemoryStore {}

impl Store for MemoryStore {
    async fn close(&self) {
        self.lock().closed = true;
    }

    async fn ready(&self) -> StoreResult<()> {
        self.open().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::conformance_tests!(Box::new(MemoryStore::new()));

    mod feed {
        use super::MemoryStore;

        crate::feed_conformance!(Box::new(MemoryStore::with_outboxes(
            crate::conformance::suite_outboxes()
        )));
    }

    #[tokio::test]
    async fn retention_bounds_the_log() {
        let retention = crate::Retention {
            events_per_room: 50,
            destroyed_room: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let store = MemoryStore::with_retention(retention);
        crate::conformance::retention_bounds_the_log(&store, retention).await;
    }
}
