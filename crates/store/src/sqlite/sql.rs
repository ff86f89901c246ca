//! The schema, every SQL statement, and the mapping between rows and domain values. Both the
//! writer thread and the readers go through these functions, always with cached statements.

use liveroom_domain::{
    Account, AppId, DomainError, ListPosition, Metadata, Position, Profile, Room, RoomChange,
    RoomEvent, RoomFields, RoomId, RoomPeople, RoomSlot, RoomState, RoomStats, TakeSeatMode,
    Tombstone,
};
use rusqlite::types::ToSql;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::{Retention, codec};

/// The `PRAGMA user_version` this code reads and writes: a database at version `n` is brought
/// to this one by running `UPGRADES[n - 1..]` in order.
pub(super) const SCHEMA_VERSION: i64 = 1 + UPGRADES.len() as i64;

/// The `rooms` table of the current version, under a given name (an upgrade builds it beside
/// the old one). `STRICT` makes SQLite refuse values of the wrong type instead of converting
/// them; TEXT compares with the default BINARY collation, so RoomId order is byte order, the
/// same as Rust's `String` order.
///
/// A room's metadata is one JSON object in its row, next to the revision that counts its
/// changes: metadata is always read and written whole (every rule looks at all of it), so a
/// `set_room_metadata` reads and rewrites one row on one page. `incarnation` and `seq` are the
/// position of the room's last event.
///
/// The newest events of the room's log (its *tail*, from `recent_from` on) are a JSON array in
/// its row too, and move to `room_events` as one chunk row once there are [`TAIL_EVENTS`] of
/// them or [`TAIL_BYTES`]: appending an event to the row being rewritten anyway costs no page
/// of its own, where a row per event would dirty a page of another B-tree on every write and
/// halve the writes a commit can carry across many rooms.
macro_rules! rooms_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE ",
            $name,
            " (
    app                       INTEGER NOT NULL,
    room_id                   TEXT    NOT NULL,
    owner                     TEXT    NOT NULL,
    create_time               INTEGER NOT NULL,
    view_count                INTEGER NOT NULL,
    revision                  INTEGER NOT NULL,
    name                      TEXT    NOT NULL,
    cover_url                 TEXT    NOT NULL,
    notice                    TEXT    NOT NULL,
    category                  TEXT    NOT NULL, -- comma-separated integers, '' when empty
    activity_status           INTEGER NOT NULL,
    max_seat_count            INTEGER NOT NULL,
    max_member_count          INTEGER NOT NULL,
    take_seat_mode            TEXT    NOT NULL,
    is_message_disabled       INTEGER NOT NULL,
    is_public_visible         INTEGER NOT NULL,
    is_seat_enabled           INTEGER NOT NULL,
    seat_template             TEXT,
    is_unlimited_room_enabled INTEGER,
    incarnation               INTEGER NOT NULL,
    seq                       INTEGER NOT NULL,
    recent_from               INTEGER NOT NULL,
    -- Last, so that reading the columns before them never touches their overflow pages;
    -- only the writer reads the tail.
    metadata                  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    recent                    TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;
"
        )
    };
}

/// Serves get_room_list: one index range per page, already in list order.
macro_rules! list_index {
    () => {
        "CREATE INDEX rooms_list_order
    ON rooms (app, is_public_visible, view_count DESC, create_time DESC, room_id);
"
    };
}

