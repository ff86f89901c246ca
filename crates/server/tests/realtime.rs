//! The real-time gateway (docs/protocol.md), black-box: the real server on 127.0.0.1:0, spoken
//! to with `liveroom-client` (and raw WebSocket frames for what a client must never send).

mod common;

use std::time::Duration;

use common::{
    APP, TestServer, close_code, config, create_room, next_room_event, rest_set, server_code,
    within,
};
use futures_util::{SinkExt, StreamExt};
use liveroom_client::{Client, Mode, Position};
use liveroom_server::{AppConfig, RealtimeConfig, SecretKey, ServerConfig};
use liveroom_store::{MemoryStore, Retention, SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn realtime(config: RealtimeConfig) -> ServerConfig {
    ServerConfig {
        realtime: config,
        ..common::config()
    }
}

#[tokio::test]
async fn any_user_of_the_app_says_hello_and_gets_its_session() {
    let server = TestServer::new().await;
    let mut client = server.connect("alice").await;
    let session = client.session.clone();
    assert_eq!(session["user"], "alice");
    assert_eq!(session["ping_ms"], 25_000);
    assert_eq!(session["pong_timeout_ms"], 10_000);
    assert_eq!(session["sig_expires_in"], 86_400);
    assert_eq!(
        session["limits"],
        json!({"frame": 65536, "rooms": 16, "cmds_per_s": 20, "queue": 1024, "delta_events": 64})
    );
    // A client ping is answered, and the connection goes on.
    client.ping().await.unwrap();
    create_room(&server, "r", "alice").await;
    assert_eq!(client.get_info("r").await.unwrap()["RoomId"], "r");
}

#[tokio::test]
async fn hello_fails_with_the_rest_codes_and_closes_4501() {
    let mut disabled = AppConfig::new(7, SecretKey::new("k7".into()), vec!["admin".into()]);
    disabled.enabled = false;
    let mut config = config();
    config.apps.push(disabled);
    let server = TestServer::start(MemoryStore::new(), config).await;
    let sig = |app, key: &str, user: &str, time, expire| {
        liveroom_usersig::generate(app, key, user, time, expire)
    };
    let start = common::START;
    let cases = [
        (json!({"v": 1, "userid": "alice", "usersig": "x"}), 60012),
        (
            json!({"v": 1, "sdkappid": 9, "userid": "alice", "usersig": "x"}),
            60006,
        ),
        (
            json!({"v": 1, "sdkappid": 7, "userid": "alice", "usersig": sig(7, "k7", "alice", start, 100)}),
            60016,
        ),
        (json!({"v": 1, "sdkappid": APP, "usersig": "x"}), 60004),
        (json!({"v": 1, "sdkappid": APP, "userid": "alice"}), 70002),
        (
            json!({"v": 1, "sdkappid": APP, "userid": "alice", "usersig": "!!"}),
            70003,
        ),
        (
            json!({"v": 1, "sdkappid": APP, "userid": "alice", "usersig": server.sig("bob")}),
            70013,
        ),
        (
            json!({"v": 1, "sdkappid": APP, "userid": "alice", "usersig": sig(APP, "wrong", "alice", start, 100)}),
            70009,
        ),
        (
            json!({"v": 1, "sdkappid": APP, "userid": "alice", "usersig": sig(APP, common::KEY, "alice", start - 200, 100)}),
            70001,
        ),
        (
            json!({"v": 2, "sdkappid": APP, "userid": "alice", "usersig": server.sig("alice")}),
            100002,
        ),
    ];
    for (hello, code) in cases {
        let mut client = within(Client::open(&server.ws_url())).await.unwrap();
        let error = within(client.request("hello", hello.clone()))
            .await
            .unwrap_err();
        assert_eq!(server_code(error), code, "{hello}");
        let error = within(client.next_event()).await.unwrap_err();
        assert_eq!(close_code(error), 4501, "{hello}");
    }
}

#[tokio::test]
async fn failed_hellos_count_toward_the_address_throttle() {
    let mut config = config();
    config.auth_failure_throttle.max_failures = 2;
    let server = TestServer::start(MemoryStore::new(), config).await;
    let bad = liveroom_client::Credentials {
        usersig: server.sig("bob"),
        ..server.credentials("alice")
    };
    for expected in [70013, 70013, 70013, 70050] {
        let error = within(Client::connect(&server.ws_url(), &bad))
            .await
            .err()
            .unwrap();
        assert_eq!(server_code(error), expected);
    }
    // REST from the same address is blocked too: one throttle.
    assert_eq!(server.code("get_room_list", json!({})).await, 70050);
}

#[tokio::test]
async fn entering_gives_a_snapshot_then_every_change_in_order() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    rest_set(&server, "r", "a", "1").await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    for client in [&mut alice, &mut bob] {
        let entered = within(client.enter("r")).await.unwrap();
        assert_eq!(entered.mode, Mode::Snapshot);
        assert_eq!(entered.rev, 2);
        assert_eq!(entered.state["metadata"], json!({"a": "1"}));
        assert_eq!(entered.state["info"]["Owner_Account"], "alice");
    }
    let epoch = alice.position("r").unwrap().epoch;
    for i in 0..5 {
        rest_set(&server, "r", "k", &i.to_string()).await;
    }
    server
        .ok("del_room_metadata", json!({"RoomId": "r", "Keys": ["a"]}))
        .await;
    server
        .ok(
            "update_room_info",
            json!({"RoomInfo": {"RoomId": "r", "RoomName": "renamed"}}),
        )
        .await;
    for client in [&mut alice, &mut bob] {
        for (i, rev) in (3..=7).enumerate() {
            let event = next_room_event(client).await;
            assert_eq!(event.ev, "room.metadata.set");
            assert_eq!(event.position, Some(Position { epoch, rev }));
            assert_eq!(event.d, json!({"metadata": {"k": i.to_string()}}));
            assert_eq!(event.ts, Some(common::START * 1000));
        }
        let deleted = next_room_event(client).await;
        assert_eq!(
            (deleted.ev.as_str(), deleted.d.clone()),
            ("room.metadata.deleted", json!({"keys": ["a"]}))
        );
        let info = next_room_event(client).await;
        assert_eq!(info.ev, "room.info");
        assert_eq!(info.position, Some(Position { epoch, rev: 9 }));
        assert_eq!(info.d, json!({"info": {"RoomName": "renamed"}}));
    }
}

