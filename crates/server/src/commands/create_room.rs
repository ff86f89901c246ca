//! `create_room`: `{"RoomInfo":{"RoomId",…}}` → `{"RoomId"}` (docs/behaviour.md §6).

use liveroom_domain::NewRoom;
use liveroom_domain::ops::CreateRoom;
use liveroom_protocol::{ApiError, Fields, Response, room_changes};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, respond, write};
use crate::gateway::State;

pub(crate) struct Handler;

#[derive(Serialize)]
struct Created<'a> {
    #[serde(rename = "RoomId")]
    room_id: &'a str,
}

impl super::Handler for Handler {
    type Request = NewRoom;

    /// `Owner_Account` defaults to the calling administrator.
    fn parse(fields: &Fields<'_>, call: &Call<'_>) -> Result<NewRoom, ApiError> {
        let info = fields.required("RoomInfo", Fields::object)?;
        Ok(NewRoom::validate(
            info.required("RoomId", Fields::string)?,
            info.string("RoomType")?,
            info.string("Owner_Account")?,
            call.caller,
            room_changes(&info)?,
        )?)
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        room: NewRoom,
    ) -> Result<Response, ApiError> {
        let id = room.id.clone();
        write(state, call, CreateRoom(room)).await?;
        Ok(respond(&Created {
            room_id: id.as_str(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use liveroom_protocol::RoomInfoWire;
    use serde_json::{Value, json};

    use super::*;
    use crate::commands::Handler as _;

    fn parse(body: &Value) -> Result<NewRoom, ApiError> {
        let call = Call {
            app: 1,
            caller: "admin",
            now: Duration::ZERO,
        };
        Handler::parse(&Fields::new(body.as_object().unwrap()), &call)
    }

    /// A room created from a request, answered as `get_room_info` answers it, parses back into
    /// the same room: nothing is lost or changed between the wire and the domain.
    #[test]
    fn get_room_info_answers_what_create_room_asked() {
        for info in [
            json!({"RoomId": "r"}),
            json!({"RoomId": "live 1 ~", "RoomType": "Live", "RoomName": "周五 🎉", "Owner_Account": "anchor",
                "CoverURL": "c", "IsMessageDisabled": true, "Category": [1, -2, 3], "IsPublicVisible": false,
                "IsSeatEnabled": false, "TakeSeatMode": "ApplyToTake", "MaxSeatCount": 16, "MaxMemberCount": 500,
                "ActivityStatus": -7, "Notice": "n", "SeatTemplate": "Grid", "IsUnlimitedRoomEnabled": false}),
        ] {
            let room = parse(&json!({ "RoomInfo": info })).unwrap();
            let answered = serde_json::to_value(RoomInfoWire::from(&room.clone().into_room(7))).unwrap();
            assert_eq!(parse(&json!({ "RoomInfo": answered })).unwrap(), room, "{info}");
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        for (info, field) in [
            (json!({}), "RoomInfo"),
            (json!({"RoomInfo": {"RoomType": "Live"}}), "RoomId"),
            (json!({"RoomInfo": {"RoomId": "r", "MaxSeatCount": 2.5}}), "MaxSeatCount"),
            (json!({"RoomInfo": {"RoomId": "r", "Category": [1, "2"]}}), "Category"),
            (json!({"RoomInfo": {"RoomId": "r", "IsPublicVisible": "yes"}}), "IsPublicVisible"),
            (json!({"RoomInfo": {"RoomId": "r", "Owner_Account": ""}}), "Owner_Account"),
            (json!({"RoomInfo": {"RoomId": "r", "RoomType": "Voice"}}), "RoomType"),
        ] {
            let error = parse(&info).unwrap_err();
            assert_eq!(error.code.number(), 100002, "{info}");
            assert!(error.info.contains(field), "{info}: {}", error.info);
        }
    }
}