/// The event log and the tombstones of destroyed rooms (docs/events.md).
macro_rules! log_tables {
    () => {
        "CREATE TABLE room_events (
    app         INTEGER NOT NULL,
    room_id     TEXT    NOT NULL,
    incarnation INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    events      TEXT    NOT NULL, -- a JSON array of events first_seq..=last_seq
    PRIMARY KEY (app, room_id, incarnation, first_seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE room_tombstones (
    app             INTEGER NOT NULL,
    room_id         TEXT    NOT NULL,
    incarnation     INTEGER NOT NULL,
    destroyed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX room_tombstones_age ON room_tombstones (destroyed_at_ms);
"
    };
}

/// Imported accounts (docs/behaviour.md §13): a profile is one JSON object of Tencent's tag
/// names, read and written whole like a room's metadata.
macro_rules! accounts_table {
    () => {
        "CREATE TABLE accounts (
    app     INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    profile TEXT    NOT NULL CHECK (json_valid(profile)),
    PRIMARY KEY (app, user_id)
) STRICT, WITHOUT ROWID;
"
    };
}

/// A room's people (docs/behaviour.md §14) and message count, beside its row: the people are
/// one JSON object, present only while the room has any, so that the rooms without (nearly
/// all) pay nothing for them; the count changes with every message, without an event. (The
/// members who entered are counted in the room's `view_count`.)
macro_rules! people_tables {
    () => {
        "CREATE TABLE room_people (
    app     INTEGER NOT NULL,
    room_id TEXT    NOT NULL,
    people  TEXT    NOT NULL CHECK (json_valid(people)),
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE room_stats (
    app      INTEGER NOT NULL,
    room_id  TEXT    NOT NULL,
    messages INTEGER NOT NULL,
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;
"
    };
}

/// The current version, for a new database.
pub(super) const SCHEMA: &str = concat!(
    rooms_table!("rooms"),
    list_index!(),
    log_tables!(),
    accounts_table!(),
    people_tables!(),
    super::feed::feed_tables!()
);

/// Each step upgrades a database by one version, from version 1; they run in order, all in
/// one transaction.
pub(super) const UPGRADES: &[&str] = &[
    // 1 to 2: each room's key rows become one JSON object in its row. Version 1 kept a row per
    // key in a table of its own: each set dirtied two B-trees and took five statements, which
    // made random writes across a million rooms twice as costly.
    "ALTER TABLE rooms ADD COLUMN
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata));
UPDATE rooms SET metadata = (
    SELECT json_group_object(m.key, m.value) FROM room_metadata m
    WHERE m.app = rooms.app AND m.room_id = rooms.room_id
) WHERE EXISTS (
    SELECT 1 FROM room_metadata m WHERE m.app = rooms.app AND m.room_id = rooms.room_id
);
DROP TABLE room_metadata;
",
    // 2 to 3: the event log. Each existing room starts an incarnation numbered from its
    // creation time, at position 0. The table is rebuilt so that metadata stays last.
    concat!(
        rooms_table!("rooms_v3"),
        "INSERT INTO rooms_v3 SELECT app, room_id, owner, create_time, view_count, revision, name,
    cover_url, notice, category, activity_status, max_seat_count, max_member_count,
    take_seat_mode, is_message_disabled, is_public_visible, is_seat_enabled, seat_template,
    is_unlimited_room_enabled, create_time * 1000, 0, 1, metadata, '[]' FROM rooms;
DROP TABLE rooms;
ALTER TABLE rooms_v3 RENAME TO rooms;
",
        list_index!(),
        log_tables!()
    ),
    // 3 to 4: imported accounts and their profiles.
    accounts_table!(),
    // 4 to 5: rooms' people and statistics.
    people_tables!(),
    // 5 to 6: the apps' feeds and the webhook outbox.
    super::feed::feed_tables!(),
];

/// The room columns in the order [`room_from_row`] reads them.
macro_rules! room_columns {
    () => {
        "room_id, owner, create_time, view_count, revision, name, cover_url, notice, category, \
         activity_status, max_seat_count, max_member_count, take_seat_mode, is_message_disabled, \
         is_public_visible, is_seat_enabled, seat_template, is_unlimited_room_enabled"
    };
}

macro_rules! select_public {
    ($where:literal, $order:literal) => {
        concat!(
            "SELECT ",
            room_columns!(),
            // Pinned: without statistics SQLite may pick the primary key for a RoomId range
            // and filter every later room of the app.
            " FROM rooms INDEXED BY rooms_list_order WHERE app = ?1 AND is_public_visible = 1",
            $where,
            " ORDER BY ",
            $order,
            " LIMIT ?"
        )
    };
}

/// A live room: its columns, then its position, its metadata and its people (NULL: none).
macro_rules! select_state {
    ($more:literal) => {
        concat!(
            "SELECT ",
            room_columns!(),
            ", incarnation, seq, metadata, (SELECT people FROM room_people p \
             WHERE p.app = rooms.app AND p.room_id = rooms.room_id)",
            $more,
            " FROM rooms WHERE app = ?1 AND room_id = ?2"
        )
    };
}
const SELECT_STATE: &str = select_state!("");
/// Live rooms of an app after a RoomId, in order, with their message counts: for a backup.
const SAVED_ROOMS: &str = concat!(
    "SELECT ",
    room_columns!(),
    ", incarnation, seq, metadata, (SELECT people FROM room_people p \
     WHERE p.app = rooms.app AND p.room_id = rooms.room_id), \
     (SELECT messages FROM room_stats s WHERE s.app = rooms.app AND s.room_id = rooms.room_id) \
     FROM rooms WHERE app = ?1 AND room_id > ?2 ORDER BY room_id LIMIT ?3"
);
const SAVED_ACCOUNTS: &str = "SELECT user_id, profile FROM accounts \
    WHERE app = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3";
const APPS: &str = "SELECT app FROM rooms UNION SELECT app FROM accounts ORDER BY app";
/// The same, with the log's tail, for the writer.
const SELECT_STATE_AND_TAIL: &str = select_state!(", recent_from, recent");

