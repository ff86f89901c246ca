//! Where rooms, their metadata and their event logs live.
//!
//! The server sees storage through narrow traits split by concern: [`RoomStore`] (rooms and
//! their metadata, written only through domain operations) and [`EventLog`] (what changed,
//! in order). Every write runs a [`RoomOperation`] inside the backend's own transaction,
//! persists the new state *and* the events it produced together, and resolves only once that
//! is durable; subscribers then receive the events in commit order (docs/events.md).
//!
//! Backends: [`SqliteStore`] (the default: WAL, `synchronous=FULL`, one writer thread doing
//! group commit), [`PostgresStore`] (several nodes on one PostgreSQL database,
//! docs/cluster.md) and [`MemoryStore`] (for tests). `conformance` holds the suites every
//! backend must pass, one per trait.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeSet, HashMap, HashSet};

use liveroom_domain::{
    Account, AppId, DomainError, FeedEntry, FeedItem, Hooks, IfExists, ListPosition, MemberChange,
    Metadata, MetadataEntries, MetadataEntry, NewAccounts, Position, Profile, Room, RoomChange,
    RoomEvent, RoomId, RoomOperation, RoomPeople, RoomState, RoomStats,
};
use tokio::sync::broadcast;

pub mod backup;
mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
mod postgres;
mod sqlite;

pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresStore, PostgresTls};
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

/// What a write committed: its events (empty when it changed nothing) and the room as it
/// is after them (`None` once destroyed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub events: Vec<RoomEvent>,
    pub state: Option<Arc<RoomState>>,
}

/// Rooms and their metadata, of every app. Writes resolve only after their change is
/// durable; reads never wait for writes.
pub trait RoomStore: Send + Sync + 'static {
    /// Runs `operation` on its room at `now` (since the Unix epoch) on behalf of `by`:
    /// decides, applies, and appends the events to the room's log and to the app's feed
    /// (queued for its webhook when the app has one) in one transaction. A refused operation
    /// changes nothing.
    fn write(
        &self,
        app: AppId,
        by: Account,
        operation: Box<dyn RoomOperation>,
        now: Duration,
    ) -> impl Future<Output = StoreResult<Committed>> + Send;

    /// The room as of its last committed event, or `None` if it does not exist.
    fn room(
        &self,
        app: AppId,
        room: &RoomId,
    ) -> impl Future<Output = StoreResult<Option<Arc<RoomState>>>> + Send;

    /// Adds `counted` to the room's statistics, durably, without an event (counts are not
    /// changes a member follows); fails with [`DomainError::RoomNotFound`] when the room does
    /// not exist. Viewers are the room's `view_count`; messages start at zero with each
    /// incarnation.
    fn count(
        &self,
        app: AppId,
        room: &RoomId,
        counted: RoomStats,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The room's statistics, or `None` if it does not exist.
    fn stats(
        &self,
        app: AppId,
        room: &RoomId,
    ) -> impl Future<Output = StoreResult<Option<RoomStats>>> + Send;

    /// Up to `limit` publicly visible rooms of `app` in list order, starting strictly after
    /// `after` (or at the start).
    fn list_rooms(
        &self,
        app: AppId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Room>>> + Send;
}

/// What the log holds after a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Every event after the position, in order (possibly none), up to the limit asked for.
    Events(Vec<RoomEvent>),
    /// The log no longer holds what followed that position (retention), or never knew the
    /// position (another incarnation): the reader must start again from the room's state.
    Expired,
}

/// The rooms' event logs: read from a position, or follow as events commit.
pub trait EventLog: Send + Sync + 'static {
    /// Events of the room after `after` (same incarnation), at most `limit`.
    fn events_after(
        &self,
        app: AppId,
        room: &RoomId,
        after: Position,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Since>> + Send;

    /// Every event committed from now on, once durable, in commit order, batch by batch. A
    /// receiver that falls more than the bus's capacity behind gets `Lagged` and catches up
    /// with [`EventLog::events_after`].
    fn subscribe(&self) -> broadcast::Receiver<Arc<[RoomEvent]>>;
}

