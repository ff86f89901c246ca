//! The one suite every backend must pass, so that the in-memory store used in tests and the
//! durable stores cannot drift apart.
//!
//! Each case is a public async function taking the store; [`conformance_tests!`] expands into
//! one test per case. Other crates reach it through the `conformance` feature.
//!
//! [`conformance_tests!`]: crate::conformance_tests

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use liveroom_domain::limits::{
    METADATA_MAX_KEYS, METADATA_TOTAL_MAX_BYTES, METADATA_VALUE_MAX_BYTES,
};
use liveroom_domain::{
    Account, AppId, DomainError, IfExists, ListPosition, Metadata, MetadataEntry, NewAccounts,
    NewRoom, Profile, ProfileTag, ProfileValue, Room, RoomChanges, RoomId, total_bytes,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{Backup, MemoryStore, RoomStore, Since, Store, StoreError, StoreResult};
use liveroom_domain::ops::{CreateRoom, DeleteMetadata, DestroyRoom, SetMetadata, UpdateRoom};
use liveroom_domain::{
    DeleteKeys, MetadataEntries, Position, RoomChange, RoomEvent, RoomOperation, ValidChanges,
};
use std::time::Duration;

/// The writes of today's commands, each one domain operation through [`RoomStore::write`], in
/// the shape the cases below were written for. Writes other than creations happen at `LATER`,
/// so a destroy never makes a creation at `NOW` "too soon".
pub(crate) trait Shorthand: RoomStore {
    /// Queues `operation` now (as the backends do when `write` is called), answering `()`.
    fn run(
        &self,
        app: AppId,
        operation: Result<Box<dyn RoomOperation>, DomainError>,
        now: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        let queued = operation.map(|operation| self.write(app, operator(), operation, now));
        async move { queued?.await.map(drop) }
    }

    fn create_room(
        &self,
        app: AppId,
        room: NewRoom,
        now: u64,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(
            app,
            Ok(Box::new(CreateRoom(room))),
            Duration::from_secs(now),
        )
    }

    fn destroy_room(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(app, Ok(Box::new(DestroyRoom(room))), LATER)
    }

    fn update_room(
        &self,
        app: AppId,
        room: RoomId,
        changes: ValidChanges,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(app, Ok(Box::new(UpdateRoom { room, changes })), LATER)
    }

    fn set_metadata(
        &self,
        app: AppId,
        room: RoomId,
        entries: Vec<MetadataEntry>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        let operation = MetadataEntries::new(entries)
            .map(|entries| Box::new(SetMetadata { room, entries }) as Box<dyn RoomOperation>);
        self.run(app, operation, LATER)
    }

    fn delete_metadata(
        &self,
        app: AppId,
        room: RoomId,
        keys: Vec<String>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        let operation = DeleteKeys::new(keys)
            .map(|keys| Box::new(DeleteMetadata { room, keys }) as Box<dyn RoomOperation>);
        self.run(app, operation, LATER)
    }

    fn metadata(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<Metadata>> + Send {
        async move {
            match self.room(app, &room).await? {
                Some(state) => Ok(state.metadata.clone()),
                None => Err(DomainError::RoomNotFound.into()),
            }
        }
    }

    fn room_of(
        &self,
        app: AppId,
        room: RoomId,
    ) -> impl Future<Output = StoreResult<Option<Room>>> + Send {
        async move { Ok(self.room(app, &room).await?.map(|state| state.room.clone())) }
    }
}

impl<S: RoomStore> Shorthand for S {}

/// Loads rooms as they would be after some history (view counts, revisions), which writes
/// alone cannot produce.
trait Restore: Store {
    fn restore(
        &self,
        app: AppId,
        rooms: Vec<(Room, Metadata)>,
    ) -> impl Future<Output = StoreResult<usize>> + Send {
        self.restore_rooms(app, rooms.into_iter().map(Into::into).collect())
    }
}

impl<S: Store> Restore for S {}

/// Expands into one test per conformance case of every suite: [`room_store_conformance!`]
/// and [`event_log_conformance!`]. `$make` is evaluated once per test and must dereference to
/// the store: a `Box<MemoryStore>`, or a guard that also owns a temporary directory. The async
/// cases run under `#[tokio::test]`, so the calling crate needs tokio.
///
/// [`room_store_conformance!`]: crate::room_store_conformance
/// [`event_log_conformance!`]: crate::event_log_conformance
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::room_store_conformance!($make);
        $crate::event_log_conformance!($make);
        $crate::account_store_conformance!($make);
    };
}

/// The [`AccountStore`] suite: imports, profiles and their rules.
///
/// [`AccountStore`]: crate::AccountStore
#[macro_export]
macro_rules! account_store_conformance {
    ($make:expr) => {
        $crate::conformance_cases!($make;
            accounts_import_and_read_back,
            accounts_import_existing_refuses_or_keeps,
            accounts_set_profile_merges,
            accounts_apps_are_isolated,
        );
    };
}

/// The [`RoomStore`] suite: rooms, metadata and their rules.
#[macro_export]
macro_rules! room_store_conformance {
    ($make:expr) => {
        $crate::conformance_cases!($make;
            create_and_get_round_trip,
            create_fills_defaults,
            create_existing_room_fails,
            create_existing_room_answers_conflict_however_soon,
            destroy_removes_room_and_metadata,
            update_touches_only_named_fields,
            list_order,
            list_only_public_rooms,
            list_paging_visits_each_room_once,
            apps_are_isolated,
            metadata_set_and_get,
            metadata_limits,
            failed_writes_change_nothing,
            revision_counts_successful_metadata_writes,
            seeded_rooms_keep_their_counters,
            people_are_kept_with_the_room,
            statistics_count_per_incarnation,
            saved_rooms_and_accounts_round_trip,
            close_refuses_writes,
        );

        #[test]
        fn metadata_matches_model() {
            let runtime = ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let store = runtime.block_on(async { $make });
            $crate::conformance::metadata_matches_model(&runtime, &*store);
        }
    };
}

/// The [`EventLog`] suite: numbering, reading from a position, subscribers.
///
/// [`EventLog`]: crate::EventLog
#[macro_export]
macro_rules! event_log_conformance {
    ($make:expr) => {
        $crate::conformance_cases!($make;
            log_numbers_every_write_without_gaps,
            log_reads_from_a_position,
            log_subscribers_see_commits_in_order,
            refused_writes_append_nothing,
            recreated_room_is_a_new_incarnation,
        );
    };
}

/// One `#[tokio::test]` per named case.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let store = $make;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

const APP: AppId = 1_400_000_001;
const OTHER_APP: AppId = 1_400_000_002;
const NOW: u64 = 1_700_000_000;
/// When the shorthand's writes other than creations happen: two seconds after `NOW`.
const LATER: Duration = Duration::from_secs(NOW + 2);

fn id(raw: &str) -> RoomId {
    RoomId::parse(raw.into()).unwrap()
}

fn new_room(room: &str, owner: &str, changes: RoomChanges) -> NewRoom {
    NewRoom::validate(room.into(), None, Some(owner.into()), "admin", changes).unwrap()
}

fn hidden() -> RoomChanges {
    RoomChanges {
        is_public_visible: Some(false),
        ..Default::default()
    }
}

fn entries(pairs: &[(&str, &str)]) -> Vec<MetadataEntry> {
    pairs
        .iter()
        .map(|(k, v)| MetadataEntry::new((*k).into(), (*v).into()).unwrap())
        .collect()
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| (*k).to_owned()).collect()
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn rule<T>(error: DomainError) -> StoreResult<T> {
    Err(StoreError::Rule(error))
}

/// A room as `import` would load it.
fn seeded(room: &str, view_count: u64, create_time: u64, changes: RoomChanges) -> Room {
    Room {
        view_count,
        ..new_room(room, "owner", changes).into_room(create_time)
    }
}

async fn create<S: Store>(store: &S, app: AppId, room: &str, now: u64) {
    store
        .create_room(app, new_room(room, "owner", RoomChanges::default()), now)
        .await
        .unwrap();
}

async fn get<S: Store>(store: &S, app: AppId, room: &str) -> Room {
    store
        .room_of(app, id(room))
        .await
        .unwrap()
        .expect("room exists")
}

/// Every public room of `app`, walking pages of `page` rooms.
async fn walk<S: Store>(store: &S, app: AppId, page: usize) -> Vec<Room> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let rooms = store.list_rooms(app, after, page).await.unwrap();
        assert!(rooms.len() <= page);
        let Some(last) = rooms.last() else {
            return all;
        };
        after = Some(ListPosition::of(last));
        all.extend(rooms);
    }
}

fn ids(rooms: &[Room]) -> Vec<&str> {
    rooms.iter().map(|r| r.id.as_str()).collect()
}

