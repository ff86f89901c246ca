//! Members, presence and messages (docs/protocol.md "Members and presence", "Live events";
//! docs/behaviour.md §15), black-box: real WebSocket clients and REST calls against the real
//! server on 127.0.0.1:0.

mod common;

use common::{TestServer, create_room, server_code, within};
use liveroom_client::{Client, Event};
use liveroom_server::{RealtimeConfig, ServerConfig};
use liveroom_store::MemoryStore;
use serde_json::{Value, json};

/// The next live event (presence, counts, messages) or control event of `client`; room
/// events (with a position) are skipped.
async fn next_live(client: &mut Client) -> Event {
    loop {
        let event = within(client.next_event()).await.unwrap();
        if event.position.is_none() {
            return event;
        }
    }
}

/// The next message `client` receives, past presence events.
async fn next_message(client: &mut Client) -> Event {
    loop {
        let event = next_live(client).await;
        if event.ev.starts_with("msg.") {
            return event;
        }
    }
}

async fn import(server: &TestServer, user: &str, nick: &str) {
    server
        .ok(
            "im_open_login_svc/account_import",
            json!({"UserID": user, "Nick": nick, "FaceUrl": format!("https://a.invalid/{user}.png")}),
        )
        .await;
}

fn with_realtime(realtime: RealtimeConfig) -> ServerConfig {
    ServerConfig {
        realtime,
        ..common::config()
    }
}

async fn stats(server: &TestServer, room: &str) -> Value {
    server.ok("get_room_stats", json!({"RoomId": room})).await
}

#[tokio::test]
async fn entering_makes_a_member_that_others_see_come_and_go() {
    let server = TestServer::new().await;
    import(&server, "bob", "Bob").await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    let entered = within(alice.enter("r")).await.unwrap();
    assert_eq!(entered.members, 1);
    assert_eq!(entered.standing, json!({"role": "owner", "muted_until": 0}));
    // Alice is told of her own entry too.
    let own = next_live(&mut alice).await;
    assert_eq!(
        (own.ev.as_str(), own.d["user"]["id"].as_str()),
        ("member.enter", Some("alice"))
    );

    let mut bob = server.connect("bob").await;
    let entered = within(bob.enter("r")).await.unwrap();
    assert_eq!(entered.members, 2);
    assert_eq!(entered.standing["role"], "member");
    let seen = next_live(&mut alice).await;
    assert_eq!(seen.ev, "member.enter");
    assert_eq!(seen.room, "r");
    assert_eq!(
        seen.d,
        json!({"user": {"id": "bob", "nick": "Bob", "avatar": "https://a.invalid/bob.png"},
               "cause": "Enter", "members": 2})
    );
    assert_eq!(seen.ts, Some(common::START * 1000));

    let list = server
        .ok("get_member_list", json!({"RoomId": "r", "Next": "0"}))
        .await;
    assert_eq!(
        list,
        json!({"Next": "", "MemberCount": 2, "MemberList": [
            {"Member_Account": "alice"},
            {"Member_Account": "bob", "Nick": "Bob", "FaceUrl": "https://a.invalid/bob.png"},
        ]})
    );
    let page = within(alice.get_members("r", None)).await.unwrap();
    assert_eq!(page["members"], 2);
    assert_eq!(page["users"][1]["nick"], "Bob");
    assert_eq!(page["next"], Value::Null);
    // A watcher is not a member.
    let mut carol = server.connect("carol").await;
    let watched = within(carol.watch("r")).await.unwrap();
    assert_eq!(watched.members, 2);

    within(bob.exit("r")).await.unwrap();
    let left = next_live(&mut alice).await;
    assert_eq!(left.ev, "member.leave");
    assert_eq!(
        (left.d["cause"].as_str(), left.d["members"].as_u64()),
        (Some("Leave"), Some(1))
    );
    assert_eq!(next_live(&mut carol).await.ev, "member.leave");
    // Each entry counted one viewer.
    assert_eq!(stats(&server, "r").await["TotalViewers"], 2);
    let info = server.ok("get_room_info", json!({"RoomId": "r"})).await;
    assert_eq!(info["RoomInfo"]["ViewCount"], 2);
    // Exiting twice, and listing a room nobody is in, are fine.
    within(bob.exit("r")).await.unwrap();
    assert_eq!(
        server
            .code("get_member_list", json!({"RoomId": "nope"}))
            .await,
        100004
    );
    assert_eq!(
        server
            .code("get_member_list", json!({"RoomId": "r", "Next": "junk"}))
            .await,
        100002
    );
}

