//! Black-box tests of a room's people over HTTP (docs/behaviour.md §14): mutes, bans,
//! administrators and robots — their field errors, limits, expiry on the server's clock,
//! paging, that a refused request changes nothing, the events each write appends, and that
//! they survive a restart. Whole answers, byte for byte, are in `golden.rs`.

mod common;

use std::time::Duration;

use common::*;
use liveroom_client::Mode;
use serde_json::{Value, json};

async fn server_with_room(room: &str) -> TestServer {
    let server = TestServer::new().await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": room}}))
        .await;
    server
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            if field.is_empty() {
                entry.as_str().unwrap().to_owned()
            } else {
                entry[field].as_str().unwrap().to_owned()
            }
        })
        .collect()
}

async fn muted(server: &TestServer, room: &str) -> Value {
    server
        .ok("get_muted_member_list", json!({"RoomId": room}))
        .await["MutedAccountList"]
        .clone()
}

async fn banned(server: &TestServer, room: &str) -> Value {
    server
        .ok("get_banned_member_list", json!({"RoomId": room}))
        .await["BannedAccountList"]
        .clone()
}

async fn admins(server: &TestServer, room: &str) -> Vec<String> {
    let answer = server.ok("get_admin_list", json!({"RoomId": room})).await;
    names(&answer["Admin_Account"], "")
}

async fn robots(server: &TestServer, room: &str) -> Vec<String> {
    let answer = server.ok("get_robot", json!({"RoomId": room})).await;
    names(&answer["RobotList_Account"], "")
}

/// A valid request of each command, for room `r`.
fn valid_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": 60}),
        ),
        ("get_muted_member_list", json!({"RoomId": "r"})),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": 60, "Reason": "x"}),
        ),
        (
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"]}),
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Offset": 0, "Limit": 10}),
        ),
        ("get_admin_list", json!({"RoomId": "r"})),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a"], "OpType": "add"}),
        ),
        (
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        ),
        (
            "del_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        ),
        ("get_robot", json!({"RoomId": "r"})),
        ("get_room_stats", json!({"RoomId": "r"})),
        ("get_room_statistic", json!({"RoomId": "r"})),
    ]
}

/// Every command answers 100004 for a missing room, and 100002 for a missing or mistyped
/// `RoomId` before it looks for the room.
#[tokio::test]
async fn missing_rooms_and_room_ids() {
    let server = TestServer::new().await;
    for (command, body) in valid_requests() {
        assert_eq!(
            server.code(command, body.clone()).await,
            100004,
            "{command}"
        );
        let mut without = body.clone();
        without.as_object_mut().unwrap().remove("RoomId");
        let answer = server.call(command, without).await;
        assert_eq!(code_of(&answer), 100002, "{command}");
        assert!(answer["ErrorInfo"].as_str().unwrap().contains("RoomId"));
        let mut mistyped = body;
        mistyped["RoomId"] = json!(5);
        assert_eq!(server.code(command, mistyped).await, 100002, "{command}");
    }
}

/// Each field error is 100002 naming the field, for a room that exists.
#[tokio::test]
async fn each_bad_field_names_itself() {
    let server = server_with_room("r").await;
    server
        .ok("im_open_login_svc/account_import", json!({"UserID": "bot"}))
        .await;
    let accounts_21: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "mute_member",
            json!({"RoomId": "r", "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": "a", "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": [1], "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": [], "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": accounts_21, "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["x".repeat(33)], "MuteTime": 60}),
            "MemberList_Account",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"]}),
            "MuteTime",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": "60"}),
            "MuteTime",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": 1.5}),
            "MuteTime",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": -1}),
            "MuteTime",
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": 315_360_001}),
            "MuteTime",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "Duration": 60}),
            "MemberList_Account",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": accounts_21, "Duration": 60}),
            "MemberList_Account",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"]}),
            "Duration",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": 0}),
            "Duration",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": -5}),
            "Duration",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": 315_360_001}),
            "Duration",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": 60, "Reason": 1}),
            "Reason",
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "Duration": 60, "Reason": "€".repeat(67)}),
            "Reason",
        ),
        ("unban_member", json!({"RoomId": "r"}), "MemberList_Account"),
        (
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": accounts_21}),
            "MemberList_Account",
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Limit": 0}),
            "Limit",
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Limit": 101}),
            "Limit",
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Limit": "10"}),
            "Limit",
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Offset": -1}),
            "Offset",
        ),
        (
            "get_banned_member_list",
            json!({"RoomId": "r", "Offset": "0"}),
            "Offset",
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "OpType": "add"}),
            "Admin_Account",
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": accounts_21, "OpType": "add"}),
            "Admin_Account",
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a"]}),
            "OpType",
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a"], "OpType": "Add"}),
            "OpType",
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a"], "OpType": 1}),
            "OpType",
        ),
        ("add_robot", json!({"RoomId": "r"}), "RobotList_Account"),
        (
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": accounts_21}),
            "RobotList_Account",
        ),
        (
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot", "never-imported"]}),
            "never-imported",
        ),
        (
            "del_robot",
            json!({"RoomId": "r", "RobotList_Account": []}),
            "RobotList_Account",
        ),
    ];
    for (command, body, named) in cases {
        let answer = server.call(command, body.clone()).await;
        assert_eq!(code_of(&answer), 100002, "{command} {body}: {answer}");
        let info = answer["ErrorInfo"].as_str().unwrap();
        assert!(info.contains(named), "{command} {body}: {info}");
    }
    // None of them changed anything.
    assert_eq!(muted(&server, "r").await, json!([]));
    assert_eq!(banned(&server, "r").await, json!([]));
    assert!(admins(&server, "r").await.is_empty());
    assert!(robots(&server, "r").await.is_empty());
    // The bounds themselves are accepted.
    let accounts_20: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    server
        .ok(
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": accounts_20, "Duration": 315_360_000, "Reason": "€".repeat(66)}),
        )
        .await;
    server
        .ok(
            "get_banned_member_list",
            json!({"RoomId": "r", "Limit": 100, "Offset": 1000}),
        )
        .await;
    // A missing room is 100004 before robots are looked up.
    assert_eq!(
        server
            .code(
                "add_robot",
                json!({"RoomId": "nope", "RobotList_Account": ["never-imported"]})
            )
            .await,
        100004
    );
}