pub async fn create_and_get_round_trip<S: Store>(store: &S) {
    let changes = RoomChanges {
        name: Some("Friday night 周五 🎉".into()),
        cover_url: Some("https://example.com/cover.png".into()),
        notice: Some("welcome".into()),
        category: Some(vec![3, -1, 7]),
        activity_status: Some(2),
        max_seat_count: Some(16),
        max_member_count: Some(500),
        take_seat_mode: Some("ApplyToTake".into()),
        is_message_disabled: Some(true),
        is_public_visible: Some(false),
        is_seat_enabled: Some(false),
        seat_template: Some("Grid16".into()),
        is_unlimited_room_enabled: Some(false),
    };
    let room = NewRoom::validate(
        "room 1 ~".into(),
        Some("Live".into()),
        Some("alice".into()),
        "admin",
        changes,
    )
    .unwrap();
    store.create_room(APP, room.clone(), NOW).await.unwrap();
    assert_eq!(
        store.room_of(APP, id("room 1 ~")).await,
        Ok(Some(room.into_room(NOW)))
    );
    assert_eq!(
        store.metadata(APP, id("room 1 ~")).await,
        Ok(Metadata::new())
    );
    assert_eq!(store.room_of(APP, id("room 2")).await, Ok(None));
}

pub async fn create_fills_defaults<S: Store>(store: &S) {
    let room = NewRoom::validate("r".into(), None, None, "admin", RoomChanges::default()).unwrap();
    store.create_room(APP, room.clone(), NOW).await.unwrap();
    let stored = get(store, APP, "r").await;
    assert_eq!(stored, room.into_room(NOW));
    assert_eq!(
        stored.owner,
        Account::parse("owner", "admin".into()).unwrap()
    );
    assert_eq!(
        (stored.create_time, stored.view_count, stored.revision),
        (NOW, 0, 0)
    );
    assert_eq!(stored.fields.name, "r");
    assert!(stored.fields.is_public_visible);
    assert_eq!(stored.fields.seat_template, None);
    assert_eq!(stored.fields.is_unlimited_room_enabled, None);
}

pub async fn create_existing_room_fails<S: Store>(store: &S) {
    let first = new_room("r", "alice", RoomChanges::default());
    store.create_room(APP, first.clone(), NOW).await.unwrap();
    let renamed = RoomChanges {
        name: Some("other".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .create_room(APP, new_room("r", "alice", renamed.clone()), NOW + 1)
            .await,
        rule(DomainError::RoomExists { same_owner: true })
    );
    assert_eq!(
        store
            .create_room(APP, new_room("r", "bob", renamed), NOW + 1)
            .await,
        rule(DomainError::RoomExists { same_owner: false })
    );
    assert_eq!(get(store, APP, "r").await, first.into_room(NOW));
}

pub async fn destroy_removes_room_and_metadata<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    create(store, APP, "kept", NOW).await;
    store
        .set_metadata(APP, id("r"), entries(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    store.destroy_room(APP, id("r")).await.unwrap();
    assert_eq!(store.room_of(APP, id("r")).await, Ok(None));
    assert_eq!(
        store.metadata(APP, id("r")).await,
        rule(DomainError::RoomNotFound)
    );
    assert_eq!(ids(&walk(store, APP, 20).await), ["kept"]);
    assert_eq!(
        store.destroy_room(APP, id("r")).await,
        rule(DomainError::RoomNotFound)
    );
    // The RoomId is free again, and the new room starts empty.
    create(store, APP, "r", NOW + 5).await;
    let again = get(store, APP, "r").await;
    assert_eq!((again.create_time, again.revision), (NOW + 5, 0));
    assert_eq!(store.metadata(APP, id("r")).await, Ok(Metadata::new()));
}

pub async fn update_touches_only_named_fields<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    store
        .set_metadata(APP, id("r"), entries(&[("k", "v")]))
        .await
        .unwrap();
    let before = get(store, APP, "r").await;
    let changes = RoomChanges {
        notice: Some("new notice".into()),
        max_seat_count: Some(4),
        seat_template: Some("Grid4".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store
        .update_room(APP, id("r"), changes.clone())
        .await
        .unwrap();
    let mut expected = before.clone();
    changes.apply_to(&mut expected.fields);
    assert_eq!(get(store, APP, "r").await, expected);
    assert_eq!(expected.fields.notice, "new notice");
    assert_eq!(expected.fields.name, before.fields.name);
    assert_eq!(
        store.metadata(APP, id("r")).await,
        Ok(metadata(&[("k", "v")]))
    );
    assert_eq!(
        store.update_room(APP, id("missing"), changes).await,
        rule(DomainError::RoomNotFound)
    );
}

pub async fn list_order<S: Store>(store: &S) {
    for (room, time) in [("b", 100), ("a", 100), ("c", 200), ("B", 100)] {
        create(store, APP, room, time).await;
    }
    let viewed = vec![
        (seeded("v1", 5, 50, RoomChanges::default()), Metadata::new()),
        (seeded("v2", 5, 60, RoomChanges::default()), Metadata::new()),
        (seeded("v3", 9, 10, RoomChanges::default()), Metadata::new()),
    ];
    assert_eq!(store.restore(APP, viewed).await, Ok(3));
    // Views descending, then creation time descending, then RoomId in byte order.
    let expected = ["v3", "v2", "v1", "c", "B", "a", "b"];
    assert_eq!(
        ids(&store.list_rooms(APP, None, 20).await.unwrap()),
        expected
    );
    assert_eq!(
        ids(&store.list_rooms(APP, None, 3).await.unwrap()),
        expected[..3]
    );
    assert_eq!(store.list_rooms(APP, None, 0).await, Ok(vec![]));
    let after_v1 = ListPosition::of(&get(store, APP, "v1").await);
    assert_eq!(
        ids(&store.list_rooms(APP, Some(after_v1), 20).await.unwrap()),
        expected[3..]
    );
}

pub async fn list_only_public_rooms<S: Store>(store: &S) {
    create(store, APP, "p1", NOW).await;
    create(store, APP, "p2", NOW).await;
    store
        .create_room(APP, new_room("h1", "owner", hidden()), NOW)
        .await
        .unwrap();
    let seeded_hidden = seeded("h2", 50, NOW, hidden());
    store
        .restore(APP, vec![(seeded_hidden, Metadata::new())])
        .await
        .unwrap();
    let hide = hidden().validate().unwrap();
    store.update_room(APP, id("p2"), hide).await.unwrap();
    assert_eq!(ids(&walk(store, APP, 20).await), ["p1"]);
    let show = RoomChanges {
        is_public_visible: Some(true),
        ..Default::default()
    };
    store
        .update_room(APP, id("h1"), show.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&walk(store, APP, 20).await), ["h1", "p1"]);
}

pub async fn list_paging_visits_each_room_once<S: Store>(store: &S) {
    let mut visible_ids = Vec::new();
    let mut with_views = Vec::new();
    for i in 0..40u64 {
        let room = format!("room-{:02}", (i * 7) % 40);
        let changes = if i % 5 == 0 {
            hidden()
        } else {
            RoomChanges::default()
        };
        let time = NOW + i % 4;
        if i % 3 == 0 {
            // Ties on views and time: only the RoomId tells these apart.
            with_views.push((seeded(&room, i % 2, time, changes), Metadata::new()));
        } else {
            store
                .create_room(APP, new_room(&room, "owner", changes), time)
                .await
                .unwrap();
        }
        if i % 5 != 0 {
            visible_ids.push(room);
        }
    }
    store.restore(APP, with_views).await.unwrap();
    let mut visible = Vec::new();
    for room in &visible_ids {
        visible.push(get(store, APP, room).await);
    }
    visible.sort_by(|a, b| {
        ListPosition::of(a)
            .sort_key()
            .cmp(&ListPosition::of(b).sort_key())
    });
    assert_eq!(visible.len(), 32);
    for page in [1, 2, 3, 7, 20] {
        assert_eq!(walk(store, APP, page).await, visible, "page size {page}");
    }
}

pub async fn apps_are_isolated<S: Store>(store: &S) {
    store
        .create_room(
            APP,
            new_room("shared", "alice", RoomChanges::default()),
            NOW,
        )
        .await
        .unwrap();
    store
        .create_room(
            OTHER_APP,
            new_room("shared", "bob", RoomChanges::default()),
            NOW,
        )
        .await
        .unwrap();
    create(store, OTHER_APP, "only-other", NOW).await;
    store
        .set_metadata(APP, id("shared"), entries(&[("k", "app")]))
        .await
        .unwrap();
    assert_eq!(
        store.metadata(OTHER_APP, id("shared")).await,
        Ok(Metadata::new())
    );
    assert_eq!(get(store, OTHER_APP, "shared").await.revision, 0);
    assert_eq!(store.room_of(APP, id("only-other")).await, Ok(None));
    assert_eq!(ids(&walk(store, APP, 20).await), ["shared"]);
    assert_eq!(
        ids(&walk(store, OTHER_APP, 20).await),
        ["only-other", "shared"]
    );
    store.destroy_room(APP, id("shared")).await.unwrap();
    assert_eq!(get(store, OTHER_APP, "shared").await.owner.as_str(), "bob");
    assert_eq!(ids(&walk(store, APP, 20).await), Vec::<&str>::new());
}

pub async fn metadata_set_and_get<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    let r = || id("r");
    store
        .set_metadata(APP, r(), entries(&[("b", "2"), ("a", "1")]))
        .await
        .unwrap();
    assert_eq!(
        store.metadata(APP, r()).await,
        Ok(metadata(&[("a", "1"), ("b", "2")]))
    );
    // Upsert; a key repeated in one request ends with its last value; empty values are values.
    store
        .set_metadata(
            APP,
            r(),
            entries(&[
                ("a", "3"),
                ("ключ", "значение"),
                ("c", "x"),
                ("c", ""),
                ("B", "up"),
            ]),
        )
        .await
        .unwrap();
    let expected = metadata(&[
        ("B", "up"),
        ("a", "3"),
        ("b", "2"),
        ("c", ""),
        ("ключ", "значение"),
    ]);
    assert_eq!(store.metadata(APP, r()).await, Ok(expected));
    // Missing keys are ignored as long as one exists; repeats count once.
    store
        .delete_metadata(APP, r(), keys(&["b", "zz", "b", "ключ"]))
        .await
        .unwrap();
    assert_eq!(
        store.metadata(APP, r()).await,
        Ok(metadata(&[("B", "up"), ("a", "3"), ("c", "")]))
    );
}

pub async fn metadata_limits<S: Store>(store: &S) {
    let set = |room: &'static str, pairs: Vec<(String, String)>| {
        let entries = pairs
            .into_iter()
            .map(|(k, v)| MetadataEntry::new(k, v).unwrap())
            .collect();
        store.set_metadata(APP, id(room), entries)
    };
    let value = |bytes: usize| "v".repeat(bytes);
    for room in ["values", "keys", "total", "del"] {
        create(store, APP, room, NOW).await;
    }

    let max = METADATA_VALUE_MAX_BYTES;
    assert_eq!(set("values", vec![("k".into(), value(max))]).await, Ok(()));
    assert_eq!(
        set(
            "values",
            vec![("ok".into(), value(1)), ("big".into(), value(max + 1))]
        )
        .await,
        rule(DomainError::ValueTooLarge { key: "big".into() })
    );
    // Bytes, not characters: 1025 two-byte characters are 2050 bytes.
    assert_eq!(
        set("values", vec![("wide".into(), "é".repeat(1025))]).await,
        rule(DomainError::ValueTooLarge { key: "wide".into() })
    );

    let ten: Vec<_> = (0..METADATA_MAX_KEYS)
        .map(|i| (format!("k{i}"), value(1)))
        .collect();
    assert_eq!(set("keys", ten).await, Ok(()));
    assert_eq!(set("keys", vec![("k0".into(), value(2))]).await, Ok(()));
    assert_eq!(
        set("keys", vec![("k11".into(), value(1))]).await,
        rule(DomainError::TooManyKeys)
    );

    let full: Vec<_> = (0..METADATA_TOTAL_MAX_BYTES / max)
        .map(|i| (format!("k{i}"), value(max)))
        .collect();
    assert_eq!(set("total", full).await, Ok(()));
    assert_eq!(
        total_bytes(&store.metadata(APP, id("total")).await.unwrap()),
        METADATA_TOTAL_MAX_BYTES
    );
    assert_eq!(
        set("total", vec![("extra".into(), value(1))]).await,
        rule(DomainError::MetadataTooLarge)
    );
    // Replacing a value counts its new size only.
    assert_eq!(
        set(
            "total",
            vec![("k0".into(), value(max - 1)), ("extra".into(), value(1))]
        )
        .await,
        Ok(())
    );

    assert!(matches!(
        store.set_metadata(APP, id("del"), vec![]).await,
        Err(StoreError::Rule(DomainError::InvalidField { .. }))
    ));
    assert_eq!(set("del", vec![("a".into(), value(1))]).await, Ok(()));
    assert!(matches!(
        store.delete_metadata(APP, id("del"), vec![]).await,
        Err(StoreError::Rule(DomainError::InvalidField { .. }))
    ));
    let eleven: Vec<String> = (0..=METADATA_MAX_KEYS).map(|_| "a".to_owned()).collect();
    assert_eq!(
        store.delete_metadata(APP, id("del"), eleven).await,
        rule(DomainError::TooManyKeys)
    );
    assert_eq!(
        store
            .delete_metadata(APP, id("del"), keys(&["x", "y"]))
            .await,
        rule(DomainError::NoSuchKeys)
    );

    let missing = || id("missing");
    assert_eq!(
        store
            .set_metadata(APP, missing(), entries(&[("a", "1")]))
            .await,
        rule(DomainError::RoomNotFound)
    );
    assert_eq!(
        store.delete_metadata(APP, missing(), keys(&["a"])).await,
        rule(DomainError::RoomNotFound)
    );
    assert_eq!(
        store.metadata(APP, missing()).await,
        rule(DomainError::RoomNotFound)
    );
}

