//! UserSigs in the layouts of the other official libraries, built here from scratch: the JSON is
//! parsed, so key order, whitespace, escapes, zlib level and base64 padding must not matter.

mod common;

use common::*;
use liveroom_usersig::{decode, generate, verify};

const APPID: u32 = 1_400_000_123;
const ID: &str = "layout_user";
const TIME: u64 = 1_710_000_000;
const EXPIRE: u64 = 86_400;

fn sig() -> String {
    good_sig(K, ID, u64::from(APPID), TIME, EXPIRE)
}

fn assert_verifies(usersig: &str, what: &str) {
    let decoded =
        verify(usersig, APPID, ID, K, TIME + EXPIRE).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(decoded.sdkappid(), u64::from(APPID), "{what}");
    assert_eq!(decoded.identifier(), ID, "{what}");
    assert_eq!(decoded.time(), TIME, "{what}");
    assert_eq!(decoded.expire(), EXPIRE, "{what}");
    assert!(
        verify(usersig, APPID, ID, K, TIME + EXPIRE + 1).is_err(),
        "{what}: expires"
    );
}

/// Every layout wrapped both padded and unpadded.
fn assert_layout(json: &str, level: u32, what: &str) {
    let compressed = zlib(json.as_bytes(), level);
    assert_verifies(&tencent_b64(&compressed), what);
    assert_verifies(
        &tencent_b64_unpadded(&compressed),
        &format!("{what}, unpadded"),
    );
}

#[test]
fn python_layout() {
    let json = python_json(K, ID, u64::from(APPID), TIME, EXPIRE);
    assert!(json.starts_with("{\"TLS.ver\": \"2.0\", \"TLS.identifier\": "));
    assert_layout(&json, 6, "python");
}

#[test]
fn node_layout() {
    let json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"{ID}\",\"TLS.sdkappid\":{APPID},\
         \"TLS.time\":{TIME},\"TLS.expire\":{EXPIRE},\"TLS.sig\":\"{}\"}}",
        sig()
    );
    assert_layout(&json, 6, "node");
}

#[test]
fn go_layout_with_trailing_newline_and_stored_blocks() {
    let json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"{ID}\",\"TLS.sdkappid\":{APPID},\
         \"TLS.expire\":{EXPIRE},\"TLS.time\":{TIME},\"TLS.sig\":\"{}\"}}\n",
        sig()
    );
    assert_layout(&json, 0, "go");
    // The crate's own output is exactly this.
    assert_eq!(generate(APPID, K, ID, TIME, EXPIRE), wrap_level(&json, 0));
}

#[test]
fn java_and_php_like_layouts() {
    // Another key order, PHP's escaped slashes in the signature, maximum compression.
    let escaped_sig = sig().replace('/', "\\/");
    let json = format!(
        "{{\"TLS.sig\":\"{escaped_sig}\",\"TLS.time\":{TIME},\"TLS.expire\":{EXPIRE},\
         \"TLS.sdkappid\":{APPID},\"TLS.identifier\":\"{ID}\",\"TLS.ver\":\"2.0\"}}"
    );
    assert_layout(&json, 9, "php");
    let json = format!(
        "{{\"TLS.identifier\":\"{ID}\",\"TLS.ver\":\"2.0\",\"TLS.sig\":\"{}\",\
         \"TLS.sdkappid\":{APPID},\"TLS.expire\":{EXPIRE},\"TLS.time\":{TIME}}}",
        sig()
    );
    assert_layout(&json, 9, "java");
}

#[test]
fn any_whitespace_and_every_zlib_level() {
    let json = format!(
        "\r\n\t{{\n  \"TLS.ver\" :\t\"2.0\" ,\n  \"TLS.identifier\"  : \"{ID}\",\n  \
         \"TLS.sdkappid\": {APPID},\n  \"TLS.expire\": {EXPIRE},\n  \"TLS.time\": {TIME},\n  \
         \"TLS.sig\": \"{}\"\n}}\n\n ",
        sig()
    );
    for level in 0..=9 {
        assert_layout(&json, level, &format!("pretty, level {level}"));
    }
}

