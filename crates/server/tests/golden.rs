//! Golden answers: the whole answer of every command, and of each family of failure, byte for
//! byte: the envelope's field order, `Response`'s field order, JSON types and string escapes
//! (docs/behaviour.md §1, §2, §5, §6 and §7). Clients must not depend on field order, but
//! liveroom answers in the order of Tencent's samples, and a change of it (or of any byte) has
//! to be a deliberate one. Only the `RequestId` varies: its shape is checked and it is replaced
//! by `<ID>` before comparing. The clock is the harness's manual one, so `CreateTime` is
//! `START` (1700000000) plus what a test advances.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;

/// The bare success envelope, in Tencent's field order.
const OK: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>"}"#;

/// A `create_room` body that sets every field `get_room_info` answers.
const EVERY_FIELD: &str = r#"{"RoomInfo":{"RoomId":"live-room","RoomType":"Live","RoomName":"live name","Owner_Account":"anchor1","CoverURL":"cover url","IsMessageDisabled":true,"Category":[1,2,3],"IsPublicVisible":true,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":8,"MaxMemberCount":300,"ActivityStatus":1,"Notice":"notice","IsUnlimitedRoomEnabled":true,"SeatLayoutTemplateId":600,"SeatTemplate":"VideoDynamicGrid9Seats","UnknownField":{"ignored":true}}}"#;

/// Runs a step a golden answer depends on, and checks that it succeeded.
async fn given(server: &TestServer, command: &str, body: &str) {
    let answer = server.answer(command, body).await;
    assert!(
        answer.starts_with(r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"#),
        "{command}: {answer}"
    );
}

/// Compares a whole answer (its `RequestId` replaced) with the expected bytes.
#[track_caller]
fn check(actual: String, expected: &str) {
    assert_eq!(actual, expected);
}

/// `create_room` answers `Response.RoomId`, whatever else the request sets.
#[tokio::test]
async fn create_room() {
    let server = TestServer::new().await;
    check(
        server.answer("create_room", EVERY_FIELD).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RoomId":"live-room"}}"#,
    );
    check(
        server
            .answer("create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RoomId":"r1"}}"#,
    );
}