const INSERT_ROOM: &str = concat!(
    "INSERT INTO rooms (app, ",
    room_columns!(),
    ", incarnation, seq, metadata, recent_from, recent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
);

/// An info write: the log (as [`UPDATE_LOG`] binds it) and the settable fields.
const UPDATE_FIELDS: &str = "UPDATE rooms SET seq = ?3, recent_from = ?4, recent = ?5, \
    name = ?6, cover_url = ?7, notice = ?8, category = ?9, activity_status = ?10, \
    max_seat_count = ?11, max_member_count = ?12, take_seat_mode = ?13, \
    is_message_disabled = ?14, is_public_visible = ?15, is_seat_enabled = ?16, \
    seat_template = ?17, is_unlimited_room_enabled = ?18 WHERE app = ?1 AND room_id = ?2";

/// The list from its start.
pub(super) const LIST_FIRST: &str =
    select_public!("", "view_count DESC, create_time DESC, room_id");
/// Resuming after a position takes up to three index ranges, each in list order: the rest of
/// the position's (view_count, create_time) group, then older rooms with as many views, then
/// rooms with fewer views. A single OR-ed condition would make SQLite scan every room before
/// the position instead.
pub(super) const LIST_SAME_TIME: &str = select_public!(
    " AND view_count = ?2 AND create_time = ?3 AND room_id > ?4",
    "room_id"
);
pub(super) const LIST_OLDER: &str = select_public!(
    " AND view_count = ?2 AND create_time < ?3",
    "create_time DESC, room_id"
);
pub(super) const LIST_FEWER_VIEWS: &str = select_public!(
    " AND view_count < ?2",
    "view_count DESC, create_time DESC, room_id"
);

/// A metadata write: the log and the metadata with its revision, in one statement.
const UPDATE_METADATA: &str = "UPDATE rooms SET seq = ?3, recent_from = ?4, recent = ?5, \
    metadata = ?6, revision = ?7 WHERE app = ?1 AND room_id = ?2";

/// An owner change: the log and the owner.
const UPDATE_OWNER: &str = "UPDATE rooms SET seq = ?3, recent_from = ?4, recent = ?5, \
    owner = ?6 WHERE app = ?1 AND room_id = ?2";

const UPSERT_PEOPLE: &str = "INSERT INTO room_people VALUES (?1, ?2, ?3) \
    ON CONFLICT (app, room_id) DO UPDATE SET people = ?3";
const DROP_PEOPLE: &str = "DELETE FROM room_people WHERE app = ?1 AND room_id = ?2";

const COUNT_VIEWERS: &str =
    "UPDATE rooms SET view_count = view_count + ?3 WHERE app = ?1 AND room_id = ?2";
const COUNT_MESSAGES: &str = "INSERT INTO room_stats VALUES (?1, ?2, ?3) \
    ON CONFLICT (app, room_id) DO UPDATE SET messages = messages + ?3";
const DROP_STATS: &str = "DELETE FROM room_stats WHERE app = ?1 AND room_id = ?2";
const SELECT_STATS: &str = "SELECT view_count, (SELECT messages FROM room_stats s \
    WHERE s.app = rooms.app AND s.room_id = rooms.room_id) \
    FROM rooms WHERE app = ?1 AND room_id = ?2";

/// The position and the tail: every write of a live room moves both.
const UPDATE_LOG: &str = "UPDATE rooms SET seq = ?3, recent_from = ?4, recent = ?5 \
    WHERE app = ?1 AND room_id = ?2";

const SELECT_TOMBSTONE: &str = "SELECT incarnation, destroyed_at_ms FROM room_tombstones \
    WHERE app = ?1 AND room_id = ?2";

const UPSERT_TOMBSTONE: &str = "INSERT INTO room_tombstones VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (app, room_id) DO UPDATE SET incarnation = ?3, destroyed_at_ms = ?4";

const INSERT_CHUNK: &str = "INSERT INTO room_events VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Chunks of an incarnation holding events after a seq, oldest first.
const SELECT_CHUNKS: &str = "SELECT events FROM room_events \
    WHERE app = ?1 AND room_id = ?2 AND incarnation = ?3 AND last_seq > ?4 \
    ORDER BY first_seq LIMIT ?5";

/// The live room's tail, for readers of the log.
const SELECT_TAIL: &str =
    "SELECT incarnation, seq, recent FROM rooms WHERE app = ?1 AND room_id = ?2";

/// The chunks of an incarnation wholly beyond its retention.
const PRUNE_CHUNKS: &str = "DELETE FROM room_events \
    WHERE app = ?1 AND room_id = ?2 AND incarnation = ?3 AND last_seq <= ?4";

/// A RoomId created again: the earlier incarnations' events can no longer be resumed.
const DROP_EARLIER_EVENTS: &str = "DELETE FROM room_events \
    WHERE app = ?1 AND room_id = ?2 AND incarnation < ?3";

