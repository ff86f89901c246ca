//! The default backend: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Writes go to one writer thread (see `writer`), which commits whatever is queued as one
//! transaction: one fsync for the whole batch. Reads use a small pool of read-only
//! connections, off the async workers, and never wait for the writer; WAL lets them read the
//! last commit while a new one is being written. Room reads are mostly answered from memory
//! (`cache`), fed by the writer with each committed event; the WAL is copied back into the
//! database mostly by a thread of its own (`checkpointer`). A lock file keeps a second
//! process off the same database.

mod cache;
mod checkpointer;
mod feed;
mod sql;
mod writer;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::atomic::AtomicU64;

use liveroom_domain::{
    Account, AppId, FeedEntry, IfExists, ListPosition, MemberChange, NewAccounts, Position,
    Profile, Room, RoomEvent, RoomId, RoomOperation, RoomState, RoomStats,
};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{
    AccountStore, Backlog, Backup, Committed, EventBus, EventLog, Feed, Outbox, Outboxes, Outcome,
    Parked, Pending, Retention, RoomStore, Saved, Since, Store, StoreError, StoreResult,
};
use cache::RoomCache;
use checkpointer::Checkpointer;
use writer::{AccountWrite, Context, Job, Write};

/// How long a connection waits for a lock held by another connection of this process
/// (readers during a checkpoint), or by another program that ignores the lock file (the
/// `sqlite3` shell), before failing: a batch that cannot get the write lock answers
/// `Unavailable` after this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rooms per transaction in [`SqliteStore::import_rooms`]: big enough that fsyncs do not
/// matter, small enough that the WAL stays a few megabytes.
const IMPORT_CHUNK: usize = 10_000;

/// Where and how to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file; missing parent directories are created.
    pub path: PathBuf,
    /// Most requests committed together.
    pub max_batch: usize,
    /// Read-only connections in the read pool.
    pub readers: usize,
    /// Most memory, in bytes, spent keeping rooms for reads; 0 turns the cache off.
    pub metadata_cache_bytes: u64,
    /// Writes that may wait for the writer; a caller beyond that waits for room in the queue.
    pub queue: usize,
    /// How much history the event log and the feeds keep.
    pub retention: Retention,
    /// Which feed entries wait for a webhook.
    pub outboxes: Outboxes,
}

impl SqliteOptions {
    /// About 380,000 rooms with three 100-byte values each, whole rooms being cached.
    pub const DEFAULT_METADATA_CACHE_BYTES: u64 = 512 * 1024 * 1024;

    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_batch: 512,
            readers: 4,
            metadata_cache_bytes: Self::DEFAULT_METADATA_CACHE_BYTES,
            queue: 8192,
            retention: Retention::default(),
            outboxes: Outboxes::default(),
        }
    }
}

/// The durable store. A write's future resolves after the commit that holds it returned, i.e.
/// after its fsync. Writes are queued when the method is called (not when the future is first
/// polled), so one caller's writes apply in call order.
pub struct SqliteStore {
    /// `None` once closing began.
    jobs: RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Closed (never sent to) when the writer thread has finished; `close` waits for that.
    writer_done: watch::Receiver<()>,
    readers: Arc<Readers>,
    /// Shared with the writer thread, which keeps it current.
    cache: Arc<RoomCache>,
    bus: EventBus,
    /// Held for the store's lifetime. The writer thread holds a clone, so the lock is released
    /// only after the read-write connection is closed.
    _lock: Arc<File>,
}