#[tokio::test]
async fn only_the_owner_writes_metadata_and_everyone_sees_it() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let written = within(alice.set_metadata("r", &[("k", "v"), ("j", "w")]))
        .await
        .unwrap();
    assert_eq!(written.rev, 2);
    let event = next_room_event(&mut bob).await;
    assert_eq!(event.position, Some(written));
    assert_eq!(event.d, json!({"metadata": {"j": "w", "k": "v"}}));
    let error = within(bob.set_metadata("r", &[("k", "bob")]))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100006);
    let error = within(bob.del_metadata("r", &["k"])).await.unwrap_err();
    assert_eq!(server_code(error), 100006);
    // The same rules and codes as REST, in the same order.
    let error = within(alice.set_metadata("nowhere", &[("k", "v")]))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100004);
    let big = "x".repeat(2049);
    let error = within(alice.set_metadata("r", &[("k", &big)]))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100501);
    let error = within(alice.del_metadata("r", &["nope"]))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100503);
    let error = within(alice.request("set_metadata", json!({"room": "r", "metadata": {"k": 1}})))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100002);
    let deleted = within(alice.del_metadata("r", &["j"])).await.unwrap();
    assert_eq!(deleted.rev, 3);
    assert_eq!(
        within(bob.get_metadata("r", &[])).await.unwrap(),
        json!({"k": "v"})
    );
    assert_eq!(
        server
            .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
            .await,
        json!({"Metadata": [{"Key": "k", "Value": "v"}]})
    );
    // Refused writes appended nothing: the next event bob sees is the delete.
    let event = next_room_event(&mut bob).await;
    assert_eq!(
        (event.ev.as_str(), event.position.unwrap().rev),
        ("room.metadata.deleted", 3)
    );
}

