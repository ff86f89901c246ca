//! Three `liveroom serve` nodes on one PostgreSQL schema (docs/cluster.md), driven through all
//! three at once while one of them is SIGKILLed and restarted, round after round: every
//! acknowledged write is there on every node, nothing is half applied, the dead node's member
//! leaves the room once its lease ends and resumes on a survivor, and the app's webhook
//! (configured on every node) delivers every acknowledged write, in order per room, each entry
//! sent by one node at a time, though the node that was sending it died.

#[path = "common/cluster_support.rs"]
mod cluster_support;
mod common;
#[path = "common/faults_support.rs"]
#[allow(dead_code)]
mod faults_support;
#[path = "common/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{fresh_schema, node_config};
use common::{ADMIN, APP, admin_sig, post_json};
use faults_support::{Server, serve_command};
use receiver::{Receiver, Request};
use serde_json::json;

const NODES: usize = 3;
const ROOMS: usize = 6;
const ROUNDS: usize = 4;
/// Acknowledged writes to wait for before the kill, and again after it.
const WRITES_PER_PHASE: usize = 150;
const STEP: Duration = Duration::from_secs(30);

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !done() {
        assert!(Instant::now() < deadline, "not {what} within {STEP:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What each writer (one per room) did: its last acknowledged write and its last attempt.
#[derive(Default, Clone, Copy, Debug)]
struct Progress {
    acked: Option<u64>,
    attempted: Option<u64>,
}

fn url(base: &str, command: &str, sig: &str) -> String {
    format!(
        "{base}/v4/live_engine_http_srv/{command}?sdkappid={APP}&identifier={ADMIN}&usersig={sig}&random=1&contenttype=json"
    )
}

#[test]
fn a_node_killed_in_a_loop_loses_nothing() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let schema = fresh_schema();
    let webhook = format!(
        "[apps.webhook]\nurl = \"{}\"\nevents = [\"Live.CallbackAfterSetMetadata\"]\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\ntimeout_ms = 1000\n\
         retry_min_ms = 50\nretry_max_ms = 200\n",
        rx.url("/hook")
    );
    let configs: Vec<_> = (0..NODES)
        .map(|n| node_config(dir.path(), n, &schema, &webhook))
        .collect();
    let mut nodes: Vec<Option<Server>> = configs
        .iter()
        .map(|c| Some(Server::start(serve_command(c))))
        .collect();
    for r in 0..ROOMS {
        let answer = nodes[r % NODES].as_ref().unwrap().call(
            "create_room",
            json!({"RoomInfo": {"RoomId": format!("c-{r}")}}),
        );
        assert_eq!(answer["ErrorCode"], 0, "{answer}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let sig = admin_sig();
    let progress = Arc::new(Mutex::new(vec![Progress::default(); ROOMS]));
    // Every acknowledged write's value.
    let acked_values = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut next = [0u64; ROOMS];
    for round in 0..ROUNDS {
        let bases: Vec<String> = nodes
            .iter()
            .map(|n| n.as_ref().unwrap().base.clone())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..ROOMS)
            .map(|w| {
                let (http, bases, sig, stop) = (http.clone(), bases.clone(), sig.clone(), stop.clone());
                let (progress, acked_values) = (progress.clone(), acked_values.clone());
                let start = next[w];
                runtime.spawn(async move {
                    let mut i = start;
                    while !stop.load(Ordering::Relaxed) {
                        // Round robin over the nodes, as a load balancer would; a dead node's
                        // requests fail and the writer goes on with the next.
                        let base = &bases[(w + i as usize) % NODES];
                        let value = format!("{w}-{i}");
                        let body = json!({"RoomId": format!("c-{w}"), "Metadata": [{"Key": "v", "Value": value}]});
                        progress.lock().unwrap()[w].attempted = Some(i);
                        let answer = post_json(&http, &url(base, "set_room_metadata", &sig), &body).await;
                        match answer.ok().and_then(|a| a["ErrorCode"].as_u64()) {
                            Some(0) => {
                                progress.lock().unwrap()[w].acked = Some(i);
                                acked_values.lock().unwrap().push(value);
                            }
                            Some(code) => assert_eq!(code, 100001, "set_room_metadata answered {code}"),
                            None => {}
                        }
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let victim = round % NODES;
        let acked = || acked_values.lock().unwrap().len();
        let before = acked();
        wait_until("writes before the kill", || {
            acked() >= before + WRITES_PER_PHASE
        });
        // A member of the victim, in a room the writers write to.
        let user = format!("m-{round}");
        let victim_ws = ws_url(&nodes[victim].as_ref().unwrap().base);
        let member = runtime.block_on(async {
            let mut member = liveroom_client::Client::connect(&victim_ws, &credentials(&user))
                .await
                .unwrap();
            member.enter("c-0").await.unwrap();
            member
        });
        nodes[victim].take().unwrap().kill();
        let before = acked();
        wait_until("writes through the survivors", || {
            acked() >= before + WRITES_PER_PHASE
        });
        // The dead node's member leaves once its lease ends, and resumes on a survivor.
        let survivor = nodes[(victim + 1) % NODES].as_ref().unwrap();
        wait_until("the dead node's member gone", || {
            let answer = survivor.call("get_member_list", json!({"RoomId": "c-0", "Next": "0"}));
            !answer.to_string().contains(&format!("\"{user}\""))
        });
        runtime.block_on(async {
            let (_, entered) = liveroom_client::Client::resume(
                &ws_url(&survivor.base),
                &credentials(&user),
                &member,
            )
            .await
            .expect("the dead node's client resumes on a survivor");
            assert_eq!(entered.len(), 1);
        });
        stop.store(true, Ordering::Relaxed);
        for (w, writer) in writers.into_iter().enumerate() {
            next[w] = runtime.block_on(writer).unwrap();
        }
        nodes[victim] = Some(Server::start(serve_command(&configs[victim])));
    }

    // Every node answers every room with its last acknowledged write, or with the write that
    // was in flight after it (its answer lost with the node): never anything older or newer.
    let progress = progress.lock().unwrap().clone();
    for node in nodes.iter().map(|n| n.as_ref().unwrap()) {
        for (w, p) in progress.iter().enumerate() {
            let answer = node.call(
                "get_room_metadata",
                json!({"RoomId": format!("c-{w}"), "Keys": ["v"]}),
            );
            let value = answer["Response"]["Metadata"][0]["Value"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let i: u64 = value.rsplit('-').next().unwrap().parse().unwrap();
            let (acked, attempted) = (p.acked.unwrap(), p.attempted.unwrap());
            assert!(
                (acked..=attempted).contains(&i),
                "room c-{w}: {value} is neither the last acknowledged write ({acked}) nor a later attempt ({attempted})"
            );
        }
    }

    // The webhook: every acknowledged write delivered; per room in order; one body per id.
    let value_of = |r: &Request| r.json()["Metadata"][0]["Value"].as_str().map(str::to_owned);
    let wanted = acked_values.lock().unwrap().clone();
    let requests = rx.wait_for(
        &format!("{} acknowledged writes delivered", wanted.len()),
        STEP,
        |r| {
            let delivered: HashSet<String> = r
                .iter()
                .filter(|r| r.delivered())
                .filter_map(value_of)
                .collect();
            wanted.iter().all(|v| delivered.contains(v))
        },
    );
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    let mut last_per_room: HashMap<String, u64> = HashMap::new();
    for request in &requests {
        let id = request.header("webhook-id").unwrap().to_owned();
        let body = bodies
            .entry(id.clone())
            .or_insert_with(|| request.body.to_vec());
        assert_eq!(body, &request.body.to_vec(), "{id}: two bodies");
        let room = request.json()["RoomId"].as_str().unwrap().to_owned();
        let i: u64 = value_of(request)
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let before = last_per_room.insert(room.clone(), i).unwrap_or(0);
        assert!(i >= before, "room {room}: write {i} sent after {before}");
    }
    for node in nodes.into_iter().flatten() {
        node.stop();
    }
}

fn ws_url(base: &str) -> String {
    format!("{}/v1/realtime", base.replacen("http://", "ws://", 1))
}

fn credentials(user: &str) -> liveroom_client::Credentials {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    liveroom_client::Credentials {
        sdkappid: APP,
        userid: user.into(),
        usersig: liveroom_usersig::generate(APP, common::KEY, user, now, 86_400),
    }
}

/// The next live event (presence, counts, messages) of `client`, past room events.
async fn next_live(client: &mut liveroom_client::Client) -> liveroom_client::Event {
    loop {
        let event = tokio::time::timeout(STEP, client.next_event())
            .await
            .expect("an event in time")
            .unwrap();
        if event.position.is_none() {
            return event;
        }
    }
}

/// A node SIGKILLed with members connected: once its lease ends (two seconds here) a survivor
/// sees them out (`member.leave` to the room's other members, gone from the member list), and
/// a client of the dead node resumes on a survivor from its position.
#[test]
fn a_killed_nodes_members_leave_and_its_clients_resume_elsewhere() {
    use liveroom_client::{Client, Mode};

    let dir = tempfile::tempdir().unwrap();
    let schema = fresh_schema();
    let configs: Vec<_> = (0..2)
        .map(|n| node_config(dir.path(), n, &schema, ""))
        .collect();
    let survivor = Server::start(serve_command(&configs[0]));
    let victim = Server::start(serve_command(&configs[1]));
    let created = survivor.call("create_room", json!({"RoomInfo": {"RoomId": "p"}}));
    assert_eq!(created["ErrorCode"], 0, "{created}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (survivor_ws, victim_ws) = (ws_url(&survivor.base), ws_url(&victim.base));
    let (mut alice, bob) = runtime.block_on(async {
        let mut alice = Client::connect(&survivor_ws, &credentials("alice"))
            .await
            .unwrap();
        alice.enter("p").await.unwrap();
        let mut bob = Client::connect(&victim_ws, &credentials("bob"))
            .await
            .unwrap();
        assert_eq!(bob.enter("p").await.unwrap().members, 2);
        loop {
            let event = next_live(&mut alice).await;
            if event.ev == "member.enter" && event.d["user"]["id"] == "bob" {
                break;
            }
        }
        (alice, bob)
    });
    let listed = |node: &Server| {
        let answer = node.call("get_member_list", json!({"RoomId": "p", "Next": "0"}));
        answer["Response"]["MemberList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Member_Account"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&survivor), ["alice", "bob"]);
    victim.kill();
    runtime.block_on(async {
        loop {
            let event = next_live(&mut alice).await;
            if event.ev == "member.leave" {
                assert_eq!(event.d["user"]["id"], "bob");
                assert_eq!(event.d["members"], 1);
                break;
            }
        }
    });
    assert_eq!(listed(&survivor), ["alice"]);
    let set = survivor.call(
        "set_room_metadata",
        json!({"RoomId": "p", "Metadata": [{"Key": "k", "Value": "after the kill"}]}),
    );
    assert_eq!(set["ErrorCode"], 0, "{set}");
    // The resumed client is kept open until the listing: dropping it would start bob's leave.
    let _resumed_bob = runtime.block_on(async {
        let (resumed, entered) = Client::resume(&survivor_ws, &credentials("bob"), &bob)
            .await
            .unwrap();
        let (_, entered) = &entered[0];
        assert_eq!(entered.mode, Mode::Delta);
        assert_eq!(entered.events.len(), 1, "the one write it missed");
        resumed
    });
    assert_eq!(listed(&survivor), ["alice", "bob"]);
    survivor.stop();
}
