//! Many clients writing one room at once: every moment a reader looks, the room is within its
//! limits and no request is half applied; the final state is one a serial order of the
//! acknowledged requests explains.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::*;
use serde_json::{Value, json};

const GROUP: [&str; 3] = ["x", "y", "z"];

/// What a writer did: the tag it wrote to the group, and when the request was in flight.
#[derive(Debug, Clone)]
struct Acked {
    tag: Option<String>,
    sent: Instant,
    answered: Instant,
}

async fn answer(http: &reqwest::Client, url: &str, body: Value) -> Value {
    http.post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn call(http: &reqwest::Client, url: &str, body: Value) -> u64 {
    answer(http, url, body).await["ErrorCode"].as_u64().unwrap()
}

fn metadata_of(answer: &Value) -> Vec<(String, String)> {
    answer["Response"]["Metadata"]
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

/// The group x, y, z is written and deleted only as a whole: seeing it partly is a half-applied request.
fn group_tag(metadata: &[(String, String)]) -> Result<Option<String>, String> {
    let values: Vec<Option<&String>> = GROUP
        .iter()
        .map(|g| metadata.iter().find(|(k, _)| k == g).map(|(_, v)| v))
        .collect();
    match values.as_slice() {
        [None, None, None] => Ok(None),
        [Some(a), Some(b), Some(c)] if a == b && b == c => Ok(Some((*a).clone())),
        other => Err(format!("group half applied: {other:?}")),
    }
}

/// The test app, with rate limits out of the way of the load.
fn unlimited() -> liveroom_server::ServerConfig {
    let mut app = app();
    for command in liveroom_protocol::Command::ALL {
        app.rate_limits.insert(command, 1_000_000);
    }
    liveroom_server::ServerConfig {
        apps: vec![app],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = liveroom_store::SqliteStore::open(liveroom_store::SqliteOptions::new(
        dir.path().join("db"),
    ))
    .unwrap();
    let server = TestServer::start(store, unlimited()).await;
    writers_of_one_room(vec![Arc::new(server)]).await;
}

/// The same through three nodes of a cluster: each client talks to one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_room_across_nodes() {
    let nodes = TestServer::cluster(3, unlimited(), true).await;
    writers_of_one_room(nodes.into_iter().map(Arc::new).collect()).await;
}

/// Writers and fillers take turns among `servers` (which share their rooms); the reader reads
/// from each in turn.
async fn writers_of_one_room(servers: Vec<Arc<TestServer>>) {
    let server = &servers[0];
    let node = |i: usize| Arc::clone(&servers[i % servers.len()]);
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "hot"}}))
        .await;

    // Group writers: set x, y, z to one tag, or delete all three.
    let mut writers = Vec::new();
    for w in 0..6 {
        let on = node(w);
        let (http, set_url, del_url) = (
            on.http.clone(),
            on.url("set_room_metadata"),
            on.url("del_room_metadata"),
        );
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let sent = Instant::now();
                let (code, tag) = if (w + i) % 5 == 0 {
                    (
                        call(&http, &del_url, json!({"RoomId": "hot", "Keys": GROUP})).await,
                        None,
                    )
                } else {
                    let tag = format!("{w}-{i}");
                    let entries: Vec<Value> = GROUP
                        .iter()
                        .map(|k| json!({"Key": k, "Value": tag}))
                        .collect();
                    (
                        call(
                            &http,
                            &set_url,
                            json!({"RoomId": "hot", "Metadata": entries}),
                        )
                        .await,
                        Some(tag),
                    )
                };
                assert!(
                    [0, 100500, 100502, 100503].contains(&code),
                    "group write answered {code}"
                );
                if code == 0 {
                    acked.push(Acked {
                        tag,
                        sent,
                        answered: Instant::now(),
                    });
                }
            }
            acked
        }));
    }
    // Filler writers push against the limits: up to 7 more keys, values up to 2048 bytes.
    let mut fillers = Vec::new();
    for f in 0..3 {
        let on = node(f + 1);
        let (http, set_url, del_url) = (
            on.http.clone(),
            on.url("set_room_metadata"),
            on.url("del_room_metadata"),
        );
        fillers.push(tokio::spawn(async move {
            for i in 0..60 {
                let key = format!("f{}", (f * 7 + i) % 9);
                let code = if i % 4 == 3 {
                    call(&http, &del_url, json!({"RoomId": "hot", "Keys": [key]})).await
                } else {
                    call(&http, &set_url, json!({"RoomId": "hot", "Metadata": [{"Key": key, "Value": "v".repeat(1500 + i * 9)}]})).await
                };
                assert!([0, 100500, 100502, 100503].contains(&code), "filler answered {code}");
            }
        }));
    }
    // A reader checks the invariants at every moment it looks.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let get_urls: Vec<String> = servers.iter().map(|s| s.url("get_room_metadata")).collect();
        let (http, done) = (server.http.clone(), done.clone());
        tokio::spawn(async move {
            let mut looks = 0;
            while !done.load(Ordering::SeqCst) {
                let get_url = &get_urls[looks % get_urls.len()];
                let answer = answer(&http, get_url, json!({"RoomId": "hot", "Keys": []})).await;
                let metadata = metadata_of(&answer);
                assert!(metadata.len() <= 10, "{} keys", metadata.len());
                assert!(metadata.iter().map(|(_, v)| v.len()).sum::<usize>() <= 16384);
                group_tag(&metadata).unwrap();
                looks += 1;
            }
            looks
        })
    };

    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    for filler in fillers {
        filler.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);

    // The final group state must come from an acknowledged request that no other acknowledged
    // request followed in real time (started after it was answered): that is what a serial
    // order consistent with the clients' observations allows.
    let final_answer = server
        .call("get_room_metadata", json!({"RoomId": "hot", "Keys": []}))
        .await;
    let final_tag = group_tag(&metadata_of(&final_answer)).unwrap();
    let candidates: Vec<&Acked> = acked
        .iter()
        .filter(|a| !acked.iter().any(|b| b.sent > a.answered))
        .collect();
    assert!(
        candidates.iter().any(|a| a.tag == final_tag),
        "final {final_tag:?} is not the last write of any serial order; candidates {candidates:?}"
    );
    for server in servers {
        match Arc::try_unwrap(server) {
            Ok(server) => server.stop().await,
            Err(_) => panic!("server still shared"),
        }
    }
}