pub async fn failed_writes_change_nothing<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    let nine: Vec<_> = (0..9)
        .map(|i| (format!("k{i}"), "v".repeat(1800)))
        .collect();
    let nine: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    store
        .set_metadata(APP, id("r"), entries(&nine))
        .await
        .unwrap();
    let room_before = get(store, APP, "r").await;
    let metadata_before = store.metadata(APP, id("r")).await.unwrap();
    let big = "v".repeat(METADATA_VALUE_MAX_BYTES + 1);
    let longest = "v".repeat(METADATA_VALUE_MAX_BYTES);
    // Each request changes k0 before reaching what breaks the rules.
    let failing_sets = [
        (
            entries(&[("k0", "changed"), ("new", &big)]),
            DomainError::ValueTooLarge { key: "new".into() },
        ),
        (
            entries(&[("k0", "changed"), ("n1", ""), ("n2", "")]),
            DomainError::TooManyKeys,
        ),
        (
            entries(&[("k0", &longest), ("n1", "x")]),
            DomainError::MetadataTooLarge,
        ),
    ];
    for (request, error) in failing_sets {
        assert_eq!(store.set_metadata(APP, id("r"), request).await, rule(error));
    }
    let eleven = (0..=METADATA_MAX_KEYS).map(|i| format!("k{i}")).collect();
    assert_eq!(
        store.delete_metadata(APP, id("r"), eleven).await,
        rule(DomainError::TooManyKeys)
    );
    assert_eq!(
        store.delete_metadata(APP, id("r"), keys(&["nope"])).await,
        rule(DomainError::NoSuchKeys)
    );
    assert_eq!(
        store
            .create_room(APP, new_room("r", "owner", hidden()), NOW + 1)
            .await,
        rule(DomainError::RoomExists { same_owner: true })
    );
    assert_eq!(get(store, APP, "r").await, room_before);
    assert_eq!(store.metadata(APP, id("r")).await, Ok(metadata_before));
}

pub async fn revision_counts_successful_metadata_writes<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    let revision = async || get(store, APP, "r").await.revision;
    assert_eq!(revision().await, 0);
    store
        .set_metadata(APP, id("r"), entries(&[("a", "1")]))
        .await
        .unwrap();
    store
        .set_metadata(APP, id("r"), entries(&[("a", "1")]))
        .await
        .unwrap();
    assert_eq!(revision().await, 2);
    let too_big = "v".repeat(METADATA_VALUE_MAX_BYTES + 1);
    assert!(
        store
            .set_metadata(APP, id("r"), entries(&[("b", &too_big)]))
            .await
            .is_err()
    );
    assert_eq!(revision().await, 2);
    store
        .delete_metadata(APP, id("r"), keys(&["a"]))
        .await
        .unwrap();
    assert_eq!(revision().await, 3);
    assert!(
        store
            .delete_metadata(APP, id("r"), keys(&["a"]))
            .await
            .is_err()
    );
    let renamed = RoomChanges {
        name: Some("renamed".into()),
        ..Default::default()
    };
    store
        .update_room(APP, id("r"), renamed.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(revision().await, 3);
    store.destroy_room(APP, id("r")).await.unwrap();
    create(store, APP, "r", NOW).await;
    assert_eq!(revision().await, 0);
}

pub async fn seeded_rooms_keep_their_counters<S: Store>(store: &S) {
    let mut room = seeded("seeded", 42, NOW - 100, RoomChanges::default());
    room.revision = 7;
    let values = metadata(&[("a", "1"), ("b", "")]);
    assert_eq!(
        store
            .restore(APP, vec![(room.clone(), values.clone())])
            .await,
        Ok(1)
    );
    assert_eq!(get(store, APP, "seeded").await, room);
    assert_eq!(store.metadata(APP, id("seeded")).await, Ok(values));

    // A taken RoomId or metadata over the limits loads nothing of the call.
    let fresh = (
        seeded("fresh", 0, NOW, RoomChanges::default()),
        Metadata::new(),
    );
    let taken = (
        seeded("seeded", 0, NOW, RoomChanges::default()),
        Metadata::new(),
    );
    assert_eq!(
        store.restore(APP, vec![fresh.clone(), taken]).await,
        rule(DomainError::RoomExists { same_owner: true })
    );
    let too_many = (0..=METADATA_MAX_KEYS)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    let crowded = (seeded("crowded", 0, NOW, RoomChanges::default()), too_many);
    assert_eq!(
        store.restore(APP, vec![fresh, crowded]).await,
        rule(DomainError::TooManyKeys)
    );
    assert_eq!(store.room_of(APP, id("fresh")).await, Ok(None));
    assert_eq!(store.room_of(APP, id("crowded")).await, Ok(None));
}

