//! The cluster backend: PostgreSQL ≥ 14, shared by any number of liveroom nodes
//! (docs/cluster.md).
//!
//! Room writes are queued and committed in batches (group commit): one transaction locks the
//! batch's rooms' rows, lets the domain decide each write, saves the rooms, their events, their
//! feed entries and their webhook queue, and COMMITs with `synchronous_commit = on` before any
//! of them is answered. A room's row lock orders its writes, so its positions are gap-free in
//! commit order on every node; the app's feed row (`feed_apps`) numbers its feed entries the
//! same way. Nodes keep no cache: every read sees every node's last commit.
//!
//! Other nodes' commits reach this node's subscribers through the feed (`follow`): a task
//! reads every app's new entries in order, woken by this node's commits, by `NOTIFY` from the
//! others, and by a periodic poll that alone guarantees progress (notifications are lost across
//! reconnects and through transaction-mode poolers).

mod follow;
mod schema;
mod shared;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use liveroom_domain::{
    Account, AppId, DomainError, FeedEntry, FeedItem, IfExists, ListPosition, MemberChange,
    NewAccounts, Position, Profile, Room, RoomChange, RoomEvent, RoomId, RoomOperation, RoomPeople,
    RoomSlot, RoomState, RoomStats, Tombstone,
};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::codec::{self, Malformed};
use crate::{
    AccountStore, Backlog, Backup, Committed, Debit, EventBus, EventLog, Feed, Outbox, Outboxes,
    Outcome, Parked, Pending, Retention, RoomStore, Saved, Since, Store, StoreError, StoreResult,
};

/// Where and how to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// A libpq connection string or `postgres://` URL.
    pub url: String,
    /// The schema liveroom's tables live in (created if missing); `None`: the connection's
    /// default (`public`).
    pub schema: Option<String>,
    /// Connections in the pool; requests beyond wait for one, up to `connect_timeout`.
    pub pool_size: usize,
    /// How long opening a connection, or waiting for a free one, may take.
    pub connect_timeout: Duration,
    /// How long one statement may run before the server cancels it.
    pub statement_timeout: Duration,
    /// Whether commits `NOTIFY` the other nodes and this node `LISTEN`s; off for poolers in
    /// transaction mode (the poll alone then carries other nodes' changes).
    pub notify: bool,
    /// How often the feed is read for other nodes' changes whatever the notifications say.
    pub poll: Duration,
    /// How long a node keeps a room's webhook entry to itself once it took it for delivery;
    /// must exceed the webhook's timeout.
    pub lease: Duration,
    /// This node's name in webhook leases (and logs).
    pub node: String,
    /// How long a node that stopped renewing its lease (it renews about once a second) keeps
    /// its members in the rooms before the others remove them.
    pub presence_lease: Duration,
    pub retention: Retention,
    pub outboxes: Outboxes,
    /// `Some`: connect over TLS only, verifying the server's certificate against Mozilla's
    /// root certificates and these (docs/cluster.md §2); `None`: as the URL's `sslmode` says
    /// without a certificate to check, that is in plain text.
    pub tls: Option<PostgresTls>,
}

/// TLS to PostgreSQL: which certificate authorities, beyond Mozilla's, vouch for the server.
#[derive(Debug, Clone, Default)]
pub struct PostgresTls {
    pub authorities: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl PostgresTls {
    /// The certificates of a PEM file (any other blocks in it are skipped), as authorities.
    pub fn with_pem_authorities(pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let authorities = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not PEM certificates: {e}"))?;
        if authorities.is_empty() {
            return Err("holds no certificate".into());
        }
        Ok(Self { authorities })
    }

    fn connector(&self) -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for authority in &self.authorities {
            roots.add(authority.clone()).map_err(|e| {
                StoreError::Unavailable(format!("a PostgreSQL CA certificate is not valid: {e}"))
            })?;
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            notify: true,
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            node: String::from("liveroom"),
            presence_lease: Duration::from_secs(10),
            retention: Retention::default(),
            outboxes: Outboxes::default(),
            tls: None,
        }
    }
}

/// Writes outside the batches (counts, deliveries, accounts, imports) that may be in progress
/// at once, far above any pool; `close` takes them all.
const GATE: u32 = 1 << 30;
/// Times a transaction that lost a race (serialization failure, deadlock, a concurrent create
/// of the same row) is tried again before it answers `Unavailable`.
const ATTEMPTS: usize = 8;
/// Rooms per transaction when importing.
const IMPORT_CHUNK: usize = 1000;
/// Member records that may wait for their transaction; a caller beyond waits for room.
const MEMBERS_QUEUE: usize = 65_536;
/// Member records committed together.
const MEMBERS_BATCH: usize = 512;
/// Room writes that may wait for a writer; a caller beyond waits for room.
const WRITE_QUEUE: usize = 8192;
/// Room writes committed together.
const MAX_BATCH: usize = 256;
/// How often writes sweep what retention let go (from any node; sweeps are idempotent).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Tombstones, and entries of each kind, one sweep removes at most.
const SWEEP_LIMIT: i64 = 2000;
/// The channel commits notify on; its payload is the key of the node that committed.
const CHANNEL: &str = "liveroom_feed";