/// Most destroyed rooms one sweep forgets, so that it never holds the writer long.
pub(super) const SWEEP_LIMIT: usize = 256;

/// Tombstones past their retention, oldest first, [`SWEEP_LIMIT`] at a time.
const EXPIRED_TOMBSTONES: &str = "SELECT app, room_id, incarnation FROM room_tombstones \
    WHERE destroyed_at_ms < ?1 ORDER BY destroyed_at_ms LIMIT ?2";
const DROP_INCARNATION: &str =
    "DELETE FROM room_events WHERE app = ?1 AND room_id = ?2 AND incarnation = ?3";
const DROP_TOMBSTONE: &str = "DELETE FROM room_tombstones WHERE app = ?1 AND room_id = ?2";

const SELECT_PROFILE: &str = "SELECT profile FROM accounts WHERE app = ?1 AND user_id = ?2";
const INSERT_ACCOUNT: &str = "INSERT INTO accounts (app, user_id, profile) VALUES (?1, ?2, ?3)";
const UPDATE_PROFILE: &str = "UPDATE accounts SET profile = ?3 WHERE app = ?1 AND user_id = ?2";

/// The account's profile, if it was imported.
pub(super) fn load_profile(
    conn: &Connection,
    app: AppId,
    account: &Account,
) -> rusqlite::Result<Option<Profile>> {
    let text: Option<String> = conn
        .prepare_cached(SELECT_PROFILE)?
        .query_row(params![app, account.as_str()], |row| row.get(0))
        .optional()?;
    text.map(|text| decode_profile(&text)).transpose()
}

pub(super) fn insert_account(
    conn: &Connection,
    app: AppId,
    account: &Account,
    profile: &Profile,
) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_ACCOUNT)?
        .execute(params![app, account.as_str(), encode_profile(profile)])
        .map(drop)
}

pub(super) fn save_profile(
    conn: &Connection,
    app: AppId,
    account: &Account,
    profile: &Profile,
) -> rusqlite::Result<()> {
    conn.prepare_cached(UPDATE_PROFILE)?
        .execute(params![app, account.as_str(), encode_profile(profile)])
        .map(drop)
}

fn encode_profile(profile: &Profile) -> String {
    codec::encode_profile(profile)
}

fn decode_profile(text: &str) -> rusqlite::Result<Profile> {
    codec::decode_profile(text).map_err(|e| malformed(0, e))
}

/// A stored value that does not decode, as rusqlite reports a column it cannot convert.
fn malformed(column: usize, error: codec::Malformed) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(error))
}

fn corrupt(column: usize, kind: Type, error: DomainError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, kind, Box::new(error))
}

fn encode_category(category: &[i64]) -> String {
    category
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_category(text: &str) -> Option<Vec<i64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|n| n.parse().ok()).collect()
}

fn encode_metadata(metadata: &Metadata) -> String {
    codec::encode_metadata(metadata)
}

fn decode_metadata(text: &str) -> rusqlite::Result<Metadata> {
    codec::decode_metadata(text).map_err(|e| malformed(0, e))
}

fn room_from_row(row: &Row<'_>) -> rusqlite::Result<Room> {
    let id = RoomId::parse(row.get(0)?).map_err(|e| corrupt(0, Type::Text, e))?;
    let owner = Account::parse("owner", row.get(1)?).map_err(|e| corrupt(1, Type::Text, e))?;
    let category: String = row.get(8)?;
    let category = decode_category(&category).ok_or_else(|| {
        corrupt(
            8,
            Type::Text,
            DomainError::invalid("category", "not a list of integers"),
        )
    })?;
    let take_seat_mode: String = row.get(12)?;
    let take_seat_mode =
        TakeSeatMode::parse(&take_seat_mode).map_err(|e| corrupt(12, Type::Text, e))?;
    Ok(Room {
        id,
        owner,
        create_time: row.get(2)?,
        view_count: row.get(3)?,
        revision: row.get(4)?,
        fields: RoomFields {
            name: row.get(5)?,
            cover_url: row.get(6)?,
            notice: row.get(7)?,
            category,
            activity_status: row.get(9)?,
            max_seat_count: row.get(10)?,
            max_member_count: row.get(11)?,
            take_seat_mode,
            is_message_disabled: row.get(13)?,
            is_public_visible: row.get(14)?,
            is_seat_enabled: row.get(15)?,
            seat_template: row.get(16)?,
            is_unlimited_room_enabled: row.get(17)?,
        },
    })
}

