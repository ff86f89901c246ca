use crate::{ApiError, ErrorCode};

/// The one service liveroom serves so far.
pub const SERVICE: &str = "live_engine_http_srv";

/// A command of `/v4/live_engine_http_srv/<command>` that liveroom implements. Every other
/// path answers 60009.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    CreateRoom,
    DestroyRoom,
    UpdateRoomInfo,
    GetRoomInfo,
    GetRoomList,
    GetRoomMetadata,
    SetRoomMetadata,
    DelRoomMetadata,
}

impl Command {
    pub const ALL: [Command; 8] = [
        Command::CreateRoom,
        Command::DestroyRoom,
        Command::UpdateRoomInfo,
        Command::GetRoomInfo,
        Command::GetRoomList,
        Command::GetRoomMetadata,
        Command::SetRoomMetadata,
        Command::DelRoomMetadata,
    ];

    /// The command named by a request path's service and command segments.
    pub fn from_path(service: &str, command: &str) -> Option<Self> {
        if service != SERVICE {
            return None;
        }
        Self::from_name(command)
    }

    /// decisions.md §2 row 1: a request path `/v4/<service>/<command>` naming a command
    /// liveroom serves.
    pub fn from_uri_path(path: &str) -> Result<Self, ApiError> {
        path.strip_prefix("/v4/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(service, command)| Self::from_path(service, command))
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidRes, "unknown service or command"))
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Command::CreateRoom => "create_room",
            Command::DestroyRoom => "destroy_room",
            Command::UpdateRoomInfo => "update_room_info",
            Command::GetRoomInfo => "get_room_info",
            Command::GetRoomList => "get_room_list",
            Command::GetRoomMetadata => "get_room_metadata",
            Command::SetRoomMetadata => "set_room_metadata",
            Command::DelRoomMetadata => "del_room_metadata",
        }
    }

    /// Requests per second per app when the configuration does not say (decisions.md §5).
    pub const fn default_rate_limit(self) -> u32 {
        match self {
            Command::GetRoomList => 10,
            _ => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for command in Command::ALL {
            assert_eq!(Command::from_path(SERVICE, command.name()), Some(command));
        }
        assert_eq!(
            Command::from_path("room_engine_http_mic", "get_seat_list"),
            None
        );
        assert_eq!(Command::from_path(SERVICE, "get_member_list"), None);
    }

    #[test]
    fn uri_paths() {
        assert_eq!(
            Command::from_uri_path("/v4/live_engine_http_srv/del_room_metadata"),
            Ok(Command::DelRoomMetadata)
        );
        for bad in [
            "/v4/live_engine_http_srv/",
            "/v4/live_engine_http_srv",
            "/v4/live_engine_http_srv/del_room_metadata/x",
            "/v4/room_engine_http_srv/get_room_info",
            "/v4/live_engine_http_srv/get_member_list",
            "/v4//del_room_metadata",
            "/v3/live_engine_http_srv/del_room_metadata",
        ] {
            assert_eq!(
                Command::from_uri_path(bad).unwrap_err().code,
                ErrorCode::InvalidRes,
                "{bad}"
            );
        }
    }
}
