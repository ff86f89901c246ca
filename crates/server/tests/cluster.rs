//! Several nodes on one PostgreSQL database (docs/cluster.md): what one node commits, the
//! others answer and push to their members in order, with or without NOTIFY; a client moves to
//! another node and resumes from its position; the listening connection can be killed.

mod common;

use std::time::Duration;

use common::*;
use liveroom_client::{Client, Mode};
use serde_json::json;

/// Each write through `writer` arrives at a member of `reader` in order, without gaps.
async fn writes_reach_the_other_node(writer: &TestServer, reader: &TestServer, room: &str) {
    create_room(writer, room, "alice").await;
    let mut bob = reader.connect("bob").await;
    let entered = within(bob.enter(room)).await.unwrap();
    let first = entered.rev;
    for i in 0..20 {
        rest_set(writer, room, "k", &i.to_string()).await;
    }
    let mut revs = Vec::new();
    while revs.len() < 20 {
        revs.push(next_room_event(&mut bob).await.position.unwrap().rev);
    }
    assert_eq!(revs, (first + 1..=first + 20).collect::<Vec<_>>());
    // The other node answers reads with what the first committed.
    let answer = reader
        .ok("get_room_metadata", json!({"RoomId": room, "Keys": ["k"]}))
        .await;
    assert_eq!(answer["Metadata"][0]["Value"], "19");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_nodes_in_order() {
    let nodes = TestServer::cluster(2, config(), true).await;
    writes_reach_the_other_node(&nodes[0], &nodes[1], "r").await;
    // Every notification was consumed: none piles up in the server's queue.
    let piled = postgres::number(
        "SELECT (CASE WHEN pg_notification_queue_usage() >= 0.01 THEN 1 ELSE 0 END)::BIGINT",
    )
    .await;
    assert_eq!(piled, 0, "the notification queue is filling up");
}

/// Without NOTIFY the poll carries every change, within about its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_nodes_without_notify() {
    let nodes = TestServer::cluster(2, config(), false).await;
    writes_reach_the_other_node(&nodes[0], &nodes[1], "r").await;
}

/// A member of a node that goes away resumes on another from its position: exactly the events
/// it missed, written meanwhile through a third node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node() {
    let mut nodes = TestServer::cluster(3, config(), true).await;
    create_room(&nodes[2], "r", "alice").await;
    let mut bob = nodes[0].connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    rest_set(&nodes[2], "r", "k", "0").await;
    let seen = next_room_event(&mut bob).await.position.unwrap();
    let gone = nodes.remove(0);
    gone.stop().await;
    for i in 1..=50 {
        rest_set(&nodes[1], "r", "k", &i.to_string()).await;
    }
    let (_resumed, entered) = within(Client::resume(
        &nodes[0].ws_url(),
        &nodes[0].credentials("bob"),
        &bob,
    ))
    .await
    .unwrap();
    let (_, entered) = &entered[0];
    assert_eq!(entered.mode, Mode::Delta);
    let revs: Vec<u64> = entered
        .events
        .iter()
        .map(|e| e.position.unwrap().rev)
        .collect();
    assert_eq!(revs, (seen.rev + 1..=seen.rev + 50).collect::<Vec<_>>());
}

/// The node's LISTEN connection is terminated by the server: its followers miss nothing, the
/// poll reads what the lost notifications announced, and the listener comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_loses_nothing() {
    let nodes = TestServer::cluster(2, config(), true).await;
    create_room(&nodes[0], "r", "alice").await;
    let mut bob = nodes[1].connect("bob").await;
    let first = within(bob.enter("r")).await.unwrap().rev;
    let terminated = postgres::number(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'liveroom' AND query LIKE 'LISTEN%') AS t",
    )
    .await;
    assert!(
        terminated >= 2,
        "both nodes' listeners terminated ({terminated})"
    );
    for i in 0..10 {
        rest_set(&nodes[0], "r", "k", &i.to_string()).await;
    }
    let mut revs = Vec::new();
    while revs.len() < 10 {
        revs.push(next_room_event(&mut bob).await.position.unwrap().rev);
    }
    assert_eq!(revs, (first + 1..=first + 10).collect::<Vec<_>>());
}