impl SqliteStore {
    /// Opens (or creates) the database, taking the data directory's process lock.
    pub fn open(options: SqliteOptions) -> StoreResult<Self> {
        let path = options.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock = Arc::new(lock_data_dir(&path)?);
        let mut conn = open_writer(&path)?;
        let readers = (0..options.readers.max(1))
            .map(|_| open_reader(&path).map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;

        let (jobs, queue) = mpsc::channel(options.queue.max(1));
        let (done, writer_done) = watch::channel(());
        let cache = Arc::new(RoomCache::new(options.metadata_cache_bytes));
        let bus = EventBus::default();
        let context = Context {
            cache: Arc::clone(&cache),
            outboxes: options.outboxes,
            bus: bus.clone(),
            retention: options.retention,
            max_batch: options.max_batch.max(1),
        };
        let thread_lock = Arc::clone(&lock);
        let checkpointer = Checkpointer::start(&path, &mut conn)?;
        let writer = std::thread::Builder::new()
            // At most 15 bytes: Linux cuts thread names there, and tools show that much.
            .name("liveroom-writer".into())
            .spawn(move || {
                let _lock = thread_lock;
                let _done = done;
                writer::run(conn, queue, &context, checkpointer);
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs: RwLock::new(Some(jobs)),
            writer: Mutex::new(Some(writer)),
            writer_done,
            readers: Arc::new(Readers {
                conns: readers.into(),
                next: AtomicUsize::new(0),
            }),
            cache,
            bus,
            _lock: lock,
        })
    }

    /// Loads rooms exactly as given (times, counters and revision included) into `app`, for
    /// benchmarks and tests. Commits in transactions of 10,000 rooms, each all or nothing; on an
    /// error (a RoomId that exists, metadata over the limits) the transactions before it stay
    /// and nothing after it is loaded. Returns how many rooms were loaded.
    pub async fn import_rooms<I>(&self, app: AppId, rooms: I) -> StoreResult<usize>
    where
        I: IntoIterator<Item: Into<Saved>>,
    {
        let mut rooms = rooms.into_iter().map(Into::into);
        let mut imported = 0;
        let mut chunk: Vec<_> = rooms.by_ref().take(IMPORT_CHUNK).collect();
        while !chunk.is_empty() {
            let count = chunk.len();
            let answer = self.submit(Write::Import { app, rooms: chunk });
            // Build the next chunk while the writer commits this one.
            chunk = rooms.by_ref().take(IMPORT_CHUNK).collect();
            answer.await?;
            imported += count;
        }
        Ok(imported)
    }

    /// Queues `write` now if the queue has room (so one caller's writes apply in call order);
    /// otherwise the returned future waits for room first.
    fn submit(
        &self,
        write: Write,
    ) -> impl Future<Output = StoreResult<Committed>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let job = Job { write, reply };
        let waiting = self.jobs().and_then(|jobs| match jobs.try_send(job) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(job)) => Ok(Some((jobs, job))),
            Err(TrySendError::Closed(_)) => Err(writer_stopped()),
        });
        async move {
            if let Some((jobs, job)) = waiting? {
                jobs.send(job).await.map_err(|_| writer_stopped())?;
            }
            answer.await.unwrap_or_else(|_| Err(writer_stopped()))
        }
    }

    fn jobs(&self) -> StoreResult<mpsc::Sender<Job>> {
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        jobs.clone()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))
    }

    /// Runs `read` on a pooled connection on a blocking thread, off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.with(read))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("a read panicked".into())))
    }

    /// Tests: returns once the writer is parked inside a batch; it stays there until the
    /// returned sender sends or is dropped. Writes queued meanwhile form the next batch.
    #[cfg(test)]
    fn hold_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (held, is_held) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel();
        drop(self.submit(Write::Hold { held, go: wait }));
        is_held.recv().unwrap();
        go
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the store's writer thread stopped".into())
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and end; joining it makes
        // sure the database and its lock are released when the store is gone.
        self.jobs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = writer.take()
            && handle.join().is_err()
        {
            tracing::error!("sqlite store: the writer thread panicked");
        }
    }
}

/// `<db>.lock` beside the database, exclusively locked for as long as the file stays open.
fn lock_data_dir(db: &Path) -> StoreResult<File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "another liveroom process is using the data directory ({} is locked)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
}