pub async fn people_are_kept_with_the_room<S: Store>(store: &S) {
    use liveroom_domain::ops::{
        BanMembers, ChangeOwner, ModifyList, MuteMembers, PeopleList, UnbanMembers,
    };
    use liveroom_domain::{ListOp, RoomPeople};
    let accounts = |names: &[&str]| names.iter().map(|n| account(n)).collect();
    create(store, APP, "r", NOW).await;
    create(store, APP, "other", NOW).await;
    let at = |secs| Duration::from_secs(NOW + secs);
    let writes: Vec<(Box<dyn RoomOperation>, Duration)> = vec![
        (
            Box::new(MuteMembers {
                room: id("r"),
                accounts: accounts(&["m1", "m2"]),
                secs: 60,
            }),
            at(1),
        ),
        (
            Box::new(BanMembers {
                room: id("r"),
                accounts: accounts(&["b1", "b2"]),
                secs: 600,
                reason: "spam \"é\"".into(),
            }),
            at(2),
        ),
        (
            Box::new(UnbanMembers {
                room: id("r"),
                accounts: accounts(&["b2"]),
            }),
            at(3),
        ),
        (
            Box::new(ModifyList {
                room: id("r"),
                list: PeopleList::Admins,
                op: ListOp::Add,
                accounts: accounts(&["a1"]),
            }),
            at(4),
        ),
        (
            Box::new(ModifyList {
                room: id("r"),
                list: PeopleList::Robots,
                op: ListOp::Add,
                accounts: accounts(&["robot"]),
            }),
            at(5),
        ),
        (
            Box::new(ChangeOwner {
                room: id("r"),
                owner: account("heir"),
            }),
            at(6),
        ),
    ];
    let mut seq = 1;
    for (operation, now) in writes {
        let committed = store.write(APP, operator(), operation, now).await.unwrap();
        seq += 1;
        assert_eq!(seqs(&committed.events), [seq]);
    }
    let state = store.room(APP, &id("r")).await.unwrap().unwrap();
    assert_eq!(state.room.owner.as_str(), "heir");
    let people = &state.people;
    assert_eq!(people.muted_at(NOW + 10).count(), 2);
    assert_eq!(
        people
            .ban("b1", NOW + 10)
            .map(|b| (b.until, b.reason.as_str())),
        Some((NOW + 602, "spam \"é\""))
    );
    assert!(people.ban("b2", NOW + 10).is_none());
    assert!(people.is_admin("a1"));
    assert!(people.robots.contains("robot"));
    // The log replays to the same people.
    let Since::Events(events) = store
        .events_after(
            APP,
            &id("r"),
            Position {
                incarnation: state.position.incarnation,
                seq: 0,
            },
            100,
        )
        .await
        .unwrap()
    else {
        panic!("the log holds the room's events")
    };
    let mut replayed = liveroom_domain::RoomSlot::default();
    for event in &events {
        replayed.apply(event).unwrap();
    }
    assert_eq!(replayed.live.as_ref(), Some(&*state));
    // Other rooms have none, and a room created again starts without any.
    let other = store.room(APP, &id("other")).await.unwrap().unwrap();
    assert_eq!(other.people, RoomPeople::default());
    store.destroy_room(APP, id("r")).await.unwrap();
    create(store, APP, "r", NOW + 10).await;
    let again = store.room(APP, &id("r")).await.unwrap().unwrap();
    assert_eq!(again.people, RoomPeople::default());
}

pub async fn statistics_count_per_incarnation<S: Store>(store: &S) {
    use liveroom_domain::RoomStats;
    let counted = |viewers, messages| RoomStats { viewers, messages };
    assert_eq!(
        store.count(APP, &id("r"), counted(1, 0)).await,
        rule(DomainError::RoomNotFound)
    );
    assert_eq!(store.stats(APP, &id("r")).await, Ok(None));
    create(store, APP, "r", NOW).await;
    assert_eq!(store.stats(APP, &id("r")).await, Ok(Some(counted(0, 0))));
    store.count(APP, &id("r"), counted(1, 0)).await.unwrap();
    store.count(APP, &id("r"), counted(2, 5)).await.unwrap();
    assert_eq!(store.stats(APP, &id("r")).await, Ok(Some(counted(3, 5))));
    // Viewers are the room's ViewCount, which reads see at once.
    assert_eq!(get(store, APP, "r").await.view_count, 3);
    assert_eq!(store.stats(OTHER_APP, &id("r")).await, Ok(None));
    // Counting is not a change: the room's log does not move.
    let state = store.room(APP, &id("r")).await.unwrap().unwrap();
    assert_eq!(state.position.seq, 1);
    store.destroy_room(APP, id("r")).await.unwrap();
    assert_eq!(store.stats(APP, &id("r")).await, Ok(None));
    create(store, APP, "r", NOW + 10).await;
    assert_eq!(store.stats(APP, &id("r")).await, Ok(Some(counted(0, 0))));
}

/// What [`crate::Backup`] reads out is what it restores, and a backup of a restored store is
/// the same, byte for byte.
pub async fn saved_rooms_and_accounts_round_trip<S: Store>(store: &S) {
    use liveroom_domain::ops::{BanMembers, MuteMembers};
    create(store, APP, "b", NOW).await;
    create(store, APP, "a", NOW).await;
    create(store, OTHER_APP, "c", NOW).await;
    store
        .set_metadata(APP, id("a"), entries(&[("k", "v"), ("é", "ü")]))
        .await
        .unwrap();
    let mute = MuteMembers {
        room: id("a"),
        accounts: [account("m")].into(),
        secs: 60,
    };
    store.run(APP, Ok(Box::new(mute)), LATER).await.unwrap();
    let ban = BanMembers {
        room: id("b"),
        accounts: [account("x")].into(),
        secs: 600,
        reason: "r".into(),
    };
    store.run(APP, Ok(Box::new(ban)), LATER).await.unwrap();
    let counted = liveroom_domain::RoomStats {
        viewers: 3,
        messages: 7,
    };
    store.count(APP, &id("a"), counted).await.unwrap();
    store
        .import_accounts(
            OTHER_APP,
            import(&[("z", nick("Zed")), ("y", nick("Why"))]),
            IfExists::Refuse,
        )
        .await
        .unwrap();
    assert_eq!(store.apps().await.unwrap(), [APP, OTHER_APP]);
    let rooms = store.saved_rooms(APP, None, 10).await.unwrap();
    assert_eq!(
        ids(&rooms.iter().map(|s| s.room.clone()).collect::<Vec<_>>()),
        ["a", "b"]
    );
    assert_eq!(rooms[0].messages, 7);
    assert_eq!(rooms[0].room.view_count, 3);
    assert!(rooms[0].people.muted.contains_key(&account("m")));
    assert!(rooms[1].people.banned.contains_key(&account("x")));
    let paged = store.saved_rooms(APP, Some(&id("a")), 10).await.unwrap();
    assert_eq!(paged, rooms[1..]);
    let accounts = store.saved_accounts(OTHER_APP, None, 1).await.unwrap();
    assert_eq!(accounts, [(account("y"), nick("Why"))]);

    let mut backup = Vec::new();
    crate::backup::export(store, &mut backup).await.unwrap();
    let restored = MemoryStore::new();
    let counts = crate::backup::import(&restored, &backup[..]).await.unwrap();
    assert_eq!((counts.rooms, counts.accounts), (3, 2));
    let mut again = Vec::new();
    crate::backup::export(&restored, &mut again).await.unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        String::from_utf8(backup).unwrap()
    );
    assert_eq!(restored.saved_rooms(APP, None, 10).await.unwrap(), rooms);
}

pub async fn close_refuses_writes<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    store.close().await;
    let refused = store
        .create_room(APP, new_room("s", "owner", RoomChanges::default()), NOW)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    let refused = store
        .set_metadata(APP, id("r"), entries(&[("a", "1")]))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    // Closing twice is fine.
    store.close().await;
}

/// One `set_room_metadata` or `del_room_metadata` request.
#[derive(Debug, Clone)]
enum Op {
    Set(Vec<(String, String)>),
    Delete(Vec<String>),
}

fn op() -> impl Strategy<Value = Op> {
    // Twelve keys: more than a room may hold.
    let key = "[a-l]";
    let bytes = prop_oneof![1 => 0usize..64, 5 => 1900usize..=2048, 1 => 2049usize..3000];
    let value = (prop_oneof![Just('v'), Just('é')], bytes)
        .prop_map(|(c, bytes)| c.to_string().repeat(bytes / c.len_utf8()));
    prop_oneof![
        3 => prop::collection::vec((key, value), 1..4).prop_map(Op::Set),
        1 => prop::collection::vec(key, 1..12).prop_map(Op::Delete),
    ]
}

