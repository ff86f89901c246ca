//! Hostile and malformed requests against the real server (issue 4): each is answered with its
//! documented envelope code (docs/behaviour.md §2) or, where hyper refuses the request before liveroom
//! sees it, with a bounded HTTP error and a close; and none of them changes anything.
//!
//! Every case runs against rooms with known state, and the state (get_room_info,
//! get_room_metadata and every page of get_room_list) is compared before and after each case.
//! Write commands are used wherever possible, so that "changing nothing" means something.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use common::*;
use liveroom_server::{ServerConfig, ThrottleConfig};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// A write that would delete `k1` of room-a if it were accepted.
const DEL: &str = r#"{"RoomId":"room-a","Keys":["k1"]}"#;
/// A write that names no existing key: 100503 if it is processed at all.
const NOPE: &str = r#"{"RoomId":"room-a","Keys":["nope"]}"#;
/// A read, for the cases whose documented answer is a success.
const GET: &str = r#"{"RoomId":"room-a","Keys":[]}"#;

/// Room-a (public, two keys), room-b (private), and no room-z.
async fn server() -> TestServer {
    let mut app = app();
    // The clock never moves in these tests, so the rate limits must not be what answers.
    app.limit_every_command(1_000_000);
    let config = ServerConfig {
        apps: vec![app],
        // Hundreds of failures from one address are the point here; the throttle has its own
        // tests (gateway.rs, abuse.rs).
        auth_failure_throttle: ThrottleConfig::off(),
        ..Default::default()
    };
    let server = TestServer::start(liveroom_store::MemoryStore::new(), config).await;
    let room_a = json!({"RoomInfo": {"RoomId": "room-a", "Category": [1, 2], "MaxSeatCount": 8}});
    server.ok("create_room", room_a).await;
    let room_b = json!({"RoomInfo": {"RoomId": "room-b", "IsPublicVisible": false}});
    server.ok("create_room", room_b).await;
    let metadata = json!([{"Key": "k1", "Value": "v1"}, {"Key": "k2", "Value": "v2"}]);
    server
        .ok(
            "set_room_metadata",
            json!({"RoomId": "room-a", "Metadata": metadata}),
        )
        .await;
    server
}

/// Everything a hostile request could have changed.
async fn snapshot(server: &TestServer) -> Value {
    let mut rooms = Vec::new();
    for room in ["room-a", "room-b", "room-z"] {
        for (command, body) in [
            ("get_room_info", json!({"RoomId": room})),
            ("get_room_metadata", json!({"RoomId": room, "Keys": []})),
        ] {
            let answer = server.call(command, body).await;
            rooms.push(json!([answer["ErrorCode"], answer["Response"]]));
        }
    }
    let mut pages = Vec::new();
    let mut next = String::new();
    loop {
        let page = server
            .ok("get_room_list", json!({"Next": next, "Count": 1}))
            .await;
        pages.push(page["RoomList"].clone());
        next = page["Next"].as_str().unwrap().to_owned();
        if next.is_empty() {
            break;
        }
    }
    json!({"rooms": rooms, "list": pages})
}

fn query(sdkappid: &str, identifier: &str, usersig: &str) -> String {
    format!(
        "sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&random=99999999&contenttype=json"
    )
}

fn good_query(server: &TestServer) -> String {
    query(&APP.to_string(), ADMIN, &server.sig(ADMIN))
}

/// One hostile request sent with reqwest, and the code it must get.
struct Case {
    label: String,
    command: &'static str,
    query: String,
    body: Vec<u8>,
    code: u64,
    /// A part of `ErrorInfo` that shows why (e.g. that a zlib bomb stopped at the cap).
    info: Option<&'static str>,
}

fn case(
    label: impl Into<String>,
    command: &'static str,
    query: String,
    body: impl Into<Vec<u8>>,
    code: u64,
) -> Case {
    Case {
        label: label.into(),
        command,
        query,
        body: body.into(),
        code,
        info: None,
    }
}

impl Case {
    fn info(mut self, info: &'static str) -> Self {
        self.info = Some(info);
        self
    }
}

