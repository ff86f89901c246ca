//! Rooms in memory, so that `get_room_info` and `get_room_metadata` usually skip SQLite: a
//! read there costs a read transaction, a WAL lock round trip and a B-tree search, and every
//! commit drops the readers' page caches. Bounded by bytes; least recently used rooms go
//! first.
//!
//! Fed from committed events: after the COMMIT that made a batch durable, and before it
//! answers, the writer hands the cache each event, which it applies to the room it holds (or
//! drops the room when the event does not follow it). So the cache is never ahead of disk and
//! never stale, and the same rule lets a cache follow a log written by other processes. A
//! reader that missed may store what it read from SQLite, but only if nothing was published
//! for its shard since it looked: the `generation` it took before its read transaction began
//! proves its snapshot is not older than the cache. Evictions need no such care: they only
//! make later reads go to SQLite.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use liveroom_domain::{AppId, RoomChange, RoomEvent, RoomId, RoomState};

/// Independently locked parts; a request locks one, briefly.
const SHARDS: usize = 64;

/// Memory per cached room beyond its strings and its `RoomState`: the `Arc`'s counts, the
/// cache's own slot and index, and the allocator's rounding of each string.
const ENTRY_OVERHEAD: u64 = 128;

/// A `BTreeMap` of up to 11 entries is one leaf node of this many bytes (keys and values are
/// `String` headers), allocated whole as soon as it holds one entry.
const METADATA_NODE_BYTES: usize = 11 * 2 * std::mem::size_of::<String>() + 16;

pub(super) struct RoomCache {
    shards: Box<[Mutex<Shard>]>,
    /// The cache's own fast hasher, also choosing the shard.
    hasher: quick_cache::DefaultHashBuilder,
}

struct Shard {
    rooms: quick_cache::unsync::Cache<(AppId, Box<str>), Arc<RoomState>, StateBytes>,
    /// Bumped by every publication to this shard.
    generation: u64,
}

/// A reader's proof of when it looked, for [`RoomCache::fill`].
pub(super) struct Ticket {
    shard: usize,
    generation: u64,
}

/// A lookup key borrowing the RoomId; hashes exactly like the owned `(AppId, Box<str>)`.
#[derive(Hash)]
struct RoomRef<'a>(AppId, &'a str);

impl quick_cache::Equivalent<(AppId, Box<str>)> for RoomRef<'_> {
    fn equivalent(&self, key: &(AppId, Box<str>)) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

#[derive(Clone)]
struct StateBytes;

impl quick_cache::Weighter<(AppId, Box<str>), Arc<RoomState>> for StateBytes {
    fn weight(&self, key: &(AppId, Box<str>), state: &Arc<RoomState>) -> u64 {
        let f = &state.room.fields;
        let strings = state.room.owner.as_str().len()
            + f.name.len()
            + f.cover_url.len()
            + f.notice.len()
            + 8 * f.category.len()
            + f.seat_template.as_ref().map_or(0, String::len);
        let nodes = state.metadata.len().div_ceil(11) * METADATA_NODE_BYTES;
        let metadata: usize = nodes
            + state
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let fixed = std::mem::size_of::<RoomState>() + state.room.id.as_str().len();
        let people = state.people.approximate_bytes();
        (2 * key.1.len() + fixed + strings + metadata + people) as u64 + ENTRY_OVERHEAD
    }
}