#[tokio::test]
async fn the_newer_connection_of_a_user_wins_the_room() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    next_live(&mut alice).await; // her own entry
    let mut phone = server.connect("bob").await;
    within(phone.enter("r")).await.unwrap();
    assert_eq!(next_live(&mut alice).await.ev, "member.enter");
    let mut laptop = server.connect("bob").await;
    let entered = within(laptop.enter("r")).await.unwrap();
    assert_eq!(entered.members, 2);
    let ended = loop {
        let event = next_live(&mut phone).await;
        if event.ev != "member.enter" {
            break event;
        }
    };
    assert_eq!(ended.ev, "sub.ended");
    assert_eq!(ended.d, json!({"reason": "entered_elsewhere"}));
    // The older connection leaving does not take Bob out (closed politely, so that the
    // server has ended it before the list is read).
    within(phone.close()).await.unwrap();
    let list = server.ok("get_member_list", json!({"RoomId": "r"})).await;
    assert_eq!(list["MemberCount"], 2);
    // Bob is still one viewer, and Alice saw neither a leave nor a second entry: the next
    // live event she gets is Bob's message.
    within(laptop.send_text("r", "still here", None))
        .await
        .unwrap();
    assert_eq!(next_live(&mut alice).await.ev, "msg.text");
    assert_eq!(stats(&server, "r").await["TotalViewers"], 2);
}

#[tokio::test]
async fn a_lost_connection_is_an_interrupt_and_coming_back_a_recovery() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    next_live(&mut alice).await;
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    next_live(&mut alice).await;
    // Gone without a close frame.
    drop(bob);
    let lost = next_live(&mut alice).await;
    assert_eq!(
        (
            lost.ev.as_str(),
            lost.d["cause"].as_str(),
            lost.d["members"].as_u64()
        ),
        ("member.leave", Some("HeartbeatInterrupt"), Some(1))
    );
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let back = next_live(&mut alice).await;
    assert_eq!(
        (back.ev.as_str(), back.d["cause"].as_str()),
        ("member.enter", Some("HeartbeatRecover"))
    );
    // A recovery is not a new viewer.
    assert_eq!(stats(&server, "r").await["TotalViewers"], 2);
    // A polite close is a leave.
    within(bob.close()).await.unwrap();
    let left = next_live(&mut alice).await;
    assert_eq!(left.d["cause"], "Leave");
}

#[tokio::test]
async fn without_a_grace_period_coming_back_is_a_new_entry() {
    let realtime = RealtimeConfig {
        presence_grace: std::time::Duration::ZERO,
        ..RealtimeConfig::default()
    };
    let server = TestServer::start(MemoryStore::new(), with_realtime(realtime)).await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    next_live(&mut alice).await;
    let bob = server.connect("bob").await;
    let mut bob = bob;
    within(bob.enter("r")).await.unwrap();
    next_live(&mut alice).await;
    drop(bob);
    assert_eq!(next_live(&mut alice).await.d["cause"], "HeartbeatInterrupt");
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    assert_eq!(next_live(&mut alice).await.d["cause"], "Enter");
    assert_eq!(stats(&server, "r").await["TotalViewers"], 3);
}

#[tokio::test]
async fn a_full_room_refuses_newcomers_but_not_its_members_or_watchers() {
    let server = TestServer::new().await;
    server
        .ok(
            "create_room",
            json!({"RoomInfo": {"RoomId": "r", "Owner_Account": "alice", "MaxMemberCount": 2}}),
        )
        .await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let mut carol = server.connect("carol").await;
    within(alice.enter("r")).await.unwrap();
    within(bob.enter("r")).await.unwrap();
    let error = within(carol.enter("r")).await.unwrap_err();
    assert_eq!(server_code(error), 10014);
    // Nothing of the refused entry remains: no member, no viewer, no subscription.
    assert_eq!(
        server.ok("get_member_list", json!({"RoomId": "r"})).await["MemberCount"],
        2
    );
    assert_eq!(stats(&server, "r").await["TotalViewers"], 2);
    within(carol.watch("r")).await.unwrap();
    within(bob.enter("r")).await.unwrap();
    within(bob.exit("r")).await.unwrap();
    within(carol.enter("r")).await.unwrap();
}

