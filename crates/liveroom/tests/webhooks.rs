//! Webhooks, the change feed and the before-send hook, black-box against docs/webhooks.md:
//! the real `liveroom serve` binary on loopback, and a real HTTP receiver
//! (`common/receiver.rs`) that records what arrives.

mod common;
#[path = "common/faults_support.rs"]
#[allow(dead_code)]
mod faults_support;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ADMIN, APP, KEY};
use faults_support::{Server, serve_command};
use liveroom_client::{Client, Credentials};
use receiver::{Mode, Receiver, Request};
use serde_json::{Value, json};

/// The longest one step may take here (well below `common::DEADLINE`, to fail fast).
const STEP: Duration = Duration::from_secs(20);
/// The example secret of docs/webhooks.md §2 (24 bytes once decoded).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Fast retries, so that failures and recoveries take milliseconds (docs/webhooks.md §5).
const FAST: &[&str] = &[
    "retry_min_ms = 50",
    "retry_max_ms = 200",
    "timeout_ms = 1000",
];

#[derive(Clone, Copy)]
struct Creds {
    sdkappid: u32,
    key: &'static str,
    admin: &'static str,
}

const A1: Creds = Creds {
    sdkappid: APP,
    key: KEY,
    admin: ADMIN,
};
const A2: Creds = Creds {
    sdkappid: 1_400_000_002,
    key: "a-second-key-for-the-second-app",
    admin: "admin2",
};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn usersig(app: Creds, user: &str) -> String {
    liveroom_usersig::generate(app.sdkappid, app.key, user, now_secs(), 86_400)
}

/// Polls `check` until it answers, failing after `within`.
fn wait_until<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "not {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- configuration -------------------------------------------------------------------

fn app_toml(app: Creds, sections: &str) -> String {
    format!(
        "[[apps]]\nsdkappid = {}\nsecret_key = \"{}\"\nadmins = [\"{}\"]\n\
         [apps.rate_limits]\n\"*\" = 1000000\n{sections}",
        app.sdkappid, app.key, app.admin
    )
}

fn webhook_toml(url: &str, extra: &[&str]) -> String {
    let mut text = format!("[apps.webhook]\nurl = \"{url}\"\n");
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn before_send_toml(url: &str, extra: &[&str]) -> String {
    webhook_toml(url, extra).replacen("[apps.webhook]", "[apps.before_send]", 1)
}

fn config_text(dir: &std::path::Path, apps: &[String]) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth_failure_throttle]\nmax_failures = 0\n{}",
        dir.join("data"),
        apps.join("")
    )
}

// ---- the server under test -------------------------------------------------------------

struct Lr {
    _dir: tempfile::TempDir,
    config: PathBuf,
    server: Option<Server>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Lr {
    fn start(apps: &[String]) -> Lr {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("liveroom.toml");
        std::fs::write(&config, config_text(dir.path(), apps)).unwrap();
        let server = Server::start(serve_command(&config));
        Lr {
            _dir: dir,
            config,
            server: Some(server),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder().timeout(STEP).build().unwrap(),
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the server is running")
    }

    fn base(&self) -> String {
        self.server().base.clone()
    }

    fn kill(&mut self) {
        self.server.take().unwrap().kill();
    }

    fn restart(&mut self) {
        assert!(self.server.is_none());
        self.server = Some(Server::start(serve_command(&self.config)));
    }

    fn url(&self, app: Creds, service: &str, command: &str) -> String {
        rest_url(&self.base(), app, service, command)
    }

    /// One REST call; the answer's text, as sent.
    fn raw(&self, app: Creds, service: &str, command: &str, body: Value) -> String {
        let url = self.url(app, service, command);
        self.rt
            .block_on(async {
                self.http
                    .post(&url)
                    .body(body.to_string())
                    .send()
                    .await?
                    .text()
                    .await
            })
            .unwrap_or_else(|e| panic!("{command}: {e}; log:\n{}", self.server().log()))
    }

    fn call(&self, app: Creds, service: &str, command: &str, body: Value) -> (String, Value) {
        let text = self.raw(app, service, command, body);
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: {e}: {text}"));
        (text, value)
    }

    /// A live-engine command of app A1; its ErrorCode.
    fn code(&self, command: &str, body: Value) -> u64 {
        let (_, v) = self.call(A1, "live_engine_http_srv", command, body);
        v["ErrorCode"].as_u64().unwrap()
    }

    /// A live-engine command of `app` that must succeed; the answer's text.
    fn ok_as(&self, app: Creds, command: &str, body: Value) -> String {
        let (text, v) = self.call(app, "live_engine_http_srv", command, body.clone());
        assert_eq!(v["ErrorCode"], 0, "{command} {body}: {text}");
        text
    }

    fn ok(&self, command: &str, body: Value) -> String {
        self.ok_as(A1, command, body)
    }

    /// A liveroom_http_srv command (docs/webhooks.md §6) that must succeed; its `Response`.
    fn srv_as(&self, app: Creds, command: &str, body: Value) -> (String, Value) {
        let (text, v) = self.call(app, "liveroom_http_srv", command, body.clone());
        assert_eq!(v["ErrorCode"], 0, "{command} {body}: {text}");
        (member(&text, "Response").to_owned(), v["Response"].clone())
    }

    fn srv(&self, command: &str, body: Value) -> Value {
        self.srv_as(A1, command, body).1
    }

    fn stats(&self) -> Value {
        self.srv("get_webhook_stats", json!({}))
    }

    fn wait_stats(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, STEP, || Some(self.stats()).filter(|s| want(s)))
    }

    fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base());
        self.rt
            .block_on(async { self.http.get(&url).send().await?.text().await })
            .unwrap()
    }

    /// `RoomInfo` as `get_room_info` answers it, as text.
    fn room_info(&self, room: &str) -> String {
        let text = self.ok("get_room_info", json!({"RoomId": room}));
        member(member(&text, "Response"), "RoomInfo").to_owned()
    }

    /// Every feed entry of `app` (or of one room), walked `limit` at a time, checking
    /// `NextAfterSeq` (docs/webhooks.md §6); each as (Seq, text).
    fn feed(&self, app: Creds, room: Option<&str>, limit: u64) -> Vec<(u64, String)> {
        let mut after = 0;
        let mut all = Vec::new();
        loop {
            let mut body = json!({"AfterSeq": after, "Limit": limit});
            if let Some(room) = room {
                body["RoomId"] = room.into();
            }
            let (text, value) = self.srv_as(app, "get_feed", body);
            let page: Vec<(u64, String)> = elements(member(&text, "Events"))
                .into_iter()
                .map(|e| (member(e, "Seq").parse().unwrap(), e.to_owned()))
                .collect();
            assert!(page.len() as u64 <= limit, "{text}");
            let next = value["NextAfterSeq"].as_u64().unwrap();
            match page.last() {
                None => {
                    assert_eq!(next, after, "an empty page answers AfterSeq: {text}");
                    return all;
                }
                Some((last, _)) => assert_eq!(next, *last, "NextAfterSeq is the last Seq: {text}"),
            }
            for (seq, _) in &page {
                assert!(*seq > after, "Seq {seq} not after {after}: {text}");
                after = *seq;
            }
            all.extend(page);
        }
    }

    fn stop(&mut self) -> String {
        self.server.take().unwrap().stop()
    }
}