/// Imported accounts and their profiles, of every app (docs/behaviour.md §13). Writes
/// resolve only after they are durable.
pub trait AccountStore: Send + Sync + 'static {
    /// Creates every account of `accounts` that does not exist, with its profile, all in one
    /// transaction. An existing account is left as it is, or with [`IfExists::Refuse`] fails
    /// the whole call with [`DomainError::AccountExists`].
    fn import_accounts(
        &self,
        app: AppId,
        accounts: NewAccounts,
        if_exists: IfExists,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The profile of each of `accounts`, in order; `None` for one never imported.
    fn profiles(
        &self,
        app: AppId,
        accounts: Vec<Account>,
    ) -> impl Future<Output = StoreResult<Vec<Option<Profile>>>> + Send;

    /// Merges `changes` into the account's profile, or fails with
    /// [`DomainError::AccountNotFound`].
    fn set_profile(
        &self,
        app: AppId,
        account: Account,
        changes: Profile,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// An app's change feed (docs/webhooks.md): the entries that [`RoomStore::write`] appends,
/// and the members who came or went.
pub trait Feed: Send + Sync + 'static {
    /// Appends the members' coming or going to the app's feed, durably, as one entry; fails
    /// with [`DomainError::RoomNotFound`] when the room does not exist.
    fn record_members(
        &self,
        app: AppId,
        room: &RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Up to `limit` entries of the app, or of one of its rooms, with a `seq` above `after`,
    /// in order. Entries older than the feed's retention may be gone.
    fn feed(
        &self,
        app: AppId,
        room: Option<&RoomId>,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<FeedEntry>>> + Send;
}

/// A feed entry waiting for its webhook: the first undelivered entry of its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub entry: FeedEntry,
    /// Attempts already made.
    pub attempts: u32,
}

/// What became of an attempt to deliver a [`Pending`] entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver has it: the room's next entry becomes its first.
    Delivered,
    /// Try again at `at_ms` (Unix milliseconds).
    Retry { at_ms: u64, error: String },
    /// Given up: kept aside for an operator, and the room's next entry goes on.
    Park { error: String },
}

/// An entry whose delivery was given up, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub entry: FeedEntry,
    pub error: String,
}

/// How much an app's webhook has still to deliver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pending: u64,
    pub parked: u64,
    /// Commit time (Unix milliseconds) of the oldest undelivered entry.
    pub oldest_pending_ms: Option<u64>,
}

/// The feed entries queued for apps' webhooks, delivered in order per room (docs/webhooks.md).
/// Which entries are queued is fixed when the store opens ([`Outboxes`]).
pub trait Outbox: Send + Sync + 'static {
    /// The first undelivered entry of up to `limit` rooms of the app whose next attempt is due
    /// at `now_ms`, the longest due first, passing over the rooms in `busy` (those whose first
    /// entry the caller is sending already). A room's later entries wait for its first.
    fn due(
        &self,
        app: AppId,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<RoomId>,
    ) -> impl Future<Output = StoreResult<Vec<Pending>>> + Send;

    /// Records what became of attempts, by entry `seq`, durably and together. An outcome for
    /// an entry that is not (or no longer) the first of its room is ignored.
    fn settle(
        &self,
        app: AppId,
        outcomes: Vec<(u64, Outcome)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Up to `limit` parked entries of the app with a `seq` above `after`, in order.
    fn parked(
        &self,
        app: AppId,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Parked>>> + Send;

    /// Queues parked entries again (all of them when `seqs` is `None`), each in its room's
    /// order, due at once; returns how many.
    fn replay(
        &self,
        app: AppId,
        seqs: Option<Vec<u64>>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    fn backlog(&self, app: AppId) -> impl Future<Output = StoreResult<Backlog>> + Send;
}

/// Which feed entries of which apps are queued for a webhook.
pub type Outboxes = Arc<HashMap<AppId, Hooks>>;

/// A live room as a backup holds it (docs/cluster.md §9): everything durable about it but its
/// event log, which a restored room starts afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub room: Room,
    pub metadata: Metadata,
    pub people: RoomPeople,
    /// Messages counted in the room's statistics (its viewers are `room.view_count`).
    pub messages: u64,
}

impl From<(Room, Metadata)> for Saved {
    fn from((room, metadata): (Room, Metadata)) -> Self {
        Self {
            room,
            metadata,
            people: RoomPeople::default(),
            messages: 0,
        }
    }
}

/// Everything durable, out page by page and back in (docs/cluster.md §9): to move it to
/// another store, or to keep it. Accounts go back through [`AccountStore::import_accounts`].
pub trait Backup: Send + Sync + 'static {
    /// Loads rooms exactly as saved (times, counters, revision, people, messages), each at
    /// position 0 of a new incarnation with an empty log. A RoomId that exists, or metadata
    /// over the limits, fails the call; how much of it stays is the backend's `import_rooms`'s
    /// to say. Returns how many were loaded.
    fn restore_rooms(
        &self,
        app: AppId,
        rooms: Vec<Saved>,
    ) -> impl Future<Output = StoreResult<usize>> + Send;

    /// The apps that have rooms or accounts, in order.
    fn apps(&self) -> impl Future<Output = StoreResult<Vec<AppId>>> + Send;

    /// Up to `limit` live rooms of `app` whose RoomId comes after `after`, in RoomId order.
    fn saved_rooms(
        &self,
        app: AppId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Saved>>> + Send;

    /// Up to `limit` accounts of `app` after `after`, in order, with their profiles.
    fn saved_accounts(
        &self,
        app: AppId,
        after: Option<&Account>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(Account, Profile)>>> + Send;
}

/// What a member shows the others: from its account's profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberInfo {
    pub nick: Option<String>,
    pub avatar: Option<String>,
}

/// A member of a room, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub account: String,
    pub info: MemberInfo,
}

