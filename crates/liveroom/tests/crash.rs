//! Kill the server with SIGKILL while writers are busy across many rooms and one hot room,
//! restart it, and check that every acknowledged write is there, no request was half applied
//! and every room is within its limits. Beside them, a few rooms take a mix of writes
//! (metadata set and deleted, info updated) whose events are read back after each restart
//! through the real-time gateway: every acknowledged write's event is in the log exactly
//! once, in order, and the log's revs run from 1 without a gap. `CRASH_CYCLES` sets how many
//! times (default 4); `scripts/crash-loop.sh` runs many.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use liveroom_client::{Client, Credentials};
use serde_json::{Value, json};

const WRITERS: usize = 6;
/// Each writer's own rooms, written in turn.
const ROOMS_PER_WRITER: u64 = 8;

fn cycles() -> usize {
    std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4)
}

fn own_room(w: usize, seq: u64) -> String {
    format!("room-{w}-{}", seq % ROOMS_PER_WRITER)
}

struct Acked {
    /// Per writer: the last sequence number acknowledged for its own rooms and for the hot room.
    own: Vec<AtomicU64>,
    hot: Vec<AtomicU64>,
    total: AtomicU64,
    /// Set once the server is killed: the log writers stop waiting for the others.
    killed: AtomicBool,
}

async fn call(http: &reqwest::Client, url: &str, body: Value) -> Option<u64> {
    post_json(http, url, &body).await.ok()?["ErrorCode"].as_u64()
}

/// One writer: step `seq` writes keys `a` and `b` of its room `seq % ROOMS_PER_WRITER` with
/// the same sequence number in one request (plus a value whose size varies, so that the room
/// sits near its byte limit), then its own key of the shared hot room. Stops at the first failure.
async fn writer(running_base: String, w: usize, start_seq: u64, acked: Arc<Acked>) {
    let http = reqwest::Client::new();
    let sig = admin_sig();
    let url = format!(
        "{running_base}/v4/live_engine_http_srv/set_room_metadata?sdkappid={APP}&identifier={ADMIN}&usersig={sig}&random=1&contenttype=json"
    );
    for seq in start_seq.. {
        let pad = "p".repeat((seq as usize * 97) % 2048);
        let own = json!({"RoomId": own_room(w, seq), "Metadata": [{"Key": "a", "Value": seq.to_string()}, {"Key": "b", "Value": seq.to_string()}, {"Key": "pad", "Value": pad}]});
        if call(&http, &url, own).await != Some(0) {
            return;
        }
        acked.own[w].store(seq, Ordering::SeqCst);
        acked.total.fetch_add(1, Ordering::SeqCst);
        let hot = json!({"RoomId": "hot", "Metadata": [{"Key": format!("w{w}"), "Value": seq.to_string()}]});
        if call(&http, &url, hot).await != Some(0) {
            return;
        }
        acked.hot[w].store(seq, Ordering::SeqCst);
        acked.total.fetch_add(1, Ordering::SeqCst);
    }
}

/// Rooms whose event logs are checked, one writer each.
const LOG_ROOMS: usize = 2;
/// Requests per log room and cycle: its events since the last check stay within one delta
/// (64 events).
const LOG_WRITES_PER_CYCLE: u64 = 40;
/// A log writer's `i`-th request waits for this many × `i` acknowledged writes of the others,
/// so that the kill (after 50–450 of them) usually comes while it is busy.
const LOG_PACE: u64 = 12;

fn log_room(l: usize) -> String {
    format!("log-{l}")
}

/// One acknowledged write of a log room, as its event names it: the sequence number and what
/// it did. Sorted as the writer sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `set_room_metadata` of `v` (and, every fourth, of `d`).
    Set,
    /// `del_room_metadata` of `d`, right after the `Set` of the same number.
    Del,
    /// `update_room_info` of `RoomName`.
    Info,
}

type Item = (u64, Kind);

/// What a log writer has been told, and what it was sending when it stopped.
#[derive(Default)]
struct LogAcked {
    acked: Vec<Item>,
    in_flight: Option<Item>,
}