/// As [`open_error`], with the operating system's reason for an I/O error, and a hint when
/// SQLite could not open or create a file: it needs `-wal` and `-shm` files beside the database.
fn conn_error(path: &Path, conn: &Connection, error: rusqlite::Error) -> StoreError {
    let hint = match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::CannotOpen) => format!(
            "; SQLite creates {name}-wal and {name}-shm beside {name}, so their directory \
             must be writable",
            name = path.file_name().unwrap_or_default().to_string_lossy()
        ),
        _ => String::new(),
    };
    let error = writer::describe(conn, &error);
    StoreError::Unavailable(format!("cannot open {}: {error}{hint}", path.display()))
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(32);
    // Without the query planner stability guarantee, SQLite marks statements whose plan might
    // depend on a bound value and re-prepares them whenever that value changes: measured here,
    // a quarter of a metadata read's CPU went to re-parsing its SQL on every call.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    let fail = |e| conn_error(path, &conn, e);
    // SQLite quietly opens a file it may not write read-only; every write would then fail
    // until a restart, even after the file became writable again. Refuse to start instead.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
        return Err(StoreError::Unavailable(format!(
            "cannot open {} for writing (read-only file or file system?)",
            path.display()
        )));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL mode (journal mode is {mode})",
            path.display()
        )));
    }
    configure(&conn).map_err(fail)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Creates the schema in a new database, upgrades one written by an older liveroom (every
/// step from its version on, in one transaction), and refuses one written by a newer liveroom.
fn migrate(conn: &Connection, path: &Path) -> StoreResult<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| conn_error(path, conn, e))?;
    let steps = match version {
        0 => sql::SCHEMA.to_owned(),
        sql::SCHEMA_VERSION => return Ok(()),
        1..sql::SCHEMA_VERSION => sql::UPGRADES[version as usize - 1..].concat(),
        other => {
            return Err(StoreError::Unavailable(format!(
                "{} has schema version {other}, which this liveroom does not know (it knows \
                 version {}); was it written by a newer liveroom?",
                path.display(),
                sql::SCHEMA_VERSION
            )));
        }
    };
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {steps} PRAGMA user_version = {}; COMMIT;",
        sql::SCHEMA_VERSION
    ))
    .map_err(|e| {
        let error = conn_error(path, conn, e);
        // Whatever failed, nothing of the upgrade stays.
        let _ = conn.execute_batch("ROLLBACK");
        error
    })
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    configure(&conn).map_err(|e| conn_error(path, &conn, e))?;
    Ok(conn)
}

/// Read-only connections, each used by one reader at a time.
struct Readers {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl Readers {
    /// Runs `read` on a free connection, or waits for one when all are busy. Reads are short
    /// indexed lookups, so running them on the caller's thread costs less than handing them off.
    fn with<T>(&self, read: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let free = (0..n).find_map(|i| match self.conns[(start + i) % n].try_lock() {
            Ok(conn) => Some(conn),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        });
        let mut conn: MutexGuard<'_, Connection> = free.unwrap_or_else(|| {
            self.conns[start % n]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        });
        read(&mut conn).map_err(|e| writer::unavailable(&conn, "read", &e))
    }
}

impl RoomStore for SqliteStore {
    fn write(
        &self,
        app: AppId,
        by: Account,
        operation: Box<dyn RoomOperation>,
        now: Duration,
    ) -> impl Future<Output = StoreResult<Committed>> + Send {
        self.submit(Write::Room {
            app,
            by,
            operation,
            now,
        })
    }

    async fn room(&self, app: AppId, room: &RoomId) -> StoreResult<Option<Arc<RoomState>>> {
        // Taken before the read transaction begins (see `cache`).
        let ticket = match self.cache.get(app, room.as_str()) {
            Ok(state) => return Ok(Some(state)),
            Err(ticket) => ticket,
        };
        let id = room.clone();
        let state = self
            .read(move |conn| sql::load_state(conn, app, &id))
            .await?;
        let state = state.map(Arc::new);
        if let Some(state) = &state {
            self.cache
                .fill(ticket, app, room.as_str(), Arc::clone(state));
        }
        Ok(state)
    }

    async fn count(&self, app: AppId, room: &RoomId, counted: RoomStats) -> StoreResult<()> {
        let room = room.clone();
        self.submit(Write::Count { app, room, counted }).await?;
        Ok(())
    }

    async fn stats(&self, app: AppId, room: &RoomId) -> StoreResult<Option<RoomStats>> {
        let id = room.clone();
        self.read(move |conn| sql::load_stats(conn, app, &id)).await
    }