/// Events kept in a room's row before they move to `room_events` as one chunk.
const TAIL_EVENTS: u64 = 16;
/// Bytes of a room row's metadata and tail kept within its page. SQLite moves the rest of a
/// WITHOUT ROWID row past about 1,000 bytes (on 4 KiB pages) to overflow pages, which every
/// rewrite of the row then dirties too: measured, a row that grew past it halved the writes
/// per second across many rooms.
const ROW_BUDGET: usize = 800;

/// The newest events of a room's log, as stored in its row: a JSON array, from `from` on.
pub(super) struct Tail {
    from: u64,
    text: String,
}

fn state_from_row(row: &Row<'_>) -> rusqlite::Result<RoomState> {
    let text: String = row.get(20)?;
    let people = match row.get::<_, Option<String>>(21)? {
        None => RoomPeople::default(),
        Some(text) => codec::decode_people(&text).map_err(|e| malformed(21, e))?,
    };
    Ok(RoomState {
        room: room_from_row(row)?,
        position: Position {
            incarnation: row.get(18)?,
            seq: row.get(19)?,
        },
        metadata: decode_metadata(&text)?,
        people,
    })
}

/// Adds `counted` to the live room's statistics; `false` when there is no such room.
pub(super) fn count(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    counted: RoomStats,
) -> rusqlite::Result<bool> {
    // Run even for no viewers: it tells whether the room exists.
    let exists =
        conn.prepare_cached(COUNT_VIEWERS)?
            .execute(params![app, id.as_str(), counted.viewers])?
            > 0;
    if exists && counted.messages > 0 {
        conn.prepare_cached(COUNT_MESSAGES)?.execute(params![
            app,
            id.as_str(),
            counted.messages
        ])?;
    }
    Ok(exists)
}

/// The live room's statistics, if it exists.
pub(super) fn load_stats(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
) -> rusqlite::Result<Option<RoomStats>> {
    conn.prepare_cached(SELECT_STATS)?
        .query_row(params![app, id.as_str()], |row| {
            Ok(RoomStats {
                viewers: row.get(0)?,
                messages: row.get::<_, Option<u64>>(1)?.unwrap_or(0),
            })
        })
        .optional()
}

/// The apps with rooms or accounts.
pub(super) fn apps(conn: &Connection) -> rusqlite::Result<Vec<AppId>> {
    conn.prepare_cached(APPS)?
        .query([])?
        .mapped(|row| row.get(0))
        .collect()
}

/// Up to `limit` live rooms of `app` after `after` (`""`: from the first), whole.
pub(super) fn saved_rooms(
    conn: &Connection,
    app: AppId,
    after: &str,
    limit: usize,
) -> rusqlite::Result<Vec<crate::Saved>> {
    conn.prepare_cached(SAVED_ROOMS)?
        .query(params![app, after, limit as i64])?
        .mapped(|row| {
            let state = state_from_row(row)?;
            Ok(crate::Saved {
                room: state.room,
                metadata: state.metadata,
                people: state.people,
                messages: row.get::<_, Option<u64>>(22)?.unwrap_or(0),
            })
        })
        .collect()
}

/// Up to `limit` accounts of `app` after `after` (`""`: from the first).
pub(super) fn saved_accounts(
    conn: &Connection,
    app: AppId,
    after: &str,
    limit: usize,
) -> rusqlite::Result<Vec<(Account, Profile)>> {
    conn.prepare_cached(SAVED_ACCOUNTS)?
        .query(params![app, after, limit as i64])?
        .mapped(|row| {
            let account =
                Account::parse("account", row.get(0)?).map_err(|e| corrupt(0, Type::Text, e))?;
            Ok((account, decode_profile(&row.get::<_, String>(1)?)?))
        })
        .collect()
}

/// The room's live state, if it exists.
pub(super) fn load_state(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
) -> rusqlite::Result<Option<RoomState>> {
    conn.prepare_cached(SELECT_STATE)?
        .query_row(params![app, id.as_str()], state_from_row)
        .optional()
}

/// What an operation needs of a RoomId: its live state (with the log's tail), or else its
/// last tombstone (a live room's tombstone, of an earlier incarnation, decides nothing).
pub(super) fn load_slot(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
) -> rusqlite::Result<(RoomSlot, Option<Tail>)> {
    let live = conn
        .prepare_cached(SELECT_STATE_AND_TAIL)?
        .query_row(params![app, id.as_str()], |row| {
            let tail = Tail {
                from: row.get(22)?,
                text: row.get(23)?,
            };
            Ok((state_from_row(row)?, tail))
        })
        .optional()?;
    if let Some((live, tail)) = live {
        let slot = RoomSlot {
            live: Some(live),
            tombstone: None,
        };
        return Ok((slot, Some(tail)));
    }
    let tombstone = conn
        .prepare_cached(SELECT_TOMBSTONE)?
        .query_row(params![app, id.as_str()], |row| {
            Ok(Tombstone {
                incarnation: row.get(0)?,
                destroyed_at_ms: row.get(1)?,
            })
        })
        .optional()?;
    let slot = RoomSlot {
        live: None,
        tombstone,
    };
    Ok((slot, None))
}

