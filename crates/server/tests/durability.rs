//! The SQLite-backed server keeps everything across a restart, and a graceful stop finishes
//! writes that were in flight.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use liveroom_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Imported accounts and their profiles survive a restart, each value in its JSON type.
#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(open(dir.path()), config()).await;
    server
        .ok(
            "im_open_login_svc/account_import",
            json!({"UserID": "anchor1", "Nick": "Ann", "FaceUrl": "https://x/a.png"}),
        )
        .await;
    server
        .ok(
            "im_open_login_svc/multiaccount_import",
            json!({"Accounts": ["b", "c"]}),
        )
        .await;
    server
        .ok(
            "profile/portrait_set",
            json!({"From_Account": "b", "ProfileItem": [{"Tag": "Tag_Profile_IM_Role", "Value": 2}]}),
        )
        .await;
    let get = json!({
        "To_Account": ["anchor1", "b", "c", "d"],
        "TagList": ["Tag_Profile_IM_Nick", "Tag_Profile_IM_Image", "Tag_Profile_IM_Role"],
    });
    let before = server.call("profile/portrait_get", get.clone()).await;
    assert_eq!(before["UserProfileItem"][1]["ProfileItem"][0]["Value"], 2);
    server.stop().await;

    let server = TestServer::start(open(dir.path()), config()).await;
    let after = server.call("profile/portrait_get", get).await;
    assert_eq!(after["UserProfileItem"], before["UserProfileItem"]);
    assert_eq!(
        server
            .code("im_open_login_svc/account_import", json!({"UserID": "c"}))
            .await,
        70102
    );
    server.stop().await;
}

/// Reads from `stream` until `done` says the bytes read so far are complete, or the server
/// closes the connection; fails if neither happens within 10 seconds.
async fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut read = Vec::new();
    let reading = async {
        let mut buf = [0; 4096];
        while !done(&read) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the server neither answered nor closed within 10 s");
    read
}

/// Whether `read` holds a whole response: its head and as many body bytes as it declares.
fn is_complete_response(read: &[u8]) -> bool {
    let text = String::from_utf8_lossy(read);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

/// The body of a `set_room_metadata` of one key.
fn set_one(room: &str, key: &str, value: &str) -> String {
    json!({"RoomId": room, "Metadata": [{"Key": key, "Value": value}]}).to_string()
}

/// One key's value in `room`, if it has one.
async fn value_of(server: &TestServer, room: &str, key: &str) -> Option<String> {
    let metadata = server
        .ok("get_room_metadata", json!({"RoomId": room, "Keys": [key]}))
        .await;
    metadata["Metadata"][0]["Value"].as_str().map(str::to_owned)
}

/// A graceful stop (docs/behaviour.md §8) requested while writes are in flight.
///
/// - `ACCEPTED` requests have been accepted when the stop is requested: each sent its head
///   with `Expect: 100-continue`, and the server's `100 Continue` means its handler has passed
///   every check before the body (docs/behaviour.md §2, rows 1–15) and is reading the body,
///   which the test sends only once the server has stopped accepting connections. Each must
///   be answered ErrorCode 0, and `serve` must not return before.
/// - `WRITERS` clients each send writes one after another on a keep-alive connection, each
///   write replacing the same key with the next number, until one fails. The stop is requested
///   as soon as the first of them is answered, so the others are being sent or processed. A
///   write that was acknowledged must be on disk; one that was not (refused, reset, or answered
///   with an error) must not have been applied, so the key holds the last acknowledged number.
/// - `serve` returns Ok, and a restart finds all of the above.
#[tokio::test]
async fn graceful_stop_finishes_in_flight_writes() {
    const ACCEPTED: usize = 4;
    const WRITERS: usize = 4;
    const MAX_WRITES: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(open(dir.path()), config()).await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "accepted"}}))
        .await;
    for w in 0..WRITERS {
        server
            .ok(
                "create_room",
                json!({"RoomInfo": {"RoomId": format!("racing-{w}")}}),
            )
            .await;
    }

    let target = server.url("set_room_metadata");
    let target = target.strip_prefix(&server.base).unwrap();
    let mut accepted = Vec::new();
    for i in 0..ACCEPTED {
        let body = set_one("accepted", &format!("k{i}"), &format!("v{i}"));
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let interim = read_until(&mut stream, |read| read.ends_with(b"\r\n\r\n")).await;
        assert_eq!(
            String::from_utf8_lossy(&interim),
            "HTTP/1.1 100 Continue\r\n\r\n",
            "request {i} was not accepted"
        );
        accepted.push((stream, body));
    }

    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel::<()>();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            // A client of its own: its own connection.
            let http = reqwest::Client::new();
            let url = server.url("set_room_metadata");
            let answered = answered.clone();
            tokio::spawn(async move {
                for n in 0..MAX_WRITES {
                    let body = set_one(&format!("racing-{w}"), "k", &n.to_string());
                    let code = async {
                        let answer: Value = http
                            .post(&url)
                            .body(body)
                            .send()
                            .await
                            .ok()?
                            .json()
                            .await
                            .ok()?;
                        answer["ErrorCode"].as_u64()
                    };
                    if code.await != Some(0) {
                        // Writes 0..n were acknowledged.
                        return n;
                    }
                    let _ = answered.send(());
                }
                panic!("writer {w}: {MAX_WRITES} writes acknowledged, none refused");
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), answers.recv())
        .await
        .expect("no write was answered within 10 s");

    server.request_stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(server.addr()).await {
            Err(error) if error.kind() == ErrorKind::ConnectionRefused => break,
            // Connected (or reset by the listener closing right then): try again.
            Ok(_) | Err(_) => assert!(
                Instant::now() < deadline,
                "the server still accepts connections 10 s after the stop was requested"
            ),
        }
        tokio::task::yield_now().await;
    }
    assert!(
        !server.has_exited(),
        "serve returned while accepted requests were unfinished"
    );

    for (i, (mut stream, body)) in accepted.into_iter().enumerate() {
        stream.write_all(body.as_bytes()).await.unwrap();
        let response = read_until(&mut stream, is_complete_response).await;
        let response = String::from_utf8_lossy(&response);
        let (head, answer) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("accepted request {i} got no answer: {response:?}"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let answer: Value = serde_json::from_str(answer).unwrap();
        assert_eq!(answer["ErrorCode"], 0, "accepted request {i}: {answer}");
    }
    server.stop().await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }

    let server = TestServer::start(open(dir.path()), config()).await;
    for i in 0..ACCEPTED {
        assert_eq!(
            value_of(&server, "accepted", &format!("k{i}")).await,
            Some(format!("v{i}")),
            "accepted request {i} was acknowledged but is not on disk"
        );
    }
    for (w, &n) in acknowledged.iter().enumerate() {
        let last = n.checked_sub(1).map(|last| last.to_string());
        assert_eq!(
            value_of(&server, &format!("racing-{w}"), "k").await,
            last,
            "writer {w}: {n} writes acknowledged; the last one must be on disk, and no later one"
        );
    }
    server.stop().await;
}