/// The PostgreSQL store of one node.
pub struct PostgresStore {
    inner: Arc<Inner>,
    /// Room writes, committed in batches by the writer task.
    writes: RwLock<Option<mpsc::Sender<WriteJob>>>,
    /// Record of members' coming and going, applied in call order by one task.
    members: RwLock<Option<mpsc::Sender<MembersJob>>>,
    /// This node's members and live frames for the others, written in call order by one task.
    shared: RwLock<Option<mpsc::Sender<shared::Job>>>,
    /// Live frames of the other nodes, as the follower reads them.
    relayed: broadcast::Sender<Arc<[crate::Relayed]>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What the store's tasks share with it.
struct Inner {
    pool: Pool,
    bus: EventBus,
    retention: Retention,
    outboxes: Outboxes,
    notify: bool,
    lease: Duration,
    node: String,
    /// This process among the nodes (docs/cluster.md §4).
    node_key: i64,
    presence_lease: Duration,
    /// Wakes the follower after this node's commits.
    committed: Arc<Notify>,
    /// Every write holds a permit; closing takes them all.
    gate: Semaphore,
    last_sweep_ms: AtomicU64,
}

struct MembersJob {
    app: AppId,
    room: RoomId,
    by: Account,
    change: MemberChange,
    now: Duration,
    reply: oneshot::Sender<StoreResult<()>>,
}

/// Why one attempt failed.
enum Failure {
    Rule(DomainError),
    Sql(tokio_postgres::Error),
    Malformed(Malformed),
    Pool(String),
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Self::Rule(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<Malformed> for Failure {
    fn from(e: Malformed) -> Self {
        Self::Malformed(e)
    }
}

/// `error` with the server's code and message when it has them.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// Whether trying the same transaction again may succeed: it lost a race with another one.
fn lost_race(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
    )
}

fn closed() -> StoreError {
    StoreError::Unavailable("store is closed".into())
}

/// A u64 as PostgreSQL's BIGINT; values beyond i64::MAX (never produced) saturate.
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PostgresStore {
    /// Connects, migrates the schema (under an advisory lock, so nodes may start together),
    /// and starts following the feed.
    pub async fn open(options: PostgresOptions) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = options.url.parse().map_err(|e| {
            StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}"))
        })?;
        let mut settings = vec![
            format!(
                "-c statement_timeout={}",
                options.statement_timeout.as_millis().max(1)
            ),
            // Durable means committed to disk (and to synchronous replicas) before the answer,
            // whatever the server's default.
            "-c synchronous_commit=on".to_owned(),
        ];
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(StoreError::Unavailable(format!(
                    "the PostgreSQL schema {schema:?} must be lower-case letters, digits and _"
                )));
            }
            settings.push(format!("-c search_path={schema}"));
        }
        if let Some(own) = config.get_options() {
            settings.insert(0, own.to_owned());
        }
        config.options(settings.join(" "));
        if config.get_application_name().is_none() {
            config.application_name("liveroom");
        }
        config.connect_timeout(options.connect_timeout);
        let tls = options
            .tls
            .as_ref()
            .map(PostgresTls::connector)
            .transpose()?;
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(config.clone(), tls.clone(), recycling)
            }
            None => Manager::from_config(config.clone(), NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot make the pool: {e}")))?;
        if let Some(schema) = &options.schema {
            // Created before anything uses the search path; IF NOT EXISTS still races between
            // nodes, so a lost race is tried again.
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            let mut attempts = 0;
            loop {
                let client = get(&pool).await?;
                match client.batch_execute(&sql).await {
                    Ok(()) => break,
                    Err(e) if lost_race(&e) && attempts < ATTEMPTS => attempts += 1,
                    Err(e) => {
                        return Err(StoreError::Unavailable(format!(
                            "cannot create the schema {schema}: {}",
                            describe(&e)
                        )));
                    }
                }
            }
        }
        let mut client = get(&pool).await?;
        schema::migrate(&mut client).await?;
        let cursors = follow::cursors(&client).await?;
        let frames = shared::FrameCursors::now(&client)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot read live frames: {e}")))?;
        drop(client);

        let inner = Arc::new(Inner {
            pool,
            bus: EventBus::default(),
            retention: options.retention,
            outboxes: options.outboxes,
            notify: options.notify,
            lease: options.lease,
            node: options.node,
            node_key: shared::node_key(),
            presence_lease: options.presence_lease,
            committed: Arc::new(Notify::new()),
            gate: Semaphore::new(GATE as usize),
            last_sweep_ms: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let (members, queue) = mpsc::channel(MEMBERS_QUEUE);
        let mut tasks = vec![tokio::spawn(record_members(Arc::clone(&inner), queue))];
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        tasks.push(tokio::spawn(write_batches(Arc::clone(&inner), queue)));
        shared::register(&inner).await?;
        let (shared_jobs, queue) = mpsc::channel(shared::QUEUE);
        tasks.push(tokio::spawn(shared::write(Arc::clone(&inner), queue)));
        let relayed = shared::relay_channel();
        let follower = follow::Follower {
            pool: inner.pool.clone(),
            bus: inner.bus.clone(),
            committed: Arc::clone(&inner.committed),
            poll: options.poll,
            cursors,
            node_key: inner.node_key,
            frames,
            relayed: relayed.clone(),
        };
        let listen = options.notify.then_some((config, tls));
        tasks.push(tokio::spawn(follower.run(listen, stopped)));
        Ok(Self {
            inner,
            writes: RwLock::new(Some(writes)),
            members: RwLock::new(Some(members)),
            shared: RwLock::new(Some(shared_jobs)),
            relayed,
            stop,
            tasks: Mutex::new(tasks),
        })
    }

    /// Loads rooms exactly as given (times, counters and revision included) into `app`, in
    /// transactions of 1,000 rooms, each all or nothing; on an error (a RoomId that exists,
    /// metadata over the limits) the transactions before it stay. Returns how many were loaded.
    pub async fn import_rooms<I>(&self, app: AppId, rooms: I) -> StoreResult<usize>
    where
        I: IntoIterator<Item: Into<Saved>>,
    {
        let _writing = self.inner.enter()?;
        let mut rooms = rooms.into_iter().map(Into::into);
        let mut imported = 0;
        loop {
            let chunk: Vec<_> = rooms.by_ref().take(IMPORT_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(imported);
            }
            let rooms = &chunk;
            self.inner
                .transact(
                    "import",
                    |client| committed!(client, tx => { import_chunk(&tx, app, rooms).await }),
                )
                .await?;
            imported += chunk.len();
        }
    }
}

/// Queues `job` now if `queue` has room (so one caller's jobs apply in call order); otherwise
/// hands it back with the queue, for the caller to wait for room.
#[allow(clippy::type_complexity)]
fn enqueue<T>(
    queue: &RwLock<Option<mpsc::Sender<T>>>,
    job: T,
) -> StoreResult<Option<(mpsc::Sender<T>, T)>> {
    let queue = queue
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(closed)?;
    match queue.try_send(job) {
        Ok(()) => Ok(None),
        Err(mpsc::error::TrySendError::Full(job)) => Ok(Some((queue, job))),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(closed()),
    }
}

/// Queues `job` now (so one caller's jobs apply in call order; waiting for room only when the
/// queue is full), then waits for what its task answers on `answer`.
fn submit<T: Send + 'static, R: Send + 'static>(
    queue: &RwLock<Option<mpsc::Sender<T>>>,
    job: T,
    answer: oneshot::Receiver<StoreResult<R>>,
) -> impl Future<Output = StoreResult<R>> + Send + 'static {
    let waiting = enqueue(queue, job);
    async move {
        if let Some((queue, job)) = waiting? {
            queue.send(job).await.map_err(|_| closed())?;
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

async fn get(pool: &Pool) -> StoreResult<Object> {
    pool.get().await.map_err(|e| {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {}", pool_error(&e)))
    })
}

fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

impl Inner {
    fn enter(&self) -> StoreResult<tokio::sync::SemaphorePermit<'_>> {
        self.gate.try_acquire().map_err(|_| closed())
    }

    /// Runs `attempt` on a pooled connection, again when it lost a race with another
    /// transaction; each attempt makes its own transaction ([`committed!`]).
    async fn transact<T, F, Fut>(&self, what: &str, mut attempt: F) -> StoreResult<T>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match self.client().await {
                Ok(client) => attempt(client).await,
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::Rule(e)) => return Err(e.into()),
                Err(Failure::Sql(e)) if lost_race(&e) && tries < ATTEMPTS => continue,
                Err(failure) => return Err(self.unavailable(what, failure)),
            }
        }
    }

    async fn client(&self) -> Result<Object, Failure> {
        self.pool
            .get()
            .await
            .map_err(|e| Failure::Pool(format!("cannot reach PostgreSQL: {}", pool_error(&e))))
    }

    fn unavailable(&self, what: &str, failure: Failure) -> StoreError {
        let error = match failure {
            Failure::Rule(e) => return e.into(),
            Failure::Sql(e) => describe(&e),
            Failure::Malformed(e) => e.to_string(),
            Failure::Pool(e) => e,
        };
        tracing::error!(%error, node = %self.node, "postgres store: {what} failed");
        StoreError::Unavailable(format!("{what} failed: {error}"))
    }

    /// Runs `read` on a pooled connection (no transaction: one statement sees one snapshot).
    async fn read<T, F, Fut>(&self, what: &str, read: F) -> StoreResult<T>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let outcome = match self.client().await {
            Ok(client) => read(client).await,
            Err(failure) => Err(failure),
        };
        outcome.map_err(|f| self.unavailable(what, f))
    }

    /// Sweeps what retention let go, at most once a minute per node; failing loses nothing.
    async fn sweep(&self, now: Duration) {
        let now_ms = now.as_millis() as u64;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64
            || self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let cutoff = |kept: Duration| big(now.saturating_sub(kept).as_millis() as u64);
        let (rooms, done, parked) = (
            cutoff(self.retention.destroyed_room),
            cutoff(self.retention.feed),
            cutoff(self.retention.parked),
        );
        let swept = self
            .transact("sweep", |client| {
                committed!(client, tx => {
                    tx.execute(&tx.prepare_cached(SWEEP_ROOMS).await?, &[&rooms, &SWEEP_LIMIT]).await?;
                    tx.execute(&tx.prepare_cached(SWEEP_FEED).await?, &[&0i16, &done, &SWEEP_LIMIT]).await?;
                    tx.execute(&tx.prepare_cached(SWEEP_FEED).await?, &[&2i16, &parked, &SWEEP_LIMIT])
                        .await?;
                    Ok(())
                })
            })
            .await;
        if let Err(error) = swept {
            tracing::warn!(%error, "postgres store: sweeping destroyed rooms and old entries failed");
        }
    }
}

/// `$body` (a block that may use `$tx`, `?` and `return`, answering a `Result`) in a transaction of the pooled
/// connection `$client`, committed when it succeeds: an attempt for [`Inner::transact`].
macro_rules! committed {
    ($client:ident, $tx:ident => $body:block) => {
        async move {
            let mut $client = $client;
            let $tx = $client.transaction().await?;
            let value: Result<_, Failure> = async { $body }.await;
            let value = value?;
            $tx.commit().await?;
            Ok::<_, Failure>(value)
        }
    };
}
use committed;

