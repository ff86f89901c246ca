//! The one writer: a dedicated OS thread owning the only read-write connection, doing group
//! commit. On this disk an fsync costs about 0.2 ms whatever it covers, so one commit per batch
//! of queued requests (each in its own SAVEPOINT) multiplies durable throughput while keeping
//! every request all-or-nothing.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use liveroom_domain::{
    Account, AppId, DomainError, FeedItem, IfExists, MemberChange, NewAccounts, Profile,
    RoomChange, RoomId, RoomOperation, RoomStats,
};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::cache::RoomCache;
use super::checkpointer::Checkpointer;
use super::{feed, sql};
use crate::{Committed, EventBus, Outboxes, Outcome, Retention, Saved, StoreError, StoreResult};

/// One request to the writer and where its answer goes.
pub(super) struct Job {
    pub(super) write: Write,
    pub(super) reply: oneshot::Sender<StoreResult<Committed>>,
}

pub(super) enum Write {
    /// A domain operation on one room, decided at `now` on behalf of `by`.
    Room {
        app: AppId,
        by: Account,
        operation: Box<dyn RoomOperation>,
        now: Duration,
    },
    /// Members who came or went, for the app's feed.
    Members {
        app: AppId,
        room: RoomId,
        by: Account,
        change: MemberChange,
        now: Duration,
    },
    /// Outcomes of webhook deliveries, by feed entry.
    Settle {
        app: AppId,
        outcomes: Vec<(u64, Outcome)>,
    },
    /// Parked entries queued again (all when `seqs` is `None`); how many, once committed, in
    /// `replayed` (each application of the write overwrites it, and only the last one
    /// commits).
    Replay {
        app: AppId,
        seqs: Option<Vec<u64>>,
        replayed: Arc<AtomicU64>,
    },
    Import {
        app: AppId,
        rooms: Vec<Saved>,
    },
    /// An account write (docs/behaviour.md §13); it touches no room.
    Account {
        app: AppId,
        write: AccountWrite,
    },
    /// Counts added to a room's statistics: its `view_count`, and its messages.
    Count {
        app: AppId,
        room: RoomId,
        counted: RoomStats,
    },
    /// Tests: parks the writer inside a batch (after telling `held`) until `go` fires or is
    /// dropped, so that requests queued meanwhile deterministically form the next batch.
    #[cfg(test)]
    Hold {
        held: std::sync::mpsc::Sender<()>,
        go: std::sync::mpsc::Receiver<()>,
    },
    /// Tests: leaves a deferred foreign-key violation behind, which makes the batch's COMMIT fail.
    #[cfg(test)]
    BreakCommit,
}

impl Write {
    /// Calls `f` with every room the write may change: the ones the cache forgets when the
    /// write's outcome is in doubt.
    fn each_room(&self, mut f: impl FnMut(AppId, &RoomId)) {
        match self {
            Write::Room { app, operation, .. } => f(*app, operation.room()),
            Write::Import { app, rooms } => rooms.iter().for_each(|saved| f(*app, &saved.room.id)),
            Write::Count { app, room, .. } => f(*app, room),
            Write::Account { .. }
            | Write::Members { .. }
            | Write::Settle { .. }
            | Write::Replay { .. } => {}
            #[cfg(test)]
            Write::Hold { .. } | Write::BreakCommit => {}
        }
    }
}

/// What an account write does.
pub(super) enum AccountWrite {
    Import {
        accounts: NewAccounts,
        if_exists: IfExists,
    },
    SetProfile {
        account: Account,
        changes: Profile,
    },
}

/// What the writer needs besides its connection and its queue.
pub(super) struct Context {
    pub(super) cache: Arc<RoomCache>,
    /// Which feed entries wait for a webhook.
    pub(super) outboxes: Outboxes,
    pub(super) bus: EventBus,
    pub(super) retention: Retention,
    pub(super) max_batch: usize,
}