/// Readiness follows the store: ready while PostgreSQL answers.
#[tokio::test]
async fn health_and_readiness() {
    let nodes = TestServer::cluster(1, config(), true).await;
    for path in ["/healthz", "/readyz"] {
        let answer = nodes[0]
            .http
            .get(format!("{}{path}", nodes[0].base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
}

/// `requests` calls of `command` spread over the nodes at once: how many were admitted (any
/// answer but 60007).
async fn admitted(nodes: &[TestServer], command: &str, requests: usize) -> usize {
    let calls = (0..requests).map(|i| {
        let node = &nodes[i % nodes.len()];
        async move { node.code(command, json!({"RoomId": "absent"})).await }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|&code| code != 60007)
        .count()
}

/// An app's rate holds for the whole cluster (docs/cluster.md §7). The clocks stand still, so
/// the counts are exact: at 10 per second, each token is taken from the shared bucket as it is
/// spent; at 1,000, nodes lease 10 at a time from a bucket of 990.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_nodes() {
    let mut app = app();
    app.rate_limits
        .insert(liveroom_protocol::Command::GetRoomInfo, 10);
    app.rate_limits
        .insert(liveroom_protocol::Command::GetRoomStats, 1000);
    let config = liveroom_server::ServerConfig {
        apps: vec![app],
        ..Default::default()
    };
    let nodes = TestServer::cluster(3, config, true).await;
    assert_eq!(admitted(&nodes, "get_room_info", 60).await, 10);
    let many = admitted(&nodes, "get_room_stats", 1500).await;
    assert!(
        (990..=1000).contains(&many),
        "{many} admitted of 1,000 per second"
    );
    for node in &nodes {
        node.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(admitted(&nodes, "get_room_info", 60).await, 10);
}

/// The next live event (presence, counts, messages) of `client`, past room events.
async fn next_live(client: &mut Client) -> liveroom_client::Event {
    loop {
        let event = within(client.next_event()).await.unwrap();
        if event.position.is_none() {
            return event;
        }
    }
}

/// The accounts `get_member_list` of `node` lists, and its count.
async fn member_list(node: &TestServer, room: &str) -> (Vec<String>, u64) {
    let answer = node
        .ok("get_member_list", json!({"RoomId": room, "Next": "0"}))
        .await;
    let accounts = answer["MemberList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Member_Account"].as_str().unwrap().to_owned())
        .collect();
    (accounts, answer["MemberCount"].as_u64().unwrap())
}

/// Members of one node are members of the room on every node: listed and counted by all,
/// announced to members elsewhere; messages sent through any node reach them all.
async fn presence_and_messages_cross_nodes(notify: bool) {
    let nodes = TestServer::cluster(2, config(), notify).await;
    create_room(&nodes[0], "r", "alice").await;
    let mut alice = nodes[0].connect("alice").await;
    assert_eq!(within(alice.enter("r")).await.unwrap().members, 1);
    assert_eq!(next_live(&mut alice).await.ev, "member.enter");
    let mut bob = nodes[1].connect("bob").await;
    let entered = within(bob.enter("r")).await.unwrap();
    assert_eq!(entered.members, 2, "bob counts alice, on the other node");
    let seen = next_live(&mut alice).await;
    assert_eq!(
        (
            seen.ev.as_str(),
            seen.d["user"]["id"].as_str(),
            &seen.d["members"]
        ),
        ("member.enter", Some("bob"), &json!(2))
    );
    for node in &nodes {
        assert_eq!(
            member_list(node, "r").await,
            (vec!["alice".to_owned(), "bob".to_owned()], 2)
        );
    }
    let listed = within(bob.get_members("r", None)).await.unwrap();
    assert_eq!(listed["members"], 2);

    within(bob.send_text("r", "hello from b", None))
        .await
        .unwrap();
    nodes[0]
        .ok(
            "send_text_msg",
            json!({"RoomId": "r", "Sender_Account": "host", "TextContent": "from a"}),
        )
        .await;
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let event = next_live(&mut alice).await;
        if event.ev == "msg.text" {
            texts.push(event.d["text"].as_str().unwrap().to_owned());
        }
    }
    // Messages sent through different nodes have no order between them (docs/cluster.md §4).
    texts.sort();
    assert_eq!(texts, ["from a", "hello from b"]);
    loop {
        let event = next_live(&mut bob).await;
        if event.ev == "msg.text" && event.d["text"] == "from a" {
            break;
        }
    }

    within(bob.exit("r")).await.unwrap();
    let left = next_live(&mut alice).await;
    assert_eq!(
        (
            left.ev.as_str(),
            left.d["user"]["id"].as_str(),
            &left.d["members"]
        ),
        ("member.leave", Some("bob"), &json!(1))
    );
    assert_eq!(
        member_list(&nodes[0], "r").await,
        (vec!["alice".to_owned()], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_messages_cross_nodes_with_notify() {
    presence_and_messages_cross_nodes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_messages_cross_nodes_without_notify() {
    presence_and_messages_cross_nodes(false).await;
}

/// The room's member limit counts every node's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_is_full_on_every_node() {
    let nodes = TestServer::cluster(2, config(), true).await;
    nodes[0]
        .ok(
            "create_room",
            json!({"RoomInfo": {"RoomId": "small", "Owner_Account": "alice", "MaxMemberCount": 1}}),
        )
        .await;
    let mut alice = nodes[0].connect("alice").await;
    within(alice.enter("small")).await.unwrap();
    let mut bob = nodes[1].connect("bob").await;
    let refused = within(bob.enter("small")).await.unwrap_err();
    assert_eq!(server_code(refused), 10014);
}

/// A node that stops cleanly takes its members out of the rooms at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_members_leave() {
    let mut nodes = TestServer::cluster(2, config(), true).await;
    create_room(&nodes[0], "r", "alice").await;
    let mut alice = nodes[0].connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    let mut bob = nodes[1].connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    assert_eq!(member_list(&nodes[0], "r").await.1, 2);
    nodes.remove(1).stop().await;
    loop {
        let event = next_live(&mut alice).await;
        if event.ev == "member.leave" {
            assert_eq!(event.d["user"]["id"], "bob");
            break;
        }
    }
    assert_eq!(
        member_list(&nodes[0], "r").await,
        (vec!["alice".to_owned()], 1)
    );
}

/// A member whose connection dropped and who comes back within the grace period through
/// another node recovers, as on one node: `HeartbeatInterrupt`, then `HeartbeatRecover`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_recovers_through_another_node() {
    let nodes = TestServer::cluster(2, config(), true).await;
    create_room(&nodes[0], "r", "alice").await;
    let mut alice = nodes[0].connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    let mut bob = nodes[1].connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let cause_of = |event: &liveroom_client::Event| {
        (
            event.ev.clone(),
            event.d["user"]["id"].as_str().map(str::to_owned),
            event.d["cause"].as_str().map(str::to_owned),
        )
    };
    let next_about_bob = async |alice: &mut Client| loop {
        let event = next_live(alice).await;
        if event.d["user"]["id"] == "bob" {
            return event;
        }
    };
    assert_eq!(
        cause_of(&next_about_bob(&mut alice).await).2.as_deref(),
        Some("Enter")
    );
    // Gone without a close frame.
    drop(bob);
    let left = next_about_bob(&mut alice).await;
    assert_eq!(
        cause_of(&left),
        (
            "member.leave".into(),
            Some("bob".into()),
            Some("HeartbeatInterrupt".into())
        )
    );
    let mut bob = nodes[0].connect("bob").await;
    within(bob.enter("r")).await.unwrap();
    let back = next_about_bob(&mut alice).await;
    assert_eq!(
        cause_of(&back),
        (
            "member.enter".into(),
            Some("bob".into()),
            Some("HeartbeatRecover".into())
        )
    );
    assert_eq!(
        member_list(&nodes[1], "r").await,
        (vec!["alice".to_owned(), "bob".to_owned()], 2)
    );
}

/// The newer connection of a user wins the room across nodes too: the older one, on another
/// node, is told `sub.ended`, and the user stays one member, neither announced nor counted
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_connection_wins_across_nodes() {
    let nodes = TestServer::cluster(2, config(), true).await;
    create_room(&nodes[0], "r", "alice").await;
    let mut alice = nodes[0].connect("alice").await;
    within(alice.enter("r")).await.unwrap();
    assert_eq!(next_live(&mut alice).await.ev, "member.enter"); // her own entry
    let mut phone = nodes[0].connect("bob").await;
    within(phone.enter("r")).await.unwrap();
    assert_eq!(next_live(&mut alice).await.ev, "member.enter");
    let mut laptop = nodes[1].connect("bob").await;
    assert_eq!(within(laptop.enter("r")).await.unwrap().members, 2);
    let ended = loop {
        let event = next_live(&mut phone).await;
        if event.ev != "member.enter" {
            break event;
        }
    };
    assert_eq!(ended.ev, "sub.ended");
    assert_eq!(ended.d, json!({"reason": "entered_elsewhere"}));
    within(phone.close()).await.unwrap();
    assert_eq!(
        member_list(&nodes[0], "r").await,
        (vec!["alice".to_owned(), "bob".to_owned()], 2)
    );
    within(laptop.send_text("r", "still here", None))
        .await
        .unwrap();
    assert_eq!(next_live(&mut alice).await.ev, "msg.text");
    let stats = nodes[1].ok("get_room_stats", json!({"RoomId": "r"})).await;
    assert_eq!(stats["TotalViewers"], 2);
}
