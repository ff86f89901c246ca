//! The PostgreSQL schema and its migration (docs/cluster.md §3). One version number in
//! `liveroom_schema`; every node migrates at start under one advisory lock, so nodes starting
//! together apply each step once.

use deadpool_postgres::Object;

use crate::{StoreError, StoreResult};

/// The schema version this code reads and writes: a database at version `n` is brought to this
/// one by running `UPGRADES[n - 1..]` in order.
pub(super) const SCHEMA_VERSION: i32 = 1 + UPGRADES.len() as i32;

/// The advisory lock every node takes while it migrates ("liveroom" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c69_7665_726f_6f6d;

/// Version 1, where a new database starts. RoomIds and accounts compare byte by byte
/// (`COLLATE "C"`), the same order as Rust's strings, so lists page alike on every backend.
///
/// A room is one row: the room itself (fields, owner, counters, revision) and its metadata as
/// JSON text, read and written whole as every rule looks at all of it; `view_count`,
/// `create_time` and `is_public` are columns of their own for the list's index, and
/// `view_count` is the one the statistics add to. Events are one row each. A rate-limit bucket
/// is its GCRA's theoretical arrival time, in nanoseconds.
const SCHEMA: &str = r#"
CREATE TABLE rooms (
    app         BIGINT  NOT NULL,
    room_id     TEXT    COLLATE "C" NOT NULL,
    room        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    people      TEXT,
    incarnation BIGINT  NOT NULL,
    seq         BIGINT  NOT NULL,
    is_public   BOOLEAN NOT NULL,
    view_count  BIGINT  NOT NULL,
    create_time BIGINT  NOT NULL,
    messages    BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (app, room_id)
);
CREATE INDEX rooms_list_order ON rooms (app, view_count DESC, create_time DESC, room_id)
    WHERE is_public;
CREATE TABLE room_events (
    app         BIGINT NOT NULL,
    room_id     TEXT   COLLATE "C" NOT NULL,
    incarnation BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    change      TEXT   NOT NULL,
    PRIMARY KEY (app, room_id, incarnation, seq)
);
CREATE TABLE room_tombstones (
    app             BIGINT NOT NULL,
    room_id         TEXT   COLLATE "C" NOT NULL,
    incarnation     BIGINT NOT NULL,
    destroyed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app, room_id)
);
CREATE INDEX room_tombstones_age ON room_tombstones (destroyed_at_ms);
CREATE TABLE accounts (
    app     BIGINT NOT NULL,
    user_id TEXT   COLLATE "C" NOT NULL,
    profile TEXT   NOT NULL,
    PRIMARY KEY (app, user_id)
);
CREATE TABLE feed_apps (
    app      BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
CREATE TABLE feed (
    app     BIGINT   NOT NULL,
    seq     BIGINT   NOT NULL,
    room_id TEXT     COLLATE "C" NOT NULL,
    at_ms   BIGINT   NOT NULL,
    entry   TEXT     NOT NULL,
    state   SMALLINT NOT NULL,
    error   TEXT     NOT NULL DEFAULT '',
    PRIMARY KEY (app, seq)
);
CREATE INDEX feed_room ON feed (app, room_id, seq);
CREATE INDEX feed_done_age ON feed (at_ms) WHERE state = 0;
CREATE INDEX feed_kept ON feed (app, state, seq) WHERE state > 0;
CREATE TABLE outbox (
    app            BIGINT NOT NULL,
    room_id        TEXT   COLLATE "C" NOT NULL,
    seq            BIGINT NOT NULL,
    attempts       INT    NOT NULL,
    due_ms         BIGINT NOT NULL,
    lease_node     TEXT   NOT NULL DEFAULT '',
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app, room_id)
);
CREATE INDEX outbox_due ON outbox (app, due_ms);
CREATE UNIQUE INDEX outbox_entry ON outbox (app, seq);
CREATE TABLE rate_buckets (
    app    BIGINT NOT NULL,
    bucket TEXT   NOT NULL,
    tat_ns BIGINT NOT NULL,
    PRIMARY KEY (app, bucket)
);
"#;

/// Each step upgrades a database by one version, from version 1; a new database runs
/// [`SCHEMA`] and then every step.
///
/// Version 2: what the nodes share beyond durable state (docs/cluster.md §4). A node is a
/// process with a lease; a member row is one node's connection(s) of a user to a room; a live
/// frame is numbered per node, in the order the node wrote it, and kept for seconds only
/// (unlogged: a crash of PostgreSQL empties it, which loses nothing durable).
const UPGRADES: &[&str] = &[r#"
CREATE TABLE nodes (
    node_key       BIGINT PRIMARY KEY,
    node           TEXT   NOT NULL,
    lease_until_ms BIGINT NOT NULL
);
CREATE TABLE members (
    app      BIGINT NOT NULL,
    room_id  TEXT   COLLATE "C" NOT NULL,
    account  TEXT   COLLATE "C" NOT NULL,
    node_key BIGINT NOT NULL,
    nick     TEXT,
    avatar   TEXT,
    -- When its connection dropped (docs/protocol.md, "Members and presence"); null while
    -- connected.
    interrupted_ms BIGINT,
    PRIMARY KEY (app, room_id, account, node_key)
);
CREATE INDEX members_node ON members (node_key);
CREATE UNLOGGED TABLE live_frames (
    node_key BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    app      BIGINT NOT NULL,
    room_id  TEXT   NOT NULL,
    frame    TEXT   NOT NULL,
    -- Set for a replacement (the account whose other connections end), with no frame.
    replaces TEXT,
    PRIMARY KEY (node_key, seq)
);
CREATE INDEX live_frames_age ON live_frames (at_ms);
"#];

/// Creates the schema in an empty database, upgrades an older one, refuses a newer one; all in
/// one transaction under [`MIGRATION_LOCK`].
pub(super) async fn migrate(client: &mut Object) -> StoreResult<()> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::Unavailable(format!(
            "cannot migrate the schema: {}",
            super::describe(&e)
        ))
    };
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS liveroom_schema (version INT NOT NULL)")
        .await
        .map_err(fail)?;
    let version: Option<i32> = tx
        .query_opt("SELECT version FROM liveroom_schema", &[])
        .await
        .map_err(fail)?
        .map(|row| row.get(0));
    let steps = match version {
        None => [SCHEMA].iter().chain(UPGRADES).copied().collect(),
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) if (1..SCHEMA_VERSION).contains(&v) => UPGRADES[v as usize - 1..].concat(),
        Some(other) => {
            return Err(StoreError::Unavailable(format!(
                "the database has schema version {other}, which this liveroom does not know \
                 (it knows version {SCHEMA_VERSION}); was it written by a newer liveroom?"
            )));
        }
    };
    tx.batch_execute(&steps).await.map_err(fail)?;
    tx.execute("DELETE FROM liveroom_schema", &[])
        .await
        .map_err(fail)?;
    tx.execute(
        "INSERT INTO liveroom_schema VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)
}