// ---- rooms -------------------------------------------------------------------------------

/// A live room's columns, in the order [`state_of`] reads them.
const STATE_COLUMNS: &str = "room, metadata, people, incarnation, seq, view_count";

fn state_of(row: &Row) -> Result<RoomState, Malformed> {
    let mut room = codec::decode_room_text(row.get(0))?;
    room.view_count = unsigned(row.get(5));
    let people = match row.get::<_, Option<&str>>(2) {
        None => RoomPeople::default(),
        Some(text) => codec::decode_people(text)?,
    };
    Ok(RoomState {
        room,
        metadata: codec::decode_metadata(row.get(1))?,
        people,
        position: Position {
            incarnation: unsigned(row.get(3)),
            seq: unsigned(row.get(4)),
        },
    })
}

fn select_state(lock: &str) -> String {
    format!("SELECT {STATE_COLUMNS} FROM rooms WHERE app = $1 AND room_id = $2{lock}")
}

const SELECT_TOMBSTONE: &str = "SELECT incarnation, destroyed_at_ms FROM room_tombstones \
    WHERE app = $1 AND room_id = $2";
const INSERT_ROOM: &str = "INSERT INTO rooms (app, room_id, room, metadata, people, \
    incarnation, seq, is_public, view_count, create_time) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// Every room of a batch that stays in its incarnation, saved in one statement.
const UPDATE_ROOMS: &str = "UPDATE rooms r SET room = u.room, metadata = u.metadata, \
    people = u.people, seq = u.seq, is_public = u.is_public \
    FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
    $7::BOOLEAN[]) AS u(app, room_id, room, metadata, people, seq, is_public) \
    WHERE r.app = u.app AND r.room_id = u.room_id COLLATE \"C\"";
/// The live rooms of a batch, locked in key order (so that batches of several nodes cannot
/// deadlock): the state's columns, then the key.
const LOCK_ROOMS: &str = "SELECT r.room, r.metadata, r.people, r.incarnation, r.seq, \
    r.view_count, r.app, r.room_id FROM rooms r \
    JOIN UNNEST($1::BIGINT[], $2::TEXT[]) AS k(app, room_id) \
    ON r.app = k.app AND r.room_id = k.room_id COLLATE \"C\" \
    ORDER BY r.app, r.room_id FOR UPDATE OF r";
const DELETE_ROOM: &str = "DELETE FROM rooms WHERE app = $1 AND room_id = $2";
const UPSERT_TOMBSTONE: &str = "INSERT INTO room_tombstones VALUES ($1, $2, $3, $4) \
    ON CONFLICT (app, room_id) DO UPDATE SET incarnation = $3, destroyed_at_ms = $4";
/// Every event of a batch, in one statement.
const INSERT_EVENTS: &str = "INSERT INTO room_events SELECT * FROM UNNEST($1::BIGINT[], \
    $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[])";
/// Events of the incarnation beyond the newest ones retention keeps.
const PRUNE_EVENTS: &str = "DELETE FROM room_events \
    WHERE app = $1 AND room_id = $2 AND incarnation = $3 AND seq <= $4";
/// A RoomId created again: its earlier incarnations' events can no longer be resumed.
const DROP_EARLIER_EVENTS: &str = "DELETE FROM room_events \
    WHERE app = $1 AND room_id = $2 AND incarnation < $3";
const SELECT_EVENTS: &str = "SELECT seq, at_ms, change FROM room_events \
    WHERE app = $1 AND room_id = $2 AND incarnation = $3 AND seq > $4 ORDER BY seq LIMIT $5";
const SELECT_HEAD: &str = "SELECT incarnation, seq FROM rooms WHERE app = $1 AND room_id = $2";
const COUNT: &str = "UPDATE rooms SET view_count = view_count + $3, messages = messages + $4 \
    WHERE app = $1 AND room_id = $2";
const SELECT_STATS: &str = "SELECT view_count, messages FROM rooms WHERE app = $1 AND room_id = $2";
const LIST_FIRST: &str = "SELECT room, view_count FROM rooms WHERE app = $1 AND is_public \
    ORDER BY view_count DESC, create_time DESC, room_id LIMIT $2";
const LIST_AFTER: &str = "SELECT room, view_count FROM rooms WHERE app = $1 AND is_public \
    AND (view_count < $2 OR (view_count = $2 AND (create_time < $3 \
         OR (create_time = $3 AND room_id > $4)))) \
    ORDER BY view_count DESC, create_time DESC, room_id LIMIT $5";
/// Destroyed rooms past their retention: their tombstones and last events.
const SWEEP_ROOMS: &str = "WITH gone AS (DELETE FROM room_tombstones WHERE (app, room_id) IN \
    (SELECT app, room_id FROM room_tombstones WHERE destroyed_at_ms < $1 \
     ORDER BY destroyed_at_ms LIMIT $2) RETURNING app, room_id, incarnation) \
    DELETE FROM room_events e USING gone g \
    WHERE e.app = g.app AND e.room_id = g.room_id AND e.incarnation = g.incarnation";

fn people_text(people: &RoomPeople) -> Option<String> {
    (!people.is_empty()).then(|| codec::encode_people(people))
}

/// A room write waiting for its batch.
struct WriteJob {
    app: AppId,
    by: Account,
    operation: Box<dyn RoomOperation>,
    now: Duration,
    reply: oneshot::Sender<StoreResult<Committed>>,
}

/// What a batch does to one room: its slot as read (locked) and as its writes left it.
struct RoomWork {
    /// The incarnation live when read, if any.
    was: Option<u64>,
    slot: RoomSlot,
    events: Vec<RoomEvent>,
}

/// Group commit (docs/cluster.md §3): the node's writer task takes the writes queued, up to
/// [`MAX_BATCH`], and commits them in one transaction. The batch locks its rooms in key order
/// with one `SELECT … FOR UPDATE`, lets each write decide in turn on its room's slot in
/// memory, then saves its rooms, their events and the batch's feed entries in a few
/// statements. A write a rule refuses is answered so and changes nothing; any database failure
/// fails the batch, which is tried again whole when it lost a race.
///
/// Two batches overlap, no more: the next is gathered and started once the one before reached
/// its COMMIT, so that its statements run while the other waits for the disk. It cannot get
/// ahead: a room of both, and the app's feed row, stay locked until the first commits
/// (BENCHMARKS.md: about 10 % more writes per second on one node). More would only queue for
/// the feed row.
async fn write_batches(inner: Arc<Inner>, mut queue: mpsc::Receiver<WriteJob>) {
    let mut previous: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let committing = Arc::new(Notify::new());
        let mut current = tokio::spawn(commit_batch(
            Arc::clone(&inner),
            batch,
            Arc::clone(&committing),
        ));
        if let Some(previous) = previous.take() {
            let _ = previous.await;
        }
        // Gather the next batch when this one is committing, or over.
        tokio::select! {
            () = committing.notified() => previous = Some(current),
            _ = &mut current => {}
        }
    }
    if let Some(previous) = previous {
        let _ = previous.await;
    }
}