#[tokio::test]
async fn resuming_with_since_gives_exactly_the_missed_events() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut client = server.connect("bob").await;
    within(client.enter("r")).await.unwrap();
    rest_set(&server, "r", "k", "1").await;
    assert_eq!(next_room_event(&mut client).await.position.unwrap().rev, 2);
    let before = client.position("r").unwrap();
    // Missed while away.
    for value in ["2", "3", "4"] {
        rest_set(&server, "r", "k", value).await;
    }
    let (mut resumed, entered) = within(Client::resume(
        &server.ws_url(),
        &server.credentials("bob"),
        &client,
    ))
    .await
    .unwrap();
    let (room, entered) = &entered[0];
    assert_eq!(room, "r");
    assert_eq!(entered.mode, Mode::Delta);
    assert_eq!((entered.epoch, entered.rev), (before.epoch, 5));
    let revs: Vec<u64> = entered
        .events
        .iter()
        .map(|e| e.position.unwrap().rev)
        .collect();
    assert_eq!(revs, [3, 4, 5]);
    assert_eq!(entered.events[2].d, json!({"metadata": {"k": "4"}}));
    // Then live, from the next one on.
    rest_set(&server, "r", "k", "5").await;
    assert_eq!(next_room_event(&mut resumed).await.position.unwrap().rev, 6);
    // Already up to date: an empty delta.
    let again = within(resumed.enter("r")).await.unwrap();
    assert_eq!(
        (again.mode, again.rev, again.events.len()),
        (Mode::Delta, 6, 0)
    );
}

#[tokio::test]
async fn a_since_the_log_no_longer_holds_gets_a_snapshot() {
    let retention = Retention {
        events_per_room: 1,
        ..Retention::default()
    };
    let server = TestServer::start(MemoryStore::with_retention(retention), config()).await;
    create_room(&server, "r", "alice").await;
    let mut client = server.connect("bob").await;
    let first = within(client.enter("r")).await.unwrap();
    within(client.exit("r")).await.unwrap();
    for i in 0..70 {
        rest_set(&server, "r", "k", &i.to_string()).await;
    }
    let since = Position {
        epoch: first.epoch,
        rev: first.rev,
    };
    let entered = within(client.enter_since("r", Some(since))).await.unwrap();
    assert_eq!(entered.mode, Mode::Snapshot);
    assert_eq!(entered.rev, 71);
    assert_eq!(entered.state["metadata"], json!({"k": "69"}));
    // More missed events than a delta holds: a snapshot too.
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    for i in 0..65 {
        rest_set(&server, "r", "k", &i.to_string()).await;
    }
    let mut client = server.connect("bob").await;
    let since = Position {
        epoch: first.epoch,
        rev: 0,
    };
    let entered = within(client.enter_since("r", Some(since))).await.unwrap();
    assert_eq!((entered.mode, entered.rev), (Mode::Snapshot, 66));
}

#[tokio::test]
async fn destroy_ends_the_subscription_and_a_recreated_room_is_a_new_epoch() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut client = server.connect("bob").await;
    let entered = within(client.enter("r")).await.unwrap();
    let old = Position {
        epoch: entered.epoch,
        rev: entered.rev,
    };
    server.ok("destroy_room", json!({"RoomId": "r"})).await;
    let destroyed = next_room_event(&mut client).await;
    assert_eq!(destroyed.ev, "room.destroyed");
    assert_eq!(destroyed.position, Some(Position { rev: 2, ..old }));
    assert_eq!(client.position("r"), None);
    // From before the destroy: a delta that ends with it, and no subscription.
    let missed = within(client.enter_since("r", Some(old))).await.unwrap();
    assert_eq!(missed.mode, Mode::Delta);
    assert_eq!(missed.events, std::slice::from_ref(&destroyed));
    assert_eq!(client.position("r"), None);
    // From the destroy on, or without since: the room does not exist.
    let after = Position { rev: 2, ..old };
    for since in [Some(after), None] {
        let error = within(client.enter_since("r", since)).await.unwrap_err();
        assert_eq!(server_code(error), 100004);
    }
    server.clock.advance(Duration::from_secs(2));
    create_room(&server, "r", "alice").await;
    let entered = within(client.enter_since("r", Some(old))).await.unwrap();
    assert_eq!(entered.mode, Mode::Snapshot);
    assert!(entered.epoch > old.epoch);
    assert_eq!(entered.rev, 1);
    // The subscription ended with the destroy: the first event to arrive is of the new one.
    rest_set(&server, "r", "k", "v").await;
    let event = next_room_event(&mut client).await;
    assert_eq!(
        event.position,
        Some(Position {
            epoch: entered.epoch,
            rev: 2
        })
    );
}