/// The documented limits (docs/behaviour.md §7), written out independently of the domain crate.
#[derive(Debug, Default)]
struct Model {
    values: BTreeMap<String, String>,
    revision: u64,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Result<(), DomainError> {
        let next = match op {
            Op::Set(pairs) => {
                if let Some((key, _)) = pairs.iter().find(|(_, v)| v.len() > 2048) {
                    return Err(DomainError::ValueTooLarge { key: key.clone() });
                }
                let mut next = self.values.clone();
                next.extend(pairs.iter().cloned());
                if next.len() > 10 {
                    return Err(DomainError::TooManyKeys);
                }
                if next.values().map(String::len).sum::<usize>() > 16384 {
                    return Err(DomainError::MetadataTooLarge);
                }
                next
            }
            Op::Delete(keys) => {
                if keys.len() > 10 {
                    return Err(DomainError::TooManyKeys);
                }
                if !keys.iter().any(|k| self.values.contains_key(k)) {
                    return Err(DomainError::NoSuchKeys);
                }
                let mut next = self.values.clone();
                next.retain(|k, _| !keys.contains(k));
                next
            }
        };
        self.values = next;
        self.revision += 1;
        Ok(())
    }
}

async fn agrees_with_model<S: Store>(
    store: &S,
    room: RoomId,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    store
        .create_room(
            APP,
            new_room(room.as_str(), "owner", RoomChanges::default()),
            NOW,
        )
        .await
        .unwrap();
    let mut model = Model::default();
    for op in &ops {
        let outcome = match op {
            Op::Set(pairs) => {
                let entries = pairs
                    .iter()
                    .map(|(k, v)| MetadataEntry::new(k.clone(), v.clone()).unwrap())
                    .collect();
                store.set_metadata(APP, room.clone(), entries).await
            }
            Op::Delete(keys) => store.delete_metadata(APP, room.clone(), keys.clone()).await,
        };
        prop_assert_eq!(
            outcome,
            model.apply(op).map_err(StoreError::Rule),
            "{:?}",
            op
        );
        let stored = store.metadata(APP, room.clone()).await.unwrap();
        prop_assert_eq!(&stored, &model.values);
        prop_assert!(stored.len() <= METADATA_MAX_KEYS);
        prop_assert!(total_bytes(&stored) <= METADATA_TOTAL_MAX_BYTES);
        prop_assert!(stored.values().all(|v| v.len() <= METADATA_VALUE_MAX_BYTES));
        let revision = store
            .room_of(APP, room.clone())
            .await
            .unwrap()
            .unwrap()
            .revision;
        prop_assert_eq!(revision, model.revision);
    }
    Ok(())
}

/// Random sequences of metadata writes against [`Model`]: after every step the store and the
/// model agree on the outcome, the metadata and the revision. Each case uses a fresh room.
pub fn metadata_matches_model<S: Store>(runtime: &tokio::runtime::Runtime, store: &S) {
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let rooms = AtomicUsize::new(0);
    let strategy = prop::collection::vec(op(), 1..60);
    let result = runner.run(&strategy, |ops| {
        let room = id(&format!("model-{}", rooms.fetch_add(1, Ordering::Relaxed)));
        runtime.block_on(agrees_with_model(store, room, ops))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

fn seqs(events: &[RoomEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.seq).collect()
}

async fn write<S: Store>(
    store: &S,
    operation: Box<dyn RoomOperation>,
    now: Duration,
) -> StoreResult<crate::Committed> {
    store.write(APP, operator(), operation, now).await
}

fn set_op(room: &str, pairs: &[(&str, &str)]) -> Box<SetMetadata> {
    Box::new(SetMetadata {
        room: id(room),
        entries: MetadataEntries::new(entries(pairs)).unwrap(),
    })
}

/// Every successful write appends its events, numbered from 1 in the room's incarnation, and
/// returns them with the state they lead to.
pub async fn log_numbers_every_write_without_gaps<S: Store>(store: &S) {
    let created = write(
        store,
        Box::new(CreateRoom(new_room("r", "o", RoomChanges::default()))),
        LATER,
    )
    .await
    .unwrap();
    assert_eq!(seqs(&created.events), [1]);
    assert!(matches!(created.events[0].change, RoomChange::Created(_)));
    let incarnation = created.events[0].position.incarnation;
    let set = write(
        store,
        set_op("r", &[("b", "2"), ("a", "1"), ("a", "3")]),
        LATER,
    )
    .await
    .unwrap();
    assert_eq!(seqs(&set.events), [2]);
    assert_eq!(
        set.events[0].change,
        RoomChange::MetadataSet(metadata(&[("a", "3"), ("b", "2")]))
    );
    let state = set.state.unwrap();
    assert_eq!(
        state.position,
        Position {
            incarnation,
            seq: 2
        }
    );
    assert_eq!(state.metadata, metadata(&[("a", "3"), ("b", "2")]));
    let deleted = write(
        store,
        Box::new(DeleteMetadata {
            room: id("r"),
            keys: DeleteKeys::new(keys(&["b", "zz", "b"])).unwrap(),
        }),
        LATER,
    )
    .await
    .unwrap();
    assert_eq!(
        deleted.events[0].change,
        RoomChange::MetadataDeleted(keys(&["b"]))
    );
    let destroyed = write(store, Box::new(DestroyRoom(id("r"))), LATER)
        .await
        .unwrap();
    assert_eq!(seqs(&destroyed.events), [4]);
    assert_eq!(destroyed.state, None);
    assert_eq!(store.room(APP, &id("r")).await, Ok(None));
    let all = store
        .events_after(
            APP,
            &id("r"),
            Position {
                incarnation,
                seq: 0,
            },
            100,
        )
        .await
        .unwrap();
    let Since::Events(all) = all else {
        panic!("{all:?}")
    };
    assert_eq!(seqs(&all), [1, 2, 3, 4]);
    assert_eq!(
        [
            &created.events[..],
            &set.events,
            &deleted.events,
            &destroyed.events
        ]
        .concat(),
        all,
        "the log holds exactly what the writes returned"
    );
}

/// A reader resumes from any position the log still holds, in pages; a position of another
/// incarnation, or one the log never had, is `Expired`.
pub async fn log_reads_from_a_position<S: Store>(store: &S) {
    let created = write(
        store,
        Box::new(CreateRoom(new_room("r", "o", RoomChanges::default()))),
        LATER,
    )
    .await
    .unwrap();
    let incarnation = created.events[0].position.incarnation;
    for i in 0..10 {
        write(store, set_op("r", &[("k", &i.to_string())]), LATER)
            .await
            .unwrap();
    }
    let at = |seq| Position { incarnation, seq };
    let page = store.events_after(APP, &id("r"), at(3), 4).await.unwrap();
    let Since::Events(page) = page else {
        panic!("{page:?}")
    };
    assert_eq!(seqs(&page), [4, 5, 6, 7]);
    assert_eq!(
        store.events_after(APP, &id("r"), at(11), 4).await,
        Ok(Since::Events(vec![])),
        "at the head: nothing missed"
    );
    for lost in [
        at(12),
        Position {
            incarnation: incarnation + 1,
            seq: 1,
        },
    ] {
        assert_eq!(
            store.events_after(APP, &id("r"), lost, 4).await,
            Ok(Since::Expired),
            "{lost:?}"
        );
    }
    assert_eq!(
        store.events_after(APP, &id("nowhere"), at(0), 4).await,
        Ok(Since::Expired)
    );
}

/// Subscribers receive every committed event once, in commit order, and never a refused one.
pub async fn log_subscribers_see_commits_in_order<S: Store>(store: &S) {
    let mut events = store.subscribe();
    write(
        store,
        Box::new(CreateRoom(new_room("a", "o", RoomChanges::default()))),
        LATER,
    )
    .await
    .unwrap();
    write(
        store,
        Box::new(CreateRoom(new_room("b", "o", RoomChanges::default()))),
        LATER,
    )
    .await
    .unwrap();
    let writes: Vec<_> = (0..20)
        .map(|i| {
            let room = if i % 2 == 0 { "a" } else { "b" };
            store.write(
                APP,
                operator(),
                set_op(room, &[("k", &i.to_string())]),
                LATER,
            )
        })
        .collect();
    for outcome in await_in_order(writes).await {
        outcome.unwrap();
    }
    assert!(
        write(store, set_op("missing", &[("k", "v")]), LATER)
            .await
            .is_err()
    );
    write(store, Box::new(DestroyRoom(id("a"))), LATER)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut total = 0;
    while total < 23 {
        let batch = events.recv().await.unwrap();
        for event in batch.iter() {
            seen.entry(event.room.as_str().to_owned())
                .or_default()
                .push(event.position.seq);
            total += 1;
        }
    }
    assert_eq!(seen["a"], (1..=12).collect::<Vec<_>>());
    assert_eq!(seen["b"], (1..=11).collect::<Vec<_>>());
    assert!(
        events.try_recv().is_err(),
        "nothing more: the refused write appended nothing"
    );
}

/// Awaits each future in turn. A backend that queues a write when `write` is called (SQLite)
/// has them all queued already, so they may share batches.
async fn await_in_order<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs = Vec::with_capacity(futures.len());
    for future in futures {
        outputs.push(future.await);
    }
    outputs
}

/// A write that breaks a rule appends nothing and moves no position.
pub async fn refused_writes_append_nothing<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    let before = store.room(APP, &id("r")).await.unwrap().unwrap().position;
    let too_big = "v".repeat(METADATA_VALUE_MAX_BYTES + 1);
    assert!(
        write(store, set_op("r", &[("k", &too_big)]), LATER)
            .await
            .is_err()
    );
    let update = Box::new(UpdateRoom {
        room: id("missing"),
        changes: RoomChanges::default().validate().unwrap(),
    });
    assert!(write(store, update, LATER).await.is_err());
    assert_eq!(
        store.room(APP, &id("r")).await.unwrap().unwrap().position,
        before
    );
    assert_eq!(
        store.events_after(APP, &id("r"), before, 10).await,
        Ok(Since::Events(vec![]))
    );
}

/// Destroyed and created again: a new incarnation whose log starts at 1; created again within
/// a second of the destroy: refused.
pub async fn recreated_room_is_a_new_incarnation<S: Store>(store: &S) {
    let at = |ms| Duration::from_millis(NOW * 1000 + ms);
    let make = || Box::new(CreateRoom(new_room("r", "o", RoomChanges::default())));
    let first = write(store, make(), at(0)).await.unwrap().events[0].position;
    write(store, Box::new(DestroyRoom(id("r"))), at(100))
        .await
        .unwrap();
    assert_eq!(
        write(store, make(), at(1099)).await,
        rule(DomainError::CreatedTooSoon)
    );
    let second = write(store, make(), at(1100)).await.unwrap().events[0].position;
    assert_eq!(second.seq, 1);
    assert!(
        second.incarnation > first.incarnation,
        "{second:?} after {first:?}"
    );
    assert_eq!(
        store.events_after(APP, &id("r"), first, 10).await,
        Ok(Since::Expired),
        "the old incarnation cannot be resumed into the new one"
    );
}

/// An existing room answers the conflict, never "too soon", however soon the create comes.
pub async fn create_existing_room_answers_conflict_however_soon<S: Store>(store: &S) {
    create(store, APP, "r", NOW).await;
    for (owner, same_owner) in [("owner", true), ("someone", false)] {
        assert_eq!(
            store
                .create_room(APP, new_room("r", owner, RoomChanges::default()), NOW)
                .await,
            rule(DomainError::RoomExists { same_owner })
        );
    }
}

/// With `retention` (its `events_per_room` at most 100, `destroyed_room` at most a minute):
/// a room's log keeps at least its newest events and resumes from any of them; older
/// positions are `Expired`. A destroyed room's events stay readable for the retention, then are
/// swept by a later write.
pub async fn retention_bounds_the_log<S: Store>(store: &S, retention: crate::Retention) {
    let keep = retention.events_per_room;
    let start = Duration::from_secs(NOW);
    let created = write(
        store,
        Box::new(CreateRoom(new_room("r", "o", RoomChanges::default()))),
        start,
    )
    .await
    .unwrap();
    let incarnation = created.events[0].position.incarnation;
    let writes = 3 * keep + 70;
    for i in 0..writes {
        write(store, set_op("r", &[("k", &i.to_string())]), start)
            .await
            .unwrap();
    }
    let head = writes + 1;
    let at = |seq| Position { incarnation, seq };
    let recent = store
        .events_after(APP, &id("r"), at(head - keep), 1000)
        .await
        .unwrap();
    let Since::Events(recent) = recent else {
        panic!("{recent:?}")
    };
    assert_eq!(recent.len() as u64, keep, "the newest events are all there");
    assert_eq!(
        store.events_after(APP, &id("r"), at(1), 1000).await,
        Ok(Since::Expired),
        "the oldest are gone"
    );

    write(store, Box::new(DestroyRoom(id("r"))), start)
        .await
        .unwrap();
    let within = start + retention.destroyed_room / 2;
    create(store, APP, "other", NOW).await;
    write(store, set_op("other", &[("k", "v")]), within)
        .await
        .unwrap();
    let end = store
        .events_after(APP, &id("r"), at(head), 10)
        .await
        .unwrap();
    let Since::Events(end) = end else {
        panic!("{end:?}")
    };
    assert_eq!(end.len(), 1, "the destroy is still readable");
    assert_eq!(end[0].change, RoomChange::Destroyed);

    // Writes after the retention (and the writer's sweep interval) sweep it away.
    let after = start + retention.destroyed_room + Duration::from_secs(61);
    for _ in 0..2 {
        write(store, set_op("other", &[("k", "w")]), after)
            .await
            .unwrap();
    }
    assert_eq!(
        store.events_after(APP, &id("r"), at(head), 10).await,
        Ok(Since::Expired)
    );
    // Gone with its tombstone: a create at once is not "too soon", and starts a new incarnation.
    create(store, APP, "r", NOW + 1).await;
}

fn account(raw: &str) -> Account {
    Account::parse("UserID", raw.into()).unwrap()
}

fn nick(text: &str) -> Profile {
    Profile::new([(ProfileTag::Nick, ProfileValue::Text(text.into()))]).unwrap()
}

fn import(accounts: &[(&str, Profile)]) -> NewAccounts {
    let accounts = accounts
        .iter()
        .map(|(id, profile)| (account(id), profile.clone()))
        .collect();
    NewAccounts::new("Accounts", accounts).unwrap()
}

pub async fn accounts_import_and_read_back(store: &impl Store) {
    let full = Profile::new([
        (ProfileTag::Nick, ProfileValue::Text("Ann".into())),
        (
            ProfileTag::Image,
            ProfileValue::Text("https://a/b.png".into()),
        ),
        (ProfileTag::Role, ProfileValue::Number(2)),
    ])
    .unwrap();
    let accounts = import(&[("ann", full.clone()), ("bob", Profile::default())]);
    store
        .import_accounts(APP, accounts, IfExists::Refuse)
        .await
        .unwrap();
    let got = store
        .profiles(APP, vec![account("bob"), account("nobody"), account("ann")])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(Profile::default()), None, Some(full)]);
}