/// Mutes end by themselves on the server's clock; a new mute replaces the old end; 0 unmutes.
#[tokio::test]
async fn mutes_expire_and_unmute() {
    let server = server_with_room("r").await;
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["b", "a", "b"], "MuteTime": 60}),
        )
        .await;
    server.clock.advance(Duration::from_secs(30));
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["c"], "MuteTime": 600}),
        )
        .await;
    assert_eq!(
        muted(&server, "r").await,
        json!([
            {"Member_Account": "a", "MutedUntil": START + 60},
            {"Member_Account": "b", "MutedUntil": START + 60},
            {"Member_Account": "c", "MutedUntil": START + 630},
        ])
    );
    // A mute again sets a new end, shorter or longer.
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["a"], "MuteTime": 10}),
        )
        .await;
    server.clock.advance(Duration::from_secs(10));
    // At its end second a mute is over.
    assert_eq!(
        names(&muted(&server, "r").await, "Member_Account"),
        ["b", "c"]
    );
    server.clock.advance(Duration::from_secs(20));
    assert_eq!(names(&muted(&server, "r").await, "Member_Account"), ["c"]);
    // Unmuting an account that is not muted is a success that changes nothing.
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["c", "zz"], "MuteTime": 0}),
        )
        .await;
    assert_eq!(muted(&server, "r").await, json!([]));
}