/// The requests of sequence number `seq`: `seq % 4 == 2` renames the room, `3` sets `v` and
/// `d` then deletes `d`, the others set `v`.
fn log_requests(seq: u64) -> Vec<(&'static str, Value, Kind)> {
    match seq % 4 {
        2 => vec![(
            "update_room_info",
            json!({"RoomInfo": {"RoomName": format!("n{seq}")}}),
            Kind::Info,
        )],
        3 => vec![
            (
                "set_room_metadata",
                json!({"Metadata": [{"Key": "v", "Value": seq.to_string()}, {"Key": "d", "Value": seq.to_string()}]}),
                Kind::Set,
            ),
            ("del_room_metadata", json!({"Keys": ["d"]}), Kind::Del),
        ],
        _ => vec![(
            "set_room_metadata",
            json!({"Metadata": [{"Key": "v", "Value": seq.to_string()}]}),
            Kind::Set,
        )],
    }
}

/// One log room's writer: at most `LOG_WRITES_PER_CYCLE` requests, paced by the other
/// writers' progress; stops at the first failure.
async fn log_writer(
    base: String,
    l: usize,
    start_seq: u64,
    acked: Arc<Acked>,
    log: Arc<Mutex<LogAcked>>,
) {
    let http = reqwest::Client::new();
    let sig = admin_sig();
    let url = |command: &str| {
        format!(
            "{base}/v4/live_engine_http_srv/{command}?sdkappid={APP}&identifier={ADMIN}&usersig={sig}&random=1&contenttype=json"
        )
    };
    let mut sent = 0;
    for seq in start_seq.. {
        for (command, mut body, kind) in log_requests(seq) {
            if sent == LOG_WRITES_PER_CYCLE {
                return;
            }
            while acked.total.load(Ordering::SeqCst) < sent * LOG_PACE {
                if acked.killed.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            sent += 1;
            match body.get_mut("RoomInfo") {
                Some(info) => info["RoomId"] = log_room(l).into(),
                None => body["RoomId"] = log_room(l).into(),
            }
            log.lock().unwrap().in_flight = Some((seq, kind));
            if call(&http, &url(command), body).await != Some(0) {
                return;
            }
            let mut log = log.lock().unwrap();
            log.in_flight = None;
            log.acked.push((seq, kind));
        }
    }
}

/// Where the check of a log room stands: the last event checked and what it was.
struct LogChecked {
    epoch: u64,
    rev: u64,
    last: Option<Item>,
}

fn ws_url(base: &str) -> String {
    format!("{}/v1/realtime", base.replacen("http://", "ws://", 1))
}

fn reader_credentials() -> Credentials {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Credentials {
        sdkappid: APP,
        userid: "log-reader".into(),
        usersig: liveroom_usersig::generate(APP, KEY, "log-reader", now, 86_400),
    }
}

/// `watch` (no membership, no viewer counted) from `since`, or from nothing; the `ok`.
async fn watch(client: &mut Client, room: &str, since: Option<(u64, u64)>) -> Value {
    let mut d = json!({"room": room});
    if let Some((epoch, rev)) = since {
        d["since"] = json!({"epoch": epoch, "rev": rev});
    }
    let answer = tokio::time::timeout(DEADLINE, client.request("watch", d)).await;
    let ok = answer.expect("watch in time").unwrap();
    client.request("exit", json!({"room": room})).await.unwrap();
    ok
}

/// Reads the events of log room `l` after `checked`, checks them and moves `checked` on;
/// answers the items found, in log order.
async fn read_log(
    client: &mut Client,
    l: usize,
    checked: &mut LogChecked,
    cycle: usize,
) -> Vec<Item> {
    let room = log_room(l);
    let ok = watch(client, &room, Some((checked.epoch, checked.rev))).await;
    assert_eq!(ok["mode"], "delta", "cycle {cycle}, {room}: {ok}");
    assert_eq!(ok["epoch"], checked.epoch, "cycle {cycle}, {room}: {ok}");
    let mut items = Vec::new();
    for event in ok["events"].as_array().unwrap() {
        let rev = event["rev"].as_u64().unwrap();
        assert_eq!(
            rev,
            checked.rev + 1,
            "cycle {cycle}, {room}: rev {rev} after {} (a gap or a duplicate): {event}",
            checked.rev
        );
        assert_eq!(
            event["epoch"], checked.epoch,
            "cycle {cycle}, {room}: {event}"
        );
        checked.rev = rev;
        let d = &event["d"];
        let item = match event["ev"].as_str().unwrap() {
            "room.created" => {
                assert_eq!(rev, 1, "cycle {cycle}, {room}: {event}");
                continue;
            }
            "room.metadata.set" => {
                let seq: u64 = d["metadata"]["v"].as_str().unwrap().parse().unwrap();
                let with_d = d["metadata"].get("d").is_some();
                assert_eq!(with_d, seq % 4 == 3, "cycle {cycle}, {room}: {event}");
                (seq, Kind::Set)
            }
            "room.metadata.deleted" => {
                assert_eq!(d["keys"], json!(["d"]), "cycle {cycle}, {room}: {event}");
                // The delete of `d` follows the set of `d`: it carries that set's number.
                match checked.last {
                    Some((seq, Kind::Set)) if seq % 4 == 3 => (seq, Kind::Del),
                    last => panic!("cycle {cycle}, {room}: a delete after {last:?}: {event}"),
                }
            }
            "room.info" => {
                let name = d["info"]["RoomName"].as_str().unwrap();
                (name.strip_prefix('n').unwrap().parse().unwrap(), Kind::Info)
            }
            other => panic!("cycle {cycle}, {room}: unexpected {other}: {event}"),
        };
        if let Some(last) = checked.last {
            assert!(
                item > last,
                "cycle {cycle}, {room}: {item:?} after {last:?} (a duplicate or out of order)"
            );
        }
        checked.last = Some(item);
        items.push(item);
    }
    assert_eq!(ok["rev"], checked.rev, "cycle {cycle}, {room}: {ok}");
    items
}

/// A room's metadata as numbers (the `pad` key left out), after checking the room's limits.
async fn metadata(http: &reqwest::Client, url: &str, room: &str) -> HashMap<String, u64> {
    let answer = post_json(http, url, &json!({"RoomId": room, "Keys": []}))
        .await
        .unwrap();
    assert_eq!(answer["ErrorCode"], 0, "{answer}");
    let pairs = answer["Response"]["Metadata"].as_array().unwrap();
    assert!(pairs.len() <= 10, "{room}: {} keys", pairs.len());
    let bytes: usize = pairs
        .iter()
        .map(|p| p["Value"].as_str().unwrap().len())
        .sum();
    assert!(bytes <= 16384, "{room}: {bytes} bytes");
    pairs
        .iter()
        .filter(|p| p["Key"] != "pad")
        .map(|p| {
            (
                p["Key"].as_str().unwrap().to_owned(),
                p["Value"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let serve = || {
        let mut command = liveroom();
        command.args(["serve", "--config"]).arg(&config);
        start(command)
    };
    let http = reqwest::Client::new();
    let sig = admin_sig();
    let mut checked: Vec<LogChecked> = Vec::new();
    {
        let running = serve();
        let rooms = (0..WRITERS).flat_map(|w| (0..ROOMS_PER_WRITER).map(move |r| own_room(w, r)));
        let logs = (0..LOG_ROOMS).map(log_room);
        for room in rooms.chain(["hot".to_owned()]).chain(logs) {
            assert_eq!(
                call(
                    &http,
                    &running.url("create_room", &sig),
                    json!({"RoomInfo": {"RoomId": room}})
                )
                .await,
                Some(0)
            );
        }
        let mut reader = Client::connect(&ws_url(&running.base), &reader_credentials())
            .await
            .unwrap();
        for l in 0..LOG_ROOMS {
            let ok = watch(&mut reader, &log_room(l), None).await;
            checked.push(LogChecked {
                epoch: ok["epoch"].as_u64().unwrap(),
                rev: 0,
                last: None,
            });
        }
        let mut child = running.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let mut next_seq = [1u64; WRITERS];
    let mut next_log_seq = [1u64; LOG_ROOMS];
    let cycles = cycles();
    for cycle in 0..cycles {
        let mut running = serve();
        let acked = Arc::new(Acked {
            own: (0..WRITERS)
                .map(|w| AtomicU64::new(next_seq[w] - 1))
                .collect(),
            hot: (0..WRITERS)
                .map(|w| AtomicU64::new(next_seq[w] - 1))
                .collect(),
            total: AtomicU64::new(0),
            killed: AtomicBool::new(false),
        });
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(running.base.clone(), w, next_seq[w], acked.clone())))
            .collect();
        let logs: Vec<_> = (0..LOG_ROOMS)
            .map(|_| Arc::new(Mutex::new(LogAcked::default())))
            .collect();
        let log_tasks: Vec<_> = (0..LOG_ROOMS)
            .map(|l| {
                let writer = log_writer(
                    running.base.clone(),
                    l,
                    next_log_seq[l],
                    acked.clone(),
                    logs[l].clone(),
                );
                tokio::spawn(writer)
            })
            .collect();
        // Kill at a random moment: after a random number of acknowledged writes.
        let kill_after = rand::random_range(50..450);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while acked.total.load(Ordering::SeqCst) < kill_after {
            assert!(
                std::time::Instant::now() < deadline,
                "writers made no progress"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        running.child.kill().unwrap();
        running.child.wait().unwrap();
        acked.killed.store(true, Ordering::SeqCst);
        for task in tasks.into_iter().chain(log_tasks) {
            task.await.unwrap();
        }

        let running = serve();
        let get = running.url("get_room_metadata", &sig);
        let hot = metadata(&http, &get, "hot").await;
        for (w, next) in next_seq.iter_mut().enumerate() {
            let acked_own = acked.own[w].load(Ordering::SeqCst);
            // Every room holds the last sequence number written to it; the newest of them is
            // the writer's last acknowledged one, or the one in flight at the kill.
            let mut a = 0;
            for r in 0..ROOMS_PER_WRITER {
                let own = metadata(&http, &get, &own_room(w, r)).await;
                let (ra, rb) = (
                    own.get("a").copied().unwrap_or(0),
                    own.get("b").copied().unwrap_or(0),
                );
                assert_eq!(
                    ra, rb,
                    "cycle {cycle}, writer {w}, room {r}: request half applied"
                );
                a = a.max(ra);
            }
            // Only the one request in flight at the kill may have landed unacknowledged.
            assert!(
                a == acked_own || a == acked_own + 1,
                "cycle {cycle}, writer {w}: acked {acked_own}, found {a}"
            );
            let acked_hot = acked.hot[w].load(Ordering::SeqCst);
            let found_hot = hot.get(&format!("w{w}")).copied().unwrap_or(0);
            assert!(
                found_hot == acked_hot || found_hot == acked_hot + 1,
                "cycle {cycle}, writer {w}: hot acked {acked_hot}, found {found_hot}"
            );
            *next = a.max(found_hot) + 1;
        }
        // Every acknowledged write of a log room is in its log exactly once, in order; the
        // request in flight at the kill may be there too, after them, and nothing else.
        let mut reader = Client::connect(&ws_url(&running.base), &reader_credentials())
            .await
            .unwrap();
        for (l, next) in next_log_seq.iter_mut().enumerate() {
            let found = read_log(&mut reader, l, &mut checked[l], cycle).await;
            let (acked_log, in_flight) = {
                let log = logs[l].lock().unwrap();
                (log.acked.clone(), log.in_flight)
            };
            let mut with_in_flight = acked_log.clone();
            with_in_flight.extend(in_flight);
            assert!(
                found == acked_log || found == with_in_flight,
                "cycle {cycle}, {}: acknowledged {acked_log:?} (in flight {in_flight:?}), the log holds {found:?}",
                log_room(l),
            );
            // The state agrees with the log: `v` is the last number set.
            let state = metadata(&http, &get, &log_room(l)).await;
            let last_set = found.iter().rev().find(|(_, kind)| *kind == Kind::Set);
            if let Some((seq, _)) = last_set {
                assert_eq!(state.get("v"), Some(seq), "cycle {cycle}, {}", log_room(l));
            }
            if let Some((seq, _)) = checked[l].last {
                *next = seq + 1;
            }
        }
        drop(reader);
        let mut child = running.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Read by scripts/crash-loop.sh.
    println!("crash cycles: {cycles}, violations: 0");
}
