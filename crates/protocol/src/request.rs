use liveroom_domain::{ListPosition, MetadataEntry, NewRoom, RoomId, ValidChanges};
use serde_json::{Map, Value};

use crate::fields::Fields;
use crate::{ApiError, Command, ErrorCode, metadata, rooms};

/// Largest request body accepted (decisions.md §2 row 16).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request whose every field has been checked (decisions.md §2 row 18): what a command
/// handler receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateRoom(NewRoom),
    DestroyRoom(RoomId),
    UpdateRoomInfo {
        room: RoomId,
        changes: ValidChanges,
    },
    GetRoomInfo(RoomId),
    GetRoomList {
        after: Option<ListPosition>,
        count: usize,
    },
    GetRoomMetadata {
        room: RoomId,
        keys: Vec<String>,
    },
    SetRoomMetadata {
        room: RoomId,
        entries: Vec<MetadataEntry>,
    },
    DelRoomMetadata {
        room: RoomId,
        keys: Vec<String>,
    },
}

/// Row 16: the body must be a JSON object of at most [`MAX_BODY_BYTES`].
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let fail = |info: &str| ApiError::new(ErrorCode::ReqJsonParseFailed, info);
    if body.is_empty() {
        return Err(fail(
            "request body is empty; send {} when a command needs no fields",
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(fail("request body is larger than 1 MiB"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(fail("request body is not a JSON object")),
        Err(_) => Err(fail("request body is not valid JSON")),
    }
}

impl Request {
    /// Row 18 for `command`'s body. `caller` is the calling administrator, the default owner
    /// of a new room.
    pub fn parse(
        command: Command,
        body: &Map<String, Value>,
        caller: &str,
    ) -> Result<Self, ApiError> {
        let fields = Fields::new(body);
        Ok(match command {
            Command::CreateRoom => Request::CreateRoom(rooms::parse_create(&fields, caller)?),
            Command::DestroyRoom => Request::DestroyRoom(room_id(&fields)?),
            Command::UpdateRoomInfo => {
                let (room, changes) = rooms::parse_update(&fields)?;
                Request::UpdateRoomInfo { room, changes }
            }
            Command::GetRoomInfo => Request::GetRoomInfo(room_id(&fields)?),
            Command::GetRoomList => {
                let (after, count) = rooms::parse_list(&fields)?;
                Request::GetRoomList { after, count }
            }
            Command::GetRoomMetadata => Request::GetRoomMetadata {
                room: room_id(&fields)?,
                keys: fields.required("Keys", Fields::string_array)?,
            },
            Command::SetRoomMetadata => Request::SetRoomMetadata {
                room: room_id(&fields)?,
                entries: metadata::parse_entries(&fields)?,
            },
            Command::DelRoomMetadata => Request::DelRoomMetadata {
                room: room_id(&fields)?,
                keys: metadata::parse_delete_keys(&fields)?,
            },
        })
    }
}

/// The `RoomId` field every room-scoped command carries.
pub(crate) fn room_id(fields: &Fields) -> Result<RoomId, ApiError> {
    Ok(RoomId::parse(fields.required("RoomId", Fields::string)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(command: Command, body: Value) -> Result<Request, ApiError> {
        Request::parse(command, body.as_object().unwrap(), "admin")
    }

    fn code(command: Command, body: Value) -> u32 {
        parse(command, body).unwrap_err().code.number()
    }

    #[test]
    fn body_must_be_an_object() {
        for body in [&b""[..], b"[]", b"1", b"{", b"\xff\xfe", b"null"] {
            assert_eq!(
                parse_body(body).unwrap_err().code,
                ErrorCode::ReqJsonParseFailed
            );
        }
        let nested = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_body(nested.as_bytes()).unwrap_err().code,
            ErrorCode::ReqJsonParseFailed
        );
        assert!(parse_body(b"{}").is_ok());
    }

    #[test]
    fn seed_sample_parses() {
        let request = parse(
            Command::DelRoomMetadata,
            json!({"RoomId": "live-room", "Keys": ["key1", "key2"]}),
        )
        .unwrap();
        let Request::DelRoomMetadata { room, keys } = request else {
            panic!()
        };
        assert_eq!(room.as_str(), "live-room");
        assert_eq!(keys, ["key1", "key2"]);
    }

    #[test]
    fn field_errors_are_100002() {
        use Command::*;
        for (command, body) in [
            (DelRoomMetadata, json!({"Keys": ["a"]})),
            (DelRoomMetadata, json!({"RoomId": 5, "Keys": ["a"]})),
            (DelRoomMetadata, json!({"RoomId": "r"})),
            (DelRoomMetadata, json!({"RoomId": "r", "Keys": "a"})),
            (DelRoomMetadata, json!({"RoomId": "r", "Keys": []})),
            (DelRoomMetadata, json!({"RoomId": "r", "Keys": [1]})),
            (
                DelRoomMetadata,
                json!({"RoomId": "x".repeat(49), "Keys": ["a"]}),
            ),
            (GetRoomMetadata, json!({"RoomId": "r"})),
            (GetRoomMetadata, json!({"RoomId": "r", "Keys": [null]})),
            (SetRoomMetadata, json!({"RoomId": "r"})),
            (SetRoomMetadata, json!({"RoomId": "r", "Metadata": []})),
            (SetRoomMetadata, json!({"RoomId": "r", "Metadata": {}})),
            (SetRoomMetadata, json!({"RoomId": "r", "Metadata": ["k"]})),
            (
                SetRoomMetadata,
                json!({"RoomId": "r", "Metadata": [{"Key": "", "Value": "v"}]}),
            ),
            (
                SetRoomMetadata,
                json!({"RoomId": "r", "Metadata": [{"Key": "k".repeat(51), "Value": "v"}]}),
            ),
            (
                SetRoomMetadata,
                json!({"RoomId": "r", "Metadata": [{"Key": "k", "Value": 1}]}),
            ),
            (
                SetRoomMetadata,
                json!({"RoomId": "r", "Metadata": [{"Key": "k"}]}),
            ),
            (CreateRoom, json!({})),
            (CreateRoom, json!({"RoomInfo": {"RoomType": "Live"}})),
            (
                CreateRoom,
                json!({"RoomInfo": {"RoomId": "r", "MaxSeatCount": 2.5}}),
            ),
            (
                CreateRoom,
                json!({"RoomInfo": {"RoomId": "r", "Category": [1, "2"]}}),
            ),
            (
                CreateRoom,
                json!({"RoomInfo": {"RoomId": "r", "IsPublicVisible": "yes"}}),
            ),
            (
                CreateRoom,
                json!({"RoomInfo": {"RoomId": "r", "Owner_Account": ""}}),
            ),
            (UpdateRoomInfo, json!({"RoomInfo": {"RoomName": "n"}})),
            (GetRoomList, json!({"Count": 0})),
            (GetRoomList, json!({"Count": 21})),
            (GetRoomList, json!({"Next": "garbage"})),
            (GetRoomList, json!({"Next": 5})),
        ] {
            assert_eq!(code(command, body.clone()), 100002, "{command:?} {body}");
        }
    }

    #[test]
    fn list_defaults() {
        assert_eq!(
            parse(Command::GetRoomList, json!({})).unwrap(),
            Request::GetRoomList {
                after: None,
                count: 20
            }
        );
        assert_eq!(
            parse(Command::GetRoomList, json!({"Next": "", "Count": 3})).unwrap(),
            Request::GetRoomList {
                after: None,
                count: 3
            }
        );
    }
}