/// A change to this node's members, for every node to see (docs/cluster.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// The member is in the room through this node, showing `info`.
    In {
        app: AppId,
        room: RoomId,
        account: String,
        info: MemberInfo,
    },
    /// The member's connection through this node dropped at `at_ms` (Unix milliseconds):
    /// out of the room, but it may come back within the grace period, through any node.
    Interrupted {
        app: AppId,
        room: RoomId,
        account: String,
        at_ms: u64,
    },
    /// The member is no longer in the room through this node.
    Out {
        app: AppId,
        room: RoomId,
        account: String,
    },
    /// The room was destroyed: nobody is in it, through any node.
    Cleared { app: AppId, room: RoomId },
}

/// The connected members of a room on every node, a page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Up to the limit asked for, in account order after the cursor.
    pub page: Vec<Listed>,
    /// How many are connected.
    pub connected: usize,
    /// How many of the robots asked about are among them.
    pub robots_connected: usize,
}

/// A member of a node whose lease ended, removed by [`Shared::sweep_members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    pub app: AppId,
    pub room: RoomId,
    pub member: Listed,
    /// Its connection had dropped already (its departure was announced then).
    pub interrupted: bool,
}

/// What [`Shared::sweep_members`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Members of nodes whose lease ended, removed: they left (and are this caller's to
    /// announce and record).
    pub gone: Vec<Departed>,
    /// This node's own lease had ended (it could not renew it in time), so its members may
    /// have been removed: it must report them all again.
    pub rejoined: bool,
}

/// What one node hands the others about a room, best effort (docs/cluster.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// A live-only frame for the room's subscribers (docs/protocol.md, "Live events").
    Frame(String),
    /// `account` entered the room through the relaying node: its connection to the room
    /// through any other node is replaced (the newer connection wins).
    Replace { account: String },
}

/// A [`Relay`] that another node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub app: AppId,
    pub room: RoomId,
    pub relay: Relay,
}

/// Whether a member entering a room through this node was in it before (see
/// [`Shared::returning`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    /// Not in the room: a new entry.
    New,
    /// Its connection through some node dropped within the grace period: a recovery.
    Recovered,
    /// Connected through another node: still a member, now through this one as well.
    Elsewhere,
}

/// What the nodes of one store share beyond durable state: who is connected to each room and
/// the live-only frames (docs/cluster.md §4). A store that serves one process shares nothing:
/// presence and live frames stay in the process, and none of these is called.
pub trait Shared: Send + Sync + 'static {
    /// Whether presence and live frames are shared by the nodes of this store.
    fn shares_presence(&self) -> bool {
        false
    }

    /// Records changes to this node's members, in order; resolves once every node sees them.
    fn report_members(
        &self,
        _changes: Vec<Reported>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        async { Ok(()) }
    }

    /// The room's connected members on every node: up to `limit` after `after`, how many
    /// there are, and how many of `robots` are among them.
    fn members(
        &self,
        _app: AppId,
        _room: &RoomId,
        _robots: &BTreeSet<Account>,
        _after: Option<&str>,
        _limit: usize,
    ) -> impl Future<Output = StoreResult<Roster>> + Send {
        async { Ok(Roster::default()) }
    }

    /// Whether `account`, entering the room through this node, was in it before: connected
    /// through another node, or interrupted (on any node) at `since_ms` or later, which is
    /// then taken over (so that its node does not see it leave when the grace period ends).
    fn returning(
        &self,
        _app: AppId,
        _room: &RoomId,
        _account: &str,
        _since_ms: u64,
    ) -> impl Future<Output = StoreResult<Returning>> + Send {
        async { Ok(Returning::New) }
    }

    /// Ends this node's interrupted `account` in the room, its grace period over: whether it
    /// was still waiting (and so leaves now), not recovered through another node meanwhile.
    fn end_interruption(
        &self,
        _app: AppId,
        _room: &RoomId,
        _account: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        async { Ok(true) }
    }

    /// Renews this node's lease at `now` (since the Unix epoch), and removes the members of
    /// nodes whose lease ended before it. Called about once a second.
    fn sweep_members(&self, _now: Duration) -> impl Future<Output = StoreResult<Swept>> + Send {
        async { Ok(Swept::default()) }
    }

    /// Hands `relay` about `room` to the other nodes, best effort, never waiting.
    fn relay(&self, _app: AppId, _room: &RoomId, _relay: Relay) {}

    /// What other nodes relay, batch by batch in each node's order; `None` when nothing is
    /// shared.
    fn relayed(&self) -> Option<broadcast::Receiver<Arc<[Relayed]>>> {
        None
    }
}