/// Writes what `events` did to the room, now `after`, and appends them to its log: to the
/// tail in its row, moving the tail to `room_events` when it is full (and then pruning the
/// log to `retention`). `tail` is what [`load_slot`] read.
pub(super) fn save(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    (after, tail): (&RoomSlot, Option<Tail>),
    events: &[RoomEvent],
    retention: &Retention,
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    let entries: Vec<String> = events.iter().map(codec::encode_entry).collect();
    let changed = |kind: fn(&RoomChange) -> bool| events.iter().any(|e| kind(&e.change));
    let Some(now) = &after.live else {
        // Destroyed: the tail and the final events become the incarnation's last chunk.
        let mut tail = tail.unwrap_or_else(|| Tail::starting(first.position.seq));
        tail.append(&entries);
        let incarnation = first.position.incarnation;
        move_to_chunk(conn, app, id, incarnation, tail, last.position.seq)?;
        for statement in [
            "DELETE FROM rooms WHERE app = ?1 AND room_id = ?2",
            DROP_PEOPLE,
            DROP_STATS,
        ] {
            conn.prepare_cached(statement)?
                .execute(params![app, id.as_str()])?;
        }
        if let Some(t) = after.tombstone {
            conn.prepare_cached(UPSERT_TOMBSTONE)?.execute(params![
                app,
                id.as_str(),
                t.incarnation,
                t.destroyed_at_ms
            ])?;
        }
        return Ok(());
    };
    if changed(|c| matches!(c, RoomChange::Created(_))) {
        let mut tail = Tail::starting(first.position.seq);
        tail.append(&entries);
        insert_room(conn, app, now, &tail)?;
        conn.prepare_cached(DROP_EARLIER_EVENTS)?.execute(params![
            app,
            id.as_str(),
            now.position.incarnation
        ])?;
        return Ok(());
    }
    let metadata = encode_metadata(&now.metadata);
    let mut tail = tail.unwrap_or_else(|| Tail::starting(first.position.seq));
    if tail.is_full(first.position.seq, metadata.len()) {
        let incarnation = now.position.incarnation;
        move_to_chunk(conn, app, id, incarnation, tail, first.position.seq - 1)?;
        if let Some(oldest_kept) = last.position.seq.checked_sub(retention.events_per_room) {
            conn.prepare_cached(PRUNE_CHUNKS)?.execute(params![
                app,
                id.as_str(),
                incarnation,
                oldest_kept
            ])?;
        }
        tail = Tail::starting(first.position.seq);
    }
    tail.append(&entries);
    // One statement per write: the log's columns with whatever else the write changed.
    let log = params![app, id.as_str(), now.position.seq, tail.from, tail.text];
    let info_changed = changed(|c| matches!(c, RoomChange::InfoUpdated(_)));
    if info_changed {
        let encoded = encoded_fields(&now.room.fields);
        let fields = field_values(&now.room.fields, &encoded);
        conn.prepare_cached(UPDATE_FIELDS)?
            .execute(params_from_iter(log.iter().copied().chain(fields)))?;
    }
    let metadata_changed = changed(|c| {
        matches!(
            c,
            RoomChange::MetadataSet(_) | RoomChange::MetadataDeleted(_)
        )
    });
    if metadata_changed {
        let more: [&dyn ToSql; 2] = [&metadata, &now.room.revision];
        conn.prepare_cached(UPDATE_METADATA)?
            .execute(params_from_iter(log.iter().copied().chain(more)))?;
    }
    let owner_changed = changed(|c| matches!(c, RoomChange::OwnerChanged(_)));
    if owner_changed {
        let owner: [&dyn ToSql; 1] = [&now.room.owner.as_str()];
        conn.prepare_cached(UPDATE_OWNER)?
            .execute(params_from_iter(log.iter().copied().chain(owner)))?;
    }
    if !(info_changed || metadata_changed || owner_changed) {
        conn.prepare_cached(UPDATE_LOG)?.execute(log)?;
    }
    let people_changed = changed(|c| {
        matches!(
            c,
            RoomChange::Muted { .. }
                | RoomChange::Banned { .. }
                | RoomChange::Unbanned(_)
                | RoomChange::Admins { .. }
                | RoomChange::Robots { .. }
        )
    });
    if people_changed {
        save_people(conn, app, id, &now.people)?;
    }
    Ok(())
}