/// Bans end by themselves; unban lifts them; the list pages by `Offset`/`Limit` with
/// `NextOffset` 0 at the end; at most 1000 bans are in force, expired ones not counted.
#[tokio::test]
async fn bans_page_expire_and_are_bounded() {
    let server = server_with_room("r").await;
    for batch in 0..50 {
        let accounts: Vec<String> = (0..20).map(|i| format!("u{:04}", batch * 20 + i)).collect();
        server
            .ok(
                "ban_member",
                json!({"RoomId": "r", "MemberList_Account": accounts, "Duration": 100 + batch, "Reason": "spam"}),
            )
            .await;
    }
    // The 1001st is refused and changes nothing; a ban again of one banned is not one more.
    assert_eq!(
        server
            .code(
                "ban_member",
                json!({"RoomId": "r", "MemberList_Account": ["extra"], "Duration": 60})
            )
            .await,
        100002
    );
    server
        .ok(
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["u0000"], "Duration": 1000}),
        )
        .await;
    // Walk the pages: every ban once, in account order.
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = server
            .ok(
                "get_banned_member_list",
                json!({"RoomId": "r", "Offset": offset, "Limit": 70}),
            )
            .await;
        pages += 1;
        let entries = page["BannedAccountList"].as_array().unwrap();
        assert!(entries.len() <= 70);
        seen.extend(names(&page["BannedAccountList"], "Member_Account"));
        offset = page["NextOffset"].as_u64().unwrap();
        if offset == 0 {
            break;
        }
        assert_eq!(offset as usize, seen.len());
    }
    assert_eq!(pages, 15);
    let expected: Vec<String> = (0..1000).map(|i| format!("u{i:04}")).collect();
    assert_eq!(seen, expected);
    assert!(!seen.contains(&"extra".to_owned()));
    // Limit defaults to 100.
    let first = server
        .ok("get_banned_member_list", json!({"RoomId": "r"}))
        .await;
    assert_eq!(first["BannedAccountList"].as_array().unwrap().len(), 100);
    assert_eq!(first["NextOffset"], 100);
    assert_eq!(first["BannedAccountList"][0]["BannedUntil"], START + 1000);
    assert_eq!(first["BannedAccountList"][1]["BannedUntil"], START + 100);
    // An offset past the end is an empty last page.
    let past = server
        .ok(
            "get_banned_member_list",
            json!({"RoomId": "r", "Offset": 5000}),
        )
        .await;
    assert_eq!(past, json!({"BannedAccountList": [], "NextOffset": 0}));

    // After 100 s the first batch but u0000 has expired: room for 19 more.
    server.clock.advance(Duration::from_secs(100));
    let all = server
        .ok(
            "get_banned_member_list",
            json!({"RoomId": "r", "Offset": 0, "Limit": 100}),
        )
        .await;
    assert_eq!(all["BannedAccountList"][0]["Member_Account"], "u0000");
    assert_eq!(all["BannedAccountList"][1]["Member_Account"], "u0020");
    let fresh: Vec<String> = (0..19).map(|i| format!("new{i}")).collect();
    server
        .ok(
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": fresh, "Duration": 60}),
        )
        .await;
    assert_eq!(
        server
            .code(
                "ban_member",
                json!({"RoomId": "r", "MemberList_Account": ["one-too-many"], "Duration": 60})
            )
            .await,
        100002
    );
    // Unban: those banned are lifted, others ignored.
    server
        .ok(
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["u0000", "new0", "never"]}),
        )
        .await;
    let all = server
        .ok(
            "get_banned_member_list",
            json!({"RoomId": "r", "Limit": 100}),
        )
        .await;
    assert_eq!(all["BannedAccountList"][0]["Member_Account"], "new1");
    // Everything ends by itself.
    server.clock.advance(Duration::from_secs(1000));
    assert_eq!(banned(&server, "r").await, json!([]));
}

/// At most 5 administrators and 3 robots; adding those already there, and removing those
/// absent, succeeds; a refused request leaves the list as it was.
#[tokio::test]
async fn admins_and_robots_are_bounded() {
    let server = server_with_room("r").await;
    server
        .ok(
            "im_open_login_svc/multiaccount_import",
            json!({"Accounts": ["b1", "b2", "b3", "b4"]}),
        )
        .await;
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a1", "a2", "a3"], "OpType": "add"}),
        )
        .await;
    // Six after merging: refused, nothing added.
    let answer = server
        .call(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a3", "a4", "a5", "a6"], "OpType": "add"}),
        )
        .await;
    assert_eq!(code_of(&answer), 100002);
    assert!(answer["ErrorInfo"].as_str().unwrap().contains('5'));
    assert_eq!(admins(&server, "r").await, ["a1", "a2", "a3"]);
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a3", "a4", "a5"], "OpType": "add"}),
        )
        .await;
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a1", "a5"], "OpType": "add"}),
        )
        .await;
    assert_eq!(admins(&server, "r").await.len(), 5);
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a1", "nobody"], "OpType": "delete"}),
        )
        .await;
    assert_eq!(admins(&server, "r").await, ["a2", "a3", "a4", "a5"]);

    server
        .ok(
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["b1", "b2", "b3"]}),
        )
        .await;
    assert_eq!(
        server
            .code(
                "add_robot",
                json!({"RoomId": "r", "RobotList_Account": ["b4"]})
            )
            .await,
        100002
    );
    // Already there: success.
    server
        .ok(
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["b2"]}),
        )
        .await;
    assert_eq!(robots(&server, "r").await, ["b1", "b2", "b3"]);
    // Removing absent robots, imported or not, succeeds.
    server
        .ok(
            "del_robot",
            json!({"RoomId": "r", "RobotList_Account": ["b1", "b4", "never-imported"]}),
        )
        .await;
    server
        .ok(
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["b4"]}),
        )
        .await;
    assert_eq!(robots(&server, "r").await, ["b2", "b3", "b4"]);
    // A destroyed room's people go with it.
    server.ok("destroy_room", json!({"RoomId": "r"})).await;
    server.clock.advance(Duration::from_secs(1));
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r"}}))
        .await;
    assert!(admins(&server, "r").await.is_empty());
    assert!(robots(&server, "r").await.is_empty());
}