#[tokio::test]
async fn messages_reach_the_members_connected_now_and_are_counted() {
    let server = TestServer::new().await;
    import(&server, "alice", "Alice").await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    within(alice.enter("r")).await.unwrap();
    within(bob.enter("r")).await.unwrap();
    let mid = within(alice.send_text("r", "hello", Some("{\"k\":1}")))
        .await
        .unwrap();
    let text = next_message(&mut bob).await;
    assert_eq!(text.ev, "msg.text");
    assert_eq!(
        text.d,
        json!({"mid": mid, "from": {"id": "alice", "nick": "Alice", "avatar": "https://a.invalid/alice.png"},
               "text": "hello", "ext": "{\"k\":1}"})
    );
    // The sender gets it too.
    assert_eq!(next_message(&mut alice).await.d["mid"], mid);
    within(bob.send_custom("r", "gift", "{\"id\":7}"))
        .await
        .unwrap();
    let custom = next_message(&mut alice).await;
    assert_eq!(custom.ev, "msg.custom");
    assert_eq!(custom.d["business_id"], "gift");
    assert_eq!(custom.d["data"], "{\"id\":7}");
    assert_eq!(custom.d["from"], json!({"id": "bob"}));
    next_message(&mut bob).await;

    // REST, as any sender, member or not.
    server
        .ok(
            "send_text_msg",
            json!({"RoomId": "r", "Sender_Account": "host", "TextContent": "from REST", "ExtensionInfo": "x"}),
        )
        .await;
    let rest = next_message(&mut bob).await;
    assert_eq!(
        (
            rest.d["from"]["id"].as_str(),
            rest.d["text"].as_str(),
            rest.d["ext"].as_str()
        ),
        (Some("host"), Some("from REST"), Some("x"))
    );
    server
        .ok(
            "send_custom_msg",
            json!({"RoomId": "r", "Sender_Account": "host", "BusinessId": "violation_alert", "Data": "d"}),
        )
        .await;
    assert_eq!(
        next_message(&mut bob).await.d["business_id"],
        "violation_alert"
    );
    // Tencent's console posts through Chat's group API.
    let answer = server
        .call(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "r", "From_Account": "host", "Random": 7, "MsgPriority": "Normal",
                   "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "console"}}]}),
        )
        .await;
    assert_eq!(answer["ErrorCode"], 0, "{answer}");
    assert_eq!(answer["MsgTime"], common::START);
    assert!(answer["MsgSeq"].as_u64().unwrap() > 0);
    assert!(answer.get("Response").is_none());
    assert_eq!(next_message(&mut bob).await.d["text"], "console");
    let custom = server
        .call(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "r", "Random": 8,
                   "MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "{}", "Desc": "like"}}]}),
        )
        .await;
    assert_eq!(custom["ErrorCode"], 0, "{custom}");
    let like = next_message(&mut bob).await;
    assert_eq!(
        (
            like.d["business_id"].as_str(),
            like.d["from"]["id"].as_str()
        ),
        (Some("like"), Some(common::ADMIN))
    );
    assert_eq!(stats(&server, "r").await["TotalMsgCount"], 6);
}

#[tokio::test]
async fn refused_messages_get_their_codes_and_are_not_counted() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    within(alice.enter("r")).await.unwrap();
    // Not entered (a watcher is no member).
    within(bob.watch("r")).await.unwrap();
    let error = within(bob.send_text("r", "hi", None)).await.unwrap_err();
    assert_eq!(server_code(error), 100005);
    within(bob.enter("r")).await.unwrap();
    for (d, code) in [
        (json!({"room": "r", "text": ""}), 100002),
        (json!({"room": "r", "text": "x".repeat(12_289)}), 100002),
        (json!({"room": "r"}), 100002),
        (json!({"room": "r", "text": 5}), 100002),
    ] {
        let error = within(bob.request("send_text", d)).await.unwrap_err();
        assert_eq!(server_code(error), code);
    }
    let error = within(bob.request("send_custom", json!({"room": "r", "business_id": ""})))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100002);
    // Messages disabled: the owner still speaks, others get 10017, over REST too.
    server
        .ok(
            "update_room_info",
            json!({"RoomInfo": {"RoomId": "r", "IsMessageDisabled": true}}),
        )
        .await;
    let error = within(bob.send_text("r", "hi", None)).await.unwrap_err();
    assert_eq!(server_code(error), 10017);
    within(alice.send_text("r", "owner speaks", None))
        .await
        .unwrap();
    let rest = json!({"RoomId": "r", "Sender_Account": "bob", "TextContent": "hi"});
    assert_eq!(server.code("send_text_msg", rest).await, 10017);
    for (command, body, code) in [
        (
            "send_text_msg",
            json!({"RoomId": "nope", "Sender_Account": "a", "TextContent": "t"}),
            100004,
        ),
        (
            "send_text_msg",
            json!({"RoomId": "r", "TextContent": "t"}),
            100002,
        ),
        (
            "send_custom_msg",
            json!({"RoomId": "r", "Sender_Account": "a", "BusinessId": "b"}),
            100002,
        ),
        (
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "nope", "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "t"}}]}),
            10010,
        ),
        (
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "r", "MsgBody": [{"MsgType": "TIMFaceElem", "MsgContent": {}}]}),
            10004,
        ),
        (
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "r", "MsgBody": []}),
            10004,
        ),
    ] {
        assert_eq!(server.code(command, body).await, code, "{command}");
    }
    assert_eq!(stats(&server, "r").await["TotalMsgCount"], 1);
}

