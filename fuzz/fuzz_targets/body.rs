//! Body validation of every command (decisions.md §2 rows 16 and 18): `parse_body`, then
//! `Request::parse` for each of `Command::ALL`, then `render` of whatever came out.
//!
//! Properties: nothing panics (deep nesting, huge numbers, odd strings); failures carry the
//! documented codes (60003 for the body, 100002 or a metadata limit code for fields); every
//! rendered envelope is JSON with the right `ErrorCode`; and a created room, rendered as
//! `get_room_info` does, parses back into the very same room (nothing is lost or changed
//! between the wire and the domain), while its list cursor decodes to the room's position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveroom_domain::ListPosition;
use liveroom_protocol::{
    ApiError, Command, ErrorCode, Reply, Request, decode_cursor, parse_body, render,
};
use serde_json::{Value, json};

const CALLER: &str = "administrator";

fn rendered(outcome: &Result<Reply, ApiError>) -> Value {
    let body = render("Id-0-O-Seq-0", outcome);
    let value: Value = serde_json::from_slice(&body).expect("the envelope is JSON");
    let code = outcome.as_ref().err().map_or(0, |e| e.code.number());
    assert_eq!(value["ErrorCode"], code);
    value
}

fn check(command: Command, body: &serde_json::Map<String, Value>) {
    let request = match Request::parse(command, body, CALLER) {
        Ok(request) => request,
        Err(error) => {
            assert!(
                matches!(
                    error.code,
                    ErrorCode::InvalidParameter
                        | ErrorCode::MetadataValueTooLarge
                        | ErrorCode::MetadataTooManyKeys
                ),
                "{command:?}: {error:?}"
            );
            rendered(&Err(error));
            return;
        }
    };
    match request {
        Request::CreateRoom(new_room) => {
            let room_id = new_room.id.as_str().to_owned();
            rendered(&Ok(Reply::Created { room_id }));
            let room = new_room.clone().into_room(1_700_000_000);
            let position = ListPosition::of(&room);
            let info = rendered(&Ok(Reply::RoomInfo(Box::new(room.clone()))));
            let again = json!({ "RoomInfo": info["Response"]["RoomInfo"] });
            let again = Request::parse(
                Command::CreateRoom,
                again.as_object().expect("object"),
                CALLER,
            );
            assert_eq!(
                again,
                Ok(Request::CreateRoom(new_room)),
                "get_room_info's answer does not round-trip"
            );
            let list = rendered(&Ok(Reply::RoomList {
                rooms: vec![room],
                next: Some(position.clone()),
            }));
            let next = list["Response"]["Next"].as_str().expect("Next is a string");
            assert_eq!(decode_cursor(next), Ok(position));
        }
        Request::GetRoomList { after, count } => {
            assert!((1..=20).contains(&count));
            rendered(&Ok(Reply::RoomList {
                rooms: Vec::new(),
                next: after,
            }));
        }
        Request::SetRoomMetadata { entries, .. } => {
            assert!(!entries.is_empty());
            let pairs = entries
                .iter()
                .map(|e| (e.key().to_owned(), e.value().to_owned()))
                .collect();
            rendered(&Ok(Reply::Metadata(pairs)));
        }
        Request::DelRoomMetadata { keys, .. } => {
            assert!(!keys.is_empty());
            rendered(&Ok(Reply::Done));
        }
        Request::DestroyRoom(_) => {
            rendered(&Ok(Reply::Destroyed));
        }
        Request::UpdateRoomInfo { .. }
        | Request::GetRoomInfo(_)
        | Request::GetRoomMetadata { .. } => {
            rendered(&Ok(Reply::Done));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_body(data) {
        Ok(body) => {
            for command in Command::ALL {
                check(command, &body);
            }
        }
        Err(error) => {
            assert_eq!(error.code, ErrorCode::ReqJsonParseFailed);
            rendered(&Err(error));
        }
    }
});