pub(super) fn save_people(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    people: &RoomPeople,
) -> rusqlite::Result<()> {
    if people.is_empty() {
        conn.prepare_cached(DROP_PEOPLE)?
            .execute(params![app, id.as_str()])?;
    } else {
        conn.prepare_cached(UPSERT_PEOPLE)?.execute(params![
            app,
            id.as_str(),
            codec::encode_people(people)
        ])?;
    }
    Ok(())
}

impl Tail {
    /// The empty tail of a room whose log has nothing after its current position.
    pub(super) fn after(state: &RoomState) -> Self {
        Self::starting(state.position.seq + 1)
    }

    fn starting(from: u64) -> Self {
        Self {
            from,
            text: "[]".to_owned(),
        }
    }

    /// Whether the tail must move before the event numbered `next` joins it, in a row whose
    /// metadata takes `metadata_bytes`.
    fn is_full(&self, next: u64, metadata_bytes: usize) -> bool {
        next.saturating_sub(self.from) >= TAIL_EVENTS
            || metadata_bytes + self.text.len() >= ROW_BUDGET
    }

    /// Adds encoded events at the end of the array, without parsing it.
    fn append(&mut self, entries: &[String]) {
        for entry in entries {
            self.text.pop(); // the closing bracket
            if self.text.len() > 1 {
                self.text.push(',');
            }
            self.text.push_str(entry);
            self.text.push(']');
        }
    }
}

/// Stores `tail`, whose events end at `last_seq`, as one chunk of the incarnation's log.
fn move_to_chunk(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    incarnation: u64,
    tail: Tail,
    last_seq: u64,
) -> rusqlite::Result<()> {
    if last_seq < tail.from {
        return Ok(());
    }
    conn.prepare_cached(INSERT_CHUNK)?.execute(params![
        app,
        id.as_str(),
        incarnation,
        tail.from,
        last_seq,
        tail.text
    ])?;
    Ok(())
}

/// Forgets up to [`SWEEP_LIMIT`] rooms destroyed before `cutoff_ms`: the destroyed
/// incarnation's events and the tombstone. Returns how many; a later sweep takes the rest.
pub(super) fn sweep(conn: &Connection, cutoff_ms: u64) -> rusqlite::Result<usize> {
    let expired: Vec<(AppId, String, u64)> = conn
        .prepare_cached(EXPIRED_TOMBSTONES)?
        .query_map(params![cutoff_ms, SWEEP_LIMIT], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (app, room, incarnation) in &expired {
        conn.prepare_cached(DROP_INCARNATION)?
            .execute(params![app, room, incarnation])?;
        conn.prepare_cached(DROP_TOMBSTONE)?
            .execute(params![app, room])?;
    }
    Ok(expired.len())
}

/// Up to `limit` events of `after`'s incarnation after `after.seq`, oldest first, from the
/// chunks and the live room's tail; and the live room's position. Run it inside one read
/// transaction, so that the two statements see one snapshot.
pub(super) fn load_events(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    after: Position,
    limit: usize,
) -> rusqlite::Result<(Vec<RoomEvent>, Option<Position>)> {
    let decode = |text: &str| {
        codec::decode_entries(text, app, id, after.incarnation)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
    };
    let mut events = Vec::new();
    // Each chunk holds at least one event: `limit` chunks hold enough.
    let chunks = limit.min(i64::MAX as usize);
    let mut statement = conn.prepare_cached(SELECT_CHUNKS)?;
    let mut rows = statement.query(params![
        app,
        id.as_str(),
        after.incarnation,
        after.seq,
        chunks
    ])?;
    while let Some(row) = rows.next()? {
        events.extend(decode(&row.get::<_, String>(0)?)?);
    }
    let live = conn
        .prepare_cached(SELECT_TAIL)?
        .query_row(params![app, id.as_str()], |row| {
            let position = Position {
                incarnation: row.get(0)?,
                seq: row.get(1)?,
            };
            Ok((position, row.get::<_, String>(2)?))
        })
        .optional()?;
    let head = live.as_ref().map(|(position, _)| *position);
    if let Some((position, tail)) = live
        && position.incarnation == after.incarnation
    {
        events.extend(decode(&tail)?);
    }
    events.retain(|e| e.position.seq > after.seq);
    events.truncate(limit);
    Ok((events, head))
}

/// Up to `limit` public rooms strictly after `after`, in list order. Several statements: run
/// it inside one read transaction so that they see one snapshot.
pub(super) fn list_rooms(
    conn: &Connection,
    app: AppId,
    after: Option<&ListPosition>,
    limit: usize,
) -> rusqlite::Result<Vec<Room>> {
    // SQLite's LIMIT is an i64; nobody can hold more rooms than that anyway.
    let limit = limit.min(i64::MAX as usize);
    let mut page = Vec::with_capacity(limit.min(64));
    let Some(after) = after else {
        collect(conn, LIST_FIRST, params![app, limit], &mut page)?;
        return Ok(page);
    };
    let (views, time, id) = (after.view_count, after.create_time, after.room_id.as_str());
    collect(
        conn,
        LIST_SAME_TIME,
        params![app, views, time, id, limit],
        &mut page,
    )?;
    if page.len() < limit {
        let rest = limit - page.len();
        collect(conn, LIST_OLDER, params![app, views, time, rest], &mut page)?;
    }
    if page.len() < limit {
        let rest = limit - page.len();
        collect(conn, LIST_FEWER_VIEWS, params![app, views, rest], &mut page)?;
    }
    Ok(page)
}

fn collect(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    page: &mut Vec<Room>,
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(sql)?;
    for room in statement.query_map(params, room_from_row)? {
        page.push(room?);
    }
    Ok(())
}

/// A room's settable columns, in the order both [`INSERT_ROOM`] and [`UPDATE_FIELDS`] bind
/// them after their leading key (and, for the update, log) columns. `encoded` holds the two columns stored as text:
/// `f.category` and `f.take_seat_mode`.
fn field_values<'a>(f: &'a RoomFields, encoded: &'a (String, &'static str)) -> [&'a dyn ToSql; 13] {
    [
        &f.name,
        &f.cover_url,
        &f.notice,
        &encoded.0,
        &f.activity_status,
        &f.max_seat_count,
        &f.max_member_count,
        &encoded.1,
        &f.is_message_disabled,
        &f.is_public_visible,
        &f.is_seat_enabled,
        &f.seat_template,
        &f.is_unlimited_room_enabled,
    ]
}

