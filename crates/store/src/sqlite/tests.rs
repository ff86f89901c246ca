use std::ops::Deref;
use std::sync::Arc;

use liveroom_domain::limits::{METADATA_MAX_KEYS, METADATA_TOTAL_MAX_BYTES};
use liveroom_domain::{DomainError, Metadata, MetadataEntry, NewRoom, RoomChanges, total_bytes};
use liveroom_domain::{IfExists, NewAccounts, Profile};

use crate::conformance::Shorthand;
use tempfile::TempDir;

use super::*;

/// A store in a fresh temporary directory, which goes away after the store.
struct TempStore {
    store: SqliteStore,
    _dir: TempDir,
}

impl Deref for TempStore {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

/// A path whose parent directories do not exist yet: `open` must create them.
fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data").join("rooms").join("liveroom.db")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(path)).unwrap()
}

fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    TempStore {
        store: open(&db_path(&dir)),
        _dir: dir,
    }
}

crate::conformance_tests!(temp_store());

fn store_with_outboxes() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteOptions::new(db_path(&dir));
    options.outboxes = crate::conformance::suite_outboxes();
    TempStore {
        store: SqliteStore::open(options).unwrap(),
        _dir: dir,
    }
}

mod feed {
    use super::*;

    crate::feed_conformance!(store_with_outboxes());
}

/// What waits for a webhook, and the numbering, survive a restart.
#[tokio::test]
async fn the_outbox_survives_reopening() {
    let TempStore { store, _dir: dir } = store_with_outboxes();
    let app = 1_400_000_001;
    let room = NewRoom::validate(
        "r".into(),
        None,
        Some("o".into()),
        "a",
        RoomChanges::default(),
    )
    .unwrap();
    let by = liveroom_domain::Account::parse("a", "op".into()).unwrap();
    let now = Duration::from_secs(1_700_000_000);
    store
        .write(
            app,
            by.clone(),
            Box::new(liveroom_domain::ops::CreateRoom(room)),
            now,
        )
        .await
        .unwrap();
    let path = db_path(&dir);
    store.close().await;
    drop(store);
    let mut options = SqliteOptions::new(&path);
    options.outboxes = crate::conformance::suite_outboxes();
    let reopened = SqliteStore::open(options).unwrap();
    let due = reopened
        .due(app, u64::MAX >> 1, 10, &Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].entry.seq, &due[0].entry.by), (1, &by));
    reopened
        .settle(app, vec![(1, Outcome::Delivered)])
        .await
        .unwrap();
    reopened
        .record_members(
            app,
            &due[0].entry.room,
            by,
            liveroom_domain::MemberChange {
                cause: liveroom_domain::MemberCause::Enter,
                accounts: Vec::new(),
            },
            now,
        )
        .await
        .unwrap();
    let feed = reopened.feed(app, None, 0, 10).await.unwrap();
    assert_eq!(feed.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(
        reopened
            .due(app, u64::MAX >> 1, 10, &Default::default())
            .await
            .unwrap()
            .len()
            == 1
    );
}

/// The same suite with a metadata cache too small for more than a few rooms, so that reads
/// keep going back to SQLite after evictions.
mod with_a_tiny_metadata_cache {
    use super::*;

    fn tiny_cache_store() -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SqliteOptions::new(db_path(&dir));
        options.metadata_cache_bytes = 256 * 1024;
        TempStore {
            store: SqliteStore::open(options).unwrap(),
            _dir: dir,
        }
    }

    crate::conformance_tests!(tiny_cache_store());
}

#[tokio::test]
async fn retention_bounds_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteOptions::new(db_path(&dir));
    options.retention = crate::Retention {
        events_per_room: 50,
        destroyed_room: Duration::from_secs(30),
        ..Default::default()
    };
    let retention = options.retention;
    let store = SqliteStore::open(options).unwrap();
    crate::conformance::retention_bounds_the_log(&store, retention).await;
}

const APP: AppId = 7;
const NOW: u64 = 1_700_000_000;

fn id(raw: &str) -> RoomId {
    RoomId::parse(raw.into()).unwrap()
}