pub async fn accounts_import_existing_refuses_or_keeps(store: &impl Store) {
    let first = import(&[("ann", nick("first"))]);
    store
        .import_accounts(APP, first, IfExists::Refuse)
        .await
        .unwrap();
    let again = import(&[("ann", nick("second"))]);
    assert_eq!(
        store
            .import_accounts(APP, again.clone(), IfExists::Refuse)
            .await,
        Err(StoreError::Rule(DomainError::AccountExists))
    );
    // A refused import creates none of its accounts.
    let both = import(&[("cat", nick("c")), ("ann", nick("second"))]);
    assert!(
        store
            .import_accounts(APP, both.clone(), IfExists::Refuse)
            .await
            .is_err()
    );
    let cat = store.profiles(APP, vec![account("cat")]).await.unwrap();
    assert_eq!(cat, vec![None]);
    // Keeping: the existing account is unchanged, the new one (named twice) created once.
    let twice = import(&[
        ("cat", nick("c")),
        ("ann", nick("second")),
        ("cat", nick("d")),
    ]);
    store
        .import_accounts(APP, twice, IfExists::Keep)
        .await
        .unwrap();
    let got = store
        .profiles(APP, vec![account("ann"), account("cat")])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(nick("first")), Some(nick("c"))]);
}

pub async fn accounts_set_profile_merges(store: &impl Store) {
    let role_text = Profile::new([(ProfileTag::Role, ProfileValue::Text("host".into()))]).unwrap();
    assert_eq!(
        store.set_profile(APP, account("ann"), nick("x")).await,
        Err(StoreError::Rule(DomainError::AccountNotFound))
    );
    let ann = import(&[("ann", nick("Ann"))]);
    store
        .import_accounts(APP, ann, IfExists::Refuse)
        .await
        .unwrap();
    store
        .set_profile(APP, account("ann"), role_text)
        .await
        .unwrap();
    let role_number = Profile::new([(ProfileTag::Role, ProfileValue::Number(7))]).unwrap();
    store
        .set_profile(APP, account("ann"), role_number)
        .await
        .unwrap();
    let expected = Profile::new([
        (ProfileTag::Nick, ProfileValue::Text("Ann".into())),
        (ProfileTag::Role, ProfileValue::Number(7)),
    ])
    .unwrap();
    let got = store.profiles(APP, vec![account("ann")]).await.unwrap();
    assert_eq!(got, vec![Some(expected)]);
}

pub async fn accounts_apps_are_isolated(store: &impl Store) {
    let ann = import(&[("ann", nick("Ann"))]);
    store
        .import_accounts(APP, ann.clone(), IfExists::Refuse)
        .await
        .unwrap();
    let other = store
        .profiles(OTHER_APP, vec![account("ann")])
        .await
        .unwrap();
    assert_eq!(other, vec![None]);
    store
        .import_accounts(OTHER_APP, ann, IfExists::Refuse)
        .await
        .unwrap();
    assert_eq!(
        store
            .set_profile(OTHER_APP, account("ann"), nick("Other"))
            .await,
        Ok(())
    );
    let got = store.profiles(APP, vec![account("ann")]).await.unwrap();
    assert_eq!(got, vec![Some(nick("Ann"))]);
}

