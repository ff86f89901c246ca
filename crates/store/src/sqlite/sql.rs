//! The schema, every SQL statement, and the mapping between rows and domain values. Both the
//! writer thread and the readers go through these functions, always with cached statements.

use liveroom_domain::{
    Account, AppId, DomainError, ListPosition, Metadata, Room, RoomFields, RoomId, TakeSeatMode,
};
use rusqlite::types::ToSql;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

/// The `PRAGMA user_version` this code reads and writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Version 1. `STRICT` makes SQLite refuse values of the wrong type instead of converting them;
/// TEXT compares with the default BINARY collation, so key and RoomId order is byte order,
/// the same as Rust's `String` order. The per-value limits are repeated as CHECKs as a last
/// line of defence; the limits that span rows are the domain rules' job.
pub(super) const SCHEMA: &str = "
CREATE TABLE rooms (
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
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;

-- Serves get_room_list: one index range per page, already in list order.
CREATE INDEX rooms_list_order
    ON rooms (app, is_public_visible, view_count DESC, create_time DESC, room_id);

CREATE TABLE room_metadata (
    app     INTEGER NOT NULL,
    room_id TEXT    NOT NULL,
    key     TEXT    NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 50),
    value   TEXT    NOT NULL CHECK (length(CAST(value AS BLOB)) <= 2048),
    PRIMARY KEY (app, room_id, key),
    FOREIGN KEY (app, room_id) REFERENCES rooms (app, room_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
";

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

const SELECT_ROOM: &str = concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms WHERE app = ?1 AND room_id = ?2"
);

const INSERT_ROOM: &str = concat!(
    "INSERT INTO rooms (app, ",
    room_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
);

const UPDATE_FIELDS: &str = "UPDATE rooms SET name = ?3, cover_url = ?4, notice = ?5, \
    category = ?6, activity_status = ?7, max_seat_count = ?8, max_member_count = ?9, \
    take_seat_mode = ?10, is_message_disabled = ?11, is_public_visible = ?12, \
    is_seat_enabled = ?13, seat_template = ?14, is_unlimited_room_enabled = ?15 \
    WHERE app = ?1 AND room_id = ?2";

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

/// Every key of a room, or no row at all when the room does not exist: one statement, so one
/// snapshot, answers both questions.
const SELECT_METADATA: &str = "SELECT m.key, m.value FROM rooms r \
    LEFT JOIN room_metadata m ON m.app = r.app AND m.room_id = r.room_id \
    WHERE r.app = ?1 AND r.room_id = ?2";

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

pub(super) fn load_room(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
) -> rusqlite::Result<Option<Room>> {
    conn.prepare_cached(SELECT_ROOM)?
        .query_row(params![app, id.as_str()], room_from_row)
        .optional()
}

/// `None` when the room does not exist.
pub(super) fn load_metadata(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
) -> rusqlite::Result<Option<Metadata>> {
    let mut statement = conn.prepare_cached(SELECT_METADATA)?;
    let mut rows = statement.query(params![app, id.as_str()])?;
    let mut metadata = None;
    while let Some(row) = rows.next()? {
        let metadata = metadata.get_or_insert_with(Metadata::new);
        if let (Some(key), Some(value)) = (row.get(0)?, row.get(1)?) {
            metadata.insert(key, value);
        }
    }
    Ok(metadata)
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
/// them after their leading key columns. `encoded` holds the two columns stored as text:
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

pub(super) fn insert_room(conn: &Connection, app: AppId, room: &Room) -> rusqlite::Result<()> {
    let encoded = encoded_fields(&room.fields);
    let keys: [&dyn ToSql; 6] = [
        &app,
        &room.id.as_str(),
        &room.owner.as_str(),
        &room.create_time,
        &room.view_count,
        &room.revision,
    ];
    let values = keys.into_iter().chain(field_values(&room.fields, &encoded));
    conn.prepare_cached(INSERT_ROOM)?
        .execute(params_from_iter(values))?;
    Ok(())
}

pub(super) fn update_fields(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    f: &RoomFields,
) -> rusqlite::Result<()> {
    let encoded = encoded_fields(f);
    let keys: [&dyn ToSql; 2] = [&app, &id.as_str()];
    let values = keys.into_iter().chain(field_values(f, &encoded));
    conn.prepare_cached(UPDATE_FIELDS)?
        .execute(params_from_iter(values))?;
    Ok(())
}

/// Whether a room was deleted; its metadata goes with it (`ON DELETE CASCADE`).
pub(super) fn delete_room(conn: &Connection, app: AppId, id: &RoomId) -> rusqlite::Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM rooms WHERE app = ?1 AND room_id = ?2")?
        .execute(params![app, id.as_str()])?;
    Ok(deleted > 0)
}

pub(super) fn bump_revision(conn: &Connection, app: AppId, id: &RoomId) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE rooms SET revision = revision + 1 WHERE app = ?1 AND room_id = ?2",
    )?
    .execute(params![app, id.as_str()])?;
    Ok(())
}

pub(super) fn upsert_value(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO room_metadata (app, room_id, key, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (app, room_id, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![app, id.as_str(), key, value])?;
    Ok(())
}

pub(super) fn delete_value(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    key: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM room_metadata WHERE app = ?1 AND room_id = ?2 AND key = ?3")?
        .execute(params![app, id.as_str(), key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let params = std::iter::repeat_n(0, statement.parameter_count());
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(params), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains("USING INDEX rooms_list_order"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
}