fn rest_url(base: &str, app: Creds, service: &str, command: &str) -> String {
    format!(
        "{base}/v4/{service}/{command}?sdkappid={}&identifier={}&usersig={}&random=1&contenttype=json",
        app.sdkappid,
        app.admin,
        usersig(app, app.admin)
    )
}

/// An async REST call for writers that outlive the server: its ErrorCode, or `None` when the
/// server could not be reached.
async fn post_code(http: &reqwest::Client, url: &str, body: Value) -> Option<u64> {
    let answer = http.post(url).body(body.to_string()).send().await.ok()?;
    let value: Value = answer.json().await.ok()?;
    value["ErrorCode"].as_u64()
}

fn ws_url(base: &str) -> String {
    format!("{}/v1/realtime", base.replacen("http://", "ws://", 1))
}

fn user(app: Creds, id: &str) -> Credentials {
    Credentials {
        sdkappid: app.sdkappid,
        userid: id.into(),
        usersig: usersig(app, id),
    }
}

// ---- JSON as text: field order and bytes matter here -----------------------------------

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index just past the JSON value that starts at `i`.
fn value_end(s: &[u8], i: usize) -> usize {
    match s[i] {
        b'"' => {
            let mut j = i + 1;
            loop {
                match s[j] {
                    b'\\' => j += 2,
                    b'"' => return j + 1,
                    _ => j += 1,
                }
            }
        }
        b'{' | b'[' => {
            let mut j = i + 1;
            loop {
                j = skip_ws(s, j);
                match s[j] {
                    b'}' | b']' => return j + 1,
                    b',' | b':' => j += 1,
                    _ => j = value_end(s, j),
                }
            }
        }
        _ => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b'}' | b']') && !s[j].is_ascii_whitespace()
            {
                j += 1;
            }
            j
        }
    }
}

/// An object's members in order: (key, value as text).
fn members(object: &str) -> Vec<(String, &str)> {
    let s = object.as_bytes();
    let mut i = skip_ws(s, 0);
    assert_eq!(s[i], b'{', "not an object: {object}");
    let mut out = Vec::new();
    i += 1;
    loop {
        i = skip_ws(s, i);
        match s[i] {
            b'}' => return out,
            b',' => i += 1,
            _ => {
                let key_end = value_end(s, i);
                let key: String = serde_json::from_str(&object[i..key_end]).unwrap();
                i = skip_ws(s, key_end);
                assert_eq!(s[i], b':');
                let start = skip_ws(s, i + 1);
                let end = value_end(s, start);
                out.push((key, &object[start..end]));
                i = end;
            }
        }
    }
}

fn member<'a>(object: &'a str, key: &str) -> &'a str {
    members(object)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {object}"))
        .1
}

fn keys(object: &str) -> Vec<String> {
    members(object).into_iter().map(|(k, _)| k).collect()
}

fn elements(array: &str) -> Vec<&str> {
    let s = array.as_bytes();
    let mut i = skip_ws(s, 0);
    assert_eq!(s[i], b'[', "not an array: {array}");
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(s, i);
        match s[i] {
            b']' => return out,
            b',' => i += 1,
            _ => {
                let end = value_end(s, i);
                out.push(&array[i..end]);
                i = end;
            }
        }
    }
}

/// The body with its `EventTime` replaced by 0, and the `EventTime`.
fn without_event_time(body: &str) -> (String, u64) {
    let raw = member(body, "EventTime");
    let time = raw
        .parse()
        .unwrap_or_else(|_| panic!("EventTime {raw}: {body}"));
    let field = format!("\"EventTime\":{raw}");
    assert_eq!(body.matches(&field).count(), 1, "{body}");
    (body.replacen(&field, "\"EventTime\":0", 1), time)
}

/// The room a callback is about.
fn room_of(body: &Value) -> String {
    body["RoomId"]
        .as_str()
        .or(body["RoomInfo"]["RoomId"].as_str())
        .unwrap()
        .to_owned()
}

// ---- signatures: HMAC-SHA256 by hand, so the check shares no code with liveroom -------

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

/// docs/webhooks.md §4, as its Python example does it.
fn verify(secret: &str, request: &Request) -> Result<(), String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = request.header("webhook-id").ok_or("no webhook-id")?;
    let ts = request
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let sigs = request
        .header("webhook-signature")
        .ok_or("no webhook-signature")?;
    let ts_n: u64 = ts.parse().map_err(|_| format!("webhook-timestamp {ts}"))?;
    if now_secs().abs_diff(ts_n) > 300 {
        return Err(format!("webhook-timestamp {ts} is not now"));
    }
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = STANDARD.encode(hmac_sha256(&key, &signed));
    if sigs
        .split_whitespace()
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        Ok(())
    } else {
        Err(format!("webhook-signature {sigs}, expected v1,{expected}"))
    }
}

fn webhook_seq(request: &Request) -> u64 {
    let id = request.header("webhook-id").expect("a signed request");
    let prefix = format!("evt_{APP}_");
    id.strip_prefix(&prefix)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("webhook-id {id}"))
}

// ---- 1. the requests --------------------------------------------------------------------