/// Everything the server needs from a backend.
pub trait Store: RoomStore + EventLog + AccountStore + Feed + Outbox + Backup + Shared {
    /// Finishes every write already accepted, then refuses new ones. Idempotent.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// Whether the store can serve now (open, its database answering): what a load balancer's
    /// readiness check asks (docs/cluster.md §6).
    fn ready(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether rate limits live in this store, shared by every node that uses it
    /// (docs/cluster.md §7). When not, each process keeps its own and never calls
    /// [`Store::take_tokens`].
    fn shares_rate_limits(&self) -> bool {
        false
    }

    /// Takes `debit.tokens` from the app's shared GCRA bucket `bucket` at `now` (since the
    /// Unix epoch): `Ok(true)` when they fit its burst, `Ok(false)` (nothing taken) when not.
    fn take_tokens(
        &self,
        _app: AppId,
        _bucket: &'static str,
        _debit: Debit,
        _now: Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        async { Ok(true) }
    }
}

/// Tokens taken at once from a shared rate-limit bucket that refills at `per_second` and holds
/// at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debit {
    pub per_second: u32,
    pub burst: u32,
    pub tokens: u32,
}

/// How much of each room's history the log keeps (docs/events.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events kept per room incarnation: the newest ones.
    pub events_per_room: u64,
    /// How long a destroyed room's events (and its tombstone) are kept.
    pub destroyed_room: Duration,
    /// How long an app's feed keeps an entry that no webhook waits for.
    pub feed: Duration,
    /// How long a parked entry waits for a replay.
    pub parked: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events_per_room: 1024,
            destroyed_room: Duration::from_secs(600),
            feed: Duration::from_secs(24 * 3600),
            parked: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Batches of committed events a subscriber may fall behind before it must catch up from the
/// log.
const BUS_CAPACITY: usize = 4096;

/// Hands each committed batch of events to every subscriber, in commit order.
#[derive(Debug, Clone)]
pub(crate) struct EventBus(broadcast::Sender<Arc<[RoomEvent]>>);

impl Default for EventBus {
    fn default() -> Self {
        Self(broadcast::channel(BUS_CAPACITY).0)
    }
}

impl EventBus {
    pub(crate) fn publish(&self, events: Vec<RoomEvent>) {
        if !events.is_empty() {
            // No subscriber is not an error: the log keeps the events anyway.
            let _ = self.0.send(events.into());
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<[RoomEvent]>> {
        self.0.subscribe()
    }

    /// Whether anyone subscribes, so that a publisher can skip copying events for nobody.
    pub(crate) fn is_followed(&self) -> bool {
        self.0.receiver_count() > 0
    }
}

/// [`Since`] from the first `limit` events after `after` that the log holds, in order. They
/// continue the position only if the first is the very next one; none continue it only if the
/// position is the live room's `head`.
pub(crate) fn since(after: Position, held: Vec<RoomEvent>, head: Option<Position>) -> Since {
    let continues = match held.first() {
        Some(first) => first.position.seq == after.seq + 1,
        None => head == Some(after),
    };
    if continues {
        Since::Events(held)
    } else {
        Since::Expired
    }
}

/// The feed items of a write's committed `events`, with the room as it was `before` the write
/// and as it is `after` (docs/webhooks.md: an update carries the room it left, a destroy the
/// room it ended).
pub(crate) fn feed_items<'a>(
    events: &'a [RoomEvent],
    before: Option<&'a Room>,
    after: Option<&'a Room>,
) -> impl Iterator<Item = (&'a RoomEvent, FeedItem)> + 'a {
    events.iter().map(move |event| {
        let room = match event.change {
            RoomChange::InfoUpdated(_) => after,
            RoomChange::Destroyed => before,
            _ => None,
        };
        let item = FeedItem::Room {
            position: event.position,
            change: event.change.clone(),
            room: room.map(|r| Box::new(r.clone())),
        };
        (event, item)
    })
}

/// Whether `item` of `app` waits for a webhook.
pub(crate) fn queued(outboxes: &Outboxes, app: AppId, item: &FeedItem) -> bool {
    outboxes
        .get(&app)
        .is_some_and(|hooks| hooks.contains(item.hook()))
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
    liveroom_domain::check_set(&Metadata::new(), &MetadataEntries::new(entries)?)
}

/// Where an imported room's log starts: a fresh incarnation numbered from its creation time,
/// with no events yet.
fn imported_position(room: &Room) -> Position {
    Position {
        incarnation: room.create_time.saturating_mul(1000),
        seq: 0,
    }
}
