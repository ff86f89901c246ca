//! Body validation of every command (docs/behaviour.md §2 rows 16 and 18): `parse_body`, then
//! each command's own request parser (`check_request`, for every command of the table), then
//! `render` of whatever came out.
//!
//! Properties: nothing panics (deep nesting, huge numbers, odd strings); failures carry the
//! documented codes (60003 for the body, the service's invalid-field code — 100002, or 70402
//! for the accounts' services — or a metadata limit code for fields); and every
//! rendered envelope is JSON with the right `ErrorCode`. That a created room, answered as
//! `get_room_info` does, parses back into the same room is a test of `create_room`'s file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveroom_protocol::{ApiError, Command, ErrorCode, Response, parse_body, render};
use liveroom_server::check_request;
use serde_json::Value;

const CALLER: &str = "administrator";

fn rendered(command: Option<Command>, outcome: &Result<Response, ApiError>) {
    let at_top_level = command.is_some_and(|c| c.service().answers_at_top_level());
    let body = render("Id-0-O-Seq-0", outcome, at_top_level);
    let value: Value = serde_json::from_slice(&body).expect("the envelope is JSON");
    let code = outcome.as_ref().err().map_or(0, |e| e.code.number());
    assert_eq!(value["ErrorCode"], code);
}

fuzz_target!(|data: &[u8]| {
    match parse_body(data) {
        Ok(body) => {
            for command in Command::ALL {
                match check_request(command, &body, CALLER) {
                    Ok(()) => rendered(Some(command), &Ok(None)),
                    Err(error) => {
                        assert!(
                            error.code == command.service().invalid_parameter()
                                || matches!(
                                    error.code,
                                    ErrorCode::MetadataValueTooLarge
                                        | ErrorCode::MetadataTooManyKeys
                                ),
                            "{command:?}: {error:?}"
                        );
                        rendered(Some(command), &Err(error));
                    }
                }
            }
        }
        Err(error) => {
            assert_eq!(error.code, ErrorCode::ReqJsonParseFailed);
            rendered(None, &Err(error));
        }
    }
});