/// Commits one batch (telling `committing` when its COMMIT is sent), sweeps when a sweep is
/// due, and answers its writes.
async fn commit_batch(inner: Arc<Inner>, batch: Vec<WriteJob>, committing: Arc<Notify>) {
    let jobs = &batch;
    let outcome = inner
        .transact("write", |client| {
            let (inner, committing) = (&*inner, &committing);
            async move {
                let mut client = client;
                let tx = client.transaction().await?;
                let outcomes = apply_batch(&tx, inner, jobs).await?;
                committing.notify_one();
                tx.commit().await?;
                Ok::<_, Failure>(outcomes)
            }
        })
        .await;
    // Before the answers: a write answered after a sweep was due sees it done, though the
    // next batch may already be running.
    let now = batch.iter().map(|j| j.now).max().unwrap_or_default();
    inner.sweep(now).await;
    match outcome {
        Ok(outcomes) => {
            if outcomes
                .iter()
                .any(|o| o.as_ref().is_ok_and(|c| !c.events.is_empty()))
            {
                inner.committed.notify_one();
            }
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
        Err(error) => {
            for job in batch {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

async fn apply_batch(
    tx: &Transaction<'_>,
    inner: &Inner,
    jobs: &[WriteJob],
) -> Result<Vec<StoreResult<Committed>>, Failure> {
    let keys: BTreeSet<(AppId, &RoomId)> =
        jobs.iter().map(|j| (j.app, j.operation.room())).collect();
    let (apps, ids): (Vec<i64>, Vec<&str>) = keys
        .iter()
        .map(|(app, id)| (i64::from(*app), id.as_str()))
        .unzip();
    let mut live: HashMap<(i64, String), RoomState> = HashMap::with_capacity(keys.len());
    for row in tx
        .query(&tx.prepare_cached(LOCK_ROOMS).await?, &[&apps, &ids])
        .await?
    {
        live.insert((row.get(6), row.get(7)), state_of(&row)?);
    }
    // Rooms that do not exist (to be created, mostly): their tombstones, if any.
    let tombstone = tx.prepare_cached(SELECT_TOMBSTONE).await?;
    let read = keys.iter().map(|(app, id)| {
        let live = live.remove(&(i64::from(*app), id.as_str().to_owned()));
        let tombstone = &tombstone;
        async move {
            let app64 = i64::from(*app);
            let key: [&(dyn ToSql + Sync); 2] = [&app64, &id.as_str()];
            let tombstone = match &live {
                Some(_) => None,
                None => tx.query_opt(tombstone, &key).await?.map(|row| Tombstone {
                    incarnation: unsigned(row.get(0)),
                    destroyed_at_ms: unsigned(row.get(1)),
                }),
            };
            let work = RoomWork {
                was: live.as_ref().map(|l| l.position.incarnation),
                slot: RoomSlot { live, tombstone },
                events: Vec::new(),
            };
            Ok::<_, Failure>(((*app, *id), work))
        }
    });
    let mut rooms: BTreeMap<(AppId, &RoomId), RoomWork> = futures_util::future::try_join_all(read)
        .await?
        .into_iter()
        .collect();

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut feed: BTreeMap<AppId, Vec<NewEntry<'_>>> = BTreeMap::new();
    for job in jobs {
        let id = job.operation.room();
        let work = rooms
            .get_mut(&(job.app, id))
            .expect("every room of the batch was read");
        // Decided on a copy: a refused write leaves the slot as it was.
        let mut slot = work.slot.clone();
        let decided = job.operation.decide(&slot, job.now).and_then(|changes| {
            let before = changes
                .iter()
                .any(|c| matches!(c, RoomChange::Destroyed))
                .then(|| slot.live.as_ref().map(|live| live.room.clone()))
                .flatten();
            if changes.is_empty() {
                return Ok((Vec::new(), before));
            }
            Ok((slot.commit(job.app, id, changes, job.now)?, before))
        });
        let (events, before) = match decided {
            Ok(decided) => decided,
            Err(error) => {
                outcomes.push(Err(StoreError::Rule(error)));
                continue;
            }
        };
        let after = slot.live.as_ref().map(|live| &live.room);
        let entries = feed.entry(job.app).or_default();
        for (event, item) in crate::feed_items(&events, before.as_ref(), after) {
            entries.push(NewEntry {
                room: id,
                by: &job.by,
                at_ms: event.at_ms,
                item,
            });
        }
        if !events.is_empty() {
            work.slot = slot;
            work.events.extend(events.iter().cloned());
        }
        outcomes.push(Ok(Committed {
            events,
            state: work.slot.live.clone().map(Arc::new),
        }));
    }

    // Nothing below needs another statement's answer: the batch's saves and feed entries are
    // sent together (pipelined), and the batch waits for the database once, not per statement.
    let mut statements = save_rooms(tx, &rooms, &inner.retention).await?;
    for (app, entries) in feed {
        statements.extend(append_feed(tx, inner, app, entries).await?);
    }
    futures_util::future::try_join_all(statements).await?;
    Ok(outcomes)
}

/// A statement of a batch, sent when first polled; its answer is awaited with the others'.
type Pipelined<'a> = futures_util::future::BoxFuture<'a, Result<(), Failure>>;

/// Wakes the other nodes' followers at COMMIT (docs/cluster.md §4). The payload names this
/// node, whose own listener ignores it: its commits wake its follower directly.
fn notify_others<'a>(tx: &'a Transaction<'_>, inner: &Inner) -> Pipelined<'a> {
    let me = inner.node_key.to_string();
    Box::pin(async move {
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        tx.execute(&notify, &[&CHANNEL, &me]).await?;
        Ok(())
    })
}

/// Whether a batch left the room in the incarnation it found it in (only its row changes).
fn stays(work: &RoomWork) -> bool {
    matches!((&work.slot.live, work.was), (Some(now), Some(was)) if was == now.position.incarnation)
}

/// The statements that write what a batch did to its rooms (as each `work.slot` now holds it)
/// and append their events to their logs: the rooms that stay in their incarnation in one
/// statement, every event in one, so that a batch costs the database a few statements however
/// many rooms it touched.
async fn save_rooms<'a>(
    tx: &'a Transaction<'_>,
    rooms: &'a BTreeMap<(AppId, &RoomId), RoomWork>,
    retention: &Retention,
) -> Result<Vec<Pipelined<'a>>, Failure> {
    let changed: Vec<_> = rooms
        .iter()
        .filter(|(_, work)| !work.events.is_empty())
        .collect();
    let mut statements: Vec<Pipelined<'a>> = changed
        .iter()
        .filter(|(_, work)| !stays(work))
        .map(|&((app, id), work)| {
            Box::pin(save_structure(tx, i64::from(*app), id.as_str(), work)) as Pipelined<'a>
        })
        .collect();

    let (mut apps, mut ids, mut texts, mut metadata, mut people, mut seqs, mut public) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((app, id), work) in changed.iter().filter(|(_, work)| stays(work)) {
        let Some(now) = &work.slot.live else { continue };
        apps.push(i64::from(*app));
        ids.push(id.as_str());
        texts.push(codec::encode_room_text(&now.room));
        metadata.push(codec::encode_metadata(&now.metadata));
        people.push(people_text(&now.people));
        seqs.push(big(now.position.seq));
        public.push(now.room.fields.is_public_visible);
    }
    if !apps.is_empty() {
        let update = tx.prepare_cached(UPDATE_ROOMS).await?;
        statements.push(Box::pin(async move {
            tx.execute(
                &update,
                &[&apps, &ids, &texts, &metadata, &people, &seqs, &public],
            )
            .await?;
            Ok(())
        }));
    }

    let (mut apps, mut ids, mut incarnations, mut seqs, mut times, mut changes) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((app, id), work) in &changed {
        for event in &work.events {
            apps.push(i64::from(*app));
            ids.push(id.as_str());
            incarnations.push(big(event.position.incarnation));
            seqs.push(big(event.position.seq));
            times.push(big(event.at_ms));
            changes.push(codec::encode(&event.change));
        }
    }
    if !apps.is_empty() {
        let insert = tx.prepare_cached(INSERT_EVENTS).await?;
        statements.push(Box::pin(async move {
            tx.execute(
                &insert,
                &[&apps, &ids, &incarnations, &seqs, &times, &changes],
            )
            .await?;
            Ok(())
        }));
    }

    let prune = tx.prepare_cached(PRUNE_EVENTS).await?;
    for ((app, id), work) in &changed {
        let (Some(first), Some(last)) = (work.events.first(), work.events.last()) else {
            continue;
        };
        let Some(beyond) = last.position.seq.checked_sub(retention.events_per_room) else {
            continue;
        };
        if beyond == 0 || first.position.incarnation != last.position.incarnation {
            continue;
        }
        let (app, prune) = (i64::from(*app), prune.clone());
        let incarnation = big(last.position.incarnation);
        statements.push(Box::pin(async move {
            tx.execute(&prune, &[&app, &id.as_str(), &incarnation, &big(beyond)])
                .await?;
            Ok(())
        }));
    }
    Ok(statements)
}

/// A room the batch created, created again or destroyed: its row replaced or removed (and its
/// tombstone written), the events of its earlier incarnations dropped.
async fn save_structure(
    tx: &Transaction<'_>,
    app: i64,
    room_id: &str,
    work: &RoomWork,
) -> Result<(), Failure> {
    if work.was.is_some() {
        tx.execute(&tx.prepare_cached(DELETE_ROOM).await?, &[&app, &room_id])
            .await?;
    }
    match &work.slot.live {
        Some(now) => {
            let room = &now.room;
            tx.execute(
                &tx.prepare_cached(INSERT_ROOM).await?,
                &[
                    &app,
                    &room_id,
                    &codec::encode_room_text(room),
                    &codec::encode_metadata(&now.metadata),
                    &people_text(&now.people),
                    &big(now.position.incarnation),
                    &big(now.position.seq),
                    &room.fields.is_public_visible,
                    &big(room.view_count),
                    &big(room.create_time),
                ],
            )
            .await?;
            let incarnation = big(now.position.incarnation);
            tx.execute(
                &tx.prepare_cached(DROP_EARLIER_EVENTS).await?,
                &[&app, &room_id, &incarnation],
            )
            .await?;
        }
        None => {
            if let Some(t) = work.slot.tombstone {
                tx.execute(
                    &tx.prepare_cached(UPSERT_TOMBSTONE).await?,
                    &[&app, &room_id, &big(t.incarnation), &big(t.destroyed_at_ms)],
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn import_chunk(tx: &Transaction<'_>, app: AppId, rooms: &[Saved]) -> Result<(), Failure> {
    for saved in rooms {
        let (room, metadata) = (&saved.room, &saved.metadata);
        crate::check_imported_metadata(metadata)?;
        let key: [&(dyn ToSql + Sync); 2] = [&i64::from(app), &room.id.as_str()];
        if let Some(row) = tx
            .query_opt(&tx.prepare_cached(&select_state("")).await?, &key)
            .await?
        {
            let existing = state_of(&row)?;
            return Err(DomainError::RoomExists {
                same_owner: existing.room.owner == room.owner,
            }
            .into());
        }
        let position = crate::imported_position(room);
        tx.execute(
            &tx.prepare_cached(INSERT_ROOM).await?,
            &[
                &i64::from(app),
                &room.id.as_str(),
                &codec::encode_room_text(room),
                &codec::encode_metadata(metadata),
                &people_text(&saved.people),
                &big(position.incarnation),
                &big(position.seq),
                &room.fields.is_public_visible,
                &big(room.view_count),
                &big(room.create_time),
            ],
        )
        .await?;
        if saved.messages > 0 {
            tx.execute(
                &tx.prepare_cached(COUNT).await?,
                &[
                    &i64::from(app),
                    &room.id.as_str(),
                    &0i64,
                    &big(saved.messages),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

// ---- feed and outbox ----------------------------------------------------------------------

const DONE: i16 = 0;
const WAITING: i16 = 1;
const PARKED: i16 = 2;

/// Appends a batch's entries (`$2` of them) to the app's feed and queues each room whose
/// entries wait for the webhook, in one statement. The entries take the next `$2` numbers of
/// the app's feed: its row stays locked until COMMIT, so that numbers follow commit order.
/// A room already queued keeps its first entry, and its row is locked all the same
/// (`DO UPDATE … WHERE false`), so that a delivery settling concurrently either sees the new
/// entries or finishes first; without the lock it could drop the room from the queue while
/// they wait behind it. Rooms are queued in key order, so that batches cannot deadlock.
const APPEND_ENTRIES: &str = "WITH numbered AS (INSERT INTO feed_apps VALUES ($1, $2) \
    ON CONFLICT (app) DO UPDATE SET last_seq = feed_apps.last_seq + EXCLUDED.last_seq \
    RETURNING last_seq), \
    appended AS (INSERT INTO feed (app, seq, room_id, at_ms, entry, state) \
    SELECT $1, n.last_seq - $2 + e.nth, e.room_id, e.at_ms, e.entry, e.state FROM numbered n, \
    UNNEST($3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::SMALLINT[]) \
    WITH ORDINALITY AS e(room_id, at_ms, entry, state, nth) \
    RETURNING seq, room_id, at_ms, state) \
    INSERT INTO outbox (app, room_id, seq, attempts, due_ms) \
    SELECT DISTINCT ON (room_id) $1, room_id, seq, 0, at_ms FROM appended WHERE state = 1 \
    ORDER BY room_id, seq \
    ON CONFLICT (app, room_id) DO UPDATE SET seq = outbox.seq WHERE false";
const ENTRY_COLUMNS: &str = "seq, room_id, at_ms, entry";
/// Rooms whose first entry is due and not leased to another node, leased to this one.
const DUE: &str = "WITH picked AS (SELECT app, room_id FROM outbox \
    WHERE app = $1 AND due_ms <= $2 AND (lease_until_ms <= $2 OR lease_node = $3) \
    AND room_id <> ALL($6) ORDER BY due_ms LIMIT $4 FOR UPDATE SKIP LOCKED) \
    UPDATE outbox o SET lease_node = $3, lease_until_ms = $5 FROM picked p, feed f \
    WHERE o.app = p.app AND o.room_id = p.room_id AND f.app = o.app AND f.seq = o.seq \
    RETURNING f.seq, f.room_id, f.at_ms, f.entry, o.attempts, o.due_ms";
const HEAD_ROOM: &str = "SELECT room_id FROM outbox WHERE app = $1 AND seq = $2 FOR UPDATE";
const SET_STATE: &str = "UPDATE feed SET state = $3, error = $4 WHERE app = $1 AND seq = $2";
const RETRY_AT: &str = "UPDATE outbox SET attempts = attempts + 1, due_ms = $3, \
    lease_until_ms = 0 WHERE app = $1 AND room_id = $2";
const NEXT_WAITING: &str = "SELECT seq, at_ms FROM feed \
    WHERE app = $1 AND room_id = $2 AND seq > $3 AND state = 1 ORDER BY seq LIMIT 1";
const MOVE_HEAD: &str = "UPDATE outbox SET seq = $3, attempts = 0, due_ms = $4, \
    lease_until_ms = 0 WHERE app = $1 AND room_id = $2";
const DROP_HEAD: &str = "DELETE FROM outbox WHERE app = $1 AND room_id = $2";
const ALL_PARKED: &str = "SELECT seq, room_id FROM feed WHERE app = $1 AND state = 2 ORDER BY seq";
const SOME_PARKED: &str =
    "SELECT seq, room_id FROM feed WHERE app = $1 AND state = 2 AND seq = ANY($2) ORDER BY seq";
/// A replayed entry becomes its room's first unless an earlier one waits.
const REQUEUE: &str = "INSERT INTO outbox (app, room_id, seq, attempts, due_ms) \
    VALUES ($1, $2, $3, 0, 0) ON CONFLICT (app, room_id) DO UPDATE \
    SET seq = EXCLUDED.seq, attempts = 0, due_ms = 0, lease_until_ms = 0 \
    WHERE outbox.seq > EXCLUDED.seq";
const BACKLOG: &str = "SELECT \
    (SELECT COUNT(*) FROM feed WHERE app = $1 AND state = 1), \
    (SELECT COUNT(*) FROM feed WHERE app = $1 AND state = 2), \
    (SELECT at_ms FROM feed WHERE app = $1 AND state = 1 ORDER BY seq LIMIT 1)";
const SWEEP_FEED: &str = "DELETE FROM feed WHERE (app, seq) IN \
    (SELECT app, seq FROM feed WHERE state = $1 AND at_ms < $2 LIMIT $3)";

/// The entry of a row of [`ENTRY_COLUMNS`] (from `at`).
fn entry_of(row: &Row, at: usize) -> Result<FeedEntry, Failure> {
    let room = RoomId::parse(row.get::<_, String>(at + 1))
        .map_err(|_| Failure::Malformed(Malformed("room id")))?;
    Ok(codec::decode_feed(
        row.get(at + 3),
        unsigned(row.get(at)),
        room,
        unsigned(row.get(at + 2)),
    )?)
}

/// A feed entry to append: its room, who made it, when, and what.
pub(super) struct NewEntry<'a> {
    room: &'a RoomId,
    by: &'a Account,
    at_ms: u64,
    item: FeedItem,
}

/// The statements that append `entries` (in order) to the app's feed, numbered in commit
/// order, queue each room whose entries wait for the webhook, and tell the other nodes.
async fn append_feed<'a>(
    tx: &'a Transaction<'_>,
    inner: &Inner,
    app: AppId,
    entries: Vec<NewEntry<'a>>,
) -> Result<Vec<Pipelined<'a>>, Failure> {
    let mut statements: Vec<Pipelined<'a>> = Vec::new();
    if entries.is_empty() {
        return Ok(statements);
    }
    let app64 = i64::from(app);
    let count = entries.len() as i64;
    let (mut rooms, mut times, mut bodies, mut states) = (
        Vec::with_capacity(entries.len()),
        Vec::with_capacity(entries.len()),
        Vec::with_capacity(entries.len()),
        Vec::with_capacity(entries.len()),
    );
    for entry in &entries {
        let waiting = crate::queued(&inner.outboxes, app, &entry.item);
        rooms.push(entry.room.as_str());
        times.push(big(entry.at_ms));
        bodies.push(codec::encode_feed(entry.by, &entry.item));
        states.push(if waiting { WAITING } else { DONE });
    }
    let append = tx.prepare_cached(APPEND_ENTRIES).await?;
    statements.push(Box::pin(async move {
        tx.execute(&append, &[&app64, &count, &rooms, &times, &bodies, &states])
            .await?;
        Ok(())
    }));
    if inner.notify {
        statements.push(notify_others(tx, inner));
    }
    Ok(statements)
}

async fn settle_one(
    tx: &Transaction<'_>,
    app: i64,
    seq: i64,
    outcome: &Outcome,
) -> Result<(), Failure> {
    let Some(row) = tx
        .query_opt(&tx.prepare_cached(HEAD_ROOM).await?, &[&app, &seq])
        .await?
    else {
        return Ok(());
    };
    let room: String = row.get(0);
    let (state, error) = match outcome {
        Outcome::Retry { at_ms, error } => {
            tx.execute(
                &tx.prepare_cached(SET_STATE).await?,
                &[&app, &seq, &WAITING, error],
            )
            .await?;
            tx.execute(
                &tx.prepare_cached(RETRY_AT).await?,
                &[&app, &room, &big(*at_ms)],
            )
            .await?;
            return Ok(());
        }
        Outcome::Delivered => (DONE, ""),
        Outcome::Park { error } => (PARKED, error.as_str()),
    };
    tx.execute(
        &tx.prepare_cached(SET_STATE).await?,
        &[&app, &seq, &state, &error],
    )
    .await?;
    match tx
        .query_opt(
            &tx.prepare_cached(NEXT_WAITING).await?,
            &[&app, &room, &seq],
        )
        .await?
    {
        Some(next) => {
            let (next, at_ms): (i64, i64) = (next.get(0), next.get(1));
            tx.execute(
                &tx.prepare_cached(MOVE_HEAD).await?,
                &[&app, &room, &next, &at_ms],
            )
            .await?
        }
        None => {
            tx.execute(&tx.prepare_cached(DROP_HEAD).await?, &[&app, &room])
                .await?
        }
    };
    Ok(())
}

/// Applies queued member records in call order, a batch per transaction.
async fn record_members(inner: Arc<Inner>, mut queue: mpsc::Receiver<MembersJob>) {
    let mut batch = Vec::with_capacity(MEMBERS_BATCH);
    while queue.recv_many(&mut batch, MEMBERS_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let outcome = inner
            .transact("recording members", |client| {
                let (inner, jobs) = (&*inner, &jobs);
                committed!(client, tx => {
                    // Every room's lookup at once (pipelined).
                    let head = tx.prepare_cached(SELECT_HEAD).await?;
                    let found = futures_util::future::try_join_all(jobs.iter().map(|job| {
                        let (app, head) = (i64::from(job.app), &head);
                        let tx = &tx;
                        async move {
                            let row = tx.query_opt(head, &[&app, &job.room.as_str()]).await?;
                            Ok::<_, Failure>(row.is_some())
                        }
                    }))
                    .await?;
                    let mut entries: BTreeMap<AppId, Vec<NewEntry<'_>>> = BTreeMap::new();
                    for (job, &exists) in jobs.iter().zip(&found) {
                        if exists {
                            entries.entry(job.app).or_default().push(NewEntry {
                                room: &job.room,
                                by: &job.by,
                                at_ms: job.now.as_millis() as u64,
                                item: FeedItem::Members(job.change.clone()),
                            });
                        }
                    }
                    let mut statements = Vec::new();
                    for (app, entries) in entries {
                        statements.extend(append_feed(&tx, inner, app, entries).await?);
                    }
                    futures_util::future::try_join_all(statements).await?;
                    Ok(found)
                })
            })
            .await;
        match outcome {
            Ok(found) => {
                inner.committed.notify_one();
                for (job, exists) in jobs.into_iter().zip(found) {
                    let answer = if exists {
                        Ok(())
                    } else {
                        Err(DomainError::RoomNotFound.into())
                    };
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

// ---- the traits ---------------------------------------------------------------------------

impl RoomStore for PostgresStore {
    fn write(
        &self,
        app: AppId,
        by: Account,
        operation: Box<dyn RoomOperation>,
        now: Duration,
    ) -> impl Future<Output = StoreResult<Committed>> + Send {
        // Queued now, like SQLite's writes: one caller's writes apply in call order.
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            app,
            by,
            operation,
            now,
            reply,
        };
        submit(&self.writes, job, answer)
    }

    async fn room(&self, app: AppId, room: &RoomId) -> StoreResult<Option<Arc<RoomState>>> {
        let sql = select_state("");
        self.inner
            .read("read", |client| async move {
                let row = client
                    .query_opt(
                        &client.prepare_cached(&sql).await?,
                        &[&i64::from(app), &room.as_str()],
                    )
                    .await?;
                match row {
                    Some(row) => Ok(Some(Arc::new(state_of(&row)?))),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn count(&self, app: AppId, room: &RoomId, counted: RoomStats) -> StoreResult<()> {
        let _writing = self.inner.enter()?;
        let params = (big(counted.viewers), big(counted.messages));
        self.inner
            .transact("count", |client| {
                committed!(client, tx => {
                    let found = tx
                        .execute(
                            &tx.prepare_cached(COUNT).await?,
                            &[&i64::from(app), &room.as_str(), &params.0, &params.1],
                        )
                        .await?;
                    if found == 0 {
                        return Err(DomainError::RoomNotFound.into());
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn stats(&self, app: AppId, room: &RoomId) -> StoreResult<Option<RoomStats>> {
        self.inner
            .read("read", |client| async move {
                let row = client
                    .query_opt(
                        &client.prepare_cached(SELECT_STATS).await?,
                        &[&i64::from(app), &room.as_str()],
                    )
                    .await?;
                Ok(row.map(|row| RoomStats {
                    viewers: unsigned(row.get(0)),
                    messages: unsigned(row.get(1)),
                }))
            })
            .await
    }

    async fn list_rooms(
        &self,
        app: AppId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> StoreResult<Vec<Room>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .read("list", |client| async move {
                let app = i64::from(app);
                let rows = match &after {
                    None => {
                        client
                            .query(&client.prepare_cached(LIST_FIRST).await?, &[&app, &limit])
                            .await?
                    }
                    Some(p) => {
                        let (views, created) = (big(p.view_count), big(p.create_time));
                        let id = p.room_id.as_str();
                        client
                            .query(
                                &client.prepare_cached(LIST_AFTER).await?,
                                &[&app, &views, &created, &id, &limit],
                            )
                            .await?
                    }
                };
                rows.iter()
                    .map(|row| {
                        let mut room = codec::decode_room_text(row.get(0))?;
                        room.view_count = unsigned(row.get(1));
                        Ok(room)
                    })
                    .collect()
            })
            .await
    }
}

impl EventLog for PostgresStore {
    async fn events_after(
        &self,
        app: AppId,
        room: &RoomId,
        after: Position,
        limit: usize,
    ) -> StoreResult<Since> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let inner = &*self.inner;
        let mut client = get(&inner.pool).await?;
        let outcome = async {
            // One snapshot for the events and the head they are compared with.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let app = i64::from(app);
            let rows = tx
                .query(
                    &tx.prepare_cached(SELECT_EVENTS).await?,
                    &[
                        &app,
                        &room.as_str(),
                        &big(after.incarnation),
                        &big(after.seq),
                        &limit,
                    ],
                )
                .await?;
            let head = tx
                .query_opt(
                    &tx.prepare_cached(SELECT_HEAD).await?,
                    &[&app, &room.as_str()],
                )
                .await?
                .map(|row| Position {
                    incarnation: unsigned(row.get(0)),
                    seq: unsigned(row.get(1)),
                });
            tx.commit().await?;
            let held = rows
                .iter()
                .map(|row| {
                    Ok(RoomEvent {
                        app: app as AppId,
                        room: room.clone(),
                        position: Position {
                            incarnation: after.incarnation,
                            seq: unsigned(row.get(0)),
                        },
                        at_ms: unsigned(row.get(1)),
                        change: codec::decode_change(row.get(2))?,
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            Ok::<_, Failure>(crate::since(after, held, head))
        }
        .await;
        outcome.map_err(|f| inner.unavailable("read", f))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<[RoomEvent]>> {
        self.inner.bus.subscribe()
    }
}

impl AccountStore for PostgresStore {
    async fn import_accounts(
        &self,
        app: AppId,
        accounts: NewAccounts,
        if_exists: IfExists,
    ) -> StoreResult<()> {
        let _writing = self.inner.enter()?;
        let accounts = &accounts;
        self.inner
            .transact("import accounts", |client| {
                committed!(client, tx => {
                    let app = i64::from(app);
                    let names: Vec<&str> = accounts.iter().map(|(a, _)| a.as_str()).collect();
                    let known: Vec<String> = tx
                        .query(
                            "SELECT user_id FROM accounts WHERE app = $1 AND user_id = ANY($2)",
                            &[&app, &names],
                        )
                        .await?
                        .iter()
                        .map(|row| row.get(0))
                        .collect();
                    let create = liveroom_domain::accounts_to_create(accounts, if_exists, |a| {
                        known.iter().any(|k| k == a.as_str())
                    })?;
                    for (account, profile) in create {
                        tx.execute(
                            "INSERT INTO accounts VALUES ($1, $2, $3)",
                            &[&app, &account.as_str(), &codec::encode_profile(profile)],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn profiles(
        &self,
        app: AppId,
        accounts: Vec<Account>,
    ) -> StoreResult<Vec<Option<Profile>>> {
        self.inner
            .read("read", |client| async move {
                let names: Vec<&str> = accounts.iter().map(Account::as_str).collect();
                let rows = client
                    .query(
                        &client.prepare_cached(SELECT_PROFILES).await?,
                        &[&i64::from(app), &names],
                    )
                    .await?;
                let mut found = HashMap::with_capacity(rows.len());
                for row in &rows {
                    let user: &str = row.get(0);
                    found.insert(user.to_owned(), codec::decode_profile(row.get(1))?);
                }
                Ok(names.iter().map(|name| found.get(*name).cloned()).collect())
            })
            .await
    }

    async fn set_profile(&self, app: AppId, account: Account, changes: Profile) -> StoreResult<()> {
        let _writing = self.inner.enter()?;
        let (account, changes) = (&account, &changes);
        self.inner
            .transact("set profile", |client| committed!(client, tx => {
                let key: [&(dyn ToSql + Sync); 2] = [&i64::from(app), &account.as_str()];
                let row = tx
                    .query_opt(
                        "SELECT profile FROM accounts WHERE app = $1 AND user_id = $2 FOR UPDATE",
                        &key,
                    )
                    .await?
                    .ok_or(DomainError::AccountNotFound)?;
                let mut profile = codec::decode_profile(row.get(0))?;
                profile.merge(changes);
                tx.execute(
                    "UPDATE accounts SET profile = $3 WHERE app = $1 AND user_id = $2",
                    &[key[0], key[1], &codec::encode_profile(&profile)],
                )
                .await?;
                Ok(())
            }))
            .await
    }
}

impl Feed for PostgresStore {
    fn record_members(
        &self,
        app: AppId,
        room: &RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        // Queued now, like SQLite's writes: one caller's records apply in call order.
        let (reply, answer) = oneshot::channel();
        let job = MembersJob {
            app,
            room: room.clone(),
            by,
            change,
            now,
            reply,
        };
        submit(&self.members, job, answer)
    }

    async fn feed(
        &self,
        app: AppId,
        room: Option<&RoomId>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<FeedEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .read("read", |client| async move {
                let (app, after) = (i64::from(app), big(after));
                let rows = match room {
                    None => {
                        let sql = format!(
                            "SELECT {ENTRY_COLUMNS} FROM feed WHERE app = $1 AND seq > $2 \
                             ORDER BY seq LIMIT $3"
                        );
                        client
                            .query(&client.prepare_cached(&sql).await?, &[&app, &after, &limit])
                            .await?
                    }
                    Some(room) => {
                        let sql = format!(
                            "SELECT {ENTRY_COLUMNS} FROM feed WHERE app = $1 AND room_id = $4 \
                             AND seq > $2 ORDER BY seq LIMIT $3"
                        );
                        client
                            .query(
                                &client.prepare_cached(&sql).await?,
                                &[&app, &after, &limit, &room.as_str()],
                            )
                            .await?
                    }
                };
                rows.iter().map(|row| entry_of(row, 0)).collect()
            })
            .await
    }
}

impl Outbox for PostgresStore {
    async fn due(
        &self,
        app: AppId,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<RoomId>,
    ) -> StoreResult<Vec<Pending>> {
        let inner = &*self.inner;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let busy: &Vec<&str> = &busy.iter().map(RoomId::as_str).collect();
        let until = big(now_ms.saturating_add(inner.lease.as_millis() as u64));
        let mut due = inner
            .transact("reading the outbox", |client| {
                committed!(client, tx => {
                    // A lease lost in a crash only lets another node send the entry again, which
                    // at-least-once allows: not worth an fsync per read.
                    tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
                    let rows = tx
                        .query(
                            &tx.prepare_cached(DUE).await?,
                            &[&i64::from(app), &big(now_ms), &inner.node, &limit, &until, busy],
                        )
                        .await?;
                    rows.iter()
                        .map(|row| {
                            let pending = Pending {
                                entry: entry_of(row, 0)?,
                                attempts: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
                            };
                            Ok((row.get::<_, i64>(5), pending))
                        })
                        .collect::<Result<Vec<_>, Failure>>()
                })
            })
            .await?;
        due.sort_by_key(|(due_ms, pending)| (*due_ms, pending.entry.seq));
        Ok(due.into_iter().map(|(_, pending)| pending).collect())
    }

    async fn settle(&self, app: AppId, outcomes: Vec<(u64, Outcome)>) -> StoreResult<()> {
        let _writing = self.inner.enter()?;
        let outcomes = &outcomes;
        self.inner
            .transact("recording deliveries", |client| {
                committed!(client, tx => {
                    for (seq, outcome) in outcomes {
                        settle_one(&tx, i64::from(app), big(*seq), outcome).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn parked(&self, app: AppId, after: u64, limit: usize) -> StoreResult<Vec<Parked>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .read("read", |client| async move {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS}, error FROM feed WHERE app = $1 AND state = 2 \
                     AND seq > $2 ORDER BY seq LIMIT $3"
                );
                let rows = client
                    .query(
                        &client.prepare_cached(&sql).await?,
                        &[&i64::from(app), &big(after), &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Parked {
                            entry: entry_of(row, 0)?,
                            error: row.get(4),
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn replay(&self, app: AppId, seqs: Option<Vec<u64>>) -> StoreResult<u64> {
        let _writing = self.inner.enter()?;
        let seqs: Option<Vec<i64>> = seqs.map(|s| s.into_iter().map(big).collect());
        let seqs = &seqs;
        self.inner
            .transact("replay", |client| {
                committed!(client, tx => {
                    let app = i64::from(app);
                    let rows = match seqs {
                        None => tx.query(&tx.prepare_cached(ALL_PARKED).await?, &[&app]).await?,
                        Some(seqs) => tx.query(&tx.prepare_cached(SOME_PARKED).await?, &[&app, seqs]).await?,
                    };
                    for row in &rows {
                        let (seq, room): (i64, &str) = (row.get(0), row.get(1));
                        tx.execute(&tx.prepare_cached(SET_STATE).await?, &[&app, &seq, &WAITING, &""]).await?;
                        tx.execute(&tx.prepare_cached(REQUEUE).await?, &[&app, &room, &seq]).await?;
                    }
                    Ok(rows.len() as u64)
                })
            })
            .await
    }

    async fn backlog(&self, app: AppId) -> StoreResult<Backlog> {
        self.inner
            .read("read", |client| async move {
                let row = client
                    .query_one(&client.prepare_cached(BACKLOG).await?, &[&i64::from(app)])
                    .await?;
                Ok(Backlog {
                    pending: unsigned(row.get(0)),
                    parked: unsigned(row.get(1)),
                    oldest_pending_ms: row.get::<_, Option<i64>>(2).map(unsigned),
                })
            })
            .await
    }
}

const SELECT_PROFILES: &str =
    "SELECT user_id, profile FROM accounts WHERE app = $1 AND user_id = ANY($2)";
const APPS: &str = "SELECT app FROM rooms UNION SELECT app FROM accounts ORDER BY app";
const SAVED_ROOMS: &str = "SELECT room, metadata, people, incarnation, seq, view_count, messages \
    FROM rooms WHERE app = $1 AND room_id > $2 ORDER BY room_id LIMIT $3";
const SAVED_ACCOUNTS: &str = "SELECT user_id, profile FROM accounts \
    WHERE app = $1 AND user_id > $2 ORDER BY user_id LIMIT $3";

impl Backup for PostgresStore {
    fn restore_rooms(
        &self,
        app: AppId,
        rooms: Vec<Saved>,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.import_rooms(app, rooms)
    }

    async fn apps(&self) -> StoreResult<Vec<AppId>> {
        self.inner
            .read("read", |client| async move {
                let rows = client
                    .query(&client.prepare_cached(APPS).await?, &[])
                    .await?;
                Ok(rows
                    .iter()
                    .filter_map(|row| AppId::try_from(row.get::<_, i64>(0)).ok())
                    .collect())
            })
            .await
    }

    async fn saved_rooms(
        &self,
        app: AppId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> StoreResult<Vec<Saved>> {
        let after = after.map_or("", RoomId::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .read("read", |client| async move {
                let rows = client
                    .query(
                        &client.prepare_cached(SAVED_ROOMS).await?,
                        &[&i64::from(app), &after, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        let state = state_of(row)?;
                        Ok(Saved {
                            room: state.room,
                            metadata: state.metadata,
                            people: state.people,
                            messages: unsigned(row.get(6)),
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn saved_accounts(
        &self,
        app: AppId,
        after: Option<&Account>,
        limit: usize,
    ) -> StoreResult<Vec<(Account, Profile)>> {
        let after = after.map_or("", Account::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.inner
            .read("read", |client| async move {
                let rows = client
                    .query(
                        &client.prepare_cached(SAVED_ACCOUNTS).await?,
                        &[&i64::from(app), &after, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        let account = Account::parse("account", row.get::<_, String>(0))
                            .map_err(|_| Malformed("account"))?;
                        Ok((account, codec::decode_profile(row.get(1))?))
                    })
                    .collect()
            })
            .await
    }
}

impl crate::Shared for PostgresStore {
    fn shares_presence(&self) -> bool {
        true
    }

    fn report_members(
        &self,
        changes: Vec<crate::Reported>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        // Queued now: one node's reports apply in call order.
        let (reply, answer) = oneshot::channel();
        submit(&self.shared, shared::Job::Report(changes, reply), answer)
    }

    async fn members(
        &self,
        app: AppId,
        room: &RoomId,
        robots: &BTreeSet<Account>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<crate::Roster> {
        shared::members(&self.inner, app, room, robots, after, limit).await
    }

    async fn returning(
        &self,
        app: AppId,
        room: &RoomId,
        account: &str,
        since_ms: u64,
    ) -> StoreResult<crate::Returning> {
        shared::returning(&self.inner, (app, room, account), since_ms).await
    }

    async fn end_interruption(
        &self,
        app: AppId,
        room: &RoomId,
        account: &str,
    ) -> StoreResult<bool> {
        shared::end_interruption(&self.inner, (app, room, account)).await
    }

    async fn sweep_members(&self, now: Duration) -> StoreResult<crate::Swept> {
        let _writing = self.inner.enter()?;
        shared::sweep(&self.inner, now).await
    }

    fn relay(&self, app: AppId, room: &RoomId, relay: crate::Relay) {
        let job = shared::Job::Frame {
            app,
            room: room.clone(),
            at_ms: big(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64),
            relay,
        };
        // Best effort: a full queue (or a closed store) drops the frame.
        if !matches!(enqueue(&self.shared, job), Ok(None)) {
            tracing::warn!(
                "postgres store: a live frame for other nodes dropped: its queue is full"
            );
        }
    }

    fn relayed(&self) -> Option<broadcast::Receiver<Arc<[crate::Relayed]>>> {
        Some(self.relayed.subscribe())
    }
}

impl Store for PostgresStore {
    fn shares_rate_limits(&self) -> bool {
        true
    }

    async fn take_tokens(
        &self,
        app: AppId,
        bucket: &'static str,
        debit: Debit,
        now: Duration,
    ) -> StoreResult<bool> {
        if !bucket.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(StoreError::Unavailable(format!(
                "bad bucket name {bucket:?}"
            )));
        }
        let interval = 1_000_000_000 / i64::from(debit.per_second.max(1));
        let cost = interval * i64::from(debit.tokens);
        let tolerance = interval * i64::from(debit.burst);
        let now = i64::try_from(now.as_nanos()).unwrap_or(i64::MAX);
        // One round trip, and no fsync to wait for: a debit lost in a crash of PostgreSQL
        // admits at most what it covered once more. Every value is an integer or a command's
        // name (checked above), so the statement can be written out.
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = off; \
             INSERT INTO rate_buckets VALUES ({app}, '{bucket}', {now} + {cost}) \
             ON CONFLICT (app, bucket) DO UPDATE \
             SET tat_ns = GREATEST(rate_buckets.tat_ns, {now}) + {cost} \
             WHERE GREATEST(rate_buckets.tat_ns, {now}) + {cost} - {now} <= {tolerance} \
             RETURNING tat_ns; COMMIT"
        );
        self.inner
            .read("rate limit", |client| async move {
                match client.simple_query(&sql).await {
                    Ok(answers) => Ok(answers
                        .iter()
                        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))),
                    Err(error) => {
                        // The connection goes back to the pool: not inside a failed transaction.
                        let _ = client.batch_execute("ROLLBACK").await;
                        Err(error.into())
                    }
                }
            })
            .await
    }

    async fn ready(&self) -> StoreResult<()> {
        if self.inner.gate.is_closed() {
            return Err(closed());
        }
        self.inner
            .read("readiness check", |client| async move {
                client.batch_execute("SELECT 1").await?;
                Ok(())
            })
            .await
    }

    async fn close(&self) {
        // No new write is queued; the writer task finishes the queued ones, then ends.
        self.writes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.members
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.shared
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Waits for the other writes in progress, and lets no new one start.
        if let Ok(all) = self.inner.gate.acquire_many(GATE).await {
            all.forget();
            self.inner.gate.close();
        }
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
        // After the reports queued before the stop: the node's members leave with it.
        shared::deregister(&self.inner).await;
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

#[cfg(test)]
mod tests;
