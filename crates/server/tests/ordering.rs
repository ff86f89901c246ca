//! A property of the real-time gateway (docs/protocol.md, "Ordering and resume"): whatever
//! mix of REST writes, writes over the socket, exits and re-entries with `since` and dropped
//! connections resumed with [`Client::resume`] runs against a room, every client sees each
//! room's events gap-free, without duplicates and in one order, the same for everyone, and
//! replaying the room's log from rev 1 gives exactly what REST answers.
//!
//! Each case is a fresh in-process server; the script is a list of batches, and the actions
//! of one batch run at the same time. Nothing sleeps: every wait has a deadline.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use common::TestServer;
use liveroom_client::{Client, Entered, Error, Event, Mode, Position};
use liveroom_server::{RealtimeConfig, ServerConfig};
use liveroom_store::{MemoryStore, SqliteOptions, SqliteStore, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

const ROOMS: [&str; 2] = ["room-a", "room-b"];
const OWNER: usize = 0;
const USERS: [&str; 4] = ["owner", "u1", "u2", "u3"];
const KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// Every wait has this deadline; none sleeps.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in time"))
}

#[derive(Debug, Clone)]
enum Action {
    RestSet {
        room: usize,
        key: usize,
    },
    RestDel {
        room: usize,
        key: usize,
    },
    RestInfo {
        room: usize,
        field: usize,
    },
    /// `client` 0 is the rooms' owner; the others are refused (100006) and append nothing.
    WsSet {
        client: usize,
        room: usize,
        key: usize,
    },
    WsDel {
        client: usize,
        room: usize,
        key: usize,
    },
    /// Exits the room if in it, else enters it again with `since` the last event seen.
    Toggle {
        client: usize,
        room: usize,
    },
    /// Drops the connection without a close frame and resumes on a new one.
    Resume {
        client: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let room = 0..ROOMS.len();
    let key = 0..KEYS.len();
    let client = 0..USERS.len();
    prop_oneof![
        3 => (room.clone(), key.clone()).prop_map(|(room, key)| Action::RestSet { room, key }),
        1 => (room.clone(), key.clone()).prop_map(|(room, key)| Action::RestDel { room, key }),
        1 => (room.clone(), 0..3usize).prop_map(|(room, field)| Action::RestInfo { room, field }),
        // Mostly the owner, sometimes someone who may not write.
        3 => (prop_oneof![4 => Just(OWNER), 1 => client.clone()], room.clone(), key.clone())
            .prop_map(|(client, room, key)| Action::WsSet { client, room, key }),
        1 => (room.clone(), key.clone()).prop_map(|(room, key)| Action::WsDel { client: OWNER, room, key }),
        2 => (client.clone(), room.clone()).prop_map(|(client, room)| Action::Toggle { client, room }),
        1 => client.prop_map(|client| Action::Resume { client }),
    ]
}

/// At most 20 × 3 writes, so a room's whole log fits in one delta (64 events).
fn script() -> impl Strategy<Value = Vec<Vec<Action>>> {
    prop::collection::vec(prop::collection::vec(action(), 1..=3), 6..20)
}

/// A write that was acknowledged: the event it must have appended, and its position when the
/// writer was told.
#[derive(Debug)]
struct Written {
    room: usize,
    ev: &'static str,
    d: Value,
    position: Option<Position>,
}

struct Actor {
    user: &'static str,
    client: Client,
    inside: [bool; ROOMS.len()],
    /// Per room: every event with a position this client was handed, in order.
    log: Vec<Vec<Event>>,
    /// Per room: its incarnation, from the first `enter`.
    epochs: [u64; ROOMS.len()],
}

impl Actor {
    fn seen(&self, room: usize) -> u64 {
        self.log[room].last().map_or(1, |e| e.position.unwrap().rev)
    }

    fn record(&mut self, event: Event) {
        assert!(
            !event.ev.starts_with("sub."),
            "{}: unexpected {event:?}",
            self.user
        );
        let Some(position) = event.position else {
            return; // a live event: no place in the order
        };
        let room = ROOMS.iter().position(|r| *r == event.room).unwrap();
        assert_eq!(
            position.epoch, self.epochs[room],
            "{}: {event:?}",
            self.user
        );
        let expected = self.seen(room) + 1;
        assert_eq!(
            position.rev,
            expected,
            "{} in {}: rev {} after {} (a gap or a duplicate): {event:?}",
            self.user,
            event.room,
            position.rev,
            expected - 1
        );
        self.log[room].push(event);
    }

    /// Takes every event already read (the client keeps those that arrived during a request)
    /// and whatever else is ready now, without waiting.
    async fn drain(&mut self) {
        while let Ok(event) = tokio::time::timeout(Duration::ZERO, self.client.next_event()).await {
            self.record(event.unwrap());
        }
    }

