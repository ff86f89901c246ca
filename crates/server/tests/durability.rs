//! The SQLite-backed server keeps everything across a restart, and a graceful stop finishes
//! writes that were in flight.

mod common;

use common::*;
use liveroom_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(dir.join("liveroom.db"))).unwrap()
}

async fn snapshot(server: &TestServer, rooms: &[String]) -> Vec<Value> {
    let mut state = vec![server.ok("get_room_list", json!({"Count": 20})).await];
    for room in rooms {
        state.push(server.ok("get_room_info", json!({"RoomId": room})).await);
        state.push(
            server
                .ok("get_room_metadata", json!({"RoomId": room, "Keys": []}))
                .await,
        );
    }
    state
}

#[tokio::test]
async fn state_after_restart_equals_state_before() {
    let dir = tempfile::tempdir().unwrap();
    let rooms: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
    let server = TestServer::start(open(dir.path()), config()).await;
    for (i, room) in rooms.iter().enumerate() {
        server
            .ok("create_room", json!({"RoomInfo": {"RoomId": room, "Category": [i], "Notice": format!("n{i}"), "IsPublicVisible": i % 3 != 0}}))
            .await;
        let entries: Vec<Value> = (0..=i % 5)
            .map(|k| json!({"Key": format!("k{k}"), "Value": "€".repeat(i * 10 + k)}))
            .collect();
        server
            .ok(
                "set_room_metadata",
                json!({"RoomId": room, "Metadata": entries}),
            )
            .await;
    }
    server
        .ok(
            "del_room_metadata",
            json!({"RoomId": "room-4", "Keys": ["k0"]}),
        )
        .await;
    server
        .ok(
            "update_room_info",
            json!({"RoomInfo": {"RoomId": "room-5", "RoomName": "renamed"}}),
        )
        .await;
    server
        .ok("destroy_room", json!({"RoomId": "room-11"}))
        .await;
    let live: Vec<String> = rooms[..11].to_vec();
    let before = snapshot(&server, &live).await;
    server.stop().await;

    let server = TestServer::start(open(dir.path()), config()).await;
    assert_eq!(snapshot(&server, &live).await, before);
    assert_eq!(
        server
            .code("get_room_info", json!({"RoomId": "room-11"}))
            .await,
        100004
    );
    server.stop().await;
}

#[tokio::test]
async fn graceful_stop_finishes_in_flight_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(open(dir.path()), config()).await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "hot"}}))
        .await;
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let url = server.url("set_room_metadata");
            let http = server.http.clone();
            tokio::spawn(async move {
                let body = json!({"RoomId": "hot", "Metadata": [{"Key": format!("k{}", i % 10), "Value": i.to_string()}]});
                let answer: Value = http.post(url).body(body.to_string()).send().await.ok()?.json().await.ok()?;
                Some((i, answer["ErrorCode"].as_u64()?))
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for write in writes {
        if let Some((i, 0)) = write.await.unwrap() {
            acknowledged.push(i);
        }
    }
    server.stop().await;
    assert_eq!(acknowledged.len(), 50);
    let server = TestServer::start(open(dir.path()), config()).await;
    let metadata = server
        .ok("get_room_metadata", json!({"RoomId": "hot", "Keys": []}))
        .await;
    assert_eq!(metadata["Metadata"].as_array().unwrap().len(), 10);
    server.stop().await;
}