#[tokio::test]
async fn a_slow_reader_is_closed_4008_while_others_keep_receiving() {
    let server = TestServer::start(
        MemoryStore::new(),
        realtime(RealtimeConfig {
            outbound_queue: 8,
            ..RealtimeConfig::default()
        }),
    )
    .await;
    create_room(&server, "r", "alice").await;
    let mut fast = server.connect("fast").await;
    let mut slow = server.connect("slow").await;
    within(fast.enter("r")).await.unwrap();
    within(slow.enter("r")).await.unwrap();
    // Each write is one event of about 16 KiB; `slow` reads none of them.
    let value = "v".repeat(2000);
    let metadata: Vec<Value> = (0..8)
        .map(|k| json!({"Key": format!("k{k}"), "Value": value}))
        .collect();
    let mut closed = false;
    for write in 0..2000u64 {
        if write % 150 == 149 {
            // Within REST's own rate limit.
            server.clock.advance(Duration::from_secs(1));
        }
        server
            .ok(
                "set_room_metadata",
                json!({"RoomId": "r", "Metadata": metadata}),
            )
            .await;
        let event = next_room_event(&mut fast).await;
        assert_eq!(event.position.unwrap().rev, write + 2);
        if write % 16 == 15 {
            let metrics = server
                .http
                .get(format!("{}/metrics", server.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metrics.contains("liveroom_realtime_closes_total{code=\"4008\"}") {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the slow reader was never closed");
    // What it got before the close is in order and gap-free; then 4008, which allows a
    // reconnect, and a resume loses nothing.
    let mut rev = 1;
    let error = loop {
        match within(slow.next_event()).await {
            Ok(event) => {
                // Live events (presence) have no position.
                if let Some(position) = event.position {
                    rev += 1;
                    assert_eq!(position.rev, rev);
                }
            }
            Err(error) => break error,
        }
    };
    assert!(error.may_reconnect());
    assert_eq!(close_code(error), 4008);
    let (_, entered) = within(Client::resume(
        &server.ws_url(),
        &server.credentials("slow"),
        &slow,
    ))
    .await
    .unwrap();
    assert_eq!(entered[0].1.rev, fast.position("r").unwrap().rev);
}

/// A raw WebSocket past its hello, for frames the client crate never sends.
async fn raw(
    server: &TestServer,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = server.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "liveroom.v1.json".parse().unwrap(),
    );
    let (mut socket, response) = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "liveroom.v1.json"
    );
    let hello = json!({"id": 1, "op": "hello", "d": {"v": 1, "sdkappid": APP, "userid": user, "usersig": server.sig(user)}});
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let reply = within(socket.next()).await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("\"ok\""), "{reply:?}");
    socket
}

/// The close code the server ends `socket` with, skipping whatever comes before.
async fn closed_with(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    within(async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
}

#[tokio::test]
async fn hostile_frames_are_refused_and_change_nothing() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    rest_set(&server, "r", "k", "v").await;
    let expect_unchanged = || async {
        assert_eq!(
            server
                .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
                .await,
            json!({"Metadata": [{"Key": "k", "Value": "v"}]})
        );
    };
    let closing: [Message; 6] = [
        Message::Binary(vec![1, 2, 3].into()),
        Message::Text("not json".into()),
        Message::Text("[1,2]".into()),
        Message::Text(r#"{"op":"set_metadata","d":{"room":"r","metadata":{"k":"x"}}}"#.into()),
        Message::Text(r#"{"id":-4,"op":"enter"}"#.into()),
        Message::Text(
            format!(
                r#"{{"id":1,"op":"get_info","d":{{"room":"{}"}}}}"#,
                "r".repeat(70_000)
            )
            .into(),
        ),
    ];
    for frame in closing {
        let mut socket = raw(&server, "alice").await;
        let _ = socket.send(frame).await;
        let code = closed_with(&mut socket).await;
        assert!(matches!(code, Some(4500) | None), "{code:?}");
        expect_unchanged().await;
    }
    // A well-formed request with an unknown op or bad fields is answered and the connection
    // goes on.
    let mut alice = server.connect("alice").await;
    let error = within(alice.request("drop_tables", json!({})))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 60009);
    for bad in [
        json!({}),
        json!({"room": 5}),
        json!({"room": ""}),
        json!({"room": "r", "since": {"epoch": -1, "rev": 0}}),
    ] {
        let error = within(alice.request("enter", bad)).await.unwrap_err();
        assert_eq!(server_code(error), 100002);
    }
    let error = within(alice.request("hello", json!({}))).await.unwrap_err();
    assert_eq!(server_code(error), 100002);
    let error = within(alice.enter("missing")).await.unwrap_err();
    assert_eq!(server_code(error), 100004);
    assert_eq!(
        within(alice.get_metadata("r", &["k"])).await.unwrap(),
        json!({"k": "v"})
    );
    expect_unchanged().await;
    // A first frame that is not a hello.
    let mut socket = raw_unauthenticated(&server).await;
    socket
        .send(Message::Text(
            r#"{"id":1,"op":"enter","d":{"room":"r"}}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut socket).await, Some(4500));
}

async fn raw_unauthenticated(
    server: &TestServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = server.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "liveroom.v1.json".parse().unwrap(),
    );
    within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn a_command_flood_is_refused_then_closed() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut client = server.connect("alice").await;
    // 20 commands at once are fine (the clock does not move; the hello is not counted).
    for _ in 0..20 {
        within(client.get_info("r")).await.unwrap();
    }
    for _ in 0..19 {
        let error = within(client.get_info("r")).await.unwrap_err();
        assert_eq!(server_code(error), 60007);
    }
    let error = within(client.get_info("r")).await.unwrap_err();
    assert_eq!(close_code(error), 4029);
}

#[tokio::test]
async fn rooms_per_connection_are_bounded() {
    let server = TestServer::start(
        MemoryStore::new(),
        realtime(RealtimeConfig {
            max_rooms: 2,
            ..RealtimeConfig::default()
        }),
    )
    .await;
    for room in ["a", "b", "c"] {
        create_room(&server, room, "alice").await;
    }
    let mut client = server.connect("bob").await;
    within(client.enter("a")).await.unwrap();
    within(client.enter("b")).await.unwrap();
    within(client.enter("b")).await.unwrap();
    let error = within(client.enter("c")).await.unwrap_err();
    assert_eq!(server_code(error), 100002);
    within(client.exit("a")).await.unwrap();
    within(client.enter("c")).await.unwrap();
}

#[tokio::test]
async fn heartbeats_close_a_silent_client_and_an_idle_unauthenticated_one() {
    let server = TestServer::start(
        MemoryStore::new(),
        realtime(RealtimeConfig {
            hello_timeout: Duration::from_millis(200),
            ping_interval: Duration::from_millis(100),
            pong_timeout: Duration::from_millis(200),
            ..RealtimeConfig::default()
        }),
    )
    .await;
    let mut answering = server.connect("alice").await;
    assert_eq!(answering.session["ping_ms"], 100);
    let mut silent = server.connect("bob").await;
    silent.set_auto_pong(false);
    let error = tokio::select! {
        error = silent.next_event() => error.unwrap_err(),
        event = answering.next_event() => panic!("no event expected: {event:?}"),
    };
    assert_eq!(close_code(error), 4002);
    // The one that answered its pings is still there.
    create_room(&server, "r", "alice").await;
    assert_eq!(
        within(answering.get_info("r")).await.unwrap()["RoomId"],
        "r"
    );
    // A connection that never says hello.
    let mut socket = raw_unauthenticated(&server).await;
    assert_eq!(closed_with(&mut socket).await, Some(4001));
}

#[tokio::test]
async fn the_upgrade_needs_the_subprotocol_and_a_free_slot() {
    let server = TestServer::start(
        MemoryStore::new(),
        realtime(RealtimeConfig {
            max_connections: 1,
            ..RealtimeConfig::default()
        }),
    )
    .await;
    let request = server.ws_url().into_client_request().unwrap();
    let error = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");
    let first = server.connect("alice").await;
    let error = within(Client::connect(
        &server.ws_url(),
        &server.credentials("bob"),
    ))
    .await
    .err()
    .unwrap();
    assert!(error.to_string().contains("503"), "{error}");
    first.close().await.unwrap();
    // Its slot comes back once it is gone.
    within(async {
        loop {
            if Client::connect(&server.ws_url(), &server.credentials("bob"))
                .await
                .is_ok()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Plain HTTP on the path is not an upgrade.
    let response = server
        .http
        .get(server.ws_url().replace("ws://", "http://"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_resume_after_a_restart_continues_from_the_log_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = || SqliteStore::open(SqliteOptions::new(dir.path().join("liveroom.db"))).unwrap();
    let server = TestServer::start(store(), config()).await;
    create_room(&server, "r", "alice").await;
    let mut client = server.connect("bob").await;
    within(client.enter("r")).await.unwrap();
    rest_set(&server, "r", "k", "1").await;
    assert_eq!(next_room_event(&mut client).await.position.unwrap().rev, 2);
    server.stop().await;
    // The stop closed it with 4100: reconnect allowed.
    let error = within(client.next_event()).await.unwrap_err();
    assert!(error.may_reconnect());
    assert_eq!(close_code(error), 4100);

    let server = TestServer::start(store(), config()).await;
    rest_set(&server, "r", "k", "2").await;
    rest_set(&server, "r", "j", "3").await;
    let (mut resumed, entered) = within(Client::resume(
        &server.ws_url(),
        &server.credentials("bob"),
        &client,
    ))
    .await
    .unwrap();
    let entered = &entered[0].1;
    assert_eq!(entered.mode, Mode::Delta);
    let revs: Vec<u64> = entered
        .events
        .iter()
        .map(|e| e.position.unwrap().rev)
        .collect();
    assert_eq!(revs, [3, 4]);
    rest_set(&server, "r", "k", "4").await;
    assert_eq!(next_room_event(&mut resumed).await.position.unwrap().rev, 5);
    server.stop().await;
}

#[tokio::test]
async fn an_expiring_usersig_is_announced_and_can_be_refreshed() {
    let server = TestServer::new().await;
    let short = liveroom_usersig::generate(APP, common::KEY, "alice", common::START, 61);
    let credentials = liveroom_client::Credentials {
        usersig: short,
        ..server.credentials("alice")
    };
    let mut client = within(Client::connect(&server.ws_url(), &credentials))
        .await
        .unwrap();
    assert_eq!(client.session["sig_expires_in"], 61);
    // Sent 60 s before the end: about a second from now.
    let notice = within(client.next_event()).await.unwrap();
    assert_eq!(notice.ev, "session.sig_expiring");
    assert!(notice.d["expires_in"].as_u64().unwrap() <= 60);
    // Another user's UserSig does not refresh this connection; the user's own does.
    let error = within(client.refresh(&server.sig("bob")))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 70013);
    let error = within(client.refresh("junk")).await.unwrap_err();
    assert_eq!(server_code(error), 70003);
    let left = within(client.refresh(&server.sig("alice"))).await.unwrap();
    assert_eq!(left, 86_400);
    // The connection goes on.
    within(client.get_info("nope")).await.unwrap_err();
    within(client.ping()).await.unwrap();
}