/// Why one request failed: a rule (answered as is) or SQLite (logged, answered `Unavailable`).
enum Failure {
    Rule(DomainError),
    Sql(rusqlite::Error),
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Self::Rule(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

pub(super) fn unavailable(conn: &Connection, what: &str, error: &rusqlite::Error) -> StoreError {
    let error = describe(conn, error);
    tracing::error!(%error, "sqlite store: {what} failed");
    StoreError::Unavailable(format!("{what} failed: {error}"))
}

/// `error` with the operating system's reason when SQLite has one: "disk I/O error" alone does
/// not tell a full disk (EFBIG) from a read-only file (EPERM, EROFS) or a failing device (EIO).
pub(super) fn describe(conn: &Connection, error: &rusqlite::Error) -> String {
    // SQLite records the OS error for I/O errors (and for failed opens, but there it may be
    // the error of a fallback it tried, e.g. ENOENT for a read-only open); for others it would
    // be stale.
    if error.sqlite_error_code() != Some(rusqlite::ErrorCode::SystemIoFailure) {
        return error.to_string();
    }
    // SAFETY: reads the connection's last OS error; the handle is valid while `conn` is.
    match unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) } {
        0 => error.to_string(),
        errno => format!("{error} ({})", std::io::Error::from_raw_os_error(errno)),
    }
}

/// How often the writer forgets destroyed rooms past their retention.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Runs until every sender is gone and the queue is empty, then checkpoints and returns
/// (dropping `conn`).
pub(super) fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    context: &Context,
    checkpointer: Checkpointer,
) {
    let mut batch = Vec::with_capacity(context.max_batch);
    let mut last_sweep = Duration::ZERO;
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        // Lets threads that share this core run first: requests they are parsing join this
        // batch instead of each paying for a commit (and an fsync) of its own. Measured with
        // 10% writes among reads on one core: 25% more requests per second. An idle writer
        // pays one system call.
        std::thread::yield_now();
        while batch.len() < context.max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = batch.iter().filter_map(Job::now).max();
        commit_batch(&conn, context, &mut batch);
        if let Some(now) = now
            && now.saturating_sub(last_sweep) >= SWEEP_EVERY
        {
            // A full sweep may have left more: then the next batch sweeps again.
            if !sweep(&conn, now, &context.retention) {
                last_sweep = now;
            }
        }
    }
    checkpointer.stop(&mut conn);
    checkpoint(&conn);
}

impl Job {
    fn now(&self) -> Option<Duration> {
        match &self.write {
            Write::Room { now, .. } | Write::Members { now, .. } => Some(*now),
            _ => None,
        }
    }
}

/// Forgets destroyed rooms and feed entries whose retention ended by `now`, in its own
/// transaction; returns whether more may be left. Failing loses nothing: the next sweep tries
/// again.
fn sweep(conn: &Connection, now: Duration, retention: &Retention) -> bool {
    let cutoff = |kept: Duration| now.saturating_sub(kept).as_millis() as u64;
    let outcome = (|| {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let rooms = sql::sweep(conn, cutoff(retention.destroyed_room))?;
        let more_entries = feed::sweep(conn, cutoff(retention.feed), cutoff(retention.parked))?;
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(rooms == sql::SWEEP_LIMIT || more_entries)
    })();
    outcome.unwrap_or_else(|e: rusqlite::Error| {
        let error = describe(conn, &e);
        tracing::warn!(%error, "sqlite store: sweeping destroyed rooms and old entries failed");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        false
    })
}

/// Copies the WAL into the database file and empties it, so that after a clean stop the
/// database file alone holds everything (for a backup that copies just that file). Closing
/// would not do it: the read pool's connections are still open then, and SQLite leaves the
/// WAL to the last connection, which is read-only. Failing here loses nothing: the WAL stays
/// and the next open replays it.
fn checkpoint(conn: &Connection) {
    let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match outcome {
        Ok(0) => {}
        Ok(_) => tracing::warn!("sqlite store: final checkpoint incomplete (a read was running)"),
        Err(e) => {
            let error = describe(conn, &e);
            tracing::warn!(%error, "sqlite store: final checkpoint failed; the WAL is kept");
        }
    }
}