fn new_room(room: &str) -> NewRoom {
    NewRoom::validate(
        room.into(),
        None,
        Some("owner".into()),
        "admin",
        RoomChanges::default(),
    )
    .unwrap()
}

fn entries(pairs: &[(&str, &str)]) -> Vec<MetadataEntry> {
    pairs
        .iter()
        .map(|(k, v)| MetadataEntry::new((*k).into(), (*v).into()).unwrap())
        .collect()
}

fn unavailable_message(outcome: StoreResult<impl Sized>) -> String {
    match outcome {
        Err(StoreError::Unavailable(message)) => message,
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("expected Unavailable, got success"),
    }
}

/// Everything a client can read: every page of the list, and each named room with its
/// metadata.
async fn snapshot(
    store: &SqliteStore,
    rooms: &[String],
) -> (Vec<Room>, Vec<(Option<Room>, StoreResult<Metadata>)>) {
    let mut list = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_rooms(APP, after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(ListPosition::of(last));
        list.extend(page);
    }
    let mut each = Vec::new();
    for room in rooms {
        let stored = store.room_of(APP, id(room)).await.unwrap();
        each.push((stored, store.metadata(APP, id(room)).await));
    }
    (list, each)
}

#[tokio::test]
async fn restart_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let names: Vec<String> = (0..30).map(|i| format!("room-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let changes = RoomChanges {
            is_public_visible: Some(i % 4 != 0),
            category: Some(vec![i as i64, -1]),
            ..Default::default()
        };
        let room = NewRoom::validate(name.clone(), None, Some("o".into()), "a", changes).unwrap();
        store
            .create_room(APP, room, NOW + (i as u64 % 5))
            .await
            .unwrap();
        for j in 0..i % 3 {
            let value = "é".repeat(i * 10 + j);
            let key = format!("k{j}");
            store
                .set_metadata(APP, id(name), entries(&[(&key, &value)]))
                .await
                .unwrap();
        }
    }
    store
        .delete_metadata(APP, id("room-02"), vec!["k0".into()])
        .await
        .unwrap();
    let notice = RoomChanges {
        notice: Some("updated".into()),
        ..Default::default()
    };
    store
        .update_room(APP, id("room-05"), notice.validate().unwrap())
        .await
        .unwrap();
    store.destroy_room(APP, id("room-07")).await.unwrap();
    let seeded = Room {
        view_count: 99,
        revision: 4,
        ..new_room("seeded").into_room(NOW - 1)
    };
    store
        .import_rooms(APP, [(seeded, Metadata::from([("s".into(), "1".into())]))])
        .await
        .unwrap();
    let mut all = names.clone();
    all.push("seeded".into());

    let before = snapshot(&store, &all).await;
    // 30 rooms, 8 hidden, one destroyed, one imported.
    assert_eq!(before.0.len(), 30 - 8 - 1 + 1);
    store.close().await;
    drop(store);

    let store = open(&path);
    assert_eq!(snapshot(&store, &all).await, before);
    store
        .create_room(APP, new_room("after"), NOW)
        .await
        .unwrap();
}

/// The schema of liveroom's first release (`user_version` 1), as databases it wrote hold it.
const SCHEMA_V1: &str = "
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