    async fn list_rooms(
        &self,
        app: AppId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> StoreResult<Vec<Room>> {
        self.read(move |conn| {
            let snapshot = conn.transaction()?;
            sql::list_rooms(&snapshot, app, after.as_ref(), limit)
        })
        .await
    }
}

impl EventLog for SqliteStore {
    async fn events_after(
        &self,
        app: AppId,
        room: &RoomId,
        after: Position,
        limit: usize,
    ) -> StoreResult<Since> {
        let id = room.clone();
        self.read(move |conn| {
            let snapshot = conn.transaction()?;
            let (held, head) = sql::load_events(&snapshot, app, &id, after, limit)?;
            Ok(crate::since(after, held, head))
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<[RoomEvent]>> {
        self.bus.subscribe()
    }
}

impl AccountStore for SqliteStore {
    async fn import_accounts(
        &self,
        app: AppId,
        accounts: NewAccounts,
        if_exists: IfExists,
    ) -> StoreResult<()> {
        let write = AccountWrite::Import {
            accounts,
            if_exists,
        };
        self.submit(Write::Account { app, write }).await.map(drop)
    }

    async fn profiles(
        &self,
        app: AppId,
        accounts: Vec<Account>,
    ) -> StoreResult<Vec<Option<Profile>>> {
        self.read(move |conn| {
            let snapshot = conn.transaction()?;
            accounts
                .iter()
                .map(|account| sql::load_profile(&snapshot, app, account))
                .collect()
        })
        .await
    }

    async fn set_profile(&self, app: AppId, account: Account, changes: Profile) -> StoreResult<()> {
        let write = AccountWrite::SetProfile { account, changes };
        self.submit(Write::Account { app, write }).await.map(drop)
    }
}

impl Feed for SqliteStore {
    fn record_members(
        &self,
        app: AppId,
        room: &RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        // Queued now, like `write`: one caller's records apply in call order.
        let queued = self.submit(Write::Members {
            app,
            room: room.clone(),
            by,
            change,
            now,
        });
        async move { queued.await.map(drop) }
    }

    async fn feed(
        &self,
        app: AppId,
        room: Option<&RoomId>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<FeedEntry>> {
        let room = room.cloned();
        self.read(move |conn| feed::read(conn, app, room.as_ref(), after, limit))
            .await
    }
}

impl Outbox for SqliteStore {
    async fn due(
        &self,
        app: AppId,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<RoomId>,
    ) -> StoreResult<Vec<Pending>> {
        let busy = busy.clone();
        self.read(move |conn| feed::due(conn, app, now_ms, limit, &busy))
            .await
    }

    async fn settle(&self, app: AppId, outcomes: Vec<(u64, Outcome)>) -> StoreResult<()> {
        self.submit(Write::Settle { app, outcomes }).await.map(drop)
    }

    async fn parked(&self, app: AppId, after: u64, limit: usize) -> StoreResult<Vec<Parked>> {
        self.read(move |conn| feed::parked(conn, app, after, limit))
            .await
    }

    async fn replay(&self, app: AppId, seqs: Option<Vec<u64>>) -> StoreResult<u64> {
        let replayed = Arc::new(AtomicU64::new(0));
        let write = Write::Replay {
            app,
            seqs,
            replayed: Arc::clone(&replayed),
        };
        self.submit(write).await?;
        Ok(replayed.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn backlog(&self, app: AppId) -> StoreResult<Backlog> {
        self.read(move |conn| feed::backlog(conn, app)).await
    }
}

impl Backup for SqliteStore {
    fn restore_rooms(
        &self,
        app: AppId,
        rooms: Vec<Saved>,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.import_rooms(app, rooms)
    }

    async fn apps(&self) -> StoreResult<Vec<AppId>> {
        self.read(|conn| sql::apps(conn)).await
    }

    async fn saved_rooms(
        &self,
        app: AppId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> StoreResult<Vec<Saved>> {
        let after = after.map_or_else(String::new, |r| r.as_str().to_owned());
        self.read(move |conn| sql::saved_rooms(conn, app, &after, limit))
            .await
    }

    async fn saved_accounts(
        &self,
        app: AppId,
        after: Option<&Account>,
        limit: usize,
    ) -> StoreResult<Vec<(Account, Profile)>> {
        let after = after.map_or_else(String::new, |a| a.as_str().to_owned());
        self.read(move |conn| sql::saved_accounts(conn, app, &after, limit))
            .await
    }
}

/// One process: presence and live frames stay in it.
impl crate::Shared for SqliteStore {}

impl Store for SqliteStore {
    async fn ready(&self) -> StoreResult<()> {
        if self.jobs()?.is_closed() {
            return Err(writer_stopped());
        }
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn close(&self) {
        self.jobs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Resolves once the writer thread dropped its end: every queued write is answered.
        let _ = self.writer_done.clone().changed().await;
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("sqlite store: the writer thread panicked");
        }
    }
}

#[cfg(test)]
mod tests;