/// Applies and commits `batch` (emptying it), tells the cache and the subscribers, then
/// answers each request. Nothing is answered or published before COMMIT returns, so a success
/// always means "durable"; the cache learns of a change before its request is answered, so
/// the caller's next read sees it.
fn commit_batch(conn: &Connection, context: &Context, batch: &mut Vec<Job>) {
    let (mut writes, mut replies): (Vec<_>, Vec<_>) =
        batch.drain(..).map(|j| (j.write, j.reply)).unzip();
    loop {
        let abandoned = match apply_all(conn, &writes, context) {
            Ok(outcomes) => {
                // Copies for subscribers only when there are any.
                let mut committed = context.bus.is_followed().then(Vec::new);
                for (write, outcome) in writes.iter().zip(&outcomes) {
                    match (write, outcome) {
                        (Write::Room { .. }, Ok(done)) => {
                            context.cache.follow(&done.events, done.state.as_ref());
                            if let Some(committed) = &mut committed {
                                committed.extend(done.events.iter().cloned());
                            }
                        }
                        (Write::Import { .. }, Ok(_)) => {
                            write.each_room(|app, room| context.cache.forget(app, room));
                        }
                        (Write::Count { app, room, counted }, Ok(_)) => {
                            context.cache.add_views(*app, room, counted.viewers);
                        }
                        _ => {}
                    }
                }
                context.bus.publish(committed.unwrap_or_default());
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone away; the write stands regardless.
                    let _ = reply.send(outcome);
                }
                return;
            }
            Err(abandoned) => {
                // A failed COMMIT may still have reached the disk (an fsync error after the
                // WAL was written), so the cache must not answer for these rooms either way.
                // Requests retried without a culprit are published again when they commit.
                for write in &writes {
                    write.each_room(|app, room| context.cache.forget(app, room));
                }
                abandoned
            }
        };
        // Described before the rollback, which could replace the OS error SQLite recorded.
        let error = match &abandoned {
            Abandoned::Batch(e) | Abandoned::Request(_, e) => describe(conn, e),
        };
        if !conn.is_autocommit()
            && let Err(rollback) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %rollback, "sqlite store: rollback failed");
        }
        match abandoned {
            Abandoned::Batch(_) => {
                let count = writes.len();
                tracing::error!(%error, requests = count, "sqlite store: batch failed, nothing applied");
                let answer = StoreError::Unavailable(format!("write transaction failed: {error}"));
                for reply in replies {
                    let _ = reply.send(Err(answer.clone()));
                }
                return;
            }
            Abandoned::Request(culprit, _) => {
                let others = writes.len() - 1;
                tracing::error!(
                    %error,
                    others,
                    "sqlite store: write failed; retrying the rest of its batch without it"
                );
                writes.remove(culprit);
                let answer = StoreError::Unavailable(format!("write failed: {error}"));
                let _ = replies.remove(culprit).send(Err(answer));
                if writes.is_empty() {
                    return;
                }
            }
        }
    }
}

/// Why a batch's transaction was given up.
enum Abandoned {
    /// Nothing can be applied (I/O error, full disk, lock not obtained, failed COMMIT).
    Batch(rusqlite::Error),
    /// This request, by its index, spoiled the transaction; the others may succeed without it.
    Request(usize, rusqlite::Error),
}

impl From<rusqlite::Error> for Abandoned {
    fn from(e: rusqlite::Error) -> Self {
        Self::Batch(e)
    }
}

/// Whether SQLite refuses every later write of a transaction once a statement failed so.
/// Having found a corrupt page it does, although its other pages may be sound.
fn spoils_transaction(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    matches!(
        error.sqlite_error_code(),
        Some(DatabaseCorrupt | NotADatabase)
    )
}

/// The outcome of each request, or why the whole transaction had to be given up.
fn apply_all(
    conn: &Connection,
    writes: &[Write],
    context: &Context,
) -> Result<Vec<StoreResult<Committed>>, Abandoned> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for (index, write) in writes.iter().enumerate() {
        conn.prepare_cached("SAVEPOINT request")?.execute([])?;
        let outcome = match apply(conn, write, context) {
            Ok(done) => Ok(done),
            // Some errors (I/O, full disk) make SQLite abandon the whole transaction.
            Err(Failure::Sql(e)) if conn.is_autocommit() => return Err(Abandoned::Batch(e)),
            Err(Failure::Sql(e)) if spoils_transaction(&e) => {
                return Err(Abandoned::Request(index, e));
            }
            Err(failure) => {
                conn.prepare_cached("ROLLBACK TO request")?.execute([])?;
                Err(match failure {
                    Failure::Rule(e) => StoreError::Rule(e),
                    Failure::Sql(e) => unavailable(conn, "write", &e),
                })
            }
        };
        conn.prepare_cached("RELEASE request")?.execute([])?;
        outcomes.push(outcome);
    }
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(outcomes)
}