    /// An `enter` answer after the first: a delta continuing exactly from the last event seen.
    fn take_delta(&mut self, room: usize, entered: Entered) {
        assert_eq!(
            entered.mode,
            Mode::Delta,
            "{} re-entering {}",
            self.user,
            ROOMS[room]
        );
        assert_eq!(entered.epoch, self.epochs[room]);
        let last = entered.events.last().map(|e| e.position.unwrap().rev);
        for event in entered.events {
            self.record(event);
        }
        assert_eq!(entered.rev, last.unwrap_or(self.seen(room)));
        assert_eq!(self.seen(room), entered.rev);
    }

    async fn enter_again(&mut self, room: usize) {
        self.drain().await;
        let since = Position {
            epoch: self.epochs[room],
            rev: self.seen(room),
        };
        let entered = within("enter", self.client.enter_since(ROOMS[room], Some(since)))
            .await
            .unwrap();
        self.take_delta(room, entered);
        self.inside[room] = true;
    }

    /// Reads until the client has every event of `room` up to `head`.
    async fn catch_up(&mut self, room: usize, head: u64) {
        while self.seen(room) < head {
            let event = within("catching up", self.client.next_event())
                .await
                .unwrap();
            self.record(event);
        }
        assert_eq!(self.seen(room), head, "{} in {}", self.user, ROOMS[room]);
    }
}

fn value_of(batch: usize, slot: usize) -> String {
    format!("v{batch}.{slot}")
}

type Outcome<'a> = Pin<Box<dyn Future<Output = Vec<Written>> + Send + 'a>>;

async fn rest(server: &TestServer, action: Action, value: String) -> Vec<Written> {
    match action {
        Action::RestSet { room, key } => {
            server
                .ok(
                    "set_room_metadata",
                    json!({"RoomId": ROOMS[room], "Metadata": [{"Key": KEYS[key], "Value": value}]}),
                )
                .await;
            vec![Written {
                room,
                ev: "room.metadata.set",
                d: json!({"metadata": {KEYS[key]: value}}),
                position: None,
            }]
        }
        Action::RestDel { room, key } => {
            let code = server
                .code(
                    "del_room_metadata",
                    json!({"RoomId": ROOMS[room], "Keys": [KEYS[key]]}),
                )
                .await;
            match code {
                0 => vec![Written {
                    room,
                    ev: "room.metadata.deleted",
                    d: json!({"keys": [KEYS[key]]}),
                    position: None,
                }],
                100503 => vec![], // the key did not exist: nothing appended
                other => panic!("del_room_metadata answered {other}"),
            }
        }
        Action::RestInfo { room, field } => {
            let (name, value) = match field {
                0 => ("RoomName", json!(format!("name {value}"))),
                1 => ("Notice", json!(format!("notice {value}"))),
                _ => ("ActivityStatus", json!(value.len() as i64 * 7 + 1)),
            };
            server
                .ok(
                    "update_room_info",
                    json!({"RoomInfo": {"RoomId": ROOMS[room], name: value.clone()}}),
                )
                .await;
            vec![Written {
                room,
                ev: "room.info",
                d: json!({"info": {name: value}}),
                position: None,
            }]
        }
        other => unreachable!("{other:?}"),
    }
}

async fn act(
    actor: &mut Actor,
    server: &TestServer,
    actions: Vec<(Action, String)>,
) -> Vec<Written> {
    let mut written = Vec::new();
    for (action, value) in actions {
        match action {
            Action::WsSet { client, room, key } => {
                let answer = within(
                    "set_metadata",
                    actor
                        .client
                        .set_metadata(ROOMS[room], &[(KEYS[key], value.as_str())]),
                )
                .await;
                match answer {
                    Ok(position) => {
                        assert_eq!(client, OWNER, "{} may not write", actor.user);
                        written.push(Written {
                            room,
                            ev: "room.metadata.set",
                            d: json!({"metadata": {KEYS[key]: value}}),
                            position: Some(position),
                        });
                    }
                    Err(Error::Server { code: 100006, .. }) if client != OWNER => {}
                    Err(other) => panic!("{}: set_metadata: {other}", actor.user),
                }
            }
            Action::WsDel { room, key, .. } => {
                match within(
                    "del_metadata",
                    actor.client.del_metadata(ROOMS[room], &[KEYS[key]]),
                )
                .await
                {
                    Ok(position) => written.push(Written {
                        room,
                        ev: "room.metadata.deleted",
                        d: json!({"keys": [KEYS[key]]}),
                        position: Some(position),
                    }),
                    Err(Error::Server { code: 100503, .. }) => {}
                    Err(other) => panic!("{}: del_metadata: {other}", actor.user),
                }
            }
            Action::Toggle { room, .. } => {
                if actor.inside[room] {
                    within("exit", actor.client.exit(ROOMS[room]))
                        .await
                        .unwrap();
                    actor.inside[room] = false;
                    // What arrived before the reply; nothing of the room may come after it.
                    actor.drain().await;
                } else {
                    actor.enter_again(room).await;
                }
            }
            Action::Resume { .. } => {
                actor.drain().await;
                let (client, entered) = within(
                    "resume",
                    Client::resume(
                        &server.ws_url(),
                        &server.credentials(actor.user),
                        &actor.client,
                    ),
                )
                .await
                .unwrap();
                // The old connection goes without a close frame, after the new one is in.
                drop(std::mem::replace(&mut actor.client, client));
                let mut rooms = Vec::new();
                for (name, entered) in entered {
                    let room = ROOMS.iter().position(|r| *r == name).unwrap();
                    rooms.push(room);
                    actor.take_delta(room, entered);
                }
                for (room, inside) in actor.inside.iter().enumerate() {
                    assert_eq!(
                        rooms.contains(&room),
                        *inside,
                        "{} resumed {rooms:?}",
                        actor.user
                    );
                }
            }
            other => unreachable!("{other:?}"),
        }
    }
    written
}

fn metadata_of(pairs: &Value) -> BTreeMap<String, String> {
    pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["Key"].as_str().unwrap().to_owned(),
                p["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The room as its events say, from `room.created` on: info (without `ViewCount`, which
/// entries change without an event) and metadata.
fn replay(log: &[Event]) -> (Map<String, Value>, BTreeMap<String, String>) {
    assert_eq!(log[0].ev, "room.created", "{:?}", log[0]);
    let mut info = log[0].d["info"].as_object().unwrap().clone();
    let mut metadata = BTreeMap::new();
    for event in &log[1..] {
        match event.ev.as_str() {
            "room.info" => {
                for (k, v) in event.d["info"].as_object().unwrap() {
                    info.insert(k.clone(), v.clone());
                }
            }
            "room.metadata.set" => {
                for (k, v) in event.d["metadata"].as_object().unwrap() {
                    metadata.insert(k.clone(), v.as_str().unwrap().to_owned());
                }
            }
            "room.metadata.deleted" => {
                for k in event.d["keys"].as_array().unwrap() {
                    assert!(
                        metadata.remove(k.as_str().unwrap()).is_some(),
                        "deleted a key that was not there: {event:?}"
                    );
                }
            }
            other => panic!("unexpected event {other}: {event:?}"),
        }
    }
    info.remove("ViewCount");
    (info, metadata)
}

async fn run_case<S: Store>(store: S, script: Vec<Vec<Action>>) -> Result<(), TestCaseError> {
    let config = ServerConfig {
        realtime: RealtimeConfig {
            // The clock of the test does not move: no frame-rate refills.
            commands_per_sec: 1_000_000,
            ..RealtimeConfig::default()
        },
        ..common::config()
    };
    let server = TestServer::start(store, config).await;
    for room in ROOMS {
        server
            .ok(
                "create_room",
                json!({"RoomInfo": {"RoomId": room, "Owner_Account": USERS[OWNER]}}),
            )
            .await;
    }
    let mut actors = Vec::new();
    for user in USERS {
        let mut client = within("connect", async { server.connect(user).await }).await;
        let mut epochs = [0; ROOMS.len()];
        for (room, epoch) in epochs.iter_mut().enumerate() {
            let entered = within("enter", client.enter(ROOMS[room])).await.unwrap();
            assert_eq!((entered.mode, entered.rev), (Mode::Snapshot, 1));
            *epoch = entered.epoch;
        }
        actors.push(Actor {
            user,
            client,
            inside: [true; ROOMS.len()],
            log: vec![Vec::new(); ROOMS.len()],
            epochs,
        });
    }
    let epochs = actors[0].epochs;
    for actor in &actors {
        prop_assert_eq!(actor.epochs, epochs, "{}", actor.user);
    }
    let mut written: Vec<Written> = Vec::new();
    for (batch, actions) in script.into_iter().enumerate() {
        let mut per_client: Vec<Vec<(Action, String)>> = vec![Vec::new(); USERS.len()];
        let mut futures: Vec<Outcome<'_>> = Vec::new();
        for (slot, action) in actions.into_iter().enumerate() {
            let value = value_of(batch, slot);
            match action {
                Action::WsSet { client, .. }
                | Action::WsDel { client, .. }
                | Action::Toggle { client, .. }
                | Action::Resume { client } => per_client[client].push((action, value)),
                rest_action => futures.push(Box::pin(rest(&server, rest_action, value))),
            }
        }
        for (actor, actions) in actors.iter_mut().zip(per_client) {
            if !actions.is_empty() {
                futures.push(Box::pin(act(actor, &server, actions)));
            }
        }
        for outcome in futures_util::future::join_all(futures).await {
            written.extend(outcome);
        }
    }

    // The whole log of each room, from a fresh client.
    let mut reader = server.connect("reader").await;
    let mut logs = Vec::new();
    for (room, epoch) in epochs.iter().enumerate() {
        let since = Position {
            epoch: *epoch,
            rev: 0,
        };
        let entered = within("read the log", reader.enter_since(ROOMS[room], Some(since)))
            .await
            .unwrap();
        prop_assert_eq!(entered.mode, Mode::Delta);
        let revs: Vec<u64> = entered
            .events
            .iter()
            .map(|e| e.position.unwrap().rev)
            .collect();
        prop_assert_eq!(revs, (1..=entered.rev).collect::<Vec<_>>());
        for event in &entered.events {
            prop_assert_eq!(event.position.unwrap().epoch, *epoch);
        }
        logs.push(entered.events);
    }

    // Every acknowledged write appended exactly one event, the one it wrote; nothing else was
    // appended; a write over the socket was told its event's position.
    for (room, log) in logs.iter().enumerate() {
        let mut expected: Vec<(String, String)> = written
            .iter()
            .filter(|w| w.room == room)
            .map(|w| (w.ev.to_owned(), w.d.to_string()))
            .collect();
        let mut found: Vec<(String, String)> = log[1..]
            .iter()
            .map(|e| (e.ev.clone(), e.d.to_string()))
            .collect();
        expected.sort();
        found.sort();
        prop_assert_eq!(found, expected, "{}", ROOMS[room]);
    }
    for w in &written {
        if let Some(position) = w.position {
            prop_assert_eq!(position.epoch, epochs[w.room]);
            let event = &logs[w.room][position.rev as usize - 1];
            prop_assert_eq!((event.ev.as_str(), &event.d), (w.ev, &w.d));
        }
    }

    // Every client, brought up to the head, saw exactly the log from rev 2 on, in its order.
    for actor in &mut actors {
        for (room, log) in logs.iter().enumerate() {
            let head = log.len() as u64;
            if actor.inside[room] {
                actor.catch_up(room, head).await;
            } else {
                actor.enter_again(room).await;
            }
            prop_assert_eq!(&actor.log[room][..], &log[1..], "{}", actor.user);
        }
    }

    // Replaying the log gives what REST answers, and what a snapshot holds.
    for (room, log) in logs.iter().enumerate() {
        let (info, metadata) = replay(log);
        let mut answered = server
            .ok("get_room_info", json!({"RoomId": ROOMS[room]}))
            .await["RoomInfo"]
            .as_object()
            .unwrap()
            .clone();
        answered.remove("ViewCount");
        prop_assert_eq!(&info, &answered, "{}", ROOMS[room]);
        // And so does a snapshot at the head.
        let entered = within("snapshot", reader.enter_since(ROOMS[room], None))
            .await
            .unwrap();
        prop_assert_eq!(
            (entered.mode, entered.rev),
            (Mode::Snapshot, log.len() as u64)
        );
        let mut snapshot = entered.state["info"].as_object().unwrap().clone();
        snapshot.remove("ViewCount");
        prop_assert_eq!(&snapshot, &answered, "{}", ROOMS[room]);
        let in_snapshot: BTreeMap<String, String> =
            serde_json::from_value(entered.state["metadata"].clone()).unwrap();
        prop_assert_eq!(&in_snapshot, &metadata, "{}", ROOMS[room]);
        let answered = server
            .ok(
                "get_room_metadata",
                json!({"RoomId": ROOMS[room], "Keys": []}),
            )
            .await;
        prop_assert_eq!(
            metadata,
            metadata_of(&answered["Metadata"]),
            "{}",
            ROOMS[room]
        );
    }
    // Close every connection first: the server's graceful stop waits for them.
    for actor in actors {
        actor.client.close().await.unwrap();
    }
    reader.close().await.unwrap();
    server.stop().await;
    Ok(())
}

fn check<S: Store>(store: impl Fn() -> S) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("ORDERING_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&script(), |script| {
        runtime.block_on(run_case(store(), script))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn every_client_sees_one_gap_free_order_that_replays_to_the_rest_state() {
    let dir = tempfile::tempdir().unwrap();
    let cases = std::sync::atomic::AtomicUsize::new(0);
    check(|| {
        let n = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteStore::open(SqliteOptions::new(dir.path().join(format!("case-{n}.db")))).unwrap()
    });
}

/// The same over the in-memory store.
#[test]
fn the_same_over_the_memory_store() {
    check(MemoryStore::new);
}