impl RoomCache {
    pub(super) fn new(max_bytes: u64) -> Self {
        let per_shard = max_bytes / SHARDS as u64;
        // A typical room (three 100-byte values) weighs about 1,400 bytes.
        let estimated_rooms = (per_shard / 1400).max(1) as usize;
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    rooms: quick_cache::unsync::Cache::with_weighter(
                        estimated_rooms,
                        per_shard,
                        StateBytes,
                    ),
                    generation: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: quick_cache::DefaultHashBuilder::default(),
        }
    }

    fn shard_of(&self, app: AppId, room: &str) -> usize {
        self.hasher.hash_one(RoomRef(app, room)) as usize % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Every change to a shard is a single call into the cache, complete or not begun.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The room if cached; otherwise the ticket to [`fill`](Self::fill) it with, to be taken
    /// before reading SQLite.
    pub(super) fn get(&self, app: AppId, room: &str) -> Result<Arc<RoomState>, Ticket> {
        let shard = self.shard_of(app, room);
        let guard = self.lock(shard);
        match guard.rooms.get(&RoomRef(app, room)) {
            Some(state) => Ok(Arc::clone(state)),
            None => Err(Ticket {
                shard,
                generation: guard.generation,
            }),
        }
    }

    /// Stores what a reader read from SQLite after taking `ticket`, unless something was
    /// published to the shard since: then the read may predate that publication.
    pub(super) fn fill(&self, ticket: Ticket, app: AppId, room: &str, state: Arc<RoomState>) {
        let mut shard = self.lock(ticket.shard);
        if shard.generation == ticket.generation {
            shard.rooms.insert((app, room.into()), state);
        }
    }

    /// One write's committed events, and the room they lead to (`None`: destroyed). The room
    /// is stored when the events follow what the cache holds (or start a new incarnation);
    /// otherwise the cache forgets it, so it never holds a state the log has moved past.
    pub(super) fn follow(&self, events: &[RoomEvent], after: Option<&Arc<RoomState>>) {
        let Some(first) = events.first() else {
            return;
        };
        let shard = self.shard_of(first.app, first.room.as_str());
        let mut shard = self.lock(shard);
        shard.generation += 1;
        let key = RoomRef(first.app, first.room.as_str());
        let follows = match &first.change {
            RoomChange::Created(_) => true,
            _ => shard.rooms.get(&key).is_some_and(|held| {
                held.position.incarnation == first.position.incarnation
                    && held.position.seq + 1 == first.position.seq
            }),
        };
        match after {
            Some(state) if follows => {
                shard
                    .rooms
                    .insert((first.app, first.room.as_str().into()), Arc::clone(state));
            }
            _ => drop(shard.rooms.remove(&key)),
        }
    }

    /// `viewers` more entries into the room were committed: its `view_count` moved without
    /// an event.
    pub(super) fn add_views(&self, app: AppId, room: &RoomId, viewers: u64) {
        if viewers == 0 {
            return;
        }
        let shard = self.shard_of(app, room.as_str());
        let mut shard = self.lock(shard);
        shard.generation += 1;
        let key = RoomRef(app, room.as_str());
        if let Some(held) = shard.rooms.get(&key) {
            let mut state = RoomState::clone(held);
            state.room.view_count += viewers;
            shard
                .rooms
                .insert((app, room.as_str().into()), Arc::new(state));
        }
    }

    /// The cache must not answer for this room any more.
    pub(super) fn forget(&self, app: AppId, room: &RoomId) {
        let shard = self.shard_of(app, room.as_str());
        let mut shard = self.lock(shard);
        shard.generation += 1;
        shard.rooms.remove(&RoomRef(app, room.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use liveroom_domain::{Metadata, NewRoom, RoomChanges, RoomSlot};

    use super::*;

    fn id(raw: &str) -> RoomId {
        RoomId::parse(raw.into()).unwrap()
    }

    /// One committed write: its event and the room after it.
    type Write = (RoomEvent, Option<Arc<RoomState>>);

    /// A room's writes from its creation: created, then one set per value.
    fn history(app: AppId, room: &str, values: &[&str]) -> Vec<Write> {
        let new = NewRoom::validate(room.into(), None, None, "a", RoomChanges::default()).unwrap();
        let mut slot = RoomSlot::default();
        let now = Duration::from_secs(1_700_000_000);
        let created = RoomChange::Created(Box::new(new.into_room(1)));
        let sets = values
            .iter()
            .map(|v| RoomChange::MetadataSet(Metadata::from([("k".into(), (*v).into())])));
        std::iter::once(created)
            .chain(sets)
            .map(|change| {
                let event = slot
                    .commit(app, &id(room), vec![change], now)
                    .unwrap()
                    .remove(0);
                (event, slot.live.clone().map(Arc::new))
            })
            .collect()
    }

    fn follow(cache: &RoomCache, (event, after): &Write) {
        cache.follow(std::slice::from_ref(event), after.as_ref());
    }

    fn cached_value(cache: &RoomCache, app: AppId, room: &str) -> Option<String> {
        cache.get(app, room).ok().map(|s| s.metadata["k"].clone())
    }

    #[test]
    fn borrowed_and_owned_keys_hash_alike() {
        let hasher = quick_cache::DefaultHashBuilder::default();
        let owned: (AppId, Box<str>) = (7, "room".into());
        assert_eq!(hasher.hash_one(&owned), hasher.hash_one(RoomRef(7, "room")));
        assert!(quick_cache::Equivalent::equivalent(
            &RoomRef(7, "room"),
            &owned
        ));
        assert!(!quick_cache::Equivalent::equivalent(
            &RoomRef(8, "room"),
            &owned
        ));
    }

    #[test]
    fn events_keep_the_cached_room_current_and_a_gap_drops_it() {
        let cache = RoomCache::new(1 << 20);
        let writes = history(1, "r", &["a", "b", "c"]);
        writes.iter().for_each(|w| follow(&cache, w));
        assert_eq!(cached_value(&cache, 1, "r").as_deref(), Some("c"));

        let cache = RoomCache::new(1 << 20);
        follow(&cache, &writes[0]);
        follow(&cache, &writes[2]);
        assert!(cache.get(1, "r").is_err(), "a write that skips one");
        follow(&cache, &writes[3]);
        assert!(cache.get(1, "r").is_err(), "not held: not guessed either");
    }

    #[test]
    fn a_read_that_missed_fills_only_if_nothing_was_published_since() {
        let cache = RoomCache::new(1 << 20);
        let writes = history(1, "r", &["old"]);
        let old = writes[1].1.clone().unwrap();

        let ticket = cache.get(1, "r").unwrap_err();
        writes.iter().for_each(|w| follow(&cache, w));
        let older = RoomState {
            metadata: Metadata::from([("k".into(), "older".into())]),
            ..(*old).clone()
        };
        cache.fill(ticket, 1, "r", Arc::new(older));
        assert_eq!(cached_value(&cache, 1, "r").as_deref(), Some("old"));

        // Forgetting counts as a publication too.
        let ticket = cache.get(1, "gone").unwrap_err();
        cache.forget(1, &id("gone"));
        cache.fill(ticket, 1, "gone", Arc::clone(&old));
        assert!(cache.get(1, "gone").is_err());

        let ticket = cache.get(1, "x").unwrap_err();
        cache.fill(ticket, 1, "x", old);
        assert!(cache.get(1, "x").is_ok());
    }

    #[test]
    fn rooms_of_different_apps_are_apart() {
        let cache = RoomCache::new(1 << 20);
        history(1, "r", &["v"])
            .iter()
            .for_each(|w| follow(&cache, w));
        assert!(cache.get(2, "r").is_err());
    }

    #[test]
    fn memory_is_bounded() {
        // Four KiB a shard: a few rooms each.
        let max = 256 * 1024;
        let cache = RoomCache::new(max);
        let value = "v".repeat(100);
        for i in 0..2_000 {
            history(1, &i.to_string(), &[&value])
                .iter()
                .for_each(|w| follow(&cache, w));
        }
        let (rooms, weight) = cache.shards.iter().fold((0, 0), |(n, w), shard| {
            let shard = shard.lock().unwrap();
            (n + shard.rooms.len(), w + shard.rooms.weight())
        });
        assert!(weight <= max, "{weight} > {max}");
        assert!(rooms > 0 && rooms < 2_000, "{rooms}");
    }
}