/// One request: read the room's slot, let the operation decide, write the new state and the
/// events. By reference, because a request is applied again when another one spoiled its
/// batch.
fn apply(conn: &Connection, write: &Write, context: &Context) -> Result<Committed, Failure> {
    match write {
        Write::Room {
            app,
            by,
            operation,
            now,
        } => {
            let id = operation.room();
            let (mut slot, tail) = sql::load_slot(conn, *app, id)?;
            let changes = operation.decide(&slot, *now)?;
            if changes.is_empty() {
                return Ok(Committed {
                    events: Vec::new(),
                    state: slot.live.map(Arc::new),
                });
            }
            let before = changes
                .iter()
                .any(|c| matches!(c, RoomChange::Destroyed))
                .then(|| slot.live.as_ref().map(|live| live.room.clone()))
                .flatten();
            // A failure from here on rolls the savepoint back; the slot is discarded.
            let events = slot.commit(*app, id, changes, *now)?;
            sql::save(conn, *app, id, (&slot, tail), &events, &context.retention)?;
            let after = slot.live.as_ref().map(|live| &live.room);
            feed::append_events(conn, &context.outboxes, by, &events, before.as_ref(), after)?;
            Ok(Committed {
                events,
                state: slot.live.map(Arc::new),
            })
        }
        Write::Members {
            app,
            room,
            by,
            change,
            now,
        } => {
            if sql::load_state(conn, *app, room)?.is_none() {
                return Err(DomainError::RoomNotFound.into());
            }
            let item = FeedItem::Members(change.clone());
            let at_ms = now.as_millis() as u64;
            feed::append(conn, &context.outboxes, *app, room, by, &item, at_ms)?;
            Ok(nothing())
        }
        Write::Settle { app, outcomes } => {
            for (seq, outcome) in outcomes {
                feed::settle(conn, *app, *seq, outcome)?;
            }
            Ok(nothing())
        }
        Write::Replay {
            app,
            seqs,
            replayed,
        } => {
            let count = feed::replay(conn, *app, seqs.as_deref())?;
            replayed.store(count, Ordering::Relaxed);
            Ok(nothing())
        }
        Write::Import { app, rooms } => {
            for saved in rooms {
                let room = &saved.room;
                crate::check_imported_metadata(&saved.metadata)?;
                if let Some(existing) = sql::load_state(conn, *app, &room.id)? {
                    return Err(DomainError::RoomExists {
                        same_owner: existing.room.owner == room.owner,
                    }
                    .into());
                }
                let state = liveroom_domain::RoomState {
                    room: room.clone(),
                    metadata: saved.metadata.clone(),
                    people: saved.people.clone(),
                    position: crate::imported_position(room),
                };
                sql::insert_room(conn, *app, &state, &sql::Tail::after(&state))?;
                sql::save_people(conn, *app, &room.id, &state.people)?;
                let counted = RoomStats {
                    viewers: 0,
                    messages: saved.messages,
                };
                if counted.messages > 0 {
                    sql::count(conn, *app, &room.id, counted)?;
                }
            }
            Ok(nothing())
        }
        Write::Account { app, write } => {
            apply_account(conn, *app, write)?;
            Ok(nothing())
        }
        Write::Count { app, room, counted } => {
            if !sql::count(conn, *app, room, *counted)? {
                return Err(DomainError::RoomNotFound.into());
            }
            Ok(nothing())
        }
        #[cfg(test)]
        Write::Hold { held, go } => {
            let _ = held.send(());
            let _ = go.recv();
            Ok(nothing())
        }
        #[cfg(test)]
        Write::BreakCommit => {
            // A deferred foreign-key violation, in this connection's temporary tables.
            conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
                 CREATE TEMP TABLE IF NOT EXISTS child (
                     id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
                 );
                 INSERT INTO child VALUES (1);",
            )?;
            Ok(nothing())
        }
    }
}

fn apply_account(conn: &Connection, app: AppId, write: &AccountWrite) -> Result<(), Failure> {
    match write {
        AccountWrite::Import {
            accounts,
            if_exists,
        } => {
            let mut known = Vec::new();
            for (account, _) in accounts.iter() {
                if sql::load_profile(conn, app, account)?.is_some() {
                    known.push(account);
                }
            }
            let create =
                liveroom_domain::accounts_to_create(accounts, *if_exists, |a| known.contains(&a))?;
            for (account, profile) in create {
                sql::insert_account(conn, app, account, profile)?;
            }
        }
        AccountWrite::SetProfile { account, changes } => {
            let mut profile =
                sql::load_profile(conn, app, account)?.ok_or(DomainError::AccountNotFound)?;
            profile.merge(changes);
            sql::save_profile(conn, app, account, &profile)?;
        }
    }
    Ok(())
}

fn nothing() -> Committed {
    Committed {
        events: Vec::new(),
        state: None,
    }
}