/// Checks one callback request against docs/webhooks.md §3; mismatches go to `problems`.
fn check(
    problems: &mut Vec<String>,
    request: &Request,
    command: &str,
    platform: &str,
    golden: &str,
    since_ms: u64,
) {
    let query: Vec<(String, String)> = request.query();
    let want: Vec<(String, String)> = [
        ("token", "t1"),
        ("SdkAppid", &APP.to_string()),
        ("CallbackCommand", command),
        ("contenttype", "json"),
        ("ClientIP", ""),
        ("OptPlatform", platform),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if request.method != "POST" || request.path() != "/cb" || query != want {
        problems.push(format!(
            "{command}: {} {}, expected POST /cb?{want:?}",
            request.method, request.target
        ));
    }
    if !request
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        problems.push(format!(
            "{command}: content-type {:?}",
            request.header("content-type")
        ));
    }
    let (body, time) = without_event_time(request.text());
    if time + 1000 < since_ms || time > now_ms() + 1000 {
        problems.push(format!(
            "{command}: EventTime {time} is not a millisecond of now"
        ));
    }
    if body != golden {
        problems.push(format!("{command}:\n   got {body}\n  want {golden}"));
    }
}

#[test]
fn each_callback_request_is_as_documented() {
    let rx = Receiver::start();
    let mut lr = Lr::start(&[app_toml(
        A1,
        &webhook_toml(&rx.url("/cb?token=t1"), &["events = [\"*\"]"]),
    )]);
    let room = "golden-1";
    let mut problems = Vec::new();
    let mut seen = 0;
    // One room: its entries arrive one at a time, in order (docs/webhooks.md §5).
    let mut next = || {
        seen += 1;
        rx.wait_count(seen, STEP)[seen - 1].clone()
    };
    let prefix = |command: &str| {
        format!(r#"{{"CallbackCommand":"{command}","Operator_Account":"administrator","#)
    };

    let t = now_ms();
    lr.ok(
        "create_room",
        json!({"RoomInfo": {"RoomId": room, "RoomName": "Golden", "Notice": "hi"}}),
    );
    let info = lr.room_info(room);
    let c = "Live.CallbackAfterCreateRoom";
    let golden = format!(r#"{}"RoomInfo":{info},"EventTime":0}}"#, prefix(c));
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    let t = now_ms();
    lr.ok(
        "update_room_info",
        json!({"RoomInfo": {"RoomId": room, "Notice": "changed", "MaxSeatCount": 4}}),
    );
    let info = lr.room_info(room);
    let c = "Live.CallbackAfterUpdateRoomInfo";
    let golden = format!(r#"{}"RoomInfo":{info},"EventTime":0}}"#, prefix(c));
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    // The keys the request set, each once, in key order (the last of a repeated key wins).
    let t = now_ms();
    lr.ok(
        "set_room_metadata",
        json!({"RoomId": room, "Metadata": [
        {"Key": "b", "Value": "2"}, {"Key": "a", "Value": "0"}, {"Key": "a", "Value": "1"}]}),
    );
    let c = "Live.CallbackAfterSetMetadata";
    let golden = format!(
        r#"{}"RoomId":"{room}","Metadata":[{{"Key":"a","Value":"1"}},{{"Key":"b","Value":"2"}}],"EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    // Only the keys that existed, in key order.
    let t = now_ms();
    lr.ok(
        "del_room_metadata",
        json!({"RoomId": room, "Keys": ["b", "zz", "a"]}),
    );
    let c = "Live.CallbackAfterDelMetadata";
    let golden = format!(
        r#"{}"RoomId":"{room}","Keys":["a","b"],"EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    // modify_admin's own field order (docs/webhooks.md §3), `opType` with a lower-case o.
    let c = "Live.CallbackAfterModifyAdmin";
    for (op, accounts) in [("add", json!(["alice", "amy"])), ("delete", json!(["amy"]))] {
        let t = now_ms();
        lr.ok(
            "modify_admin",
            json!({"RoomId": room, "Admin_Account": accounts, "OpType": op}),
        );
        let golden = format!(
            r#"{{"CallbackCommand":"{c}","RoomId":"{room}","EventTime":0,"Operator_Account":"administrator","Admin_Account":{accounts},"opType":"{op}"}}"#
        );
        check(&mut problems, &next(), c, "RESTAPI", &golden, t);
    }

    let t = now_ms();
    lr.ok(
        "mute_member",
        json!({"RoomId": room, "MemberList_Account": ["bob"], "MuteTime": 600}),
    );
    let muted = lr.ok("get_muted_member_list", json!({"RoomId": room}));
    let until: Value = serde_json::from_str(&muted).unwrap();
    let until = &until["Response"]["MutedAccountList"][0]["MutedUntil"];
    let c = "Liveroom.CallbackAfterMuteMember";
    let golden = format!(
        r#"{}"RoomId":"{room}","MemberList_Account":["bob"],"MutedUntil":{until},"EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    let t = now_ms();
    lr.ok(
        "ban_member",
        json!({"RoomId": room, "MemberList_Account": ["carl"], "Duration": 600, "Reason": "spam"}),
    );
    let banned = lr.ok("get_banned_member_list", json!({"RoomId": room}));
    let until: Value = serde_json::from_str(&banned).unwrap();
    let until = &until["Response"]["BannedAccountList"][0]["BannedUntil"];
    let c = "Liveroom.CallbackAfterBanMember";
    let golden = format!(
        r#"{}"RoomId":"{room}","MemberList_Account":["carl"],"BannedUntil":{until},"Reason":"spam","EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    let t = now_ms();
    lr.ok(
        "unban_member",
        json!({"RoomId": room, "MemberList_Account": ["carl"]}),
    );
    let c = "Liveroom.CallbackAfterUnbanMember";
    let golden = format!(
        r#"{}"RoomId":"{room}","MemberList_Account":["carl"],"EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);

    // A member over the real-time gateway: its presence, and its metadata writes as an
    // administrator of the room; its operator is no app administrator, so `Unknown`.
    let base = lr.base();
    let mut alice = lr
        .rt
        .block_on(Client::connect(&ws_url(&base), &user(A1, "alice")))
        .unwrap();
    let state = |event: &str, cause: &str| {
        format!(
            r#"{{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"{room}","EventType":"{event}","EventCause":"{cause}","MemberList":[{{"Member_Account":"alice"}}],"EventTime":0}}"#
        )
    };
    let c = "Live.CallbackAfterMemberStateChanged";
    let t = now_ms();
    lr.rt.block_on(alice.enter(room)).unwrap();
    check(
        &mut problems,
        &next(),
        c,
        "Unknown",
        &state("Online", "Enter"),
        t,
    );
    let t = now_ms();
    lr.rt
        .block_on(alice.set_metadata(room, &[("c", "3")]))
        .unwrap();
    let c = "Live.CallbackAfterSetMetadata";
    let golden = format!(
        r#"{{"CallbackCommand":"{c}","Operator_Account":"alice","RoomId":"{room}","Metadata":[{{"Key":"c","Value":"3"}}],"EventTime":0}}"#
    );
    check(&mut problems, &next(), c, "Unknown", &golden, t);
    let t = now_ms();
    lr.rt.block_on(alice.del_metadata(room, &["c"])).unwrap();
    let c = "Live.CallbackAfterDelMetadata";
    let golden = format!(
        r#"{{"CallbackCommand":"{c}","Operator_Account":"alice","RoomId":"{room}","Keys":["c"],"EventTime":0}}"#
    );
    check(&mut problems, &next(), c, "Unknown", &golden, t);
    let t = now_ms();
    lr.rt.block_on(alice.exit(room)).unwrap();
    let c = "Live.CallbackAfterMemberStateChanged";
    check(
        &mut problems,
        &next(),
        c,
        "Unknown",
        &state("Offline", "Leave"),
        t,
    );

    // The room as it was (one viewer: alice), and the statistic in the doc's order.
    let info = lr.room_info(room);
    let t = now_ms();
    lr.ok("destroy_room", json!({"RoomId": room}));
    let c = "Live.CallbackAfterDestroyRoom";
    let golden = format!(
        r#"{}"RoomId":"{room}","EventType":"DestroyByUser","RoomInfo":{info},"Statistic":{{"TotalViewers":1,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":0}},"EventTime":0}}"#,
        prefix(c)
    );
    check(&mut problems, &next(), c, "RESTAPI", &golden, t);
    drop(alice);
    assert!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
    lr.stop();
}

/// A member whose connection is lost and who does not come back within the grace period
/// leaves: `HeartbeatInterrupt`, then `Leave` (docs/webhooks.md §3).
#[test]
fn an_interrupted_member_that_does_not_return_leaves() {
    let rx = Receiver::start();
    let grace = "[realtime]\npresence_grace_secs = 1\n".to_owned();
    let mut lr = Lr::start(&[signed_fast(&rx, 3600), grace]);
    lr.ok("create_room", json!({"RoomInfo": {"RoomId": "g"}}));
    let mut alice = lr
        .rt
        .block_on(Client::connect(&ws_url(&lr.base()), &user(A1, "alice")))
        .unwrap();
    lr.rt.block_on(alice.enter("g")).unwrap();
    // Gone without a close frame: an interrupt.
    drop(alice);
    let states = |requests: &[Request]| -> Vec<(String, String)> {
        requests
            .iter()
            .filter(|r| r.delivered())
            .map(Request::json)
            .filter(|b| b["CallbackCommand"] == "Live.CallbackAfterMemberStateChanged")
            .map(|b| {
                let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
                (text("EventType"), text("EventCause"))
            })
            .collect()
    };
    let requests = rx.wait_for("enter, interrupt, leave", STEP, |r| states(r).len() >= 3);
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        states(&requests),
        [
            pair("Online", "Enter"),
            pair("Offline", "HeartbeatInterrupt"),
            pair("Offline", "Leave")
        ]
    );
    lr.stop();
}

// ---- 2. signatures -----------------------------------------------------------------------

#[test]
fn signatures_follow_standard_webhooks() {
    // RFC 4231 test case 2: the hand-made HMAC is right.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );

    let rx = Receiver::start();
    let signed = webhook_toml(&rx.url("/signed"), &[&format!("secret = \"{SECRET}\"")]);
    let unsigned = webhook_toml(&rx.url("/unsigned"), &[]);
    let lr = Lr::start(&[app_toml(A1, &signed), app_toml(A2, &unsigned)]);
    lr.ok("create_room", json!({"RoomInfo": {"RoomId": "sig-1"}}));
    // Not one of Tencent's seven, so not sent by default (docs/webhooks.md §2); had it been,
    // it would arrive before the set, which follows it in the room.
    lr.ok(
        "mute_member",
        json!({"RoomId": "sig-1", "MemberList_Account": ["bob"], "MuteTime": 60}),
    );
    lr.ok(
        "set_room_metadata",
        json!({"RoomId": "sig-1", "Metadata": [{"Key": "k", "Value": "v"}]}),
    );
    let all = rx.wait_for("2 signed requests", STEP, |r| {
        r.iter().filter(|r| r.path() == "/signed").count() >= 2
    });
    let got: Vec<&Request> = all.iter().filter(|r| r.path() == "/signed").collect();
    let feed = lr.feed(A1, Some("sig-1"), 100);
    let seq_of = |command: &str| {
        feed.iter()
            .find(|(_, e)| member(e, "CallbackCommand") == format!("\"{command}\""))
            .unwrap_or_else(|| panic!("no {command} in the feed {feed:?}"))
            .0
    };
    let expect = [
        (
            "Live.CallbackAfterCreateRoom",
            seq_of("Live.CallbackAfterCreateRoom"),
        ),
        (
            "Live.CallbackAfterSetMetadata",
            seq_of("Live.CallbackAfterSetMetadata"),
        ),
    ];
    for (request, (command, seq)) in got.iter().zip(expect) {
        assert_eq!(
            request.json()["CallbackCommand"],
            command,
            "{}",
            request.text()
        );
        assert_eq!(
            request.header("webhook-id"),
            Some(format!("evt_{APP}_{seq}").as_str())
        );
        verify(SECRET, request).unwrap();
        let mut tampered = (*request).clone();
        tampered.body.push(b' ');
        assert!(
            verify(SECRET, &tampered).is_err(),
            "the check checks nothing"
        );
    }

    lr.ok_as(A2, "create_room", json!({"RoomInfo": {"RoomId": "uns-1"}}));
    let all = rx.wait_for("an unsigned request", STEP, |r| {
        r.iter().any(|r| r.path() == "/unsigned")
    });
    let request = all.iter().find(|r| r.path() == "/unsigned").unwrap();
    assert_eq!(
        request.query_value("SdkAppid"),
        Some(A2.sdkappid.to_string())
    );
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert_eq!(
            request.header(header),
            None,
            "unsigned requests carry no {header}"
        );
    }
}

// ---- 3. a receiver down, then up ---------------------------------------------------------

/// Per room, requests go in Seq order; an id always carries the same body; every id was
/// delivered exactly once (no crash happened).
fn check_order_and_duplicates(requests: &[Request], exactly_once: bool) {
    let mut bodies: HashMap<u64, &[u8]> = HashMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut delivered: BTreeMap<u64, usize> = BTreeMap::new();
    for request in requests {
        let seq = webhook_seq(request);
        let body = bodies.entry(seq).or_insert(&request.body);
        assert_eq!(*body, &request.body[..], "webhook-id {seq} with two bodies");
        let room = room_of(&request.json());
        let before = last.insert(room.clone(), seq).unwrap_or(0);
        assert!(seq >= before, "room {room}: Seq {seq} sent after {before}");
        if request.delivered() {
            *delivered.entry(seq).or_default() += 1;
        }
    }
    if exactly_once {
        let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    }
}

fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn signed_fast(rx: &Receiver, retry_for_secs: u64) -> String {
    let mut extra = vec![
        "events = [\"*\"]".to_owned(),
        format!("secret = \"{SECRET}\""),
    ];
    extra.push(format!("retry_for_secs = {retry_for_secs}"));
    extra.extend(FAST.iter().map(|s| s.to_string()));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    app_toml(A1, &webhook_toml(&rx.url("/hook"), &extra))
}

fn wait_all_delivered(rx: &Receiver, seqs: &[u64]) -> Vec<Request> {
    rx.wait_for(&format!("{} entries delivered", seqs.len()), STEP, |r| {
        let done: std::collections::HashSet<u64> = r
            .iter()
            .filter(|r| r.delivered())
            .map(webhook_seq)
            .collect();
        seqs.iter().all(|s| done.contains(s))
    })
}

#[test]
fn a_receiver_down_then_up_gets_every_entry_in_order() {
    let mut rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let lr = Lr::start(&[signed_fast(&rx, 3600)]);
    let rooms = ["d-0", "d-1", "d-2"];
    for room in rooms {
        lr.ok("create_room", json!({"RoomInfo": {"RoomId": room}}));
    }
    let write = |round: u32| {
        for i in 0..4 {
            for room in rooms {
                let value = format!("{round}-{i}");
                lr.ok(
                    "set_room_metadata",
                    json!({"RoomId": room, "Metadata": [{"Key": "k", "Value": value}]}),
                );
            }
        }
    };
    write(0);
    rx.wait_for("6 answers of 503", STEP, |r| {
        r.iter().filter(|r| r.answered == Some(503)).count() >= 6
    });
    rx.down();
    write(1);
    let stats = lr.stats();
    assert_eq!(stats["Pending"], 27, "nothing was delivered yet: {stats}");
    assert_eq!(stats["Parked"], 0, "{stats}");
    // Connection errors while down (docs/webhooks.md §6, failures by reason).
    let refused = Instant::now() + Duration::from_secs(5);
    let mut saw_connect = false;
    while Instant::now() < refused && !saw_connect {
        saw_connect = metric(
            &lr.metrics(),
            "liveroom_webhook_failures_total",
            "reason=\"connect\"",
        ) > 0.0;
        std::thread::sleep(Duration::from_millis(50));
    }
    rx.up();
    rx.set_mode(Mode::Ok);
    let seqs: Vec<u64> = lr.feed(A1, None, 100).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, (1..=27).collect::<Vec<_>>());
    let requests = wait_all_delivered(&rx, &seqs);
    check_order_and_duplicates(&requests, true);
    lr.wait_stats("nothing pending", |s| s["Pending"] == 0 && s["Parked"] == 0);
    let metrics = lr.metrics();
    assert!(
        metric(
            &metrics,
            "liveroom_webhook_failures_total",
            "reason=\"status\""
        ) > 0.0,
        "{metrics}"
    );
    assert!(
        saw_connect,
        "no failure with reason connect while the receiver was down:\n{metrics}"
    );
    // Each of the 27 entries was delivered once at least, each delivery counted and timed.
    let delivered = metric(
        &metrics,
        "liveroom_webhook_attempts_total",
        "outcome=\"delivered\"",
    );
    assert!(delivered >= 27.0, "{metrics}");
    assert!(
        metric(&metrics, "liveroom_webhook_delivery_seconds_count", "") >= 27.0,
        "{metrics}"
    );
}

// ---- 4. SIGKILL mid-delivery ---------------------------------------------------------------

#[test]
fn entries_acknowledged_before_sigkill_are_all_delivered() {
    let rx = Receiver::start();
    let mut lr = Lr::start(&[signed_fast(&rx, 3600)]);
    let rooms = ["k-0", "k-1", "k-2"];
    for room in rooms {
        lr.ok("create_room", json!({"RoomInfo": {"RoomId": room}}));
    }
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..5 {
        if round > 0 {
            lr.restart();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let base = lr.base();
        let writers: Vec<_> = rooms
            .iter()
            .enumerate()
            .map(|(w, room)| {
                let (http, url) = (
                    lr.http.clone(),
                    rest_url(&base, A1, "live_engine_http_srv", "set_room_metadata"),
                );
                let (stop, acked, room) = (stop.clone(), acked.clone(), room.to_string());
                lr.rt.spawn(async move {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let value = format!("{round}-{w}-{i}");
                        let body =
                            json!({"RoomId": room, "Metadata": [{"Key": "v", "Value": value}]});
                        match post_code(&http, &url, body).await {
                            Some(0) => acked.lock().unwrap().push(value),
                            Some(code) => panic!("set_room_metadata answered {code}"),
                            None => break,
                        }
                    }
                })
            })
            .collect();
        // Kill while writes are acknowledged and deliveries are under way.
        let (acked_before, arrived_before) = (acked.lock().unwrap().len(), rx.requests().len());
        wait_until("writes and deliveries under way", STEP, || {
            let busy = acked.lock().unwrap().len() >= acked_before + 20
                && rx.requests().len() >= arrived_before + 5;
            busy.then_some(())
        });
        lr.kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            lr.rt.block_on(writer).unwrap();
        }
    }
    lr.restart();
    let acked = acked.lock().unwrap().clone();
    let value_of = |r: &Request| r.json()["Metadata"][0]["Value"].as_str().map(str::to_owned);
    let requests = rx.wait_for(
        &format!("{} acknowledged writes delivered", acked.len()),
        STEP,
        |r| {
            let delivered: std::collections::HashSet<String> = r
                .iter()
                .filter(|r| r.delivered())
                .filter_map(value_of)
                .collect();
            acked.iter().all(|v| delivered.contains(v))
        },
    );
    // Deduplicated by webhook-id, each acknowledged write is one entry.
    let mut by_id: HashMap<u64, &[u8]> = HashMap::new();
    for request in &requests {
        let body = by_id.entry(webhook_seq(request)).or_insert(&request.body);
        assert_eq!(*body, &request.body[..], "one webhook-id, two bodies");
    }
    let mut ids_per_value: HashMap<String, usize> = HashMap::new();
    for body in by_id.values() {
        let body: Value = serde_json::from_slice(body).unwrap();
        if let Some(v) = body["Metadata"][0]["Value"].as_str() {
            *ids_per_value.entry(v.to_owned()).or_default() += 1;
        }
    }
    for value in &acked {
        assert_eq!(ids_per_value.get(value), Some(&1), "write {value}");
    }
    lr.stop();
}

// ---- 5. a hanging receiver ----------------------------------------------------------------

#[test]
fn a_hanging_receiver_does_not_slow_the_api() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Hang);
    let hook = webhook_toml(
        &rx.url("/hook"),
        &[
            "events = [\"*\"]",
            "timeout_ms = 60000",
            "retry_for_secs = 3600",
        ],
    );
    let lr = Lr::start(&[app_toml(A1, &hook)]);
    let rooms = ["h-0", "h-1", "h-2", "h-3"];
    for room in rooms {
        lr.ok("create_room", json!({"RoomInfo": {"RoomId": room}}));
    }
    // One entry in flight per room (docs/webhooks.md §5), each held.
    rx.wait_count(rooms.len(), STEP);
    let url = lr.url(A1, "live_engine_http_srv", "set_room_metadata");
    let codes: Vec<Option<u64>> = lr.rt.block_on(async {
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let (http, url) = (lr.http.clone(), url.clone());
                let body = json!({"RoomId": rooms[i % 4], "Metadata": [{"Key": "k", "Value": i.to_string()}]});
                tokio::spawn(async move { post_code(&http, &url, body).await })
            })
            .collect();
        let mut codes = Vec::new();
        for call in calls {
            codes.push(call.await.unwrap());
        }
        codes
    });
    assert!(codes.iter().all(|c| *c == Some(0)), "{codes:?}");
    let held = rx.requests();
    assert_eq!(
        held.len(),
        rooms.len(),
        "more than one entry per room in flight"
    );
    assert!(held.iter().all(|r| r.answered.is_none()));
    let stats = lr.stats();
    assert_eq!(stats["Pending"], 104, "{stats}");
    rx.set_mode(Mode::Ok);
    rx.wait_for("104 deliveries", STEP, |r| {
        r.iter().filter(|r| r.delivered()).count() >= 104
    });
    lr.wait_stats("nothing pending", |s| s["Pending"] == 0);
}

