//! `liveroom export` and `liveroom import` (docs/cluster.md §9): rooms with their metadata,
//! people and statistics, and accounts with their profiles, move from SQLite to PostgreSQL and
//! back; each backup of the round trip is the same, byte for byte, and the PostgreSQL node
//! answers as the SQLite one did.

#[path = "common/cluster_support.rs"]
mod cluster_support;
mod common;
#[path = "common/faults_support.rs"]
#[allow(dead_code)]
mod faults_support;

use std::path::Path;

use cluster_support::{fresh_schema, node_config};
use common::{liveroom, wait_exit, write_config};
use faults_support::{Server, serve_command};
use serde_json::{Value, json};

fn backup(action: &str, config: &Path, file: &Path) {
    let flag = if action == "export" {
        "--output"
    } else {
        "--input"
    };
    let mut child = liveroom()
        .args([action, "--config"])
        .arg(config)
        .arg(flag)
        .arg(file)
        .env("LIVEROOM_LOG", "warn")
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success(), "liveroom {action}: {status}");
}

/// What the node answers about everything the test wrote.
fn answers(node: &Server) -> Vec<Value> {
    let reads = [
        ("get_room_info", json!({"RoomId": "r1"})),
        ("get_room_info", json!({"RoomId": "r2"})),
        ("get_room_metadata", json!({"RoomId": "r1", "Keys": []})),
        ("get_room_statistic", json!({"RoomId": "r1"})),
        ("get_muted_member_list", json!({"RoomId": "r1"})),
        ("get_banned_member_list", json!({"RoomId": "r1"})),
        ("get_admin_list", json!({"RoomId": "r1"})),
        ("get_room_list", json!({"Count": 10})),
        (
            "profile/portrait_get",
            json!({"To_Account": ["ann", "bob"], "TagList": ["Tag_Profile_IM_Nick"]}),
        ),
    ];
    reads
        .into_iter()
        .map(|(command, body)| {
            let mut answer = node.call(command, body);
            assert_eq!(answer["ErrorCode"], 0, "{command}: {answer}");
            answer.as_object_mut().unwrap().remove("RequestId");
            answer
        })
        .collect()
}

#[test]
fn a_backup_moves_everything_between_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).unwrap();
    let sqlite = write_config(&sqlite_dir);
    let node = Server::start(serve_command(&sqlite));
    let writes = [
        (
            "create_room",
            json!({"RoomInfo": {"RoomId": "r1", "RoomName": "One", "Category": [3, 1]}}),
        ),
        (
            "create_room",
            json!({"RoomInfo": {"RoomId": "r2", "IsPublicVisible": false}}),
        ),
        (
            "set_room_metadata",
            json!({"RoomId": "r1", "Metadata": [{"Key": "k", "Value": "v é"}]}),
        ),
        (
            "mute_member",
            json!({"RoomId": "r1", "MemberList_Account": ["m"], "MuteTime": 3600}),
        ),
        (
            "ban_member",
            json!({"RoomId": "r1", "MemberList_Account": ["b"], "Duration": 3600, "Reason": "spam"}),
        ),
        (
            "modify_admin",
            json!({"RoomId": "r1", "Admin_Account": ["a"], "OpType": "add"}),
        ),
        (
            "im_open_login_svc/account_import",
            json!({"UserID": "ann", "Nick": "Ann"}),
        ),
        (
            "im_open_login_svc/account_import",
            json!({"UserID": "bob", "Nick": "Bob"}),
        ),
        (
            "send_text_msg",
            json!({"RoomId": "r1", "Sender_Account": "ann", "TextContent": "hi"}),
        ),
    ];
    for (command, body) in writes {
        let answer = node.call(command, body);
        assert_eq!(answer["ErrorCode"], 0, "{command}: {answer}");
    }
    let before = answers(&node);
    node.stop();

    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    backup("export", &sqlite, &a);
    let postgres = node_config(dir.path(), 0, &fresh_schema(), "");
    backup("import", &postgres, &a);
    backup("export", &postgres, &b);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "SQLite → PostgreSQL"
    );

    let node = Server::start(serve_command(&postgres));
    assert_eq!(
        answers(&node),
        before,
        "the PostgreSQL node answers as the SQLite one did"
    );
    node.stop();

    let again_dir = dir.path().join("again");
    std::fs::create_dir_all(&again_dir).unwrap();
    let again = write_config(&again_dir);
    backup("import", &again, &b);
    backup("export", &again, &c);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&c).unwrap(),
        "PostgreSQL → SQLite"
    );

    // A second import of the same backup refuses: the rooms exist.
    let mut child = liveroom()
        .args(["import", "--config"])
        .arg(&again)
        .arg("--input")
        .arg(&c)
        .env("LIVEROOM_LOG", "error")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(!wait_exit(&mut child).success());
}