#[tokio::test]
async fn the_owner_can_be_handed_to_a_member_only() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let change = |owner: &str| json!({"RoomId": "r", "NewOwner_Account": owner});
    assert_eq!(
        server.code("change_room_owner", change("carol")).await,
        100005
    );
    assert_eq!(
        server
            .code(
                "change_room_owner",
                json!({"RoomId": "nope", "NewOwner_Account": "bob"})
            )
            .await,
        100004
    );
    assert_eq!(
        server
            .code("change_room_owner", json!({"RoomId": "r"}))
            .await,
        100002
    );
    let error = within(bob.set_metadata("r", &[("k", "v")]))
        .await
        .unwrap_err();
    assert_eq!(server_code(error), 100006);
    server.ok("change_room_owner", change("bob")).await;
    let event = loop {
        let event = within(bob.next_event()).await.unwrap();
        if event.position.is_some() {
            break event;
        }
    };
    assert_eq!(
        (event.ev.as_str(), event.d.clone()),
        ("room.owner", json!({"owner": "bob"}))
    );
    let info = server.ok("get_room_info", json!({"RoomId": "r"})).await;
    assert_eq!(info["RoomInfo"]["Owner_Account"], "bob");
    within(bob.set_metadata("r", &[("k", "v")])).await.unwrap();
    // Naming the owner again changes nothing.
    server.ok("change_room_owner", change("bob")).await;
}