/// `get_room_info` of a room with every field set: all of `RoomInfo`, in order, with its types
/// (`SeatTemplate` and `IsUnlimitedRoomEnabled` last, present because they were set).
#[tokio::test]
async fn get_room_info_with_every_field_set() {
    let server = TestServer::new().await;
    given(&server, "create_room", EVERY_FIELD).await;
    check(
        server
            .answer("get_room_info", r#"{"RoomId":"live-room"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RoomInfo":{"RoomId":"live-room","RoomName":"live name","RoomType":"Live","Owner_Account":"anchor1","CreateTime":1700000000,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":8,"MaxMemberCount":300,"IsMessageDisabled":true,"CoverURL":"cover url","Category":[1,2,3],"ActivityStatus":1,"ViewCount":0,"IsPublicVisible":true,"Notice":"notice","SeatTemplate":"VideoDynamicGrid9Seats","IsUnlimitedRoomEnabled":true}}}"#,
    );
}

/// `get_room_info` of a room created with only its RoomId: the defaults of docs/behaviour.md §6,
/// without `SeatTemplate` and `IsUnlimitedRoomEnabled`.
#[tokio::test]
async fn get_room_info_with_defaults() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    check(
        server.answer("get_room_info", r#"{"RoomId":"r1"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RoomInfo":{"RoomId":"r1","RoomName":"r1","RoomType":"Live","Owner_Account":"administrator","CreateTime":1700000000,"IsSeatEnabled":true,"TakeSeatMode":"FreeToTake","MaxSeatCount":9,"MaxMemberCount":0,"IsMessageDisabled":false,"CoverURL":"","Category":[],"ActivityStatus":0,"ViewCount":0,"IsPublicVisible":true,"Notice":""}}}"#,
    );
}

/// `update_room_info` answers the bare envelope; the fields named change, the others stay.
#[tokio::test]
async fn update_room_info() {
    let server = TestServer::new().await;
    given(&server, "create_room", EVERY_FIELD).await;
    check(
        server
            .answer(
                "update_room_info",
                r#"{"RoomInfo":{"RoomId":"live-room","RoomName":"rname-123","MaxMemberCount":7,"IsMessageDisabled":false,"CoverURL":"https://xxxx.png","Category":[4],"ActivityStatus":2,"IsPublicVisible":false,"TakeSeatMode":"FreeToTake","Notice":"hello"}}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_room_info", r#"{"RoomId":"live-room"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RoomInfo":{"RoomId":"live-room","RoomName":"rname-123","RoomType":"Live","Owner_Account":"anchor1","CreateTime":1700000000,"IsSeatEnabled":true,"TakeSeatMode":"FreeToTake","MaxSeatCount":8,"MaxMemberCount":7,"IsMessageDisabled":false,"CoverURL":"https://xxxx.png","Category":[4],"ActivityStatus":2,"ViewCount":0,"IsPublicVisible":false,"Notice":"hello","SeatTemplate":"VideoDynamicGrid9Seats","IsUnlimitedRoomEnabled":true}}}"#,
    );
}

/// `destroy_room` answers `Response.Statistic`, all zeros.
#[tokio::test]
async fn destroy_room() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    check(
        server.answer("destroy_room", r#"{"RoomId":"r1"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Statistic":{"TotalViewers":0,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0}}}"#,
    );
}

/// `get_room_stats` and its console name `get_room_statistic`: the room's entries as
/// `TotalViewers` and its messages as `TotalMsgCount`, gifts and likes 0 until liveroom records
/// them; `destroy_room` answers the same totals, without `TotalMsgCount` (docs/behaviour.md
/// §14).
#[tokio::test]
async fn get_room_stats() {
    let store = liveroom_store::MemoryStore::new();
    let room =
        liveroom_domain::NewRoom::validate("seen".into(), None, None, ADMIN, Default::default())
            .unwrap()
            .into_room(START);
    let seen = liveroom_domain::Room {
        view_count: 7,
        ..room
    };
    store
        .import_rooms(APP, [(seen, Default::default())])
        .await
        .unwrap();
    let id = liveroom_domain::RoomId::parse("seen".into()).unwrap();
    let counted = liveroom_domain::RoomStats {
        viewers: 2,
        messages: 45,
    };
    liveroom_store::RoomStore::count(&store, APP, &id, counted)
        .await
        .unwrap();
    let server = TestServer::start(store, config()).await;
    for command in ["get_room_stats", "get_room_statistic"] {
        check(
            server.answer(command, r#"{"RoomId":"seen"}"#).await,
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"TotalViewers":9,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0,"TotalMsgCount":45}}"#,
        );
        check(
            server.answer(command, r#"{"RoomId":"missing"}"#).await,
            r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
        );
        check(
            server.answer(command, r#"{}"#).await,
            r#"{"ActionStatus":"FAIL","ErrorInfo":"missing required field RoomId","ErrorCode":100002,"RequestId":"<ID>"}"#,
        );
    }
    // destroy_room answers the same totals, as the room goes.
    check(
        server.answer("destroy_room", r#"{"RoomId":"seen"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Statistic":{"TotalViewers":9,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0}}}"#,
    );
    check(
        server
            .answer("get_room_stats", r#"{"RoomId":"seen"}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
    );
}

/// The moderation commands (docs/behaviour.md §14): `mute_member`, `ban_member` and
/// `unban_member` answer the bare envelope; the lists answer in account order, with their
/// Unix-second ends, only what is in force.
#[tokio::test]
async fn moderation_commands() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"test"}}"#).await;
    let empty = [
        (
            "get_muted_member_list",
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"MutedAccountList":[]}}"#,
        ),
        (
            "get_banned_member_list",
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"BannedAccountList":[],"NextOffset":0}}"#,
        ),
    ];
    for (command, answer) in empty {
        check(server.answer(command, r#"{"RoomId":"test"}"#).await, answer);
    }
    check(
        server
            .answer(
                "mute_member",
                r#"{"RoomId":"test","MemberList_Account":["user2","user1"],"MuteTime":3600}"#,
            )
            .await,
        OK,
    );
    // The console's paging fields are ignored.
    check(
        server
            .answer(
                "get_muted_member_list",
                r#"{"RoomId":"test","Next":"","Count":10,"Offset":0,"Limit":10}"#,
            )
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"MutedAccountList":[{"Member_Account":"user1","MutedUntil":1700003600},{"Member_Account":"user2","MutedUntil":1700003600}]}}"#,
    );
    check(
        server
            .answer(
                "ban_member",
                r#"{"RoomId":"test","MemberList_Account":["user2","user1"],"Reason":"","Duration":3600}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer(
                "get_banned_member_list",
                r#"{"RoomId":"test","Offset":0,"Limit":10}"#,
            )
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"BannedAccountList":[{"Member_Account":"user1","BannedUntil":1700003600},{"Member_Account":"user2","BannedUntil":1700003600}],"NextOffset":0}}"#,
    );
    check(
        server
            .answer("get_banned_member_list", r#"{"RoomId":"test","Limit":1}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"BannedAccountList":[{"Member_Account":"user1","BannedUntil":1700003600}],"NextOffset":1}}"#,
    );
    check(
        server
            .answer(
                "unban_member",
                r#"{"RoomId":"test","MemberList_Account":["user1","user2"]}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer(
                "mute_member",
                r#"{"RoomId":"test","MemberList_Account":["user1"],"MuteTime":0}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_muted_member_list", r#"{"RoomId":"test"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"MutedAccountList":[{"Member_Account":"user2","MutedUntil":1700003600}]}}"#,
    );
}

/// `get_admin_list`, `modify_admin`, `add_robot`, `del_robot` and `get_robot`
/// (docs/behaviour.md §14).
#[tokio::test]
async fn admin_and_robot_commands() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"mix1"}}"#).await;
    given(
        &server,
        "im_open_login_svc/multiaccount_import",
        r#"{"Accounts":["brennanli","brennanli2"]}"#,
    )
    .await;
    check(
        server
            .answer("get_admin_list", r#"{"RoomId":"mix1"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Admin_Account":[]}}"#,
    );
    check(
        server
            .answer(
                "modify_admin",
                r#"{"RoomId":"mix1","Admin_Account":["user2","user1"],"OpType":"add"}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_admin_list", r#"{"RoomId":"mix1"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Admin_Account":["user1","user2"]}}"#,
    );
    check(
        server
            .answer(
                "modify_admin",
                r#"{"RoomId":"mix1","Admin_Account":["user1"],"OpType":"delete"}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_admin_list", r#"{"RoomId":"mix1"}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Admin_Account":["user2"]}}"#,
    );
    check(
        server.answer("get_robot", r#"{"RoomId":"mix1"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RobotList_Account":[]}}"#,
    );
    check(
        server
            .answer(
                "add_robot",
                r#"{"RoomId":"mix1","RobotList_Account":["brennanli2","brennanli"]}"#,
            )
            .await,
        OK,
    );
    check(
        server.answer("get_robot", r#"{"RoomId":"mix1"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RobotList_Account":["brennanli","brennanli2"]}}"#,
    );
    check(
        server
            .answer(
                "del_robot",
                r#"{"RoomId":"mix1","RobotList_Account":["brennanli"]}"#,
            )
            .await,
        OK,
    );
    check(
        server.answer("get_robot", r#"{"RoomId":"mix1"}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"RobotList_Account":["brennanli2"]}}"#,
    );
}

/// One answer per kind of failure of the room-people commands (docs/behaviour.md §14).
#[tokio::test]
async fn room_people_failures() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    let fail = |code: u32, info: &str| {
        format!(
            r#"{{"ActionStatus":"FAIL","ErrorInfo":"{info}","ErrorCode":{code},"RequestId":"<ID>"}}"#
        )
    };
    let many = (0..21)
        .map(|i| format!("\"u{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    let cases = [
        (
            "mute_member",
            r#"{"RoomId":"nope","MemberList_Account":["a"],"MuteTime":60}"#.to_owned(),
            fail(100004, "room does not exist"),
        ),
        (
            "mute_member",
            r#"{"MemberList_Account":["a"],"MuteTime":60}"#.to_owned(),
            fail(100002, "missing required field RoomId"),
        ),
        (
            "mute_member",
            r#"{"RoomId":"r1","MuteTime":60}"#.to_owned(),
            fail(100002, "missing required field MemberList_Account"),
        ),
        (
            "mute_member",
            format!(r#"{{"RoomId":"r1","MemberList_Account":[{many}],"MuteTime":60}}"#),
            fail(
                100002,
                "invalid MemberList_Account: must name 1 to 20 accounts",
            ),
        ),
        (
            "mute_member",
            r#"{"RoomId":"r1","MemberList_Account":["a"]}"#.to_owned(),
            fail(100002, "missing required field MuteTime"),
        ),
        (
            "mute_member",
            r#"{"RoomId":"r1","MemberList_Account":["a"],"MuteTime":-1}"#.to_owned(),
            fail(100002, "invalid MuteTime: must be 0 to 315360000 seconds"),
        ),
        (
            "ban_member",
            r#"{"RoomId":"r1","MemberList_Account":["a"],"Duration":0}"#.to_owned(),
            fail(100002, "invalid Duration: must be 1 to 315360000 seconds"),
        ),
        (
            "ban_member",
            format!(
                r#"{{"RoomId":"r1","MemberList_Account":["a"],"Duration":60,"Reason":"{}"}}"#,
                "r".repeat(201)
            ),
            fail(100002, "invalid Reason: must be at most 200 bytes"),
        ),
        (
            "ban_member",
            r#"{"RoomId":"r1","MemberList_Account":[""],"Duration":60}"#.to_owned(),
            fail(100002, "invalid MemberList_Account: must be 1 to 32 bytes"),
        ),
        (
            "unban_member",
            r#"{"RoomId":"r1","MemberList_Account":[]}"#.to_owned(),
            fail(
                100002,
                "invalid MemberList_Account: must name 1 to 20 accounts",
            ),
        ),
        (
            "get_banned_member_list",
            r#"{"RoomId":"r1","Limit":101}"#.to_owned(),
            fail(100002, "invalid Limit: must be 1 to 100"),
        ),
        (
            "get_banned_member_list",
            r#"{"RoomId":"r1","Offset":-1}"#.to_owned(),
            fail(100002, "invalid Offset: must be 0 or more"),
        ),
        (
            "modify_admin",
            r#"{"RoomId":"r1","Admin_Account":["a"],"OpType":"set"}"#.to_owned(),
            fail(100002, r#"invalid OpType: must be \"add\" or \"delete\""#),
        ),
        (
            "add_robot",
            r#"{"RoomId":"r1","RobotList_Account":["ghost"]}"#.to_owned(),
            fail(
                100002,
                r#"invalid RobotList_Account: \"ghost\" is not an imported account"#,
            ),
        ),
        (
            "get_robot",
            r#"{"RoomId":"nope"}"#.to_owned(),
            fail(100004, "room does not exist"),
        ),
    ];
    for (command, body, expected) in cases {
        check(server.answer(command, &body).await, &expected);
    }
    given(
        &server,
        "modify_admin",
        r#"{"RoomId":"r1","Admin_Account":["a1","a2","a3","a4","a5"],"OpType":"add"}"#,
    )
    .await;
    check(
        server
            .answer(
                "modify_admin",
                r#"{"RoomId":"r1","Admin_Account":["a6"],"OpType":"add"}"#,
            )
            .await,
        &fail(
            100002,
            "invalid Admin_Account: a room holds at most 5 administrators",
        ),
    );
}

/// `get_room_list`: an empty list, then two pages (`Next` a cursor, then `""`).
#[tokio::test]
async fn get_room_list() {
    let server = TestServer::new().await;
    check(
        server.answer("get_room_list", r#"{}"#).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Next":"","RoomList":[]}}"#,
    );
    given(&server, "create_room", EVERY_FIELD).await;
    server.clock.advance(Duration::from_secs(1));
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r2","RoomName":"second","CoverURL":"c2","Category":[9],"ActivityStatus":5}}"#).await;
    given(
        &server,
        "create_room",
        r#"{"RoomInfo":{"RoomId":"r3","IsPublicVisible":false}}"#,
    )
    .await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r4"}}"#).await;
    // r3 is not public; the newest rooms come first.
    check(
        server
            .answer("get_room_list", r#"{"Next":"","Count":2}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Next":"1700000001-0-7234","RoomList":[{"RoomId":"r2","RoomName":"second","Owner_Account":"administrator","CoverURL":"c2","Category":[9],"CreateTime":1700000001,"ActivityStatus":5,"ViewCount":0},{"RoomId":"r4","RoomName":"r4","Owner_Account":"administrator","CoverURL":"","Category":[],"CreateTime":1700000001,"ActivityStatus":0,"ViewCount":0}]}}"#,
    );
    check(
        server
            .answer("get_room_list", r#"{"Next":"1700000001-0-7234","Count":2}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Next":"","RoomList":[{"RoomId":"live-room","RoomName":"live name","Owner_Account":"anchor1","CoverURL":"cover url","Category":[1,2,3],"CreateTime":1700000000,"ActivityStatus":1,"ViewCount":0}]}}"#,
    );
}

/// `get_room_metadata` (all keys in byte order; named keys in request order), `set_room_metadata`
/// and `del_room_metadata` (bare envelopes), and how a value with quotes, backslashes, control
/// characters and non-ASCII text is escaped.
#[tokio::test]
async fn metadata_commands() {
    let server = TestServer::new().await;
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    check(
        server
            .answer("get_room_metadata", r#"{"RoomId":"r1","Keys":[]}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Metadata":[]}}"#,
    );
    check(
        server
            .answer(
                "set_room_metadata",
                r#"{"RoomId":"r1","Metadata":[{"Key":"key2","Value":"value2"},{"Key":"key1","Value":"value1"},{"Key":"odd","Value":"q\" b\\ € \n\t\u0001 </a> \ud83d\ude00"}]}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_room_metadata", r#"{"RoomId":"r1","Keys":[]}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Metadata":[{"Key":"key1","Value":"value1"},{"Key":"key2","Value":"value2"},{"Key":"odd","Value":"q\" b\\ € \n\t\u0001 </a> 😀"}]}}"#,
    );
    check(
        server
            .answer(
                "get_room_metadata",
                r#"{"RoomId":"r1","Keys":["key2","missing","key1"]}"#,
            )
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Metadata":[{"Key":"key2","Value":"value2"},{"Key":"key1","Value":"value1"}]}}"#,
    );
    check(
        server
            .answer(
                "del_room_metadata",
                r#"{"RoomId":"r1","Keys":["key1","odd","missing"]}"#,
            )
            .await,
        OK,
    );
    check(
        server
            .answer("get_room_metadata", r#"{"RoomId":"r1","Keys":[]}"#)
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Metadata":[{"Key":"key2","Value":"value2"}]}}"#,
    );
}

/// One answer per failure of the gateway (docs/behaviour.md §1 and §2): unknown command,
/// method, body, UserSig, identifier.
#[tokio::test]
async fn gateway_failures() {
    let server = TestServer::new().await;
    let body = r#"{"RoomId":"r1"}"#;
    let app = APP.to_string();
    let query = |sdkappid: &str, identifier: &str, usersig: &str| {
        format!(
            "sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&random=99999999&contenttype=json"
        )
    };
    let post = async |command: &str, query: &str, body: &str| {
        with_placeholder_id(
            &server
                .bytes_with(
                    Method::POST,
                    &server.url_with(command, query),
                    body.to_owned(),
                )
                .await,
        )
    };
    // 60009: a command that does not exist.
    check(
        server.answer("no_such_command", body).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"unknown service or command","ErrorCode":60009,"RequestId":"<ID>"}"#,
    );
    // 60002: any method but POST.
    check(
        with_placeholder_id(
            &server
                .bytes_with(Method::GET, &server.url("get_room_info"), "")
                .await,
        ),
        r#"{"ActionStatus":"FAIL","ErrorInfo":"the method must be POST","ErrorCode":60002,"RequestId":"<ID>"}"#,
    );
    // 60003: a body that is not a JSON object.
    check(
        server.answer("get_room_info", r#"{"RoomId":"#).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"request body is not valid JSON","ErrorCode":60003,"RequestId":"<ID>"}"#,
    );
    check(
        server.answer("get_room_info", "[]").await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"request body is not a JSON object","ErrorCode":60003,"RequestId":"<ID>"}"#,
    );
    check(
        server.answer("get_room_info", "").await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"request body is empty; send {} when a command needs no fields","ErrorCode":60003,"RequestId":"<ID>"}"#,
    );
    // 70003: a UserSig that does not decode.
    check(
        post("get_room_info", &query(&app, ADMIN, "not-a-usersig"), body).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"usersig cannot be decoded: not valid base64","ErrorCode":70003,"RequestId":"<ID>"}"#,
    );
    // 70002: an empty UserSig.
    check(
        post("get_room_info", &query(&app, ADMIN, ""), body).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"usersig is missing","ErrorCode":70002,"RequestId":"<ID>"}"#,
    );
    // 70013: a UserSig of another identifier.
    check(
        post(
            "get_room_info",
            &query(&app, ADMIN, &server.sig("admin2")),
            body,
        )
        .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"usersig was made for another identifier","ErrorCode":70013,"RequestId":"<ID>"}"#,
    );
    // 60010: a valid UserSig of someone who is not an App administrator.
    check(
        post(
            "get_room_info",
            &query(&app, "someone", &server.sig("someone")),
            body,
        )
        .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"identifier is not an App administrator","ErrorCode":60010,"RequestId":"<ID>"}"#,
    );
    // 60012: no sdkappid.
    check(
        post(
            "get_room_info",
            &format!(
                "identifier={ADMIN}&usersig={}&random=1&contenttype=json",
                server.sig(ADMIN)
            ),
            body,
        )
        .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"sdkappid is missing","ErrorCode":60012,"RequestId":"<ID>"}"#,
    );
    // 60006: an sdkappid that is not configured.
    check(
        post(
            "get_room_info",
            &query("1400000999", ADMIN, &server.sig(ADMIN)),
            body,
        )
        .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"sdkappid is not a configured app","ErrorCode":60006,"RequestId":"<ID>"}"#,
    );
}

/// One answer per failure of the room commands (docs/behaviour.md §6).
#[tokio::test]
async fn room_failures() {
    let server = TestServer::new().await;
    // 100002, naming the field.
    check(
        server
            .answer(
                "create_room",
                r#"{"RoomInfo":{"RoomId":"r1","RoomType":"Voice"}}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid RoomType: must be Live","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer("create_room", r#"{"RoomInfo":{"RoomName":"n"}}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"missing required field RoomId","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer(
                "update_room_info",
                r#"{"RoomInfo":{"RoomId":"r1","MaxSeatCount":17}}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid MaxSeatCount: must be from 1 to 16","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server.answer("get_room_list", r#"{"Count":21}"#).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Count: must be from 1 to 20","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server.answer("get_room_list", r#"{"Next":"nope"}"#).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Next: not a cursor from get_room_list","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    // 100004.
    check(
        server.answer("get_room_info", r#"{"RoomId":"r1"}"#).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
    );
    check(
        server.answer("destroy_room", r#"{"RoomId":"r1"}"#).await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer("update_room_info", r#"{"RoomInfo":{"RoomId":"r1"}}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
    );
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    // 100010 and 100003 however soon after the creation they come (docs/behaviour.md §5).
    // 100010: exists, same owner (the caller by default).
    check(
        server
            .answer("create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room already exists","ErrorCode":100010,"RequestId":"<ID>"}"#,
    );
    // 100003: exists, another owner.
    check(
        server
            .answer(
                "create_room",
                r#"{"RoomInfo":{"RoomId":"r1","Owner_Account":"someone"}}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room already exists","ErrorCode":100003,"RequestId":"<ID>"}"#,
    );
    // 100012: destroyed and created again within the second (docs/behaviour.md §5).
    given(&server, "destroy_room", r#"{"RoomId":"r1"}"#).await;
    check(
        server
            .answer("create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"the same RoomId can be created at most once per second","ErrorCode":100012,"RequestId":"<ID>"}"#,
    );
}

/// 60007: over a command's rate limit (docs/behaviour.md §5); `get_room_list` allows 10 a
/// second, and the clock does not move.
#[tokio::test]
async fn rate_limit_failure() {
    let server = TestServer::new().await;
    for _ in 0..10 {
        check(
            server.answer("get_room_list", "{}").await,
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","Response":{"Next":"","RoomList":[]}}"#,
        );
    }
    check(
        server.answer("get_room_list", "{}").await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"get_room_list is limited to 10 requests per second","ErrorCode":60007,"RequestId":"<ID>"}"#,
    );
}

/// One answer per failure of the metadata commands (docs/behaviour.md §7).
#[tokio::test]
async fn metadata_failures() {
    let server = TestServer::new().await;
    // 100004.
    check(
        server
            .answer("get_room_metadata", r#"{"RoomId":"r1","Keys":[]}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room does not exist","ErrorCode":100004,"RequestId":"<ID>"}"#,
    );
    given(&server, "create_room", r#"{"RoomInfo":{"RoomId":"r1"}}"#).await;
    // 100002, naming the field.
    check(
        server
            .answer("get_room_metadata", r#"{"RoomId":"r1"}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"missing required field Keys","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer(
                "set_room_metadata",
                r#"{"RoomId":"r1","Metadata":[{"Key":"a","Value":2}]}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Value: must be a string","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer("del_room_metadata", r#"{"RoomId":"r1","Keys":[]}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Keys: must not be empty","ErrorCode":100002,"RequestId":"<ID>"}"#,
    );
    // 100500: more than 10 keys.
    let eleven: Vec<String> = (0..11)
        .map(|i| format!(r#"{{"Key":"k{i}","Value":""}}"#))
        .collect();
    check(
        server
            .answer(
                "set_room_metadata",
                &format!(r#"{{"RoomId":"r1","Metadata":[{}]}}"#, eleven.join(",")),
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room metadata would hold more than 10 keys","ErrorCode":100500,"RequestId":"<ID>"}"#,
    );
    // 100501: a value over 2048 bytes.
    check(
        server
            .answer(
                "set_room_metadata",
                &format!(
                    r#"{{"RoomId":"r1","Metadata":[{{"Key":"big","Value":"{}"}}]}}"#,
                    "v".repeat(2049)
                ),
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"value of key \"big\" is longer than 2048 bytes","ErrorCode":100501,"RequestId":"<ID>"}"#,
    );
    // 100502: all values over 16384 bytes.
    let nine: Vec<String> = (0..9)
        .map(|i| format!(r#"{{"Key":"k{i}","Value":"{}"}}"#, "v".repeat(2048)))
        .collect();
    check(
        server
            .answer(
                "set_room_metadata",
                &format!(r#"{{"RoomId":"r1","Metadata":[{}]}}"#, nine.join(",")),
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"room metadata values would exceed 16384 bytes in total","ErrorCode":100502,"RequestId":"<ID>"}"#,
    );
    // 100503: none of the keys to delete exists.
    check(
        server
            .answer("del_room_metadata", r#"{"RoomId":"r1","Keys":["x","y"]}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"none of the keys exists","ErrorCode":100503,"RequestId":"<ID>"}"#,
    );
}

/// Every answer, success or failure, carries its own `RequestId`.
#[tokio::test]
async fn request_ids_differ() {
    let server = TestServer::new().await;
    let mut ids = Vec::new();
    for command in ["get_room_list", "get_room_info", "no_such_command"] {
        let answer = server
            .bytes_with(Method::POST, &server.url(command), "{}")
            .await;
        with_placeholder_id(&answer);
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        ids.push(answer["RequestId"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

/// The shape check itself, on Tencent's documented examples and near misses.
#[test]
fn request_id_shape() {
    assert!(is_request_id(
        "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-52720"
    ));
    assert!(is_request_id("Id-1b30123ad8a149b0aa225d8596999714-O-Seq-0"));
    for bad in [
        "Id-8C9858F01E954611AE2D4C1B1ED7D583-O-Seq-52720",
        "Id-8c9858f01e954611ae2d4c1b1ed7d58-O-Seq-52720",
        "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-",
        "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq--1",
        "Id-8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-1a",
        "8c9858f01e954611ae2d4c1b1ed7d583-O-Seq-52720",
        "requestId-123-456",
    ] {
        assert!(!is_request_id(bad), "{bad}");
    }
}

/// `account_import` answers the bare envelope; importing the account again answers 70102 and
/// keeps the first profile (docs/behaviour.md §13).
#[tokio::test]
async fn account_import() {
    let server = TestServer::new().await;
    let body = r#"{"UserID":"anchor1","Nick":"Ann \"A\"","FaceUrl":"https://x/a.png"}"#;
    check(
        server
            .answer("im_open_login_svc/account_import", body)
            .await,
        OK,
    );
    check(
        server
            .answer(
                "im_open_login_svc/account_import",
                r#"{"UserID":"anchor1"}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"account already exists","ErrorCode":70102,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer("im_open_login_svc/account_import", r#"{"UserID":""}"#)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid UserID: must be 1 to 32 bytes","ErrorCode":70402,"RequestId":"<ID>"}"#,
    );
    check(
        server
            .answer(
                "im_open_login_svc/account_import",
                r#"{"UserID":"u","Nick":1}"#,
            )
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Nick: must be a string","ErrorCode":70402,"RequestId":"<ID>"}"#,
    );
}

/// `multiaccount_import` answers `FailAccounts` beside the envelope's fields, as Chat does:
/// the entries that are no valid UserID. Existing accounts are no failure.
#[tokio::test]
async fn multiaccount_import() {
    let server = TestServer::new().await;
    given(
        &server,
        "im_open_login_svc/account_import",
        r#"{"UserID":"a"}"#,
    )
    .await;
    let long = "x".repeat(33);
    check(
        server
            .answer(
                "im_open_login_svc/multiaccount_import",
                &format!(r#"{{"Accounts":["a","b","{long}",""]}}"#),
            )
            .await,
        &format!(
            r#"{{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","FailAccounts":["{long}",""]}}"#
        ),
    );
    let too_many = serde_json::json!({ "Accounts": vec!["u"; 101] }).to_string();
    check(
        server
            .answer("im_open_login_svc/multiaccount_import", &too_many)
            .await,
        r#"{"ActionStatus":"FAIL","ErrorInfo":"invalid Accounts: must hold 1 to 100 entries","ErrorCode":70402,"RequestId":"<ID>"}"#,
    );
}

/// `portrait_set` answers the bare envelope; `portrait_get` answers `UserProfileItem` beside
/// the envelope's fields, the tags asked in their order with each value in the JSON type it was
/// set with, unset tags left out, and 70107 as the `ResultCode` of an account never imported.
#[tokio::test]
async fn portrait_set_and_get() {
    let server = TestServer::new().await;
    given(
        &server,
        "im_open_login_svc/account_import",
        r#"{"UserID":"anchor1","Nick":"Ann"}"#,
    )
    .await;
    let set = r#"{"From_Account":"anchor1","ProfileItem":[{"Tag":"Tag_Profile_IM_Role","Value":3},{"Tag":"Tag_Profile_IM_Image","Value":"https://x/a.png"}]}"#;
    check(server.answer("profile/portrait_set", set).await, OK);
    let get = r#"{"To_Account":["anchor1","ghost"],"TagList":["Tag_Profile_IM_Role","Tag_Profile_IM_Nick","Tag_Profile_IM_Image"]}"#;
    check(
        server.answer("profile/portrait_get", get).await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","UserProfileItem":[{"To_Account":"anchor1","ProfileItem":[{"Tag":"Tag_Profile_IM_Role","Value":3},{"Tag":"Tag_Profile_IM_Nick","Value":"Ann"},{"Tag":"Tag_Profile_IM_Image","Value":"https://x/a.png"}],"ResultCode":0,"ResultInfo":""},{"To_Account":"ghost","ProfileItem":[],"ResultCode":70107,"ResultInfo":"account does not exist"}]}"#,
    );
    // A role given as a string is answered as a string.
    let set = r#"{"From_Account":"anchor1","ProfileItem":[{"Tag":"Tag_Profile_IM_Role","Value":"host"}]}"#;
    check(server.answer("profile/portrait_set", set).await, OK);
    check(
        server
            .answer(
                "profile/portrait_get",
                r#"{"To_Account":["anchor1"],"TagList":["Tag_Profile_IM_Role"]}"#,
            )
            .await,
        r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"<ID>","UserProfileItem":[{"To_Account":"anchor1","ProfileItem":[{"Tag":"Tag_Profile_IM_Role","Value":"host"}],"ResultCode":0,"ResultInfo":""}]}"#,
    );
}

/// The failures of the profile calls: an account never imported (70107), an unsupported tag,
/// a value of the wrong type or range, and list bounds (70402).
#[tokio::test]
async fn portrait_failures() {
    let server = TestServer::new().await;
    let fail = |code: u32, info: &str| {
        format!(
            r#"{{"ActionStatus":"FAIL","ErrorInfo":"{info}","ErrorCode":{code},"RequestId":"<ID>"}}"#
        )
    };
    let set = |value: &str| {
        format!(
            r#"{{"From_Account":"anchor1","ProfileItem":[{{"Tag":"Tag_Profile_IM_Role","Value":{value}}}]}}"#
        )
    };
    check(
        server.answer("profile/portrait_set", &set("1")).await,
        &fail(70107, "account does not exist"),
    );
    given(
        &server,
        "im_open_login_svc/account_import",
        r#"{"UserID":"anchor1"}"#,
    )
    .await;
    check(
        server.answer("profile/portrait_set", &set("-1")).await,
        &fail(
            70402,
            "invalid Tag_Profile_IM_Role: must be 0 to 4294967295",
        ),
    );
    check(
        server.answer("profile/portrait_set", &set("true")).await,
        &fail(
            70402,
            "invalid Tag_Profile_IM_Role: must be a string or a number",
        ),
    );
    check(
        server
            .answer(
                "profile/portrait_set",
                r#"{"From_Account":"anchor1","ProfileItem":[{"Tag":"Tag_Profile_IM_Nick","Value":7}]}"#,
            )
            .await,
        &fail(70402, "invalid Tag_Profile_IM_Nick: must be a string"),
    );
    check(
        server
            .answer(
                "profile/portrait_get",
                r#"{"To_Account":["anchor1"],"TagList":["Tag_Profile_IM_Gender"]}"#,
            )
            .await,
        &fail(
            70402,
            r#"invalid Tag: \"Tag_Profile_IM_Gender\" is not supported"#,
        ),
    );
    check(
        server
            .answer(
                "profile/portrait_get",
                r#"{"To_Account":[],"TagList":["Tag_Profile_IM_Nick"]}"#,
            )
            .await,
        &fail(70402, "invalid To_Account: must hold 1 to 100 entries"),
    );
}
