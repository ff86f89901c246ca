//! The order of checks of docs/behaviour.md §2 and the code each failure gets, over HTTP.

mod common;

use std::time::Duration;

use common::*;
use liveroom_server::{AppConfig, SecretKey, ServerConfig, ThrottleConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn query(sdkappid: &str, identifier: &str, usersig: &str) -> String {
    format!(
        "sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&random=99999999&contenttype=json"
    )
}

fn sig_at(identifier: &str, time: u64, expire: u64) -> String {
    liveroom_usersig::generate(APP, KEY, identifier, time, expire)
}

/// A server with several apps: the main one, a disabled one, one with a command disabled.
async fn server() -> TestServer {
    let mut disabled = AppConfig::new(
        1_400_000_001,
        SecretKey::new(KEY.into()),
        vec![ADMIN.into()],
    );
    disabled.enabled = false;
    let mut main = app();
    main.disabled_commands
        .insert(liveroom_protocol::Command::SetRoomMetadata);
    let config = ServerConfig {
        apps: vec![main, disabled],
        // Tests below exercise every failure from one address; the throttle has its own test.
        auth_failure_throttle: ThrottleConfig::off(),
        ..Default::default()
    };
    TestServer::start(liveroom_store::MemoryStore::new(), config).await
}

async fn code_at(server: &TestServer, command: &str, query: &str, body: &str) -> u64 {
    code_of(
        &server
            .post_raw(&server.url_with(command, query), body.to_owned())
            .await,
    )
}

#[tokio::test]
async fn each_failure_gets_its_code() {
    let server = server().await;
    let good = sig_at(ADMIN, START, 86_400);
    let app = APP.to_string();
    let body = r#"{"RoomId":"r","Keys":[]}"#;
    let cases: Vec<(&str, String, u64)> = vec![
        ("no_such_command", query(&app, ADMIN, &good), 60009),
        ("get_seat_list", query(&app, ADMIN, &good), 60009),
        (
            "get_room_info",
            format!("{}&contenttype=xml", query(&app, ADMIN, &good))
                .replace("contenttype=json&", ""),
            60002,
        ),
        (
            "get_room_info",
            query(&app, ADMIN, &good).replace("random=99999999", "random=abc"),
            60002,
        ),
        (
            "get_room_info",
            query(&app, ADMIN, &good).replace("random=99999999", "random=4294967296"),
            60002,
        ),
        (
            "get_room_info",
            format!("{}&sdkappid={app}", query(&app, ADMIN, &good)),
            60002,
        ),
        (
            "get_room_info",
            format!("identifier={ADMIN}&usersig={good}"),
            60012,
        ),
        ("get_room_info", query("", ADMIN, &good), 60012),
        ("get_room_info", query("abc", ADMIN, &good), 60006),
        ("get_room_info", query("99", ADMIN, &good), 60006),
        ("get_room_info", query("1400000001", ADMIN, &good), 60016),
        ("get_room_info", query(&app, "", &good), 60004),
        (
            "get_room_info",
            format!("sdkappid={app}&usersig={good}"),
            60004,
        ),
        ("get_room_info", query(&app, ADMIN, ""), 70002),
        ("get_room_info", query(&app, ADMIN, "not-a-sig!"), 70003),
        (
            "get_room_info",
            query(&app, ADMIN, "eJyrVgrxCdYrSy1S"),
            70003,
        ),
        (
            "get_room_info",
            query(
                &app,
                ADMIN,
                &liveroom_usersig::generate(7, KEY, ADMIN, START, 86_400),
            ),
            70014,
        ),
        (
            "get_room_info",
            query(&app, ADMIN, &sig_at("someone", START, 86_400)),
            70013,
        ),
        (
            "get_room_info",
            query(
                &app,
                ADMIN,
                &liveroom_usersig::generate(APP, "other-key", ADMIN, START, 86_400),
            ),
            70009,
        ),
        (
            "get_room_info",
            query(&app, ADMIN, &sig_at(ADMIN, START - 100, 99)),
            70001,
        ),
        (
            "get_room_info",
            query(&app, "user1", &sig_at("user1", START, 86_400)),
            60010,
        ),
        ("get_room_info", query(&app, ADMIN, &good), 100004),
    ];
    for (command, query, expected) in cases {
        assert_eq!(
            code_at(&server, command, &query, body).await,
            expected,
            "{command}?{query}"
        );
    }
    // Valid exactly until time + expire.
    assert_eq!(
        code_at(
            &server,
            "get_room_info",
            &query(&app, ADMIN, &sig_at(ADMIN, START - 100, 100)),
            body
        )
        .await,
        100004
    );
    // A second administrator is an administrator too.
    assert_eq!(
        code_at(
            &server,
            "get_room_info",
            &query(&app, "admin2", &sig_at("admin2", START, 10)),
            body
        )
        .await,
        100004
    );
}

#[tokio::test]
async fn checks_run_in_order() {
    let server = server().await;
    let app = APP.to_string();
    let good = query(&app, ADMIN, &sig_at(ADMIN, START, 86_400));
    let bad_sig = query(
        &app,
        ADMIN,
        &liveroom_usersig::generate(APP, "other-key", ADMIN, START, 86_400),
    );
    // Unknown command before the method; the method before the query; the URL before auth.
    let get = server
        .http
        .get(server.url_with("nope", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(&get.json().await.unwrap()), 60009);
    let get = server
        .http
        .get(server.url_with("get_room_info", &bad_sig))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(&get.json().await.unwrap()), 60002);
    // Authentication before the body.
    assert_eq!(code_at(&server, "get_room_info", &bad_sig, "").await, 70009);
    // The body before the command's enablement; enablement before the fields.
    assert_eq!(
        code_at(&server, "set_room_metadata", &good, "[]").await,
        60003
    );
    assert_eq!(
        code_at(&server, "set_room_metadata", &good, "{}").await,
        100007
    );
    // Fields before the room's existence.
    assert_eq!(
        code_at(&server, "get_room_metadata", &good, r#"{"RoomId":"r"}"#).await,
        100002
    );
}

#[tokio::test]
async fn bad_bodies_are_60003() {
    let server = server().await;
    let url = server.url_with(
        "get_room_info",
        &query(&APP.to_string(), ADMIN, &sig_at(ADMIN, START, 86_400)),
    );
    for body in [
        Vec::new(),
        b"not json".to_vec(),
        b"[1,2]".to_vec(),
        b"\"RoomId\"".to_vec(),
        b"{\"RoomId\":\"\xff\xfe\"}".to_vec(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        format!("{{\"RoomId\":\"{}\"}}", "x".repeat(1024 * 1024)).into_bytes(),
    ] {
        let len = body.len();
        assert_eq!(
            code_of(&server.post_raw(&url, body).await),
            60003,
            "body of {len} bytes"
        );
    }
}

#[tokio::test]
async fn paths_outside_v4_are_not_found() {
    let server = server().await;
    let response = server
        .http
        .post(format!("{}/v3/x", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test]
async fn rate_limit_per_app_and_command() {
    let mut limited = app();
    limited
        .rate_limits
        .insert(liveroom_protocol::Command::GetRoomInfo, 3);
    let server = TestServer::start(
        liveroom_store::MemoryStore::new(),
        ServerConfig {
            apps: vec![limited],
            ..Default::default()
        },
    )
    .await;
    let body = json!({"RoomId": "r"});
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(server.code("get_room_info", body.clone()).await);
    }
    assert_eq!(codes, [100004, 100004, 100004, 60007, 60007]);
    // Another command has its own budget (get_room_list: 10/s by default).
    let mut list = Vec::new();
    for _ in 0..12 {
        list.push(server.code("get_room_list", json!({})).await);
    }
    assert_eq!(list.iter().filter(|&&c| c == 0).count(), 10);
    assert_eq!(list.iter().filter(|&&c| c == 60007).count(), 2);
    server.clock.advance(Duration::from_secs(1));
    assert_eq!(server.code("get_room_info", body).await, 100004);
}

#[tokio::test]
async fn auth_failure_throttle_blocks_then_lifts() {
    let server = TestServer::new().await;
    let app = APP.to_string();
    let wrong = query(
        &app,
        ADMIN,
        &liveroom_usersig::generate(APP, "other-key", ADMIN, START, 86_400),
    );
    let body = r#"{"RoomId":"r"}"#;
    for _ in 0..20 {
        assert_eq!(code_at(&server, "get_room_info", &wrong, body).await, 70009);
    }
    assert_eq!(
        code_at(&server, "get_room_info", &wrong, body).await,
        70009,
        "the 21st failure is still checked"
    );
    // Blocked now, even with good credentials, before any signature work.
    let good = query(&app, ADMIN, &sig_at(ADMIN, START, 86_400));
    assert_eq!(code_at(&server, "get_room_info", &good, body).await, 70050);
    server.clock.advance(Duration::from_secs(59));
    assert_eq!(code_at(&server, "get_room_info", &good, body).await, 70050);
    server.clock.advance(Duration::from_secs(1));
    assert_eq!(code_at(&server, "get_room_info", &good, body).await, 100004);
}

#[tokio::test]
async fn raw_http_oddities() {
    let server = server().await;
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    let path = format!(
        "/v4/live_engine_http_srv/get_room_info?{}",
        query(&APP.to_string(), ADMIN, &sig_at(ADMIN, START, 86_400))
    );
    // A body with NUL bytes in the RoomId, and a Content-Length over the limit.
    for (request, expected) in [
        (
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{{\"RoomId\":\"a\\u0000\"}}"
            ),
            "100002",
        ),
        (
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n{{}}"
            ),
            "60003",
        ),
        (
            format!(
                "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
            "60002",
        ),
    ] {
        let request = request.replace(
            "Content-Length: 17",
            &format!("Content-Length: {}", "{\"RoomId\":\"a\\u0000\"}".len()),
        );
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains(&format!("\"ErrorCode\":{expected}")),
            "{answer}"
        );
    }
}
