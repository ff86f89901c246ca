//! PostgreSQL stops under a node and starts again (docs/cluster.md §6): meanwhile writes answer
//! 100001 with nothing applied and the node says it is not ready; afterwards the same node
//! serves again without a restart. It stops the tests' shared server, so it is the only test of
//! its binary (cargo runs test binaries one after another).

#[path = "common/cluster_support.rs"]
mod cluster_support;
mod common;
#[path = "common/faults_support.rs"]
#[allow(dead_code)]
mod faults_support;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_support::{fresh_schema, node_config};
use faults_support::{Server, serve_command};
use serde_json::json;

/// `ctl start` or `ctl stop` on the tests' PostgreSQL server (`scripts/with-postgres.sh`).
fn postgres(action: &str) {
    let ctl = std::env::var("TEST_POSTGRES_CTL")
        .expect("TEST_POSTGRES_CTL is not set: run the tests with scripts/test");
    let status = Command::new(ctl).arg(action).status().unwrap();
    assert!(status.success(), "postgres {action}: {status}");
}

fn readiness(base: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn writes_fail_cleanly_while_postgres_is_down_and_recover_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path(), 0, &fresh_schema(), "");
    let node = Server::start(serve_command(&config));
    let set = |key: &str, value: &str| {
        node.code(
            "set_room_metadata",
            json!({"RoomId": "r", "Metadata": [{"Key": key, "Value": value}]}),
        )
    };
    assert_eq!(
        node.code("create_room", json!({"RoomInfo": {"RoomId": "r"}})),
        0
    );
    assert_eq!(set("k", "before"), 0);
    assert_eq!(readiness(&node.base), 200);

    postgres("stop");
    for i in 0..5 {
        assert_eq!(
            set("down", &i.to_string()),
            100001,
            "a write while PostgreSQL is down"
        );
    }
    assert_eq!(
        node.code("get_room_metadata", json!({"RoomId": "r", "Keys": []})),
        100001
    );
    assert_eq!(readiness(&node.base), 503);

    postgres("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while set("k", "after") != 0 {
        assert!(Instant::now() < deadline, "no recovery within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(readiness(&node.base), 200);
    let answer = node.call("get_room_metadata", json!({"RoomId": "r", "Keys": []}));
    assert_eq!(
        answer["Response"]["Metadata"],
        json!([{"Key": "k", "Value": "after"}]),
        "nothing of the failed writes was applied"
    );
    node.stop();
}