/// Runs each case, checking its code and that the state did not change.
async fn run(server: &TestServer, cases: Vec<Case>) {
    let before = snapshot(server).await;
    for case in cases {
        let url = server.url_with(case.command, &case.query);
        let answer = server.post_raw(&url, case.body).await;
        assert_eq!(code_of(&answer), case.code, "{}: {answer}", case.label);
        if let Some(info) = case.info {
            let got = answer["ErrorInfo"].as_str().unwrap();
            assert!(got.contains(info), "{}: {got}", case.label);
        }
        let after = snapshot(server).await;
        assert_eq!(after, before, "{} changed the state", case.label);
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// `body` padded with trailing whitespace (still valid JSON) to exactly `len` bytes.
fn padded(body: &str, len: usize) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    bytes.resize(len, b' ');
    bytes
}

fn joined(n: usize, item: impl Fn(usize) -> String) -> String {
    (0..n).map(item).collect::<Vec<_>>().join(",")
}

#[tokio::test]
async fn hostile_bodies() {
    let server = server().await;
    let q = good_query(&server);
    let deep_arrays = format!(
        r#"{{"RoomId":"room-a","Keys":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_objects = format!(
        r#"{{"RoomId":"room-a","Keys":["k1"],"x":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    // serde_json's recursion limit is 128 levels; deep but legal nesting in an ignored field is
    // parsed and ignored.
    let legal_nesting = format!(
        r#"{{"RoomId":"room-a","Keys":["nope"],"x":{}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let set_k1 = r#"{"RoomId":"room-a","Metadata":[{"Key":"k1","Value":"changed"}]}"#;
    let keys = joined(100_000, |i| format!("\"k{i}\""));
    let entries = joined(30_000, |i| format!(r#"{{"Key":"k{i}","Value":""}}"#));
    let ints = joined(100_000, |i| i.to_string());
    let same = vec!["\"k1\""; 100_000].join(",");
    let utf16: Vec<u8> = DEL.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let update = |field: &str, value: &str| {
        format!(r#"{{"RoomInfo":{{"RoomId":"room-a","{field}":{value}}}}}"#)
    };

    #[rustfmt::skip]
    let cases = vec![
        case("100k nested arrays", "del_room_metadata", q.clone(), deep_arrays, 60003),
        case("10k nested objects", "del_room_metadata", q.clone(), deep_objects, 60003),
        case("100 nested arrays in an unknown field", "del_room_metadata", q.clone(), legal_nesting, 100503),
        // Exactly 1 MiB is allowed (below); one byte more is not, even when the JSON is valid.
        case("1 MiB + 1 byte", "set_room_metadata", q.clone(), padded(set_k1, MIB + 1), 60003).info("1 MiB"),
        case("invalid UTF-8 in a string", "del_room_metadata", q.clone(), &b"{\"RoomId\":\"room-a\",\"Keys\":[\"k1\xff\"]}"[..], 60003),
        case("UTF-8 byte order mark", "del_room_metadata", q.clone(), [&b"\xef\xbb\xbf"[..], DEL.as_bytes()].concat(), 60003),
        case("UTF-16", "del_room_metadata", q.clone(), utf16, 60003),
        case("raw NUL byte inside a string", "del_room_metadata", q.clone(), &b"{\"RoomId\":\"room-a\",\"Keys\":[\"k1\0\"]}"[..], 60003),
        case("NUL byte after the JSON", "del_room_metadata", q.clone(), [DEL.as_bytes(), b"\0"].concat(), 60003),
        case("escaped NUL in RoomId", "del_room_metadata", q.clone(), r#"{"RoomId":"room-a\u0000","Keys":["k1"]}"#, 100002),
        // A key is compared in full, not as a C string: "k1\0" is not "k1".
        case("escaped NUL in a key", "del_room_metadata", q.clone(), r#"{"RoomId":"room-a","Keys":["k1\u0000"]}"#, 100503),
        case("lone surrogate escape", "del_room_metadata", q.clone(), r#"{"RoomId":"room-a","Keys":["\ud800"]}"#, 60003),
        case("100k distinct Keys to delete (0.8 MiB)", "del_room_metadata", q.clone(), format!(r#"{{"RoomId":"room-a","Keys":[{keys}]}}"#), 100500),
        case("30k distinct entries to set (0.8 MiB)", "set_room_metadata", q.clone(), format!(r#"{{"RoomId":"room-a","Metadata":[{entries}]}}"#), 100500),
        case("100k Category items", "create_room", q.clone(), format!(r#"{{"RoomInfo":{{"RoomId":"room-z","Category":[{ints}]}}}}"#), 100002),
        case("MaxSeatCount 1e300", "update_room_info", q.clone(), update("MaxSeatCount", "1e300"), 100002),
        case("MaxSeatCount -1", "update_room_info", q.clone(), update("MaxSeatCount", "-1"), 100002),
        case("MaxSeatCount -0", "update_room_info", q.clone(), update("MaxSeatCount", "-0"), 100002),
        case("MaxSeatCount 2^63", "update_room_info", q.clone(), update("MaxSeatCount", "9223372036854775808"), 100002),
        case("MaxSeatCount 2^64", "update_room_info", q.clone(), update("MaxSeatCount", "18446744073709551616"), 100002),
        case("MaxSeatCount 4.0", "update_room_info", q.clone(), update("MaxSeatCount", "4.0"), 100002),
        case("MaxSeatCount \"4\"", "update_room_info", q.clone(), update("MaxSeatCount", "\"4\""), 100002),
        // Beyond f64's range serde_json refuses the document itself.
        case("MaxSeatCount 1e400", "update_room_info", q.clone(), update("MaxSeatCount", "1e400"), 60003),
        case("MaxMemberCount 2^32", "update_room_info", q.clone(), update("MaxMemberCount", "4294967296"), 100002),
        case("ActivityStatus 2^63", "update_room_info", q.clone(), update("ActivityStatus", "9223372036854775808"), 100002),
        case("Category [1.5]", "update_room_info", q.clone(), update("Category", "[1.5]"), 100002),
        case("Category [1e2]", "update_room_info", q.clone(), update("Category", "[1e2]"), 100002),
        case("Category [2^64]", "update_room_info", q.clone(), update("Category", "[18446744073709551616]"), 100002),
        case("Count 1e1", "get_room_list", q.clone(), r#"{"Count":1e1}"#, 100002),
        case("Count 2^64", "get_room_list", q.clone(), r#"{"Count":18446744073709551616}"#, 100002),
        // Duplicate keys: serde_json keeps the last one, so the value that counts is the last.
        case("duplicate RoomId, last missing", "get_room_metadata", q.clone(), r#"{"RoomId":"room-a","RoomId":"room-z","Keys":[]}"#, 100004),
        case("duplicate Keys, last names nothing", "del_room_metadata", q.clone(), r#"{"RoomId":"room-a","Keys":["k1"],"Keys":["nope"]}"#, 100503),
        case("duplicate RoomInfo, last invalid", "update_room_info", q.clone(), r#"{"RoomInfo":{"RoomId":"room-a","RoomName":"x"},"RoomInfo":{"RoomId":"room-a","MaxSeatCount":99}}"#, 100002),
        // Answered with success (reads):
        case("exactly 1 MiB", "get_room_metadata", q.clone(), padded(GET, MIB), 0),
        case("duplicate RoomId, last exists", "get_room_metadata", q.clone(), r#"{"RoomId":"room-z","RoomId":"room-a","Keys":[]}"#, 0),
        // 100k copies of one key: answered once, and fast (the duplicate check stops at the first).
        case("100k identical Keys to read", "get_room_metadata", q.clone(), format!(r#"{{"RoomId":"room-a","Keys":[{same}]}}"#), 0),
    ];
    run(&server, cases).await;

    // What those reads answered, exactly.
    let url = server.url("get_room_metadata");
    let answer = server
        .post_raw(&url, format!(r#"{{"RoomId":"room-a","Keys":[{same}]}}"#))
        .await;
    assert_eq!(
        answer["Response"],
        json!({"Metadata": [{"Key": "k1", "Value": "v1"}]})
    );
    let answer = server
        .post_raw(&url, r#"{"RoomId":"room-a","Keys":["k1\u0000"]}"#)
        .await;
    assert_eq!(answer["Response"], json!({"Metadata": []}));
}

/// 100k distinct Keys in one get_room_metadata (0.8 MiB): answered in linear time. The
/// "each key once" rule once scanned the earlier keys for every key, so this request held a
/// runtime worker for minutes.
#[tokio::test]
async fn many_distinct_keys_to_read_are_answered() {
    let server = server().await;
    let keys = joined(100_000, |i| format!("\"k{i}\""));
    let body = format!(r#"{{"RoomId":"room-a","Keys":[{keys}]}}"#);
    let answer = server
        .post_raw(&server.url("get_room_metadata"), body)
        .await;
    assert_eq!(answer["Response"]["Metadata"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// UserSigs
// ---------------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    liveroom_usersig::TENCENT_B64.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    liveroom_usersig::TENCENT_B64.decode(text).unwrap()
}

fn zlib(data: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), level);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The JSON inside a UserSig made by `liveroom_usersig::generate` (one stored block).
fn sig_json(usersig: &str) -> Map<String, Value> {
    let mut json = Vec::new();
    ZlibDecoder::new(&unb64(usersig)[..])
        .read_to_end(&mut json)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// A UserSig around `json`, valid to the last bit (Adler-32 included).
fn wrap_json(json: &str) -> String {
    b64(&zlib(json.as_bytes(), Compression::none()))
}

/// A generated UserSig of `identifier` with its JSON edited (the signature is left as it was).
fn edited(identifier: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut json = sig_json(&liveroom_usersig::generate(
        APP, KEY, identifier, START, 86_400,
    ));
    edit(&mut json);
    wrap_json(&serde_json::to_string(&json).unwrap())
}

/// A zlib bomb: `inflated` bytes of `a` at the best compression, about 1,000 to 1.
fn zlib_bomb(inflated: usize) -> Vec<u8> {
    zlib(&vec![b'a'; inflated], Compression::best())
}

#[tokio::test]
async fn hostile_usersigs() {
    let server = server().await;
    let app = APP.to_string();
    let good = server.sig(ADMIN);
    let with = |sig: &str| query(&app, ADMIN, sig);

    // 6 MB of `a`: about 6 KB of zlib, a UserSig under the 8 KiB length limit (so it reaches
    // the inflater); inflating stops at 4 KiB.
    let bomb = b64(&zlib_bomb(6_000_000));
    assert!(bomb.len() < liveroom_usersig::MAX_USERSIG_LEN);
    // Five times that (31 MB inflated, 40 KB of text): refused on its length before decoding.
    let big_bomb = b64(&zlib_bomb(31_000_000));
    let mut flipped = good.clone().into_bytes();
    let middle = good.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let swapped = format!(
        "{}{}{}{}",
        &good[..8],
        &good[12..16],
        &good[8..12],
        &good[16..]
    );
    let unpadded = good.trim_end_matches('_');
    let standard = good.replace('*', "+").replace('-', "/").replace('_', "=");
    assert_ne!(
        standard, good,
        "the sample UserSig must contain `*`, `-` or `_`"
    );
    let expired = liveroom_usersig::generate(APP, KEY, ADMIN, START - 1000, 10);
    let extended = {
        let mut json = sig_json(&expired);
        json.insert("TLS.expire".into(), json!(86_400));
        wrap_json(&serde_json::to_string(&json).unwrap())
    };
    let admin2_sig = sig_json(&server.sig("admin2"))["TLS.sig"].clone();
    // The official Python layout: another key order, spaces after separators. The HMAC covers
    // the values only, so the same credential re-encoded must still verify (docs/behaviour.md §3).
    let python_layout = {
        let json = sig_json(&good);
        let order = [
            "TLS.ver",
            "TLS.identifier",
            "TLS.sdkappid",
            "TLS.expire",
            "TLS.time",
            "TLS.sig",
        ];
        let fields: Vec<String> = order
            .iter()
            .map(|k| format!("{}: {}", json!(k), json[*k]))
            .collect();
        wrap_json(&format!("{{{}}}", fields.join(", ")))
    };
    let twice = {
        let json = serde_json::to_string(&sig_json(&server.sig("admin2"))).unwrap();
        wrap_json(&json.replacen('{', "{\"TLS.identifier\":\"administrator\",", 1))
    };
    // Spec §4.4 vector A (the Node library's output): valid now, for "xiaojun"; it contains `*`.
    let vector_a = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__";
    let xiaojun = |sig: &str| query(&app, "xiaojun", sig);

    #[rustfmt::skip]
    let cases = vec![
        case("zlib bomb inflating to 6 MB", "del_room_metadata", with(&bomb), DEL, 70003).info("inflates past 4096 bytes"),
        case("zlib bomb inflating to 31 MB", "del_room_metadata", with(&big_bomb), DEL, 70003).info("longer than 8192"),
        case("truncated to half", "del_room_metadata", with(&good[..middle]), DEL, 70003),
        case("last data character cut", "del_room_metadata", with(&unpadded[..unpadded.len() - 1]), DEL, 70003),
        case("one character changed", "del_room_metadata", with(&flipped), DEL, 70003),
        case("two 4-character groups swapped", "del_room_metadata", with(&swapped), DEL, 70003),
        case("lower-cased", "del_room_metadata", with(&good.to_lowercase()), DEL, 70003),
        case("standard base64 alphabet", "del_room_metadata", with(&standard), DEL, 70003),
        case("9000 characters", "del_room_metadata", with(&"A".repeat(9000)), DEL, 70003),
        // Re-wrapped with valid zlib: the decoder is happy, and the HMAC is what refuses.
        case("TLS.identifier changed to another admin", "del_room_metadata", query(&app, "admin2", &edited(ADMIN, |j| { j.insert("TLS.identifier".into(), json!("admin2")); })), DEL, 70009),
        case("TLS.expire extended", "del_room_metadata", with(&extended), DEL, 70009),
        case("TLS.time moved", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.time".into(), json!(START + 1)); })), DEL, 70009),
        case("TLS.sig of another identifier", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.sig".into(), admin2_sig); })), DEL, 70009),
        case("TLS.sdkappid changed", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.sdkappid".into(), json!(APP + 1)); })), DEL, 70014),
        case("TLS.sdkappid 2^32 + APP", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.sdkappid".into(), json!(u64::from(APP) + (1 << 32))); })), DEL, 70014),
        case("TLS.userbuf added", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.userbuf".into(), json!("YWJj")); })), DEL, 70003),
        case("TLS.ver 3.0", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.ver".into(), json!("3.0")); })), DEL, 70003),
        case("TLS.time a float", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.time".into(), json!(1.7e9)); })), DEL, 70003),
        case("TLS.time negative", "del_room_metadata", with(&edited(ADMIN, |j| { j.insert("TLS.time".into(), json!(-1)); })), DEL, 70003),
        case("TLS.identifier twice", "del_room_metadata", query(&app, "admin2", &twice), DEL, 70003).info("more than once"),
        case("JSON array instead of object", "del_room_metadata", with(&wrap_json("[1]")), DEL, 70003),
        case("empty JSON object", "del_room_metadata", with(&wrap_json("{}")), DEL, 70003),
        case("expired, unmodified", "del_room_metadata", with(&expired), DEL, 70001),
        case("vector A, `*` intact", "del_room_metadata", xiaojun(vector_a), DEL, 60010),
        case("vector A, `*` sent as %2A", "del_room_metadata", xiaojun(&vector_a.replace('*', "%2A")), DEL, 60010),
        // `+` in a query string is a space, and the UserSig alphabet has neither.
        case("vector A, `*` sent as +", "del_room_metadata", xiaojun(&vector_a.replace('*', "+")), DEL, 70003),
        case("vector A, `*` sent as %2B", "del_room_metadata", xiaojun(&vector_a.replace('*', "%2B")), DEL, 70003),
        // Accepted: padding is optional, and the JSON inside is parsed, never compared as bytes.
        case("padding removed", "get_room_metadata", with(unpadded), GET, 0),
        case("Python layout", "get_room_metadata", with(&python_layout), GET, 0),
    ];
    run(&server, cases).await;
}

// ---------------------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn hostile_query_strings() {
    let server = server().await;
    let app = APP.to_string();
    let good = server.sig(ADMIN);
    let base = good_query(&server);
    let mut cases = Vec::new();
    let params = [
        ("sdkappid", app.as_str()),
        ("identifier", ADMIN),
        ("usersig", good.as_str()),
        ("random", "1"),
        ("contenttype", "json"),
    ];
    for (name, value) in params {
        let repeated = format!("{base}&{name}={value}");
        cases.push(case(
            format!("{name} twice"),
            "del_room_metadata",
            repeated,
            DEL,
            60002,
        ));
    }
    let with_app = |sdkappid: &str| query(sdkappid, ADMIN, &good);
    let with_id = |identifier: &str| query(&app, identifier, &good);
    let too_big = (u64::from(APP) + (1 << 32)).to_string();

    #[rustfmt::skip]
    cases.extend([
        // Names are percent-decoded too, so an encoded name is the same parameter.
        case("sdkappid twice, once as sdkapp%69d", "del_room_metadata", format!("{base}&sdkapp%69d={app}"), DEL, 60002),
        case("an empty second sdkappid", "del_room_metadata", format!("{base}&sdkappid="), DEL, 60002),
        case("identifier with %00", "del_room_metadata", with_id("administrator%00"), DEL, 70013),
        case("identifier with %2F", "del_room_metadata", with_id("admin%2Fistrator"), DEL, 70013),
        case("identifier invalid UTF-8 %FF%FE", "del_room_metadata", with_id("%FF%FE"), DEL, 70013),
        case("identifier overlong UTF-8 %C0%AF", "del_room_metadata", with_id("%C0%AF"), DEL, 70013),
        case("identifier %ZZ (kept as is)", "del_room_metadata", with_id("%ZZ"), DEL, 70013),
        case("identifier only %00", "del_room_metadata", with_id("%00"), DEL, 70013),
        case("usersig with %00", "del_room_metadata", query(&app, ADMIN, &format!("{good}%00")), DEL, 70003),
        case("usersig with %ZZ", "del_room_metadata", query(&app, ADMIN, &format!("%ZZ{good}")), DEL, 70003),
        case("sdkappid %00", "del_room_metadata", with_app(&format!("{app}%00")), DEL, 60006),
        case("sdkappid overlong %C0%B1", "del_room_metadata", with_app("%C0%B1"), DEL, 60006),
        case("sdkappid full-width digits", "del_room_metadata", with_app("%EF%BC%91%EF%BC%94"), DEL, 60006),
        case("sdkappid +APP (+ is a space)", "del_room_metadata", with_app(&format!("+{app}")), DEL, 60006),
        case("sdkappid %2BAPP", "del_room_metadata", with_app(&format!("%2B{app}")), DEL, 60006),
        case("sdkappid 2^32 + APP", "del_room_metadata", with_app(&too_big), DEL, 60006),
        case("sdkappid %", "del_room_metadata", with_app("%"), DEL, 60006),
        case("random %2D1", "del_room_metadata", base.replace("random=99999999", "random=%2D1"), DEL, 60002),
        case("contenttype JSON", "del_room_metadata", base.replace("contenttype=json", "contenttype=JSON"), DEL, 60002),
        case("contenttype json%00", "del_room_metadata", base.replace("contenttype=json", "contenttype=json%00"), DEL, 60002),
        // Names are case-sensitive: SDKAPPID is an unknown parameter, so sdkappid is missing.
        case("SDKAPPID", "del_room_metadata", base.replace("sdkappid=", "SDKAPPID="), DEL, 60012),
        case("no query at all", "del_room_metadata", String::new(), DEL, 60012),
        case("only separators", "del_room_metadata", "&&&=&=".into(), DEL, 60012),
        // Accepted: these decode to the very same parameters.
        case("sdkappid percent-encoded digits", "get_room_metadata", with_app("%31%34%30%30%30%30%30%30%30%30"), GET, 0),
        case("sdkappid with a leading zero", "get_room_metadata", with_app(&format!("0{app}")), GET, 0),
        case("an unknown parameter twice", "get_room_metadata", format!("{base}&x=1&x=2"), GET, 0),
        case("a 60 KB unknown parameter", "get_room_metadata", format!("{base}&pad={}", "p".repeat(60_000)), GET, 0),
    ]);
    run(&server, cases).await;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: what reqwest cannot send
// ---------------------------------------------------------------------------------------------

/// What came back on a raw connection: the status line's code (if any) and everything read.
struct RawAnswer {
    status: Option<u16>,
    text: String,
}

impl RawAnswer {
    fn code(&self) -> Option<u64> {
        let body = self.text.split_once("\r\n\r\n")?.1;
        let body = &body[body.find('{')?..=body.rfind('}')?];
        serde_json::from_str::<Value>(body).ok()?["ErrorCode"].as_u64()
    }

    fn head(&self) -> String {
        self.text.chars().take(300).collect()
    }
}

/// Sends `request` (writing from a task, so that a server that answers early and closes is seen)
/// and reads until the server closes, within 10 seconds.
async fn raw(server: &TestServer, request: Vec<u8>) -> RawAnswer {
    let addr = server.base.strip_prefix("http://").unwrap();
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        // A write error is the server having answered and closed: the answer says why.
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the server neither answered nor closed within 10 s");
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok());
    RawAnswer { status, text }
}

fn post(target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// `post` with another method.
fn method(name: &str, target: &str) -> Vec<u8> {
    [name.as_bytes(), &post(target, "", DEL.as_bytes())[4..]].concat()
}

/// A request line of raw bytes (which `format!` cannot hold), then a normal request.
fn raw_target(target: &[u8]) -> Vec<u8> {
    [b"POST ", target, &post("", "", DEL.as_bytes())[5..]].concat()
}

/// Like `post`, with a declared Content-Length and no body.
fn declared(target: &str, length: &str, headers: &str) -> Vec<u8> {
    format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n{headers}\r\n").into_bytes()
}

fn chunked(target: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[tokio::test]
async fn hostile_raw_http() {
    let server = server().await;
    let q = good_query(&server);
    let target = |command: &str| format!("/v4/live_engine_http_srv/{command}?{q}");
    let del = target("del_room_metadata");
    let before = snapshot(&server).await;
    let set_k1 = r#"{"RoomId":"room-a","Metadata":[{"Key":"k1","Value":"changed"}]}"#;
    let both_lengths = format!(
        "POST {del} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{NOPE}\r\n0\r\n\r\n",
        NOPE.len()
    );
    let two_lengths = format!(
        "POST {del} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{DEL}",
        DEL.len()
    );
    let many_headers: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();

    // (label, request, HTTP status, ErrorCode when liveroom answered)
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, u16, Option<u64>)> = vec![
        ("GET", format!("GET {del} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes(), 200, Some(60002)),
        ("PUT", method("PUT", &del), 200, Some(60002)),
        ("DELETE", method("DELETE", &del), 200, Some(60002)),
        ("PATCH", method("PATCH", &del), 200, Some(60002)),
        ("OPTIONS", method("OPTIONS", &del), 200, Some(60002)),
        ("a made-up method", method("BREW", &del), 200, Some(60002)),
        ("unknown command", post(&target("get_seat_list"), "", DEL.as_bytes()), 200, Some(60009)),
        ("unknown service", post(&format!("/v4/room_engine_http_mic/get_seat_list?{q}"), "", DEL.as_bytes()), 200, Some(60009)),
        ("command in upper case", post(&target("DEL_ROOM_METADATA"), "", DEL.as_bytes()), 200, Some(60009)),
        ("command with %00", post(&target("del_room_metadata%00"), "", DEL.as_bytes()), 200, Some(60009)),
        ("command percent-encoded", post(&target("del%5Froom%5Fmetadata"), "", DEL.as_bytes()), 200, Some(60009)),
        ("%2F between service and command", post(&format!("/v4/live_engine_http_srv%2Fdel_room_metadata?{q}"), "", DEL.as_bytes()), 200, Some(60009)),
        ("dot segments (not normalised)", post(&format!("/v4/x/../live_engine_http_srv/del_room_metadata?{q}"), "", DEL.as_bytes()), 200, Some(60009)),
        ("trailing slash", post(&format!("/v4/live_engine_http_srv/del_room_metadata/?{q}"), "", DEL.as_bytes()), 200, Some(60009)),
        ("absolute-form target", post(&format!("http://x/v4/live_engine_http_srv/del_room_metadata?{q}"), "", NOPE.as_bytes()), 200, Some(100503)),
        ("outside /v4/", post("//v4/live_engine_http_srv/del_room_metadata", "", DEL.as_bytes()), 404, None),
        // Raw, because the server answers before reading the body and closes: a client still
        // writing 4 MiB may see a reset, which reqwest reports instead of the answer.
        ("4 MiB", post(&target("set_room_metadata"), "", &padded(set_k1, 4 * MIB)), 200, Some(60003)),
        ("1 MiB + 1 chunked", chunked(&target("set_room_metadata"), &padded(set_k1, MIB + 1)), 200, Some(60003)),
        ("exactly 1 MiB chunked", chunked(&target("get_room_metadata"), &padded(GET, MIB)), 200, Some(0)),
        // Declared too large: refused without waiting for a byte of the body (no 100 Continue).
        ("Expect 100-continue, 1 GB", declared(&del, "1000000000", "Expect: 100-continue\r\n"), 200, Some(60003)),
        // The largest length hyper takes is u64::MAX - 2.
        ("Content-Length u64::MAX - 2", declared(&del, "18446744073709551613", ""), 200, Some(60003)),
        // Both headers: chunked wins (RFC 9112 §6.3); the Content-Length is not used.
        ("Content-Length and chunked", both_lengths.into_bytes(), 200, Some(100503)),
        // hyper refuses these before any liveroom code runs: a plain HTTP error, then a close.
        ("Content-Length u64::MAX", declared(&del, "18446744073709551615", ""), 431, None),
        ("Content-Length past u64", declared(&del, "99999999999999999999", ""), 400, None),
        ("two different Content-Lengths", two_lengths.into_bytes(), 400, None),
        ("invalid UTF-8 in the request target", raw_target(b"/v4/live_engine_http_srv/del_room_metadata?identifier=\xff\xfe"), 400, None),
        ("raw NUL in the request target", raw_target(b"/v4/live_engine_http_srv/del_room_metadata\0"), 400, None),
        ("raw NUL in a header value", post(&del, "X-A: a\0b\r\n", DEL.as_bytes()), 400, None),
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n".to_vec(), 400, None),
        // `http::Uri` holds at most 65,534 bytes.
        ("100 KB URL", post(&format!("{del}&pad={}", "p".repeat(100_000)), "", DEL.as_bytes()), 414, None),
        // Past hyper's header buffer (about 400 KiB), or its 100 headers: 431, then a close.
        ("1 MB header", post(&del, &format!("X-Pad: {}\r\n", "h".repeat(MIB)), DEL.as_bytes()), 431, None),
        ("1 MB of header lines", post(&del, &"X-P: h\r\n".repeat(MIB / 8), DEL.as_bytes()), 431, None),
        ("200 headers", post(&del, &many_headers, DEL.as_bytes()), 431, None),
    ];
    for (label, request, status, code) in cases {
        let answer = raw(&server, request).await;
        assert_eq!(answer.status, Some(status), "{label}: {}", answer.head());
        if code.is_some() {
            assert_eq!(answer.code(), code, "{label}: {}", answer.head());
        }
        assert_eq!(snapshot(&server).await, before, "{label} changed the state");
    }

    // HEAD: the method check answers, without a body.
    let head = format!("HEAD {del} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let head = raw(&server, head.into_bytes()).await;
    assert_eq!(head.status, Some(200));
    assert!(head.text.ends_with("\r\n\r\n"), "{}", head.head());

    // 50 pipelined requests on one connection: 50 answers.
    let empty = format!("POST {del} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let mut pipelined = empty.repeat(49).into_bytes();
    pipelined.extend(post(&target("get_room_metadata"), "", GET.as_bytes()));
    let answer = raw(&server, pipelined).await;
    assert_eq!(answer.text.matches("HTTP/1.1 200").count(), 50);
    assert_eq!(answer.text.matches("\"ErrorCode\":60003").count(), 49);
    assert_eq!(snapshot(&server).await, before);

    // And the server still serves.
    let room_a = json!({"RoomId": "room-a"});
    assert_eq!(server.code("get_room_info", room_a).await, 0);
}