#[tokio::test]
async fn big_rooms_send_counts_instead_of_each_entry() {
    let realtime = RealtimeConfig {
        presence_events_max_members: 1,
        ..RealtimeConfig::default()
    };
    let server = TestServer::start(MemoryStore::new(), with_realtime(realtime)).await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    // Alice's own entry (1 member) was announced; Bob's (2) is a count, once a second.
    loop {
        let event = next_live(&mut alice).await;
        match event.ev.as_str() {
            "member.enter" => assert_eq!(event.d["user"]["id"], "alice"),
            "room.count" => {
                assert_eq!(event.d, json!({"members": 2}));
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn a_destroyed_room_has_no_members() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    server.ok("destroy_room", json!({"RoomId": "r"})).await;
    loop {
        let event = within(bob.next_event()).await.unwrap();
        if event.ev == "room.destroyed" {
            break;
        }
    }
    server.clock.advance(std::time::Duration::from_secs(2));
    create_room(&server, "r", "alice").await;
    let list = server.ok("get_member_list", json!({"RoomId": "r"})).await;
    assert_eq!(list["MemberCount"], 0);
    // Bob's subscription ended with the room: entering the new one is a new entry.
    let entered = within(bob.enter("r")).await.unwrap();
    assert_eq!(entered.members, 1);
}

#[tokio::test]
async fn a_ban_removes_the_member_everywhere_and_bars_its_return() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut alice = server.connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let ban =
        json!({"RoomId": "r", "MemberList_Account": ["bob"], "Duration": 60, "Reason": "spam"});
    server.ok("ban_member", ban).await;
    // Bob sees the ban, then his subscription ends.
    let banned = common::next_room_event(&mut bob).await;
    assert_eq!(banned.ev, "member.banned");
    assert_eq!(banned.d["reason"], "spam");
    let ended = common::next_room_event(&mut bob).await;
    assert_eq!(
        (ended.ev.as_str(), ended.d.clone()),
        ("sub.ended", json!({"reason": "banned"}))
    );
    // Alice sees the ban and Bob leave, kicked.
    assert_eq!(
        common::next_room_event(&mut alice).await.ev,
        "member.banned"
    );
    let left = loop {
        let event = next_live(&mut alice).await;
        if event.ev == "member.leave" {
            break event;
        }
    };
    assert_eq!(
        (left.d["user"]["id"].as_str(), left.d["cause"].as_str()),
        (Some("bob"), Some("Kicked"))
    );
    let list = server.ok("get_member_list", json!({"RoomId": "r"})).await;
    assert_eq!(list["MemberCount"], 1);
    // Barred from entering and from watching until the ban ends or is lifted.
    for error in [
        within(bob.enter("r")).await.unwrap_err(),
        within(bob.watch("r")).await.unwrap_err(),
    ] {
        assert_eq!(server_code(error), 10007);
    }
    server
        .ok(
            "unban_member",
            json!({"RoomId": "r", "MemberList_Account": ["bob"]}),
        )
        .await;
    within(bob.enter("r")).await.unwrap();
    // A ban also ends of itself.
    let ban = json!({"RoomId": "r", "MemberList_Account": ["carol"], "Duration": 5});
    server.ok("ban_member", ban).await;
    let mut carol = server.connect("carol").await;
    assert_eq!(
        server_code(within(carol.enter("r")).await.unwrap_err()),
        10007
    );
    server.clock.advance(std::time::Duration::from_secs(5));
    within(carol.enter("r")).await.unwrap();
}

#[tokio::test]
async fn muted_members_cannot_speak_and_administrators_may_write_metadata() {
    let server = TestServer::new().await;
    create_room(&server, "r", "alice").await;
    let mut bob = server.connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    server
        .ok(
            "mute_member",
            json!({"RoomId": "r", "MemberList_Account": ["bob"], "MuteTime": 30}),
        )
        .await;
    let muted = common::next_room_event(&mut bob).await;
    assert_eq!(
        muted.d,
        json!({"users": ["bob"], "until": common::START + 30})
    );
    assert_eq!(
        server_code(within(bob.send_text("r", "hi", None)).await.unwrap_err()),
        10017
    );
    let rest = json!({"RoomId": "r", "Sender_Account": "bob", "TextContent": "hi"});
    assert_eq!(server.code("send_text_msg", rest.clone()).await, 10017);
    // Entering again shows the standing.
    let mut phone = server.connect("bob").await;
    let entered = within(phone.enter("r")).await.unwrap();
    assert_eq!(
        entered.standing,
        json!({"role": "member", "muted_until": common::START + 30})
    );
    server.clock.advance(std::time::Duration::from_secs(30));
    within(phone.send_text("r", "back", None)).await.unwrap();
    server.ok("send_text_msg", rest).await;

    assert_eq!(
        server_code(
            within(phone.set_metadata("r", &[("k", "v")]))
                .await
                .unwrap_err()
        ),
        100006
    );
    server
        .ok(
            "modify_admin",
            json!({"RoomId": "r", "Admin_Account": ["bob"], "OpType": "add"}),
        )
        .await;
    within(phone.set_metadata("r", &[("k", "v")]))
        .await
        .unwrap();
    within(phone.del_metadata("r", &["k"])).await.unwrap();
    // An administrator speaks when messages are disabled.
    server
        .ok(
            "update_room_info",
            json!({"RoomInfo": {"RoomId": "r", "IsMessageDisabled": true}}),
        )
        .await;
    within(phone.send_text("r", "admin speaks", None))
        .await
        .unwrap();
}

#[tokio::test]
async fn robots_are_members_and_may_own_the_room() {
    let server = TestServer::new().await;
    import(&server, "bot", "Bot").await;
    server
        .ok(
            "create_room",
            json!({"RoomInfo": {"RoomId": "r", "Owner_Account": "alice", "MaxMemberCount": 2}}),
        )
        .await;
    server
        .ok(
            "add_robot",
            json!({"RoomId": "r", "RobotList_Account": ["bot"]}),
        )
        .await;
    let list = server.ok("get_member_list", json!({"RoomId": "r"})).await;
    assert_eq!(list["MemberCount"], 1);
    assert_eq!(list["MemberList"], json!([{"Member_Account": "bot"}]));
    let mut alice = server.connect("alice").await;
    assert_eq!(within(alice.enter("r")).await.unwrap().members, 2);
    // The robot fills the room's second place.
    let mut bob = server.connect("bob").await;
    assert_eq!(
        server_code(within(bob.enter("r")).await.unwrap_err()),
        10014
    );
    server
        .ok(
            "change_room_owner",
            json!({"RoomId": "r", "NewOwner_Account": "bot"}),
        )
        .await;
}