// ---- 6. parking and replay -----------------------------------------------------------------

#[test]
fn parked_entries_are_listed_and_replayed() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let lr = Lr::start(&[signed_fast(&rx, 1)]);
    lr.ok("create_room", json!({"RoomInfo": {"RoomId": "p"}}));
    lr.ok("create_room", json!({"RoomInfo": {"RoomId": "q"}}));
    for (room, key) in [("p", "k1"), ("p", "k2"), ("q", "k1")] {
        lr.ok(
            "set_room_metadata",
            json!({"RoomId": room, "Metadata": [{"Key": key, "Value": "v"}]}),
        );
    }
    lr.wait_stats("5 entries parked", |s| {
        s["Parked"] == 5 && s["Pending"] == 0
    });
    let attempts = rx.requests();
    let mut parked = Vec::new();
    let mut after = 0;
    loop {
        let (text, value) = lr.srv_as(
            A1,
            "get_parked_webhooks",
            json!({"AfterSeq": after, "Limit": 2}),
        );
        let page = elements(member(&text, "Events")).len();
        if page == 0 {
            assert_eq!(value["NextAfterSeq"], after, "{text}");
            break;
        }
        assert!(page <= 2, "{text}");
        for event in elements(member(&text, "Events")) {
            assert_eq!(
                keys(event),
                ["Seq", "RoomId", "CallbackCommand", "Error", "Body"],
                "{event}"
            );
            parked.push(serde_json::from_str::<Value>(event).unwrap());
        }
        after = parked.last().unwrap()["Seq"].as_u64().unwrap();
        assert_eq!(value["NextAfterSeq"], after, "{text}");
    }
    let seqs: Vec<u64> = parked.iter().map(|e| e["Seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    for event in &parked {
        let seq = event["Seq"].as_u64().unwrap();
        let sent = attempts
            .iter()
            .find(|r| webhook_seq(r) == seq)
            .expect("attempted");
        assert_eq!(event["Body"], sent.json(), "{event}");
        assert_eq!(event["CallbackCommand"], sent.json()["CallbackCommand"]);
        assert_eq!(event["RoomId"], room_of(&sent.json()).as_str());
        assert!(
            event["Error"].as_str().is_some_and(|e| !e.is_empty()),
            "{event}"
        );
    }

    rx.set_mode(Mode::Ok);
    // The room's next entry is not held up by its parked ones.
    lr.ok(
        "set_room_metadata",
        json!({"RoomId": "p", "Metadata": [{"Key": "k3", "Value": "v"}]}),
    );
    wait_all_delivered(&rx, &[6]);
    let mark = rx.requests().len();
    assert_eq!(
        lr.srv("replay_webhooks", json!({"Seqs": [3, 4]}))["Replayed"],
        2
    );
    let requests = wait_all_delivered(&rx, &[3, 4]);
    let order: Vec<u64> = requests[mark..]
        .iter()
        .filter(|r| r.delivered())
        .map(webhook_seq)
        .collect();
    assert_eq!(order, [3, 4]);
    lr.wait_stats("3 parked", |s| s["Parked"] == 3);
    assert_eq!(
        lr.srv("replay_webhooks", json!({"Seqs": [3]}))["Replayed"],
        0,
        "3 is not parked"
    );

    let mark = rx.requests().len();
    assert_eq!(
        lr.srv("replay_webhooks", json!({"All": true}))["Replayed"],
        3
    );
    let requests = wait_all_delivered(&rx, &[1, 2, 5]);
    let order: Vec<u64> = requests[mark..]
        .iter()
        .filter(|r| r.delivered())
        .map(webhook_seq)
        .collect();
    let q: Vec<u64> = order.iter().copied().filter(|s| *s != 1).collect();
    assert_eq!(q, [2, 5], "room q in order: {order:?}");
    lr.wait_stats("nothing parked or pending", |s| {
        s["Parked"] == 0 && s["Pending"] == 0
    });
    assert_eq!(
        lr.srv("get_parked_webhooks", json!({}))["Events"],
        json!([])
    );
}

