//! The path and query string of a `/v4/…` request (docs/behaviour.md §2 rows 1, 3, 4, 7, 8):
//! `Command::from_uri_path`, `RestQuery::parse` and its accessors, on arbitrary request
//! targets, both as hyper hands them over (`http::Uri`) and as raw text.
//!
//! Besides "no panic", each outcome is checked against a small model written from
//! docs/behaviour.md: the command's exact path, 60002 exactly when a known parameter is repeated or
//! `contenttype`/`random` is malformed, and each accessor's code from the decoded value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveroom_protocol::{ApiError, Command, ErrorCode, RestQuery, render};

const KNOWN: [&str; 5] = ["sdkappid", "identifier", "usersig", "random", "contenttype"];

fn is_decimal_u32(raw: &str) -> bool {
    !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<u32>().is_ok()
}

fn rendered_ok(error: &ApiError) {
    // A failure carries no `Response`: where its fields would go does not matter.
    let body = render("Id-0-O-Seq-0", &Err(error.clone()), false);
    let value: serde_json::Value = serde_json::from_slice(&body).expect("the envelope is JSON");
    assert_eq!(value["ErrorCode"], error.code.number());
    assert_eq!(value["ActionStatus"], "FAIL");
}

fn check(path: &str, query: Option<&str>) {
    match Command::from_uri_path(path) {
        Ok(command) => assert_eq!(
            path,
            format!("/v4/{}/{}", command.service().path(), command.name())
        ),
        Err(error) => {
            assert_eq!(error.code, ErrorCode::InvalidRes);
            rendered_ok(&error);
        }
    }

    // The model: every known parameter's decoded values, in order.
    let mut values: [Vec<String>; 5] = Default::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if let Some(i) = KNOWN.iter().position(|k| *k == name) {
            values[i].push(value.into_owned());
        }
    }
    let repeated = values.iter().any(|v| v.len() > 1);
    let one = |i: usize| values[i].first().map(String::as_str);
    let bad_format =
        one(4).is_some_and(|c| c != "json") || one(3).is_some_and(|r| !is_decimal_u32(r));

    let parsed = match RestQuery::parse(query) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert_eq!(error.code, ErrorCode::InvalidHttpUrl);
            assert!(
                repeated || bad_format,
                "refused a well-formed query: {query:?}"
            );
            rendered_ok(&error);
            return;
        }
    };
    assert!(!repeated && !bad_format, "accepted {query:?}");

    let present = |i: usize| one(i).filter(|v| !v.is_empty());
    match (parsed.sdkappid(), present(0)) {
        (Ok(n), Some(raw)) => assert_eq!(raw.parse::<u32>().ok(), Some(n)),
        (Err(e), None) => assert_eq!(e.code, ErrorCode::SdkAppIdMiss),
        (Err(e), Some(raw)) => {
            assert_eq!(e.code, ErrorCode::InvalidSdkAppId);
            assert!(!is_decimal_u32(raw));
        }
        (Ok(n), None) => panic!("sdkappid {n} from nothing"),
    }
    match (parsed.identifier(), present(1)) {
        (Ok(id), Some(raw)) => assert_eq!(id, raw),
        (Err(e), None) => assert_eq!(e.code, ErrorCode::InvalidAccount),
        other => panic!("identifier: {other:?}"),
    }
    match (parsed.usersig(), present(2)) {
        (Ok(sig), Some(raw)) => assert_eq!(sig, raw),
        (Err(e), None) => assert_eq!(e.code, ErrorCode::UserSigEmpty),
        other => panic!("usersig: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // As the server sees it: hyper has already parsed the request target into a `Uri`.
    if let Ok(uri) = http::Uri::try_from(data) {
        check(uri.path(), uri.query());
    }
    // And as plain text, for targets `http` would refuse: the functions must not care.
    let text = String::from_utf8_lossy(data);
    match text.split_once('?') {
        Some((path, query)) => check(path, Some(query)),
        None => check(&text, None),
    }
});
