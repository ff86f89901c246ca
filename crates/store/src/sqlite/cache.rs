//! Rooms' metadata in memory, so that `get_room_metadata` usually skips SQLite: a read there
//! costs a read transaction, a WAL lock round trip and a B-tree search, and every commit drops
//! the readers' page caches. Bounded by bytes; least recently used rooms go first.
//!
//! Never ahead of disk, never stale: only the writer thread stores what it changed, after the
//! COMMIT that made it durable and before it answers. A reader that missed may store what it
//! read from SQLite, but only if nothing was published for its shard since it looked: the
//! `generation` it took before its read transaction began proves its snapshot is not older
//! than the cache. Evictions need no such care: they only make later reads go to SQLite.

use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

use liveroom_domain::{AppId, Metadata};

/// Independently locked parts; a request locks one, briefly.
const SHARDS: usize = 64;

/// Memory per cached room beyond its strings: key and value headers, the cache's own slot and
/// index, and the allocator's rounding. Measured with the scale benchmark.
const ENTRY_OVERHEAD: u64 = 96;

pub(super) struct MetadataCache {
    shards: Box<[Mutex<Shard>]>,
    /// The cache's own fast hasher, also choosing the shard.
    hasher: quick_cache::DefaultHashBuilder,
}

struct Shard {
    rooms: quick_cache::unsync::Cache<(AppId, Box<str>), Packed, PackedBytes>,
    /// Bumped by every publication to this shard.
    generation: u64,
}

/// A reader's proof of when it looked, for [`MetadataCache::fill`].
pub(super) struct Ticket {
    shard: usize,
    generation: u64,
}

/// A room's keys and values in one string, `key value key value …`, with the end of each in
/// `ends`: two allocations per room however many keys it has.
#[derive(Clone)]
struct Packed {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Packed {
    fn new(metadata: &Metadata) -> Self {
        let mut text = String::with_capacity(metadata.iter().map(|(k, v)| k.len() + v.len()).sum());
        let mut ends = Vec::with_capacity(metadata.len() * 2);
        for (key, value) in metadata {
            for part in [key, value] {
                text.push_str(part);
                // Metadata is at most 16 KiB of values plus ten 50-byte keys.
                ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            }
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn unpack(&self) -> Metadata {
        let mut start = 0;
        let mut parts = self.ends.iter().map(|&end| {
            let part = self.text.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            part.to_owned()
        });
        let mut metadata = Metadata::new();
        while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
            metadata.insert(key, value);
        }
        metadata
    }
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
struct PackedBytes;

impl quick_cache::Weighter<(AppId, Box<str>), Packed> for PackedBytes {
    fn weight(&self, key: &(AppId, Box<str>), packed: &Packed) -> u64 {
        (key.1.len() + packed.text.len() + 4 * packed.ends.len()) as u64 + ENTRY_OVERHEAD
    }
}

impl MetadataCache {
    pub(super) fn new(max_bytes: u64) -> Self {
        let per_shard = max_bytes / SHARDS as u64;
        // A typical room (three 100-byte values) weighs about 450 bytes.
        let estimated_rooms = (per_shard / 450).max(1) as usize;
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    rooms: quick_cache::unsync::Cache::with_weighter(
                        estimated_rooms,
                        per_shard,
                        PackedBytes,
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

    /// The room's metadata if cached; otherwise the ticket to [`fill`](Self::fill) it with, to
    /// be taken before reading SQLite.
    pub(super) fn get(&self, app: AppId, room: &str) -> Result<Metadata, Ticket> {
        let shard = self.shard_of(app, room);
        let guard = self.lock(shard);
        match guard.rooms.get(&RoomRef(app, room)) {
            Some(packed) => Ok(packed.unpack()),
            None => Err(Ticket {
                shard,
                generation: guard.generation,
            }),
        }
    }

    /// Stores what a reader read from SQLite after taking `ticket`, unless something was
    /// published to the shard since: then the read may predate that publication.
    pub(super) fn fill(&self, ticket: Ticket, app: AppId, room: &str, metadata: &Metadata) {
        let packed = Packed::new(metadata);
        let mut shard = self.lock(ticket.shard);
        if shard.generation == ticket.generation {
            shard.rooms.insert((app, room.into()), packed);
        }
    }

    /// The writer, after COMMIT: the room's metadata is now `metadata`, or unknown (`None`:
    /// created, destroyed, or a batch whose outcome is in doubt).
    pub(super) fn publish(&self, app: AppId, room: &str, metadata: Option<&Metadata>) {
        let packed = metadata.map(Packed::new);
        let shard = self.shard_of(app, room);
        let mut shard = self.lock(shard);
        shard.generation += 1;
        match packed {
            Some(packed) => shard.rooms.insert((app, room.into()), packed),
            None => drop(shard.rooms.remove(&RoomRef(app, room))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn packing_round_trips() {
        for m in [
            metadata(&[]),
            metadata(&[("k", "")]),
            metadata(&[("a", "1"), ("b", "two"), ("é", "ü".repeat(1000).as_str())]),
        ] {
            assert_eq!(Packed::new(&m).unpack(), m);
        }
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
    fn a_read_that_missed_fills_only_if_nothing_was_published_since() {
        let cache = MetadataCache::new(1 << 20);
        let old = metadata(&[("k", "old")]);
        let new = metadata(&[("k", "new")]);

        let ticket = cache.get(1, "r").unwrap_err();
        cache.publish(1, "r", Some(&new));
        cache.fill(ticket, 1, "r", &old);
        assert_eq!(cache.get(1, "r").ok(), Some(new.clone()));

        // A removal counts as a publication too.
        cache.publish(1, "r", None);
        let ticket = cache.get(1, "r").unwrap_err();
        cache.publish(1, "r", None);
        cache.fill(ticket, 1, "r", &old);
        assert!(cache.get(1, "r").is_err());

        let ticket = cache.get(1, "r").unwrap_err();
        cache.fill(ticket, 1, "r", &new);
        assert_eq!(cache.get(1, "r").ok(), Some(new));
    }

    #[test]
    fn rooms_of_different_apps_are_apart() {
        let cache = MetadataCache::new(1 << 20);
        cache.publish(1, "r", Some(&metadata(&[("k", "v")])));
        assert!(cache.get(2, "r").is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let max = 64 * 1024;
        let cache = MetadataCache::new(max);
        let value = metadata(&[("k", &"v".repeat(100))]);
        for i in 0..10_000 {
            cache.publish(1, &i.to_string(), Some(&value));
        }
        let (rooms, weight) = cache.shards.iter().fold((0, 0), |(n, w), shard| {
            let shard = shard.lock().unwrap();
            (n + shard.rooms.len(), w + shard.rooms.weight())
        });
        assert!(weight <= max, "{weight} > {max}");
        assert!(rooms > 0 && rooms < 10_000, "{rooms}");
    }
}