/// Who the suite's writes are made by.
fn operator() -> Account {
    account("operator")
}

/// The webhooks the [`feed_conformance!`] suite's stores are opened with: `APP` has one for
/// Tencent's callbacks, `OTHER_APP` none.
///
/// [`feed_conformance!`]: crate::feed_conformance
pub fn suite_outboxes() -> crate::Outboxes {
    std::sync::Arc::new(std::collections::HashMap::from([(
        APP,
        liveroom_domain::Hooks::tencent(),
    )]))
}

/// The [`Feed`] and [`Outbox`] suite: numbering, contents, delivery order and its outcomes.
/// `$make` opens a store with [`suite_outboxes`].
///
/// [`Feed`]: crate::Feed
/// [`Outbox`]: crate::Outbox
#[macro_export]
macro_rules! feed_conformance {
    ($make:expr) => {
        $crate::conformance_cases!($make;
            feed_numbers_entries_per_app_in_commit_order,
            outbox_delivers_each_room_in_order,
        );
    };
}

fn members(cause: liveroom_domain::MemberCause, names: &[&str]) -> liveroom_domain::MemberChange {
    liveroom_domain::MemberChange {
        cause,
        accounts: names.iter().map(|n| account(n)).collect(),
    }
}

pub async fn feed_numbers_entries_per_app_in_commit_order<S: Store>(store: &S) {
    use liveroom_domain::{FeedItem, Hook, MemberCause};
    create(store, APP, "r1", NOW).await;
    store
        .set_metadata(APP, id("r1"), entries(&[("k", "v")]))
        .await
        .unwrap();
    create(store, OTHER_APP, "o", NOW).await;
    create(store, APP, "r2", NOW).await;
    let renamed = RoomChanges {
        name: Some("renamed".into()),
        ..RoomChanges::default()
    };
    store
        .update_room(APP, id("r1"), renamed.validate().unwrap())
        .await
        .unwrap();
    // Refused writes and presence in a missing room leave no entry.
    assert!(store.destroy_room(APP, id("nope")).await.is_err());
    let missing = store
        .record_members(
            APP,
            &id("nope"),
            account("m"),
            members(MemberCause::Enter, &["m"]),
            LATER,
        )
        .await;
    assert_eq!(missing, Err(DomainError::RoomNotFound.into()));
    store
        .record_members(
            APP,
            &id("r2"),
            account("m"),
            members(MemberCause::Enter, &["m"]),
            LATER,
        )
        .await
        .unwrap();
    store.destroy_room(APP, id("r1")).await.unwrap();

    let all = store.feed(APP, None, 0, 100).await.unwrap();
    let seen: Vec<(u64, &str, Hook)> = all
        .iter()
        .map(|e| (e.seq, e.room.as_str(), e.item.hook()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "r1", Hook::CreateRoom),
            (2, "r1", Hook::SetMetadata),
            (3, "r2", Hook::CreateRoom),
            (4, "r1", Hook::UpdateRoomInfo),
            (5, "r2", Hook::MemberStateChanged),
            (6, "r1", Hook::DestroyRoom),
        ]
    );
    assert!(all[..4].iter().all(|e| e.by == operator()));
    assert_eq!(all[4].by, account("m"));
    assert_eq!(all[4].at_ms, LATER.as_millis() as u64);
    // An update carries the room it left, a destroy the room it ended; positions are the log's.
    let room_of = |e: &liveroom_domain::FeedEntry| match &e.item {
        FeedItem::Room { room, position, .. } => {
            (room.as_ref().map(|r| r.fields.name.clone()), position.seq)
        }
        FeedItem::Members(_) => (None, 0),
    };
    assert_eq!(room_of(&all[1]), (None, 2));
    assert_eq!(room_of(&all[3]), (Some("renamed".into()), 3));
    assert_eq!(room_of(&all[5]), (Some("renamed".into()), 4));

    let page = store.feed(APP, None, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let r1 = store.feed(APP, Some(&id("r1")), 1, 100).await.unwrap();
    assert_eq!(r1.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4, 6]);
    let other = store.feed(OTHER_APP, None, 0, 100).await.unwrap();
    assert_eq!(other.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    assert!(store.feed(APP, None, 6, 100).await.unwrap().is_empty());
    assert!(
        store
            .feed(APP, None, u64::MAX, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn outbox_delivers_each_room_in_order<S: Store>(store: &S) {
    use crate::Outcome;
    let idle = HashSet::new();
    use liveroom_domain::ops::MuteMembers;
    create(store, APP, "r1", NOW).await; // 1
    store
        .set_metadata(APP, id("r1"), entries(&[("k", "v")]))
        .await
        .unwrap(); // 2
    create(store, APP, "r2", NOW).await; // 3
    let mute = MuteMembers {
        room: id("r1"),
        accounts: [account("m")].into(),
        secs: 60,
    };
    // 4: in the feed, but not one of Tencent's callbacks: no webhook waits for it.
    store.run(APP, Ok(Box::new(mute)), LATER).await.unwrap();
    store
        .set_metadata(APP, id("r1"), entries(&[("k", "w")]))
        .await
        .unwrap(); // 5
    create(store, OTHER_APP, "o", NOW).await;
    let now = LATER.as_millis() as u64 + 1000;
    let heads = |due: Vec<crate::Pending>| -> Vec<(u64, u32)> {
        let mut heads: Vec<_> = due.iter().map(|p| (p.entry.seq, p.attempts)).collect();
        heads.sort();
        heads
    };
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(1, 0), (3, 0)]
    );
    assert!(
        store
            .due(OTHER_APP, now, 10, &idle)
            .await
            .unwrap()
            .is_empty()
    );
    // Rooms the caller is busy with are passed over, and leave the limit to the others. Both
    // rooms are due since the same instant, so each is asked for by making the other busy:
    // whichever a backend puts first, one of the two reads fails if the busy room is not skipped.
    for (busy, other) in [("r1", (3, 0)), ("r2", (1, 0))] {
        let busy = HashSet::from([id(busy)]);
        assert_eq!(heads(store.due(APP, now, 1, &busy).await.unwrap()), [other]);
    }
    let backlog = store.backlog(APP).await.unwrap();
    assert_eq!((backlog.pending, backlog.parked), (4, 0));
    assert_eq!(backlog.oldest_pending_ms, Some(NOW * 1000));

    // Delivered: the room's next waiting entry (skipping 4) comes up; an outcome for an entry
    // that is not its room's first changes nothing.
    store
        .settle(APP, vec![(1, Outcome::Delivered), (5, Outcome::Delivered)])
        .await
        .unwrap();
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(2, 0), (3, 0)]
    );
    // A retry waits until it is due, and counts.
    let retry = Outcome::Retry {
        at_ms: now + 5000,
        error: "timeout".into(),
    };
    store.settle(APP, vec![(3, retry)]).await.unwrap();
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(2, 0)]
    );
    assert_eq!(
        heads(store.due(APP, now + 5000, 10, &idle).await.unwrap()),
        [(2, 0), (3, 1)]
    );
    assert_eq!(store.due(APP, now + 5000, 1, &idle).await.unwrap().len(), 1);
    // Parked: kept aside with its reason, and the room goes on.
    let park = Outcome::Park {
        error: "HTTP 500".into(),
    };
    store.settle(APP, vec![(2, park)]).await.unwrap();
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(5, 0)]
    );
    let parked = store.parked(APP, 0, 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].entry.seq, parked[0].error.as_str()),
        (2, "HTTP 500")
    );
    assert!(store.parked(APP, 2, 10).await.unwrap().is_empty());
    let backlog = store.backlog(APP).await.unwrap();
    assert_eq!((backlog.pending, backlog.parked), (2, 1));
    // Replayed: first again in its room, before the later entry.
    assert_eq!(store.replay(APP, Some(vec![2, 5, 99])).await.unwrap(), 1);
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(2, 0)]
    );
    store
        .settle(APP, vec![(2, Outcome::Delivered)])
        .await
        .unwrap();
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(5, 0)]
    );
    store
        .settle(APP, vec![(5, Outcome::Park { error: "x".into() })])
        .await
        .unwrap();
    assert_eq!(store.replay(APP, None).await.unwrap(), 1);
    store
        .settle(APP, vec![(5, Outcome::Delivered)])
        .await
        .unwrap();
    let backlog = store.backlog(APP).await.unwrap();
    assert_eq!(
        backlog.pending + backlog.parked,
        1,
        "3 still waits for its retry"
    );
    assert_eq!(store.replay(APP, None).await.unwrap(), 0);

    // A replayed entry behind others of its room that were delivered does not send them again.
    create(store, APP, "r3", NOW).await; // 6
    store
        .set_metadata(APP, id("r3"), entries(&[("k", "v")]))
        .await
        .unwrap(); // 7
    let park = Outcome::Park { error: "x".into() };
    store.settle(APP, vec![(6, park)]).await.unwrap();
    store
        .settle(APP, vec![(7, Outcome::Delivered)])
        .await
        .unwrap();
    assert!(store.due(APP, now, 10, &idle).await.unwrap().is_empty());
    assert_eq!(store.replay(APP, Some(vec![6])).await.unwrap(), 1);
    assert_eq!(
        heads(store.due(APP, now, 10, &idle).await.unwrap()),
        [(6, 0)]
    );
    store
        .settle(APP, vec![(6, Outcome::Delivered)])
        .await
        .unwrap();
    assert!(store.due(APP, now, 10, &idle).await.unwrap().is_empty());
    let backlog = store.backlog(APP).await.unwrap();
    assert_eq!((backlog.pending, backlog.parked), (1, 0), "3 still waits");
}