#[test]
fn unknown_extra_fields_are_ignored() {
    let json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"{ID}\",\"TLS.sdkappid\":{APPID},\
         \"TLS.expire\":{EXPIRE},\"TLS.time\":{TIME},\"TLS.sig\":\"{}\",\
         \"TLS.extra\":{{\"nested\":[1,2,null]}},\"x\":null}}",
        sig()
    );
    assert_layout(&json, 6, "extra fields");
}

#[test]
fn unpadded_signature_inside_the_json() {
    let unpadded = sig().trim_end_matches('=').to_owned();
    let json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"{ID}\",\"TLS.sdkappid\":{APPID},\
         \"TLS.expire\":{EXPIRE},\"TLS.time\":{TIME},\"TLS.sig\":\"{unpadded}\"}}"
    );
    assert_layout(&json, 6, "unpadded TLS.sig");
}

#[test]
fn escaped_and_non_ascii_identifiers() {
    // Python's json.dumps writes non-ASCII as \u escapes, Go and Node write UTF-8; Go escapes
    // `<`, `>` and `&`. All parse to the same identifier.
    for id in ["用户一", "a\"b\\c", "<admin>&co", "tab\there", "emoji😀"] {
        let sig = good_sig(K, id, u64::from(APPID), TIME, EXPIRE);
        let escaped: String = id
            .encode_utf16()
            .map(|unit| format!("\\u{unit:04x}"))
            .collect();
        for id_json in [
            serde_json::Value::from(id).to_string(),
            format!("\"{escaped}\""),
        ] {
            let json = format!(
                "{{\"TLS.ver\": \"2.0\", \"TLS.identifier\": {id_json}, \"TLS.sdkappid\": {APPID}, \
                 \"TLS.expire\": {EXPIRE}, \"TLS.time\": {TIME}, \"TLS.sig\": \"{sig}\"}}"
            );
            let usersig = wrap(&json);
            let decoded = verify(&usersig, APPID, id, K, TIME).expect(&json);
            assert_eq!(decoded.identifier(), id);
        }
        // And the crate's own output.
        assert!(verify(&generate(APPID, K, id, TIME, EXPIRE), APPID, id, K, TIME).is_ok());
    }
}

#[test]
fn escaped_key_names_are_the_same_keys() {
    let json = format!(
        "{{\"TLS.\\u0076er\":\"2.0\",\"TLS.identifier\":\"{ID}\",\"TLS.sdkappid\":{APPID},\
         \"TLS.expire\":{EXPIRE},\"TLS.time\":{TIME},\"TLS\\u002esig\":\"{}\"}}",
        sig()
    );
    assert_layout(&json, 6, "escaped keys");
}

#[test]
fn numbers_at_the_edges() {
    // sdkappid above u32 decodes (as parsed) but never matches a u32 app: no truncation.
    let big = u64::from(APPID) + (1 << 32);
    let json = python_json(K, ID, big, TIME, EXPIRE);
    let decoded = decode(&wrap(&json)).expect("decodes");
    assert_eq!(decoded.sdkappid(), big);
    assert_eq!(
        decoded.check(APPID, ID, K, TIME),
        Err(liveroom_usersig::VerifyError::SdkAppIdMismatch)
    );

    // time + expire overflowing u64 saturates: never expires.
    let json = python_json(K, ID, u64::from(APPID), u64::MAX - 1, u64::MAX);
    let decoded = decode(&wrap(&json)).expect("decodes");
    assert_eq!(decoded.expires_at(), u64::MAX);
    assert!(decoded.check(APPID, ID, K, u64::MAX).is_ok());

    // Zero time and zero expire: valid at exactly 0 only.
    let json = python_json(K, ID, u64::from(APPID), 0, 0);
    let usersig = wrap(&json);
    assert!(verify(&usersig, APPID, ID, K, 0).is_ok());
    assert!(verify(&usersig, APPID, ID, K, 1).is_err());
}
