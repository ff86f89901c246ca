//! Kill the server with SIGKILL while writers are busy across many rooms and one hot room,
//! restart it, and check that every acknowledged write is there, no request was half applied
//! and every room is within its limits. `CRASH_CYCLES` sets how many times (default
//! 4); `scripts/crash-loop.sh` runs many.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
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
    {
        let running = serve();
        let rooms = (0..WRITERS).flat_map(|w| (0..ROOMS_PER_WRITER).map(move |r| own_room(w, r)));
        for room in rooms.chain(["hot".to_owned()]) {
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
        let mut child = running.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let mut next_seq = [1u64; WRITERS];
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
        });
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(running.base.clone(), w, next_seq[w], acked.clone())))
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
        for task in tasks {
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
        let mut child = running.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Read by scripts/crash-loop.sh.
    println!("crash cycles: {cycles}, violations: 0");
}