// ---- 7. the change feed -------------------------------------------------------------------

#[test]
fn the_feed_pages_through_every_entry_once() {
    let rx = Receiver::start();
    let lr = Lr::start(&[signed_fast(&rx, 3600), app_toml(A2, "")]);
    let rooms = ["f-0", "f-1", "f-2"];
    for room in rooms {
        lr.ok("create_room", json!({"RoomInfo": {"RoomId": room}}));
    }
    for i in 0..6 {
        for room in rooms {
            lr.ok(
                "set_room_metadata",
                json!({"RoomId": room, "Metadata": [{"Key": format!("k{i}"), "Value": "v"}]}),
            );
        }
    }
    lr.ok(
        "update_room_info",
        json!({"RoomInfo": {"RoomId": "f-0", "Notice": "n"}}),
    );
    lr.ok(
        "del_room_metadata",
        json!({"RoomId": "f-1", "Keys": ["k0"]}),
    );
    let n = 3 + 18 + 2;
    let requests = wait_all_delivered(&rx, &(1..=n).collect::<Vec<_>>());
    let webhook: HashMap<u64, String> = requests
        .iter()
        .filter(|r| r.delivered())
        .map(|r| (webhook_seq(r), r.text().to_owned()))
        .collect();
    // The webhook body with Seq first, then RoomId for the two that name it only in RoomInfo.
    let expected = |seq: u64| {
        let body = &webhook[&seq];
        let value: Value = serde_json::from_str(body).unwrap();
        let command = value["CallbackCommand"].as_str().unwrap();
        let room = if matches!(
            command,
            "Live.CallbackAfterCreateRoom" | "Live.CallbackAfterUpdateRoomInfo"
        ) {
            format!("\"RoomId\":\"{}\",", room_of(&value))
        } else {
            String::new()
        };
        format!("{{\"Seq\":{seq},{room}{}", &body[1..])
    };
    let all = lr.feed(A1, None, 5);
    assert_eq!(
        all.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    for (seq, text) in &all {
        assert_eq!(text, &expected(*seq), "feed entry {seq}");
    }
    let whole = lr.feed(A1, None, 100);
    assert_eq!(whole, all);
    let (_, default) = lr.srv_as(A1, "get_feed", json!({}));
    assert_eq!(
        default["Events"].as_array().unwrap().len() as u64,
        n,
        "default AfterSeq 0, Limit 100"
    );
    for room in rooms {
        let one = lr.feed(A1, Some(room), 3);
        let want: Vec<u64> = all
            .iter()
            .filter(|(_, t)| room_of(&serde_json::from_str(t).unwrap()) == room)
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(
            one.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            want,
            "room {room}"
        );
    }
    for limit in [0, 101] {
        let (_, v) = lr.call(A1, "liveroom_http_srv", "get_feed", json!({"Limit": limit}));
        assert_eq!(v["ErrorCode"], 100_002, "Limit {limit}: {v}");
    }
    // Each app has its own feed from 1; an app without a webhook parks and replays nothing.
    lr.ok_as(A2, "create_room", json!({"RoomInfo": {"RoomId": "other"}}));
    let other = lr.feed(A2, None, 100);
    assert_eq!(other.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1]);
    let (_, parked) = lr.srv_as(A2, "get_parked_webhooks", json!({}));
    assert_eq!(parked["Events"], json!([]));
    let (_, replayed) = lr.srv_as(A2, "replay_webhooks", json!({"All": true}));
    assert_eq!(replayed["Replayed"], 0);
}

