//! Black-box tests of every command and every error code of docs/behaviour.md §2, §6 and §7,
//! against the real server over HTTP.

mod common;

use common::*;
use serde_json::{Value, json};

async fn server_with_room(room: &str) -> TestServer {
    let server = TestServer::new().await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": room}}))
        .await;
    server
}

fn keys_of(response: &Value) -> Vec<String> {
    response["Metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair["Key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn seed_sample_request_and_response() {
    let server = server_with_room("live-room").await;
    server
        .ok("set_room_metadata", json!({"RoomId": "live-room", "Metadata": [{"Key": "key1", "Value": "v1"}, {"Key": "key2", "Value": "v2"}]}))
        .await;
    // The exact sample body of the seed document; the whole answer, byte for byte, in
    // Tencent's field order (docs/behaviour.md §1).
    let answer = server
        .bytes_with(
            reqwest::Method::POST,
            &server.url("del_room_metadata"),
            "{\n\"RoomId\": \"live-room\",\n\"Keys\": [\"key1\", \"key2\"]\n}",
        )
        .await;
    assert_eq!(
        with_placeholder_id(&answer),
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>"}"#
    );
    let left = server
        .ok(
            "get_room_metadata",
            json!({"RoomId": "live-room", "Keys": []}),
        )
        .await;
    assert_eq!(left, json!({"Metadata": []}));
}

#[tokio::test]
async fn room_lifecycle() {
    let server = TestServer::new().await;
    let created = server
        .ok(
            "create_room",
            json!({"RoomInfo": {"RoomId": "live-room", "RoomType": "Live", "RoomName": "live name", "Owner_Account": "anchor1",
                "CoverURL": "cover url", "IsMessageDisabled": true, "Category": [1, 2, 3], "IsPublicVisible": true,
                "IsSeatEnabled": true, "TakeSeatMode": "ApplyToTake", "MaxSeatCount": 8, "ActivityStatus": 1,
                "IsUnlimitedRoomEnabled": true, "SeatLayoutTemplateId": 600, "SeatTemplate": "VideoDynamicGrid9Seats",
                "UnknownField": {"ignored": true}}}),
        )
        .await;
    assert_eq!(created, json!({"RoomId": "live-room"}));

    let info = server
        .ok("get_room_info", json!({"RoomId": "live-room"}))
        .await;
    assert_eq!(
        info["RoomInfo"],
        json!({"RoomId": "live-room", "RoomName": "live name", "RoomType": "Live", "Owner_Account": "anchor1",
            "CreateTime": START, "IsSeatEnabled": true, "TakeSeatMode": "ApplyToTake", "MaxSeatCount": 8,
            "MaxMemberCount": 0, "IsMessageDisabled": true, "CoverURL": "cover url", "Category": [1, 2, 3],
            "ActivityStatus": 1, "ViewCount": 0, "IsPublicVisible": true, "Notice": "",
            "SeatTemplate": "VideoDynamicGrid9Seats", "IsUnlimitedRoomEnabled": true})
    );

    server
        .ok("update_room_info", json!({"RoomInfo": {"RoomId": "live-room", "RoomName": "rname-123", "Notice": "hello", "IsPublicVisible": false, "TakeSeatMode": "FreeToTake"}}))
        .await;
    let info = server
        .ok("get_room_info", json!({"RoomId": "live-room"}))
        .await["RoomInfo"]
        .clone();
    assert_eq!(info["RoomName"], "rname-123");
    assert_eq!(info["Notice"], "hello");
    assert_eq!(info["IsPublicVisible"], false);
    assert_eq!(info["TakeSeatMode"], "FreeToTake");
    assert_eq!(info["CoverURL"], "cover url", "fields not named stay");

    let destroyed = server
        .ok("destroy_room", json!({"RoomId": "live-room"}))
        .await;
    assert_eq!(
        destroyed,
        json!({"Statistic": {"TotalViewers": 0, "TotalGiftsSent": 0, "TotalGiftCoins": 0, "TotalUniqueGiftSenders": 0, "TotalLikesReceived": 0}})
    );
    assert_eq!(
        server
            .code("get_room_info", json!({"RoomId": "live-room"}))
            .await,
        100004
    );
    assert_eq!(
        server
            .code("destroy_room", json!({"RoomId": "live-room"}))
            .await,
        100004
    );
    assert_eq!(
        server
            .code(
                "update_room_info",
                json!({"RoomInfo": {"RoomId": "live-room"}})
            )
            .await,
        100004
    );
}

#[tokio::test]
async fn create_room_defaults_and_conflicts() {
    let server = TestServer::new().await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r1"}}))
        .await;
    let info = server.ok("get_room_info", json!({"RoomId": "r1"})).await["RoomInfo"].clone();
    assert_eq!(info["Owner_Account"], ADMIN, "owner defaults to the caller");
    assert_eq!(info["RoomName"], "r1", "name defaults to the RoomId");
    assert_eq!(info["TakeSeatMode"], "FreeToTake");
    assert_eq!(info["IsPublicVisible"], true);
    assert!(info.get("SeatTemplate").is_none());

    // However soon after its creation: the conflict, never 100012, so that a backend retrying
    // a timed-out create gets the 100010 it treats as success.
    assert_eq!(
        server
            .code("create_room", json!({"RoomInfo": {"RoomId": "r1"}}))
            .await,
        100010
    );
    assert_eq!(
        server
            .code(
                "create_room",
                json!({"RoomInfo": {"RoomId": "r1", "Owner_Account": "someone"}})
            )
            .await,
        100003
    );

    // Destroyed and created again within the second: 100012.
    server.ok("destroy_room", json!({"RoomId": "r1"})).await;
    assert_eq!(
        server
            .code("create_room", json!({"RoomInfo": {"RoomId": "r1"}}))
            .await,
        100012
    );
    server.clock.advance(std::time::Duration::from_secs(1));
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r1"}}))
        .await;

    for bad in [
        json!({"RoomInfo": {"RoomId": "r2", "RoomType": "Voice"}}),
        json!({"RoomInfo": {"RoomId": "r2", "RoomName": "n".repeat(101)}}),
        json!({"RoomInfo": {"RoomId": "r2", "CoverURL": "c".repeat(201)}}),
        json!({"RoomInfo": {"RoomId": "r2", "Notice": "c".repeat(101)}}),
        json!({"RoomInfo": {"RoomId": "r2", "Category": [1, 2, 3, 4]}}),
        json!({"RoomInfo": {"RoomId": "r2", "MaxSeatCount": 17}}),
        json!({"RoomInfo": {"RoomId": "r2", "TakeSeatMode": 1}}),
        json!({"RoomInfo": {"RoomId": "r2", "Owner_Account": "o".repeat(33)}}),
        json!({"RoomInfo": {"RoomId": "r\u{0}2"}}),
        json!({"RoomInfo": {"RoomId": "x".repeat(49)}}),
        json!({"RoomInfo": {"RoomId": ""}}),
        json!({"RoomInfo": "r2"}),
    ] {
        assert_eq!(
            server.code("create_room", bad.clone()).await,
            100002,
            "{bad}"
        );
    }
    assert_eq!(
        server.code("get_room_info", json!({"RoomId": "r2"})).await,
        100004,
        "nothing was created"
    );
}

#[tokio::test]
async fn room_list_pages_walk_every_visible_room_once() {
    let server = TestServer::new().await;
    let mut expected = Vec::new();
    for i in 0..45 {
        let public = i % 4 != 0;
        server
            .ok(
                "create_room",
                json!({"RoomInfo": {"RoomId": format!("room-{i:02}"), "IsPublicVisible": public}}),
            )
            .await;
        if public {
            expected.push(format!("room-{i:02}"));
        }
        if i % 10 == 0 {
            server.clock.advance(std::time::Duration::from_secs(1));
        }
    }
    let mut walked = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let page = server
            .ok("get_room_list", json!({"Next": next, "Count": 7}))
            .await;
        let rooms = page["RoomList"].as_array().unwrap();
        assert!(rooms.len() <= 7);
        walked.extend(
            rooms
                .iter()
                .map(|r| r["RoomId"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        next = page["Next"].as_str().unwrap().to_owned();
        if next.is_empty() {
            break;
        }
    }
    // Newest first among equal view counts, then RoomId ascending.
    let mut by_order = expected.clone();
    by_order.sort_by_key(|id| {
        let i: u64 = id[5..].parse().unwrap();
        let created = if i == 0 { 0 } else { (i - 1) / 10 + 1 };
        (std::cmp::Reverse(created), id.clone())
    });
    assert_eq!(walked, by_order);
    assert_eq!(pages, expected.len().div_ceil(7));

    let default_page = server.ok("get_room_list", json!({})).await;
    assert_eq!(default_page["RoomList"].as_array().unwrap().len(), 20);
    let entry = &default_page["RoomList"][0];
    for field in [
        "RoomId",
        "RoomName",
        "Owner_Account",
        "CoverURL",
        "Category",
        "CreateTime",
        "ActivityStatus",
        "ViewCount",
    ] {
        assert!(
            entry.get(field).is_some(),
            "list entry lacks {field}: {entry}"
        );
    }
    // get_room_list allows 10 calls a second.
    server.clock.advance(std::time::Duration::from_secs(1));
    for bad in [
        json!({"Count": 0}),
        json!({"Count": 21}),
        json!({"Count": "5"}),
        json!({"Next": "nope"}),
        json!({"Next": 3}),
    ] {
        assert_eq!(
            server.code("get_room_list", bad.clone()).await,
            100002,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn metadata_set_get_del() {
    let server = server_with_room("r").await;
    server
        .ok("set_room_metadata", json!({"RoomId": "r", "Metadata": [{"Key": "b", "Value": "1"}, {"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}]}))
        .await;
    let all = server
        .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
        .await;
    assert_eq!(
        all,
        json!({"Metadata": [{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}]})
    );
    let some = server
        .ok(
            "get_room_metadata",
            json!({"RoomId": "r", "Keys": ["b", "zz", "a", "b"]}),
        )
        .await;
    assert_eq!(keys_of(&some), ["b", "a"]);
    let none = server
        .ok("get_room_metadata", json!({"RoomId": "r", "Keys": ["zz"]}))
        .await;
    assert_eq!(none, json!({"Metadata": []}));

    assert_eq!(
        server
            .code(
                "del_room_metadata",
                json!({"RoomId": "r", "Keys": ["zz", "yy"]})
            )
            .await,
        100503
    );
    server
        .ok(
            "del_room_metadata",
            json!({"RoomId": "r", "Keys": ["a", "zz"]}),
        )
        .await;
    assert_eq!(
        keys_of(
            &server
                .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
                .await
        ),
        ["b"]
    );
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    assert_eq!(
        server
            .code("del_room_metadata", json!({"RoomId": "r", "Keys": eleven}))
            .await,
        100500
    );

    for command in [
        "get_room_metadata",
        "set_room_metadata",
        "del_room_metadata",
    ] {
        let body =
            json!({"RoomId": "missing", "Keys": ["a"], "Metadata": [{"Key": "a", "Value": "v"}]});
        assert_eq!(server.code(command, body).await, 100004, "{command}");
    }
}

#[tokio::test]
async fn metadata_limits_and_all_or_nothing() {
    let server = server_with_room("r").await;
    let value = |n: usize| "v".repeat(n);
    server
        .ok(
            "set_room_metadata",
            json!({"RoomId": "r", "Metadata": [{"Key": "k".repeat(50), "Value": value(2048)}]}),
        )
        .await;
    let before = server
        .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
        .await;

    // A value over 2048 bytes fails the whole request, its valid neighbours included.
    let body = json!({"RoomId": "r", "Metadata": [{"Key": "ok", "Value": "x"}, {"Key": "big", "Value": value(2049)}]});
    assert_eq!(server.code("set_room_metadata", body).await, 100501);
    // Multi-byte characters count as bytes: 683 × 3 bytes = 2049.
    let body = json!({"RoomId": "r", "Metadata": [{"Key": "big", "Value": "€".repeat(683)}]});
    assert_eq!(server.code("set_room_metadata", body).await, 100501);
    let eleven: Vec<Value> = (0..10)
        .map(|i| json!({"Key": format!("k{i}"), "Value": ""}))
        .collect();
    assert_eq!(
        server
            .code(
                "set_room_metadata",
                json!({"RoomId": "r", "Metadata": eleven})
            )
            .await,
        100500
    );
    let big: Vec<Value> = (0..7)
        .map(|i| json!({"Key": format!("k{i}"), "Value": value(2048)}))
        .collect();
    server
        .ok("set_room_metadata", json!({"RoomId": "r", "Metadata": big}))
        .await;
    let total_now = 8 * 2048;
    assert_eq!(total_now, 16384);
    assert_eq!(
        server
            .code(
                "set_room_metadata",
                json!({"RoomId": "r", "Metadata": [{"Key": "one-more", "Value": "x"}]})
            )
            .await,
        100502
    );
    let after = server
        .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
        .await;
    assert_eq!(keys_of(&after).len(), 8);
    assert!(keys_of(&after).contains(&"k".repeat(50)));
    assert_ne!(before, after);

    for bad in [
        json!({"RoomId": "r"}),
        json!({"RoomId": "r", "Metadata": []}),
        json!({"RoomId": "r", "Metadata": {"Key": "a", "Value": "b"}}),
        json!({"RoomId": "r", "Metadata": ["a"]}),
        json!({"RoomId": "r", "Metadata": [{"Key": "", "Value": "b"}]}),
        json!({"RoomId": "r", "Metadata": [{"Key": "k".repeat(51), "Value": "b"}]}),
        json!({"RoomId": "r", "Metadata": [{"Key": 1, "Value": "b"}]}),
        json!({"RoomId": "r", "Metadata": [{"Key": "a", "Value": 2}]}),
        json!({"RoomId": "r", "Metadata": [{"Key": "a", "Value": null}]}),
        json!({"Metadata": [{"Key": "a", "Value": "b"}]}),
    ] {
        assert_eq!(
            server.code("set_room_metadata", bad.clone()).await,
            100002,
            "{bad}"
        );
    }
    for bad in [
        json!({"RoomId": "r"}),
        json!({"RoomId": "r", "Keys": []}),
        json!({"RoomId": "r", "Keys": "a"}),
        json!({"RoomId": "r", "Keys": [1]}),
    ] {
        assert_eq!(
            server.code("del_room_metadata", bad.clone()).await,
            100002,
            "{bad}"
        );
    }
    for bad in [
        json!({"RoomId": "r"}),
        json!({"RoomId": "r", "Keys": {}}),
        json!({"RoomId": 7, "Keys": []}),
    ] {
        assert_eq!(
            server.code("get_room_metadata", bad.clone()).await,
            100002,
            "{bad}"
        );
    }
    let unchanged = server
        .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
        .await;
    assert_eq!(unchanged, after);
}

#[tokio::test]
async fn destroy_removes_metadata() {
    let server = server_with_room("r").await;
    server
        .ok(
            "set_room_metadata",
            json!({"RoomId": "r", "Metadata": [{"Key": "a", "Value": "1"}]}),
        )
        .await;
    server.ok("destroy_room", json!({"RoomId": "r"})).await;
    server.clock.advance(std::time::Duration::from_secs(1));
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r"}}))
        .await;
    assert_eq!(
        server
            .ok("get_room_metadata", json!({"RoomId": "r", "Keys": []}))
            .await,
        json!({"Metadata": []})
    );
}

#[tokio::test]
async fn metadata_writes_may_be_compare_and_set_on_the_revision() {
    let server = TestServer::new().await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r"}}))
        .await;
    let get = |with| json!({"RoomId": "r", "Keys": [], "WithRevision": with});
    assert_eq!(
        server.ok("get_room_metadata", get(true)).await,
        json!({"Metadata": [], "Revision": 0})
    );
    // Without the extension, Tencent's answer exactly.
    assert_eq!(
        server.ok("get_room_metadata", get(false)).await,
        json!({"Metadata": []})
    );
    let set = |expected: i64| json!({"RoomId": "r", "Metadata": [{"Key": "k", "Value": expected.to_string()}], "ExpectedRevision": expected});
    assert_eq!(server.code("set_room_metadata", set(1)).await, 190001);
    assert_eq!(server.code("set_room_metadata", set(-1)).await, 100002);
    server.ok("set_room_metadata", set(0)).await;
    assert_eq!(server.code("set_room_metadata", set(0)).await, 190001);
    let answer = server.ok("get_room_metadata", get(true)).await;
    assert_eq!(
        answer,
        json!({"Metadata": [{"Key": "k", "Value": "0"}], "Revision": 1})
    );
    let delete =
        |expected: i64| json!({"RoomId": "r", "Keys": ["k"], "ExpectedRevision": expected});
    assert_eq!(server.code("del_room_metadata", delete(0)).await, 190001);
    server.ok("del_room_metadata", delete(1)).await;
    // The room's own rules still come first: a missing room is 100004 whatever the revision.
    let missing = json!({"RoomId": "nope", "Keys": ["k"], "ExpectedRevision": 0});
    assert_eq!(server.code("del_room_metadata", missing).await, 100004);

    // Over the real-time gateway: `if_revision`, and the revision in the answers.
    let mut owner = server.connect(ADMIN).await;
    let read = within(owner.request("get_metadata", json!({"room": "r"})))
        .await
        .unwrap();
    assert_eq!(read, json!({"metadata": {}, "revision": 2}));
    let stale = json!({"room": "r", "metadata": {"k": "v"}, "if_revision": 1});
    let error = within(owner.request("set_metadata", stale))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 190001);
    let fresh = json!({"room": "r", "metadata": {"k": "v"}, "if_revision": 2});
    let written = within(owner.request("set_metadata", fresh)).await.unwrap();
    assert_eq!(written["revision"], 3);
}