#[tokio::test]
async fn a_version_1_database_is_upgraded_with_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; BEGIN; {SCHEMA_V1} PRAGMA user_version = 1;
             INSERT INTO rooms VALUES
                 (7, 'r1', 'owner', 1700000000, 5, 3, 'one', '', '', '1,2', 0, 9, 0,
                  'FreeToTake', 0, 1, 1, NULL, NULL),
                 (7, 'r2', 'owner', 1700000001, 0, 0, 'two', '', '', '', 0, 9, 0,
                  'FreeToTake', 0, 1, 1, NULL, NULL);
             INSERT INTO room_metadata VALUES
                 (7, 'r1', 'a', '1'), (7, 'r1', 'quote\"', 'line' || char(10) || 'break');
             COMMIT;"
        ))
        .unwrap();
    }
    let store = open(&path);
    let r1 = Metadata::from([
        ("a".into(), "1".into()),
        ("quote\"".into(), "line\nbreak".into()),
    ]);
    assert_eq!(store.metadata(APP, id("r1")).await, Ok(r1));
    assert_eq!(store.metadata(APP, id("r2")).await, Ok(Metadata::new()));
    let room = store.room_of(APP, id("r1")).await.unwrap().unwrap();
    assert_eq!((room.revision, room.view_count), (3, 5));
    assert_eq!(room.fields.category, vec![1, 2]);
    assert_eq!(store.list_rooms(APP, None, 10).await.unwrap().len(), 2);
    store
        .set_metadata(APP, id("r1"), entries(&[("a", "2")]))
        .await
        .unwrap();
    // The upgrade also created the accounts table (version 4).
    let ann = Account::parse("UserID", "ann".into()).unwrap();
    let accounts = NewAccounts::new("UserID", vec![(ann.clone(), Profile::default())]).unwrap();
    store
        .import_accounts(APP, accounts, IfExists::Refuse)
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = open(&path);
    assert_eq!(store.metadata(APP, id("r1")).await.unwrap()["a"], "2");
    assert_eq!(
        store.profiles(APP, vec![ann]).await,
        Ok(vec![Some(Profile::default())])
    );
    assert_eq!(
        store
            .room_of(APP, id("r1"))
            .await
            .unwrap()
            .unwrap()
            .revision,
        4
    );
    store.close().await;
    drop(store);
    // The upgraded database has exactly a new one's tables and indexes.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_path = db_path(&fresh_dir);
    open(&fresh_path).close().await;
    let schema = |path: &Path| -> Vec<(String, String)> {
        Connection::open(path)
            .unwrap()
            .prepare("SELECT type, name FROM sqlite_master ORDER BY type, name")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(schema(&path), schema(&fresh_path));
}

#[tokio::test]
async fn second_open_is_refused_while_the_first_store_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let first = open(&path);
    let message = unavailable_message(SqliteStore::open(SqliteOptions::new(&path)));
    assert!(
        message.contains("another liveroom process is using the data directory"),
        "{message}"
    );
    // Dropping without `close` still finishes queued writes and releases the lock.
    let queued = first.create_room(APP, new_room("queued"), NOW);
    drop(queued);
    drop(first);
    let second = open(&path);
    assert!(second.room_of(APP, id("queued")).await.unwrap().is_some());
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(open(&path));
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", sql::SCHEMA_VERSION + 1)
        .unwrap();
    let message = unavailable_message(SqliteStore::open(SqliteOptions::new(&path)));
    let newer = format!("schema version {}", sql::SCHEMA_VERSION + 1);
    assert!(message.contains(&newer), "{message}");
}

#[tokio::test]
async fn one_bad_request_in_a_batch_fails_alone() {
    let store = temp_store();
    store.create_room(APP, new_room("r"), NOW).await.unwrap();
    let go = store.hold_writer();
    // All of these are queued before the writer resumes, so they form one batch.
    let set_a = store.set_metadata(APP, id("r"), entries(&[("a", "1")]));
    let create_n1 = store.create_room(APP, new_room("n1"), NOW);
    let too_big = store.set_metadata(APP, id("r"), entries(&[("a", &"v".repeat(2049))]));
    let exists = store.create_room(APP, new_room("r"), NOW);
    // u64::MAX does not fit SQLite's integers: an SQL error, not a rule.
    let sql_error = store.create_room(APP, new_room("late"), u64::MAX);
    let set_b = store.set_metadata(APP, id("r"), entries(&[("b", "2")]));
    let create_n2 = store.create_room(APP, new_room("n2"), NOW);
    go.send(()).unwrap();

    assert_eq!(set_a.await, Ok(()));
    assert_eq!(create_n1.await, Ok(()));
    assert_eq!(
        too_big.await,
        Err(StoreError::Rule(DomainError::ValueTooLarge {
            key: "a".into()
        }))
    );
    assert_eq!(
        exists.await,
        Err(StoreError::Rule(DomainError::RoomExists {
            same_owner: true
        }))
    );
    unavailable_message(sql_error.await);
    assert_eq!(set_b.await, Ok(()));
    assert_eq!(create_n2.await, Ok(()));

    let expected = Metadata::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!(store.metadata(APP, id("r")).await, Ok(expected));
    assert_eq!(
        store.room_of(APP, id("r")).await.unwrap().unwrap().revision,
        2
    );
    assert!(store.room_of(APP, id("n1")).await.unwrap().is_some());
    assert!(store.room_of(APP, id("n2")).await.unwrap().is_some());
    assert_eq!(store.room_of(APP, id("late")).await, Ok(None));
}

