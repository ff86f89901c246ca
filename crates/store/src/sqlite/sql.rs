//! The schema, every SQL statement, and the mapping between rows and domain values. Both the
//! writer thread and the readers go through these functions, always with cached statements.

use liveroom_domain::{
    Account, AppId, DomainError, ListPosition, Metadata, Room, RoomFields, RoomId, TakeSeatMode,
};
use rusqlite::types::ToSql;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

/// The `PRAGMA user_version` this code reads and writes.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Version 2, for a new database. `STRICT` makes SQLite refuse values of the wrong type instead
/// of converting them; TEXT compares with the default BINARY collation, so RoomId order is byte
/// order, the same as Rust's `String` order.
///
/// A room's metadata is one JSON object in its row, next to the revision that counts its
/// changes: metadata is always read and written whole (every rule looks at all of it), so a
/// `set_room_metadata` reads and rewrites one row on one page. Version 1 kept a row per key
/// in a table of its own and the revision in `rooms`: each set dirtied two B-trees and took
/// five statements, which made random writes across a million rooms twice as costly.
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
    -- Last, so that reading the columns before it never touches its overflow pages.
    metadata                  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    PRIMARY KEY (app, room_id)
) STRICT, WITHOUT ROWID;

-- Serves get_room_list: one index range per page, already in list order.
CREATE INDEX rooms_list_order
    ON rooms (app, is_public_visible, view_count DESC, create_time DESC, room_id);
";

/// Version 1 to 2: each room's key rows become one JSON object in its row.
pub(super) const MIGRATE_1_TO_2: &str = "
ALTER TABLE rooms ADD COLUMN
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata));
UPDATE rooms SET metadata = (
    SELECT json_group_object(m.key, m.value) FROM room_metadata m
    WHERE m.app = rooms.app AND m.room_id = rooms.room_id
) WHERE EXISTS (
    SELECT 1 FROM room_metadata m WHERE m.app = rooms.app AND m.room_id = rooms.room_id
);
DROP TABLE room_metadata;
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
    ", metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
     ?17, ?18, ?19, ?20)"
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

/// A room's metadata; no row when the room does not exist.
const SELECT_METADATA: &str = "SELECT metadata FROM rooms WHERE app = ?1 AND room_id = ?2";

const UPDATE_METADATA: &str = "UPDATE rooms SET metadata = ?3, revision = revision + 1 \
    WHERE app = ?1 AND room_id = ?2";

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
    // A map of strings always serializes.
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

fn decode_metadata(text: &str) -> rusqlite::Result<Metadata> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Text,
            format!("malformed metadata: {e}").into(),
        )
    })
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
    let text: Option<String> = conn
        .prepare_cached(SELECT_METADATA)?
        .query_row(params![app, id.as_str()], |row| row.get(0))
        .optional()?;
    text.as_deref().map(decode_metadata).transpose()
}

/// Replaces a room's metadata and counts the change in its revision.
pub(super) fn store_metadata(
    conn: &Connection,
    app: AppId,
    id: &RoomId,
    metadata: &Metadata,
) -> rusqlite::Result<()> {
    conn.prepare_cached(UPDATE_METADATA)?.execute(params![
        app,
        id.as_str(),
        encode_metadata(metadata)
    ])?;
    Ok(())
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

pub(super) fn insert_room(
    conn: &Connection,
    app: AppId,
    room: &Room,
    metadata: &Metadata,
) -> rusqlite::Result<()> {
    let encoded = encoded_fields(&room.fields);
    let metadata = encode_metadata(metadata);
    let keys: [&dyn ToSql; 6] = [
        &app,
        &room.id.as_str(),
        &room.owner.as_str(),
        &room.create_time,
        &room.view_count,
        &room.revision,
    ];
    let values = keys
        .into_iter()
        .chain(field_values(&room.fields, &encoded))
        .chain([&metadata as &dyn ToSql]);
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

/// Whether a room was deleted, metadata and all.
pub(super) fn delete_room(conn: &Connection, app: AppId, id: &RoomId) -> rusqlite::Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM rooms WHERE app = ?1 AND room_id = ?2")?
        .execute(params![app, id.as_str()])?;
    Ok(deleted > 0)
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