/// The PostgreSQL server of the tests: the one `TEST_POSTGRES` names (`scripts/test` starts a
/// throwaway one), shared by every crate's PostgreSQL tests.
pub mod postgres {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The server's connection string. Without one the tests fail, saying how to get one: a
    /// PostgreSQL test that passes without PostgreSQL would prove nothing.
    pub fn url() -> String {
        variable("TEST_POSTGRES")
    }

    /// The same server over TLS on a loopback port, and the PEM certificate of the throwaway
    /// authority that signed its certificate.
    pub fn tls_url_and_authority() -> (String, Vec<u8>) {
        let authority = variable("TEST_POSTGRES_CA");
        let pem = std::fs::read(&authority).unwrap_or_else(|e| panic!("{authority}: {e}"));
        (variable("TEST_POSTGRES_TLS"), pem)
    }

    fn variable(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run the tests with scripts/test (or \
                 scripts/with-postgres.sh cargo test …), which starts a throwaway PostgreSQL"
            )
        })
    }

    /// A schema no other test uses (of this process or another).
    pub fn fresh_schema() -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        format!(
            "t{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The suite of [`crate::Shared`], for a backend whose nodes share presence: `a` and `b` are
/// two nodes on one database, `lease` the presence lease both were opened with
/// (docs/cluster.md §4). A store that shares nothing answers the trait's defaults.
pub mod shared {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use liveroom_domain::{Account, RoomId};

    use crate::{Listed, MemberInfo, Relay, Reported, Returning, Roster, Store};

    const APP: u32 = 1_400_000_077;

    fn room() -> RoomId {
        RoomId::parse("shared".into()).unwrap()
    }

    fn now() -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    }

    fn member(account: &str) -> Reported {
        Reported::In {
            app: APP,
            room: room(),
            account: account.into(),
            info: MemberInfo {
                nick: Some(format!("nick of {account}")),
                avatar: None,
            },
        }
    }

    async fn listed<S: Store>(store: &S, robots: &BTreeSet<Account>) -> (Vec<String>, Roster) {
        let roster = store
            .members(APP, &room(), robots, None, 100)
            .await
            .unwrap();
        let accounts = roster.page.iter().map(|l| l.account.clone()).collect();
        (accounts, roster)
    }

    /// Members reported by either node are listed by both, once each, in account order and
    /// paged; leaving through one node keeps a member that the other still has.
    pub async fn members_are_seen_by_every_node<S: Store>(a: &S, b: &S) {
        assert!(a.shares_presence());
        a.report_members(vec![member("u1"), member("u2")])
            .await
            .unwrap();
        b.report_members(vec![member("u2"), member("u3"), member("bot")])
            .await
            .unwrap();
        let robots: BTreeSet<Account> = [
            Account::parse("robot", "bot".into()).unwrap(),
            Account::parse("robot", "absent".into()).unwrap(),
        ]
        .into();
        for node in [a, b] {
            let (accounts, roster) = listed(node, &robots).await;
            assert_eq!(accounts, ["bot", "u1", "u2", "u3"]);
            assert_eq!((roster.connected, roster.robots_connected), (4, 1));
            assert_eq!(
                roster.page[1],
                Listed {
                    account: "u1".into(),
                    info: MemberInfo {
                        nick: Some("nick of u1".into()),
                        avatar: None
                    }
                }
            );
        }
        let page = b
            .members(APP, &room(), &robots, Some("u1"), 1)
            .await
            .unwrap();
        assert_eq!(page.page.len(), 1);
        assert_eq!(page.page[0].account, "u2");
        assert_eq!(page.connected, 4);
        let out = |account: &str| Reported::Out {
            app: APP,
            room: room(),
            account: account.into(),
        };
        a.report_members(vec![out("u2"), out("u1")]).await.unwrap();
        assert_eq!(listed(b, &robots).await.0, ["bot", "u2", "u3"]);
        b.report_members(vec![Reported::Cleared {
            app: APP,
            room: room(),
        }])
        .await
        .unwrap();
        assert_eq!(listed(a, &robots).await.1, Roster::default());
    }

    /// A node that stops renewing its lease loses its members once the lease ends: the first
    /// node to sweep after that removes them and is told who left (once); a member the sweeper
    /// still has stays. The node that lost its lease learns it must report its members again.
    pub async fn a_silent_nodes_members_leave<S: Store>(a: &S, b: &S, lease: Duration) {
        let dropped = Reported::Interrupted {
            app: APP,
            room: room(),
            account: "dropped".into(),
            at_ms: 1,
        };
        a.report_members(vec![
            member("gone"),
            member("both"),
            member("dropped"),
            dropped,
        ])
        .await
        .unwrap();
        b.report_members(vec![member("both")]).await.unwrap();
        let swept = b.sweep_members(now()).await.unwrap();
        assert!(swept.gone.is_empty(), "a's lease has not ended yet");
        assert!(!swept.rejoined);
        let later = now() + lease + Duration::from_secs(1);
        let swept = b.sweep_members(later).await.unwrap();
        let gone: Vec<_> = swept
            .gone
            .iter()
            .map(|d| (d.app, d.member.account.clone(), d.interrupted))
            .collect();
        assert_eq!(
            gone,
            [
                (APP, "dropped".to_owned(), true),
                (APP, "gone".to_owned(), false)
            ]
        );
        assert_eq!(b.sweep_members(later).await.unwrap(), Default::default());
        let (accounts, _) = listed(a, &BTreeSet::new()).await;
        assert_eq!(accounts, ["both"]);
        assert!(a.sweep_members(later).await.unwrap().rejoined);
    }

    /// A member whose connection dropped is out of the lists; coming back within the grace
    /// period through another node takes it over (its node then does not see it leave); one
    /// that does not come back in time leaves from its own node, once.
    pub async fn an_interrupted_member_recovers_on_another_node<S: Store>(a: &S, b: &S) {
        let interrupted = |account: &str| Reported::Interrupted {
            app: APP,
            room: room(),
            account: account.into(),
            at_ms: 10_000,
        };
        a.report_members(vec![
            member("u"),
            member("v"),
            interrupted("u"),
            interrupted("v"),
        ])
        .await
        .unwrap();
        let (accounts, roster) = listed(b, &BTreeSet::new()).await;
        assert!(accounts.is_empty());
        assert_eq!(roster.connected, 0);
        let returning = b.returning(APP, &room(), "u", 9_000).await.unwrap();
        assert_eq!(returning, Returning::Recovered);
        assert!(!a.end_interruption(APP, &room(), "u").await.unwrap());
        // Dropped before the grace period began: not a recovery.
        let returning = b.returning(APP, &room(), "v", 11_000).await.unwrap();
        assert_eq!(returning, Returning::New);
        assert!(a.end_interruption(APP, &room(), "v").await.unwrap());
        assert!(!a.end_interruption(APP, &room(), "v").await.unwrap());
        // Connected through another node: a member already.
        a.report_members(vec![member("w")]).await.unwrap();
        let returning = b.returning(APP, &room(), "w", 0).await.unwrap();
        assert_eq!(returning, Returning::Elsewhere);
        assert_eq!(
            a.returning(APP, &room(), "w", 0).await.unwrap(),
            Returning::New,
            "its own node's row is not elsewhere"
        );
    }

    /// A live frame relayed by one node reaches the other's subscribers, in order, and not its
    /// own.
    pub async fn frames_reach_the_other_nodes<S: Store>(a: &S, b: &S) {
        let mut on_b = b.relayed().expect("a shared store relays");
        let mut on_a = a.relayed().unwrap();
        for i in 0..3 {
            a.relay(APP, &room(), Relay::Frame(format!("frame {i}")));
        }
        a.relay(
            APP,
            &room(),
            Relay::Replace {
                account: "u".into(),
            },
        );
        let mut texts = Vec::new();
        while texts.len() < 4 {
            let batch = tokio::time::timeout(Duration::from_secs(10), on_b.recv())
                .await
                .expect("b reads a's frames")
                .unwrap();
            texts.extend(batch.iter().map(|r| match &r.relay {
                Relay::Frame(text) => text.clone(),
                Relay::Replace { account } => format!("replace {account}"),
            }));
        }
        assert_eq!(texts, ["frame 0", "frame 1", "frame 2", "replace u"]);
        assert!(on_a.try_recv().is_err(), "a does not hear itself");
    }
}