// ---- 8. before-send -----------------------------------------------------------------------

/// The next message event the client receives, skipping presence.
async fn next_text(client: &mut Client) -> String {
    loop {
        let event = tokio::time::timeout(STEP, client.next_event())
            .await
            .unwrap()
            .unwrap();
        if event.ev == "msg.text" {
            return event.d["text"].as_str().unwrap().to_owned();
        }
    }
}

#[test]
fn before_send_allows_blocks_and_falls_back() {
    let rx_wh = Receiver::start();
    let rx = Receiver::start();
    rx.set_mode(Mode::BeforeSend(Arc::new(|body: &[u8]| {
        String::from_utf8_lossy(body).contains("forbidden")
    })));
    let a1 = format!(
        "{}{}",
        webhook_toml(&rx_wh.url("/wh"), &[&format!("secret = \"{SECRET}\"")]),
        before_send_toml(
            &rx.url("/bs?x=1"),
            &["timeout_ms = 300", "on_failure = \"allow\""]
        )
    );
    let a2 = before_send_toml(
        &rx.url("/bs2"),
        &["timeout_ms = 300", "on_failure = \"block\""],
    );
    let lr = Lr::start(&[app_toml(A1, &a1), app_toml(A2, &a2)]);
    lr.ok("create_room", json!({"RoomInfo": {"RoomId": "bs-1"}}));
    let base = lr.base();
    let mut alice = lr
        .rt
        .block_on(Client::connect(&ws_url(&base), &user(A1, "alice")))
        .unwrap();
    lr.rt.block_on(alice.enter("bs-1")).unwrap();
    let text = |t: &str| json!({"RoomId": "bs-1", "Sender_Account": "bob", "TextContent": t});

    assert_eq!(lr.code("send_text_msg", text("hello")), 0);
    let question = rx.wait_count(1, STEP)[0].clone();
    let want: Vec<(String, String)> = [
        ("x", "1".to_owned()),
        ("SdkAppid", APP.to_string()),
        ("CallbackCommand", "Group.CallbackBeforeSendMsg".to_owned()),
        ("contenttype", "json".to_owned()),
        ("ClientIP", String::new()),
        ("OptPlatform", "RESTAPI".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        (question.method.as_str(), question.path(), question.query()),
        ("POST", "/bs", want)
    );
    assert_eq!(
        keys(question.text()),
        [
            "CallbackCommand",
            "GroupId",
            "Type",
            "From_Account",
            "Operator_Account",
            "Random",
            "MsgBody"
        ],
        "{}",
        question.text()
    );
    let body = question.json();
    assert_eq!(body["CallbackCommand"], "Group.CallbackBeforeSendMsg");
    assert_eq!(body["GroupId"], "bs-1");
    assert_eq!(body["Type"], "AVChatRoom");
    assert_eq!(body["From_Account"], "bob");
    assert_eq!(body["Operator_Account"], ADMIN);
    assert!(body["Random"].is_u64(), "{body}");
    assert_eq!(body["MsgBody"][0]["MsgType"], "TIMTextElem", "{body}");
    assert_eq!(body["MsgBody"][0]["MsgContent"]["Text"], "hello", "{body}");
    // Signed like the app's webhook (docs/webhooks.md §7).
    verify(SECRET, &question).unwrap();
    assert_eq!(lr.rt.block_on(next_text(&mut alice)), "hello");

    // Blocked: 10016, for every way of sending, and nothing delivered.
    assert_eq!(lr.code("send_text_msg", text("forbidden words")), 10_016);
    let custom = json!({"RoomId": "bs-1", "Sender_Account": "bob", "BusinessId": "gift", "Data": "forbidden"});
    assert_eq!(lr.code("send_custom_msg", custom), 10_016);
    let group = json!({"GroupId": "bs-1", "From_Account": "bob", "Random": 7,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "forbidden"}}]});
    let (_, v) = lr.call(A1, "group_open_http_svc", "send_group_msg", group);
    assert_eq!(v["ErrorCode"], 10_016, "{v}");
    match lr
        .rt
        .block_on(alice.send_text("bs-1", "forbidden too", None))
    {
        Err(liveroom_client::Error::Server { code: 10_016, .. }) => {}
        other => panic!("a blocked real-time message: {other:?}"),
    }
    assert_eq!(lr.code("send_text_msg", text("after")), 0);
    assert_eq!(
        lr.rt.block_on(next_text(&mut alice)),
        "after",
        "a blocked message was delivered"
    );
    lr.rt
        .block_on(alice.send_text("bs-1", "fine", None))
        .unwrap();
    assert_eq!(lr.rt.block_on(next_text(&mut alice)), "fine");
    let stats: Value =
        serde_json::from_str(&lr.ok("get_room_stats", json!({"RoomId": "bs-1"}))).unwrap();
    assert_eq!(
        stats["Response"]["TotalMsgCount"], 3,
        "only allowed messages count: {stats}"
    );

    // No answer: on_failure decides after the timeout.
    rx.set_mode(Mode::Hang);
    assert_eq!(
        lr.code("send_text_msg", text("slow")),
        0,
        "on_failure = allow"
    );
    assert_eq!(lr.rt.block_on(next_text(&mut alice)), "slow");
    lr.ok_as(A2, "create_room", json!({"RoomInfo": {"RoomId": "bs-2"}}));
    let (_, v) = lr.call(
        A2,
        "live_engine_http_srv",
        "send_text_msg",
        json!({"RoomId": "bs-2", "Sender_Account": "bob", "TextContent": "slow"}),
    );
    assert_eq!(v["ErrorCode"], 10_016, "on_failure = block: {v}");
    rx.set_mode(Mode::Ok);
}