fn encoded_fields(f: &RoomFields) -> (String, &'static str) {
    (encode_category(&f.category), f.take_seat_mode.as_str())
}

pub(super) fn insert_room(
    conn: &Connection,
    app: AppId,
    state: &RoomState,
    tail: &Tail,
) -> rusqlite::Result<()> {
    let room = &state.room;
    let encoded = encoded_fields(&room.fields);
    let metadata = encode_metadata(&state.metadata);
    let keys: [&dyn ToSql; 6] = [
        &app,
        &room.id.as_str(),
        &room.owner.as_str(),
        &room.create_time,
        &room.view_count,
        &room.revision,
    ];
    let log: [&dyn ToSql; 5] = [
        &state.position.incarnation,
        &state.position.seq,
        &metadata,
        &tail.from,
        &tail.text,
    ];
    let values = keys
        .into_iter()
        .chain(field_values(&room.fields, &encoded))
        .chain(log);
    conn.prepare_cached(INSERT_ROOM)?
        .execute(params_from_iter(values))?;
    Ok(())
}

/// Tests: how SQLite plans `sql` on `conn`, its steps joined by "; ".
#[cfg(test)]
pub(super) fn query_plan(conn: &Connection, sql: &str) -> String {
    explain(conn, "EXPLAIN QUERY PLAN", sql, 3).join("; ")
}

/// Tests: the opcodes of the program SQLite compiles `sql` into on `conn`.
#[cfg(test)]
pub(super) fn opcodes(conn: &Connection, sql: &str) -> Vec<String> {
    explain(conn, "EXPLAIN", sql, 1)
}

/// Column `column` of every row `{explain} {sql}` answers, with every parameter bound to 0.
#[cfg(test)]
fn explain(conn: &Connection, explain: &str, sql: &str, column: usize) -> Vec<String> {
    let mut statement = conn.prepare(&format!("{explain} {sql}")).unwrap();
    let params = std::iter::repeat_n(0, statement.parameter_count());
    statement
        .query_map(rusqlite::params_from_iter(params), |row| row.get(column))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_json() {
        let metadata = Metadata::from([
            ("k".to_owned(), String::new()),
            ("quote\"".to_owned(), "line\nbreak \u{1} é 🎉".to_owned()),
        ]);
        let text = encode_metadata(&metadata);
        assert_eq!(decode_metadata(&text).unwrap(), metadata);
        assert!(decode_metadata("{\"k\": 1}").is_err());
        assert!(decode_metadata("[]").is_err());
    }

    #[test]
    fn category_round_trips() {
        for category in [vec![], vec![0], vec![-3, 7, i64::MAX]] {
            assert_eq!(decode_category(&encode_category(&category)), Some(category));
        }
        assert_eq!(decode_category("1,,2"), None);
    }

    /// Every list statement must walk the list-order index without sorting: a page costs one
    /// index range, however deep into the list it starts.
    #[test]
    fn list_statements_use_the_index_without_sorting() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for sql in [LIST_FIRST, LIST_SAME_TIME, LIST_OLDER, LIST_FEWER_VIEWS] {
            let plan = query_plan(&conn, sql);
            assert!(
                plan.contains("USING INDEX rooms_list_order"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
}