/// Each write appends its event to the room's log, as a follower sees it; a refused write, or
/// one that changes nothing, appends none.
#[tokio::test]
async fn writes_append_their_events() {
    let server = server_with_room("r").await;
    server
        .ok("im_open_login_svc/account_import", json!({"UserID": "bot"}))
        .await;
    let mut watcher = server.connect("watcher").await;
    let entered = within(watcher.enter("r")).await.unwrap();
    assert_eq!(entered.mode, Mode::Snapshot);
    let start = watcher.position("r").unwrap();

    let writes = [
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["m2", "m1"], "MuteTime": 60}),
        ),
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["m1", "zz"], "MuteTime": 0}),
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["b"], "Duration": 30, "Reason": "spam"}),
        ),
        (
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["b", "zz"]}),
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["adm"], "OpType": "add"}),
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["adm"], "OpType": "delete"}),
        ),
        (
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        ),
        (
            "del_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        ),
    ];
    let expected = [
        (
            "member.muted",
            json!({"users": ["m1", "m2"], "until": START + 60}),
        ),
        ("member.muted", json!({"users": ["m1"], "until": 0})),
        (
            "member.banned",
            json!({"users": ["b"], "until": START + 30, "reason": "spam"}),
        ),
        ("member.unbanned", json!({"users": ["b"]})),
        ("room.admins", json!({"op": "add", "users": ["adm"]})),
        ("room.admins", json!({"op": "delete", "users": ["adm"]})),
        ("room.robots", json!({"op": "add", "users": ["bot"]})),
        ("room.robots", json!({"op": "delete", "users": ["bot"]})),
    ];
    for (command, body) in writes {
        server.ok(command, body).await;
    }
    for (ev, d) in &expected {
        let event = next_room_event(&mut watcher).await;
        assert_eq!((&event.ev, &event.d), (&(*ev).to_owned(), d), "{event:?}");
    }
    let end = watcher.position("r").unwrap();
    assert_eq!(end.rev, start.rev + expected.len() as u64);

    // No-ops and refusals append nothing.
    let quiet = [
        (
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["zz"], "MuteTime": 0}),
        ),
        (
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["zz"]}),
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["zz"], "OpType": "delete"}),
        ),
        (
            "del_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        ),
        (
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["b"], "Duration": 0}),
        ),
        (
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["ghost"]}),
        ),
        (
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["a1", "a2", "a3", "a4", "a5", "a6"], "OpType": "add"}),
        ),
    ];
    for (command, body) in quiet {
        server.call(command, body).await;
    }
    let mut again = server.connect("watcher2").await;
    let delta = within(again.enter_since("r", Some(end))).await.unwrap();
    assert_eq!(delta.mode, Mode::Delta);
    assert!(delta.events.is_empty(), "{:?}", delta.events);
    // And from the start, a follower gets the same events.
    let mut late = server.connect("watcher3").await;
    let delta = within(late.enter_since("r", Some(start))).await.unwrap();
    let kinds: Vec<&str> = delta.events.iter().map(|e| e.ev.as_str()).collect();
    assert_eq!(
        kinds,
        expected.iter().map(|(ev, _)| *ev).collect::<Vec<_>>()
    );
}

fn open(dir: &std::path::Path) -> liveroom_store::SqliteStore {
    liveroom_store::SqliteStore::open(liveroom_store::SqliteOptions::new(dir.join("liveroom.db")))
        .unwrap()
}

/// Mutes, bans (with their ends), administrators and robots survive a restart on the same
/// data directory, and keep expiring on the clock afterwards.
#[tokio::test]
async fn people_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(open(dir.path()), config()).await;
    server
        .ok("create_room", json!({"RoomInfo": {"RoomId": "r"}}))
        .await;
    server
        .ok("im_open_login_svc/account_import", json!({"UserID": "bot"}))
        .await;
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["m"], "MuteTime": 60}),
        )
        .await;
    server
        .ok(
            "ban_member",
            json!({"RoomId": "r", "MemberList_Account": ["b1", "b2"], "Duration": 120, "Reason": "r"}),
        )
        .await;
    server
        .ok(
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["b2"]}),
        )
        .await;
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["adm"], "OpType": "add"}),
        )
        .await;
    server
        .ok(
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        )
        .await;
    let before = (
        muted(&server, "r").await,
        banned(&server, "r").await,
        admins(&server, "r").await,
        robots(&server, "r").await,
    );
    server.stop().await;

    let server = TestServer::start(open(dir.path()), config()).await;
    let after = (
        muted(&server, "r").await,
        banned(&server, "r").await,
        admins(&server, "r").await,
        robots(&server, "r").await,
    );
    assert_eq!(after, before);
    assert_eq!(
        after.1,
        json!([{"Member_Account": "b1", "BannedUntil": START + 120}])
    );
    server.clock.advance(Duration::from_secs(60));
    assert_eq!(muted(&server, "r").await, json!([]));
    assert_eq!(banned(&server, "r").await.as_array().unwrap().len(), 1);
    server.stop().await;
}