// ---- 9. bad settings ----------------------------------------------------------------------

#[test]
fn bad_webhook_settings_stop_start_up() {
    let secret_8 = format!("whsec_{}", STANDARD.encode([7u8; 8]));
    let cases: Vec<(&str, String, &str)> = vec![
        ("url-scheme", webhook_toml("ftp://x", &[]), "url"),
        (
            "url-missing",
            "[apps.webhook]\nevents = [\"*\"]\n".to_owned(),
            "url",
        ),
        (
            "event",
            webhook_toml("http://127.0.0.1:9/", &["events = [\"Live.CallbackNope\"]"]),
            "events",
        ),
        (
            "secret-prefix",
            webhook_toml("http://127.0.0.1:9/", &["secret = \"abc\""]),
            "secret",
        ),
        (
            "secret-short",
            webhook_toml(
                "http://127.0.0.1:9/",
                &[&format!("secret = \"{secret_8}\"")],
            ),
            "secret",
        ),
        (
            "timeout",
            webhook_toml("http://127.0.0.1:9/", &["timeout_ms = 0"]),
            "timeout_ms",
        ),
        (
            "in-flight",
            webhook_toml("http://127.0.0.1:9/", &["max_in_flight = 1025"]),
            "max_in_flight",
        ),
        (
            "unknown",
            webhook_toml("http://127.0.0.1:9/", &["colour = \"red\""]),
            "colour",
        ),
        (
            "on-failure",
            before_send_toml("http://127.0.0.1:9/", &["on_failure = \"maybe\""]),
            "on_failure",
        ),
        (
            "bs-timeout",
            before_send_toml("http://127.0.0.1:9/", &["timeout_ms = 10001"]),
            "timeout_ms",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for (name, section, setting) in cases {
        let file = format!("bad-{name}.toml");
        let path = dir.path().join(&file);
        std::fs::write(&path, config_text(dir.path(), &[app_toml(A1, &section)])).unwrap();
        match Server::try_start(serve_command(&path)) {
            Ok(server) => {
                problems.push(format!("{name}: started"));
                server.kill();
            }
            Err(failed) => {
                let named = failed.stderr.contains(&file) && failed.stderr.contains(setting);
                if failed.status.success() || !named {
                    problems.push(format!(
                        "{name}: {} without naming {file} and {setting}:\n{}",
                        failed.status, failed.stderr
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
