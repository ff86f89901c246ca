//! The app feeds and the webhook outbox in SQLite (docs/webhooks.md): their tables and every
//! statement on them. The writer appends entries in the transaction of the change they
//! record; readers page through them.

use liveroom_domain::{Account, AppId, FeedEntry, FeedItem, RoomEvent, RoomId};
use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Backlog, Outboxes, Outcome, Parked, Pending, codec};

/// `feed`: every entry of every app, by (app, seq). `state` is 0 once no webhook waits for it
/// (swept after the feed's retention), 1 while its webhook waits, 2 when parked.
/// `feed_apps`: each app's last seq, so that numbers never repeat after a sweep.
/// `outbox`: for each room with entries waiting, the first of them and its attempts so far.
/// Statements name the index they need (`INDEXED BY`): SQLite, without statistics, would
/// otherwise walk the app's whole feed (see `every_statement_uses_its_index`). Those on
/// `feed_kept` repeat its condition (`state > 0`), without which SQLite cannot use it.
macro_rules! feed_tables {
    () => {
        "CREATE TABLE feed (
    app     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    room_id TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL,
    entry   TEXT    NOT NULL,
    state   INTEGER NOT NULL,
    error   TEXT    NOT NULL,
    PRIMARY KEY (app, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX feed_room ON feed (app, room_id, seq);
CREATE INDEX feed_done_age ON feed (at_ms) WHERE state = 0;
CREATE INDEX feed_kept ON feed (app, state, seq) WHERE state > 0;
CREATE TABLE feed_apps (
    app      INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;
CREATE TABLE outbox (
    app      INTEGER NOT NULL,
    room_id  TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    due_ms   INTEGER NOT NULL,
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX outbox_due ON outbox (app, due_ms);
"
    };
}
pub(super) use feed_tables;

const DONE: i64 = 0;
const WAITING: i64 = 1;
const PARKED: i64 = 2;

/// The app's next number is taken in two statements, not one with `RETURNING`: SQLite buffers
/// a `RETURNING` statement's rows in a temporary table, which allocated and faulted in a page
/// cache of its own on every append (7 % of a durable write's CPU, BENCHMARKS.md).
const BUMP_SEQ: &str = "INSERT INTO feed_apps VALUES (?1, 1) \
    ON CONFLICT (app) DO UPDATE SET last_seq = last_seq + 1";
const LAST_SEQ: &str = "SELECT last_seq FROM feed_apps WHERE app = ?1";
const INSERT_ENTRY: &str = "INSERT INTO feed VALUES (?1, ?2, ?3, ?4, ?5, ?6, '')";
/// A room's first waiting entry, unless it has one already.
const QUEUE_ROOM: &str = "INSERT INTO outbox VALUES (?1, ?2, ?3, 0, ?4) \
    ON CONFLICT (app, room_id) DO NOTHING";

/// Appends one entry to `app`'s feed, queued for the webhook when `outboxes` says so.
pub(super) fn append(
    conn: &Connection,
    outboxes: &Outboxes,
    app: AppId,
    room: &RoomId,
    by: &Account,
    item: &FeedItem,
    at_ms: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(BUMP_SEQ)?.execute([app])?;
    let seq: i64 = conn
        .prepare_cached(LAST_SEQ)?
        .query_row([app], |row| row.get(0))?;
    let waiting = crate::queued(outboxes, app, item);
    conn.prepare_cached(INSERT_ENTRY)?.execute(params![
        app,
        seq,
        room.as_str(),
        at_ms as i64,
        codec::encode_feed(by, item),
        if waiting { WAITING } else { DONE },
    ])?;
    if waiting {
        conn.prepare_cached(QUEUE_ROOM)?
            .execute(params![app, room.as_str(), seq, at_ms as i64])?;
    }
    Ok(())
}

/// Appends a write's committed events.
pub(super) fn append_events(
    conn: &Connection,
    outboxes: &Outboxes,
    by: &Account,
    events: &[RoomEvent],
    before: Option<&liveroom_domain::Room>,
    after: Option<&liveroom_domain::Room>,
) -> rusqlite::Result<()> {
    for (event, item) in crate::feed_items(events, before, after) {
        append(
            conn,
            outboxes,
            event.app,
            &event.room,
            by,
            &item,
            event.at_ms,
        )?;
    }
    Ok(())
}

/// The entry of a row whose first columns are `entry_columns!()`.
fn entry_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<FeedEntry> {
    let (seq, room, at_ms, text): (i64, String, i64, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let room = RoomId::parse(room).map_err(|e| corrupt(e.to_string()))?;
    codec::decode_feed(&text, seq as u64, room, at_ms as u64).map_err(|e| corrupt(e.to_string()))
}

/// The columns [`entry_of`] reads, first in every statement that reads entries.
macro_rules! entry_columns {
    () => {
        "f.seq, f.room_id, f.at_ms, f.entry"
    };
}

fn corrupt(why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, why.into())
}

const FEED_OF_APP: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM feed f WHERE app = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
);
const FEED_OF_ROOM: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM feed f INDEXED BY feed_room \
     WHERE app = ?1 AND room_id = ?4 AND seq > ?2 ORDER BY seq LIMIT ?3"
);

pub(super) fn read(
    conn: &Connection,
    app: AppId,
    room: Option<&RoomId>,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Vec<FeedEntry>> {
    let (after, limit) = (clamp(after), limit as i64);
    match room {
        Some(room) => conn
            .prepare_cached(FEED_OF_ROOM)?
            .query(params![app, after, limit, room.as_str()])?
            .mapped(entry_of)
            .collect(),
        None => conn
            .prepare_cached(FEED_OF_APP)?
            .query(params![app, after, limit])?
            .mapped(entry_of)
            .collect(),
    }
}

/// A sequence number as SQLite's signed integer: none is above `i64::MAX`.
fn clamp(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

const DUE: &str = concat!(
    "SELECT ",
    entry_columns!(),
    ", o.attempts FROM outbox o JOIN feed f ON f.app = o.app AND f.seq = o.seq \
     WHERE o.app = ?1 AND o.due_ms <= ?2 ORDER BY o.due_ms LIMIT ?3"
);

/// The busy rooms are among the first due (they wait for their outcome), so that `limit` rows
/// past them are enough; their entries are passed over before being decoded.
pub(super) fn due(
    conn: &Connection,
    app: AppId,
    now_ms: u64,
    limit: usize,
    busy: &HashSet<RoomId>,
) -> rusqlite::Result<Vec<Pending>> {
    let mut statement = conn.prepare_cached(DUE)?;
    let mut rows = statement.query(params![
        app,
        clamp(now_ms),
        limit.saturating_add(busy.len()) as i64
    ])?;
    let mut due = Vec::new();
    while due.len() < limit
        && let Some(row) = rows.next()?
    {
        if !busy.contains(row.get_ref(1)?.as_str()?) {
            due.push(Pending {
                entry: entry_of(row)?,
                attempts: row.get(4)?,
            });
        }
    }
    Ok(due)
}

const HEAD_OF_ENTRY: &str = "SELECT o.room_id FROM feed f \
    JOIN outbox o ON o.app = f.app AND o.room_id = f.room_id AND o.seq = f.seq \
    WHERE f.app = ?1 AND f.seq = ?2";
const SET_STATE: &str = "UPDATE feed SET state = ?3, error = ?4 WHERE app = ?1 AND seq = ?2";
const RETRY_AT: &str =
    "UPDATE outbox SET attempts = attempts + 1, due_ms = ?3 WHERE app = ?1 AND room_id = ?2";
const NEXT_WAITING: &str = "SELECT seq, at_ms FROM feed INDEXED BY feed_room \
    WHERE app = ?1 AND room_id = ?2 AND seq > ?3 AND state = 1 ORDER BY seq LIMIT 1";
const MOVE_HEAD: &str = "UPDATE outbox SET seq = ?3, attempts = 0, due_ms = ?4 \
    WHERE app = ?1 AND room_id = ?2";
const DROP_HEAD: &str = "DELETE FROM outbox WHERE app = ?1 AND room_id = ?2";

/// Records one attempt's outcome; an entry that is not its room's first is left alone.
pub(super) fn settle(
    conn: &Connection,
    app: AppId,
    seq: u64,
    outcome: &Outcome,
) -> rusqlite::Result<()> {
    let seq = clamp(seq);
    let head: Option<String> = conn
        .prepare_cached(HEAD_OF_ENTRY)?
        .query_row(params![app, seq], |row| row.get(0))
        .optional()?;
    let Some(room) = head else {
        return Ok(());
    };
    let finished = match outcome {
        Outcome::Retry { at_ms, error } => {
            conn.prepare_cached(SET_STATE)?
                .execute(params![app, seq, WAITING, error])?;
            conn.prepare_cached(RETRY_AT)?
                .execute(params![app, room, clamp(*at_ms)])?;
            return Ok(());
        }
        Outcome::Delivered => (DONE, ""),
        Outcome::Park { error } => (PARKED, error.as_str()),
    };
    conn.prepare_cached(SET_STATE)?
        .execute(params![app, seq, finished.0, finished.1])?;
    let next: Option<(i64, i64)> = conn
        .prepare_cached(NEXT_WAITING)?
        .query_row(params![app, room, seq], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    match next {
        Some((next, at_ms)) => conn
            .prepare_cached(MOVE_HEAD)?
            .execute(params![app, room, next, at_ms])?,
        None => conn
            .prepare_cached(DROP_HEAD)?
            .execute(params![app, room])?,
    };
    Ok(())
}

const PARKED_AFTER: &str = concat!(
    "SELECT ",
    entry_columns!(),
    ", f.error FROM feed f INDEXED BY feed_kept \
     WHERE app = ?1 AND state > 0 AND state = 2 AND seq > ?2 ORDER BY seq LIMIT ?3"
);

pub(super) fn parked(
    conn: &Connection,
    app: AppId,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Vec<Parked>> {
    conn.prepare_cached(PARKED_AFTER)?
        .query(params![app, clamp(after), limit as i64])?
        .mapped(|row| {
            Ok(Parked {
                entry: entry_of(row)?,
                error: row.get(4)?,
            })
        })
        .collect()
}

const PARKED_ROOM: &str = "SELECT room_id FROM feed WHERE app = ?1 AND seq = ?2 AND state = 2";
const ALL_PARKED: &str = "SELECT seq, room_id FROM feed INDEXED BY feed_kept \
    WHERE app = ?1 AND state > 0 AND state = 2 ORDER BY seq";
/// The replayed entry becomes its room's first unless an earlier one already is.
const REQUEUE: &str = "INSERT INTO outbox VALUES (?1, ?2, ?3, 0, 0) \
    ON CONFLICT (app, room_id) DO UPDATE SET seq = excluded.seq, attempts = 0, due_ms = 0 \
    WHERE excluded.seq < outbox.seq";

/// Queues parked entries again; returns how many.
pub(super) fn replay(conn: &Connection, app: AppId, seqs: Option<&[u64]>) -> rusqlite::Result<u64> {
    let found: Vec<(i64, String)> = match seqs {
        None => conn
            .prepare_cached(ALL_PARKED)?
            .query([app])?
            .mapped(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect::<rusqlite::Result<_>>()?,
        Some(seqs) => {
            let mut found = Vec::new();
            for &seq in seqs {
                let room: Option<String> = conn
                    .prepare_cached(PARKED_ROOM)?
                    .query_row(params![app, clamp(seq)], |row| row.get(0))
                    .optional()?;
                found.extend(room.map(|room| (clamp(seq), room)));
            }
            found
        }
    };
    for (seq, room) in &found {
        conn.prepare_cached(SET_STATE)?
            .execute(params![app, seq, WAITING, ""])?;
        conn.prepare_cached(REQUEUE)?
            .execute(params![app, room, seq])?;
    }
    Ok(found.len() as u64)
}

const BACKLOG: &str = "SELECT \
    (SELECT COUNT(*) FROM feed INDEXED BY feed_kept WHERE app = ?1 AND state > 0 AND state = 1), \
    (SELECT COUNT(*) FROM feed INDEXED BY feed_kept WHERE app = ?1 AND state > 0 AND state = 2), \
    (SELECT at_ms FROM feed INDEXED BY feed_kept \
     WHERE app = ?1 AND state > 0 AND state = 1 ORDER BY seq LIMIT 1)";

pub(super) fn backlog(conn: &Connection, app: AppId) -> rusqlite::Result<Backlog> {
    conn.prepare_cached(BACKLOG)?.query_row([app], |row| {
        Ok(Backlog {
            pending: row.get::<_, i64>(0)? as u64,
            parked: row.get::<_, i64>(1)? as u64,
            oldest_pending_ms: row.get::<_, Option<i64>>(2)?.map(|ms| ms as u64),
        })
    })
}

/// At most this many entries of each state leave the feed per sweep.
const SWEEP_LIMIT: usize = 2000;
const SWEEP_DONE: &str = "DELETE FROM feed WHERE (app, seq) IN \
    (SELECT app, seq FROM feed WHERE state = 0 AND at_ms < ?1 LIMIT ?2)";
const SWEEP_PARKED: &str = "DELETE FROM feed WHERE (app, seq) IN \
    (SELECT f.app, f.seq FROM feed_apps a CROSS JOIN feed f INDEXED BY feed_kept \
     ON f.app = a.app AND f.state > 0 AND f.state = 2 WHERE f.at_ms < ?1 LIMIT ?2)";

/// Forgets delivered entries committed before `done_cutoff_ms` and parked ones before
/// `parked_cutoff_ms`; returns whether more may be left.
pub(super) fn sweep(
    conn: &Connection,
    done_cutoff_ms: u64,
    parked_cutoff_ms: u64,
) -> rusqlite::Result<bool> {
    let done = conn
        .prepare_cached(SWEEP_DONE)?
        .execute(params![clamp(done_cutoff_ms), SWEEP_LIMIT as i64])?;
    let parked = conn
        .prepare_cached(SWEEP_PARKED)?
        .execute(params![clamp(parked_cutoff_ms), SWEEP_LIMIT as i64])?;
    Ok(done == SWEEP_LIMIT || parked == SWEEP_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::sql::{SCHEMA, opcodes, query_plan};

    /// Every statement finds its rows through the index meant for it, whatever the tables
    /// hold: with no statistics, SQLite took the primary key's range `(app, seq > ?)` for the
    /// per-room and per-state reads, so that each delivery walked the app's whole feed after
    /// the delivered entry. `INDEXED BY` pins the choice; a partial index is only usable when
    /// the statement repeats its condition, hence the `state > 0` beside `state = 1` or `2`.
    #[test]
    fn every_statement_uses_its_index() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let room = "USING INDEX feed_room (app=? AND room_id=? AND seq>?)";
        let kept = "INDEX feed_kept (app=? AND state=?";
        let one_entry = "USING PRIMARY KEY (app=? AND seq=?)";
        let expected = [
            (LAST_SEQ, "USING INTEGER PRIMARY KEY (rowid=?)"),
            (FEED_OF_APP, "USING PRIMARY KEY (app=? AND seq>?)"),
            (FEED_OF_ROOM, room),
            (NEXT_WAITING, room),
            (DUE, "USING INDEX outbox_due (app=? AND due_ms<?)"),
            (HEAD_OF_ENTRY, one_entry),
            (SET_STATE, one_entry),
            (PARKED_ROOM, one_entry),
            (PARKED_AFTER, kept),
            (ALL_PARKED, kept),
            (BACKLOG, kept),
            (SWEEP_DONE, "USING COVERING INDEX feed_done_age (at_ms<?)"),
            (
                SWEEP_PARKED,
                "SCAN a; SEARCH f USING INDEX feed_kept (app=? AND state=?)",
            ),
            (RETRY_AT, "USING PRIMARY KEY (app=? AND room_id=?)"),
            (MOVE_HEAD, "USING PRIMARY KEY (app=? AND room_id=?)"),
            (DROP_HEAD, "USING PRIMARY KEY (app=? AND room_id=?)"),
        ];
        for (sql, index) in expected {
            let plan = query_plan(&conn, sql);
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
            let scans = plan.matches("SCAN ").count() - plan.matches("SCAN CONSTANT ROW").count();
            let allowed = usize::from(sql == SWEEP_PARKED); // over `feed_apps`: one row per app
            assert_eq!(scans, allowed, "{sql}: {plan}");
        }
    }

    /// An append, in every write's transaction, builds no temporary table: one per statement
    /// (as `RETURNING` builds) allocated a page cache and cost a durable write 7 % more.
    #[test]
    fn appending_builds_no_temporary_table() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for sql in [BUMP_SEQ, LAST_SEQ, INSERT_ENTRY, QUEUE_ROOM] {
            assert!(
                !opcodes(&conn, sql).iter().any(|op| op == "OpenEphemeral"),
                "{sql}"
            );
        }
    }
}