#[tokio::test]
async fn failed_commit_fails_the_whole_batch_and_the_writer_recovers() {
    let store = temp_store();
    store.create_room(APP, new_room("r"), NOW).await.unwrap();
    let go = store.hold_writer();
    let set = store.set_metadata(APP, id("r"), entries(&[("a", "1")]));
    let create = store.create_room(APP, new_room("n1"), NOW);
    let breaker = store.submit(Write::BreakCommit);
    go.send(()).unwrap();
    for outcome in [set.await, create.await, breaker.await.map(drop)] {
        let message = unavailable_message(outcome);
        assert!(message.contains("write transaction failed"), "{message}");
    }
    assert_eq!(store.metadata(APP, id("r")).await, Ok(Metadata::new()));
    assert_eq!(
        store.room_of(APP, id("r")).await.unwrap().unwrap().revision,
        0
    );
    assert_eq!(store.room_of(APP, id("n1")).await, Ok(None));

    store.create_room(APP, new_room("n1"), NOW).await.unwrap();
    assert!(store.room_of(APP, id("n1")).await.unwrap().is_some());
}

#[tokio::test]
async fn close_finishes_queued_writes_then_refuses() {
    let store = temp_store();
    store.create_room(APP, new_room("r"), NOW).await.unwrap();
    let go = store.hold_writer();
    let create = store.create_room(APP, new_room("queued"), NOW);
    let set = store.set_metadata(APP, id("r"), entries(&[("a", "1")]));
    tokio::join!(store.close(), async { go.send(()).unwrap() });
    assert_eq!(create.await, Ok(()));
    assert_eq!(set.await, Ok(()));
    let late = store.create_room(APP, new_room("late"), NOW).await;
    assert_eq!(unavailable_message(late), "store is closed");
    // Reads keep working until the store is dropped.
    assert!(store.room_of(APP, id("queued")).await.unwrap().is_some());
    assert_eq!(store.metadata(APP, id("r")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_acknowledged_write() {
    const TASKS: usize = 8;
    const WRITES: usize = 50;
    let store = Arc::new(temp_store());
    store.create_room(APP, new_room("hot"), NOW).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let own_key = format!("t{t}");
            let (mut hot_successes, mut last_own_value, mut own_rooms) = (0u64, None, Vec::new());
            for w in 0..WRITES {
                let hot = || id("hot");
                let outcome = match w % 4 {
                    // Sizes up to 2048 bytes on nine or more keys: the total limit gets hit.
                    0 | 2 => {
                        let value = "v".repeat((w * 131 + t * 61) % 2049);
                        let mut request = vec![(own_key.as_str(), value.as_str())];
                        let extra = format!("x{}", w % 3);
                        if w % 8 == 0 {
                            request.push((&extra, "x"));
                        }
                        let outcome = store.set_metadata(APP, hot(), entries(&request)).await;
                        if outcome.is_ok() {
                            last_own_value = Some(value);
                        }
                        outcome
                    }
                    1 => {
                        let room = format!("t{t}-w{w}");
                        let outcome = store.create_room(APP, new_room(&room), NOW).await;
                        own_rooms.push(room);
                        outcome
                    }
                    _ => {
                        let keys = vec!["x0".into(), "x1".into(), "x2".into()];
                        store.delete_metadata(APP, hot(), keys).await
                    }
                };
                match outcome {
                    Ok(()) if w % 4 != 1 => hot_successes += 1,
                    Ok(()) | Err(StoreError::Rule(_)) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            (own_key, hot_successes, last_own_value, own_rooms)
        }));
    }
    let mut hot_successes = 0;
    let hot_metadata = {
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let metadata = store.metadata(APP, id("hot")).await.unwrap();
        for (key, successes, last_value, own_rooms) in results {
            hot_successes += successes;
            assert_eq!(metadata.get(&key), last_value.as_ref(), "{key}");
            for room in own_rooms {
                assert!(
                    store.room_of(APP, id(&room)).await.unwrap().is_some(),
                    "{room}"
                );
            }
        }
        metadata
    };
    assert!(hot_metadata.len() <= METADATA_MAX_KEYS);
    assert!(total_bytes(&hot_metadata) <= METADATA_TOTAL_MAX_BYTES);
    let hot = store.room_of(APP, id("hot")).await.unwrap().unwrap();
    assert_eq!(hot.revision, hot_successes);
}

/// Readers racing the writer fill the metadata cache with what they read; none of them may
/// leave a value older than an acknowledged write in it, and a destroyed room's keys must not
/// come back. The exact interleaving of a stale fill is rare here; `cache.rs`'s unit tests pin
/// the fill rule itself deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_writes_never_see_an_older_value_after_an_acknowledgement() {
    const WRITES: u32 = 300;
    let store = Arc::new(temp_store());
    store.create_room(APP, new_room("r"), NOW).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let value_of = |metadata: Metadata| metadata.get("k").map_or(0, |v| v.parse::<u32>().unwrap());
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            tokio::spawn(async move {
                let mut last = 0;
                while !done.load(Ordering::Relaxed) {
                    // Between a destroy and its re-create the room is missing or empty.
                    let seen = match store.metadata(APP, id("r")).await {
                        Ok(metadata) => value_of(metadata),
                        Err(StoreError::Rule(DomainError::RoomNotFound)) => 0,
                        Err(other) => panic!("{other:?}"),
                    };
                    if seen > 0 {
                        assert!(seen >= last, "went back from {last} to {seen}");
                        last = seen;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 1..=WRITES {
        let value = i.to_string();
        store
            .set_metadata(APP, id("r"), entries(&[("k", &value)]))
            .await
            .unwrap();
        assert_eq!(value_of(store.metadata(APP, id("r")).await.unwrap()), i);
        if i % 50 == 0 {
            // A destroy and a re-create in between: the cache must not resurrect old keys.
            store.destroy_room(APP, id("r")).await.unwrap();
            assert_eq!(
                store.metadata(APP, id("r")).await,
                Err(StoreError::Rule(DomainError::RoomNotFound))
            );
            store.create_room(APP, new_room("r"), NOW).await.unwrap();
            assert_eq!(store.metadata(APP, id("r")).await, Ok(Metadata::new()));
        }
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

#[tokio::test]
async fn import_commits_chunk_by_chunk() {
    let store = temp_store();
    store
        .create_room(APP, new_room("taken"), NOW)
        .await
        .unwrap();
    let name = |i: usize| format!("imported-{i:05}");
    let rooms = (0..2 * IMPORT_CHUNK + 1)
        .map(|i| {
            let room = Room {
                view_count: (i % 100) as u64,
                ..new_room(&name(i)).into_room(NOW + (i % 7) as u64)
            };
            let metadata = if i % 1000 == 0 {
                Metadata::from([("k".into(), format!("{i}"))])
            } else {
                Metadata::new()
            };
            (room, metadata)
        })
        .chain([(new_room("taken").into_room(NOW), Metadata::new())]);
    // The third transaction holds the last new room and the taken one: it fails whole.
    assert_eq!(
        store.import_rooms(APP, rooms).await,
        Err(StoreError::Rule(DomainError::RoomExists {
            same_owner: true
        }))
    );
    for i in [0, IMPORT_CHUNK, 2 * IMPORT_CHUNK - 1] {
        let room = store.room_of(APP, id(&name(i))).await.unwrap().unwrap();
        assert_eq!(
            (room.view_count, room.create_time),
            ((i % 100) as u64, NOW + (i % 7) as u64)
        );
    }
    assert_eq!(
        store.metadata(APP, id(&name(IMPORT_CHUNK))).await.unwrap()["k"],
        IMPORT_CHUNK.to_string()
    );
    assert_eq!(
        store.room_of(APP, id(&name(2 * IMPORT_CHUNK))).await,
        Ok(None)
    );
    let top = store.list_rooms(APP, None, 3).await.unwrap();
    assert!(top.iter().all(|r| r.view_count == 99));
}

/// Metadata values unique to `room`, about a page of them per room.
fn page_of_metadata(room: &str) -> Vec<MetadataEntry> {
    (0..4)
        .map(|k| {
            let value: String = format!("<{room}/{k}>")
                .repeat(80)
                .chars()
                .take(800)
                .collect();
            MetadataEntry::new(format!("k{k}"), value).unwrap()
        })
        .collect()
}

/// Rooms `a`, `m-00`…, `victim`, `w-00`…, `z`, each with a page of metadata, in a closed
/// database at `path`. Returns the room names.
async fn rooms_with_metadata(path: &Path) -> Vec<String> {
    let store = open(path);
    let names: Vec<String> = ["a".to_owned()]
        .into_iter()
        .chain((0..30).map(|i| format!("m-{i:02}")))
        .chain(["victim".to_owned()])
        .chain((0..30).map(|i| format!("w-{i:02}")))
        .chain(["z".to_owned()])
        .collect();
    for name in &names {
        store.create_room(APP, new_room(name), NOW).await.unwrap();
        store
            .set_metadata(APP, id(name), page_of_metadata(name))
            .await
            .unwrap();
    }
    store.close().await;
    names
}

#[tokio::test]
async fn a_closed_database_file_holds_everything_without_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let names = rooms_with_metadata(&path).await;
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    // A backup that copies the database file alone.
    let copy = dir.path().join("copy").join("liveroom.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&path, &copy).unwrap();
    let store = open(&copy);
    for name in &names {
        let metadata = store.metadata(APP, id(name)).await.unwrap();
        assert_eq!(metadata.len(), 4, "{name}");
    }
}

#[tokio::test]
async fn a_corrupt_page_fails_only_the_requests_that_touch_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    rooms_with_metadata(&path).await;
    let mut file = std::fs::read(&path).unwrap();
    let page_size = usize::from(u16::from_be_bytes([file[16], file[17]]));
    // The start of the victim's first value, which its row keeps on its leaf page (type 0x0a);
    // the rest of the row spills onto overflow pages.
    let needle = page_of_metadata("victim")[0].value().as_bytes()[..40].to_vec();
    let page = file
        .chunks(page_size)
        .position(|p| p[0] == 0x0a && p.windows(needle.len()).any(|w| w == needle))
        .unwrap();
    file[page * page_size..(page + 1) * page_size].fill(b'#');
    std::fs::write(&path, &file).unwrap();

    let store = open(&path);
    let go = store.hold_writer();
    // One batch: a write that reads the corrupt page between two that do not.
    let before = store.set_metadata(APP, id("a"), entries(&[("k0", "new")]));
    let corrupt = store.set_metadata(APP, id("victim"), entries(&[("k0", "new")]));
    let after = store.create_room(APP, new_room("b"), NOW);
    go.send(()).unwrap();
    let message = unavailable_message(corrupt.await);
    assert!(message.contains("malformed"), "{message}");
    assert_eq!(before.await, Ok(()));
    assert_eq!(after.await, Ok(()));
    assert!(store.room_of(APP, id("b")).await.unwrap().is_some());
    assert_eq!(store.metadata(APP, id("a")).await.unwrap()["k0"], "new");
    let message = unavailable_message(store.metadata(APP, id("victim")).await);
    assert!(message.contains("malformed"), "{message}");
    // The metadata is part of the room's row.
    let message = unavailable_message(store.room_of(APP, id("victim")).await);
    assert!(message.contains("malformed"), "{message}");
    assert!(store.room_of(APP, id("z")).await.unwrap().is_some());
}
