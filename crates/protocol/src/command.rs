//! The one table of commands. Every other list of commands — the [`Command`] enum, path
//! lookup, default rate limits, metrics labels, the server's dispatch — is generated from
//! [`with_commands!`], so adding a command is one line here and one file in the server.

use crate::{ApiError, ErrorCode};

/// Calls the macro `$then` with the table of every command liveroom serves, one row each:
///
/// `Variant = module: Service, Family, default requests per second, who may call`
///
/// `module` is also the command's name in the path (`/v4/<service>/<module>`). The default
/// rate limits are docs/behaviour.md §5.
#[macro_export]
macro_rules! with_commands {
    ($then:ident) => {
        $then! {
            CreateRoom = create_room: LiveEngine, Rooms, 200, Admin;
            DestroyRoom = destroy_room: LiveEngine, Rooms, 200, Admin;
            UpdateRoomInfo = update_room_info: LiveEngine, Rooms, 200, Admin;
            GetRoomInfo = get_room_info: LiveEngine, Rooms, 200, Admin;
            GetRoomList = get_room_list: LiveEngine, Rooms, 10, Admin;
            GetRoomStats = get_room_stats: LiveEngine, Rooms, 100, Admin;
            GetRoomStatistic = get_room_statistic: LiveEngine, Rooms, 100, Admin;
            GetRoomMetadata = get_room_metadata: LiveEngine, Metadata, 200, Admin;
            SetRoomMetadata = set_room_metadata: LiveEngine, Metadata, 200, Admin;
            DelRoomMetadata = del_room_metadata: LiveEngine, Metadata, 200, Admin;
            GetMemberList = get_member_list: LiveEngine, Members, 200, Admin;
            ChangeRoomOwner = change_room_owner: LiveEngine, Members, 200, Admin;
            SendTextMsg = send_text_msg: LiveEngine, Messages, 200, Admin;
            SendCustomMsg = send_custom_msg: LiveEngine, Messages, 200, Admin;
            SendGroupMsg = send_group_msg: ImGroup, Messages, 200, Admin;
            MuteMember = mute_member: LiveEngine, Members, 200, Admin;
            GetMutedMemberList = get_muted_member_list: LiveEngine, Members, 200, Admin;
            BanMember = ban_member: LiveEngine, Members, 200, Admin;
            UnbanMember = unban_member: LiveEngine, Members, 200, Admin;
            GetBannedMemberList = get_banned_member_list: LiveEngine, Members, 200, Admin;
            GetAdminList = get_admin_list: LiveEngine, Members, 200, Admin;
            ModifyAdmin = modify_admin: LiveEngine, Members, 200, Admin;
            AddRobot = add_robot: LiveEngine, Members, 100, Admin;
            DelRobot = del_robot: LiveEngine, Members, 100, Admin;
            GetRobot = get_robot: LiveEngine, Members, 100, Admin;
            AccountImport = account_import: ImLogin, Accounts, 200, Admin;
            MultiaccountImport = multiaccount_import: ImLogin, Accounts, 200, Admin;
            PortraitGet = portrait_get: Profile, Accounts, 200, Admin;
            PortraitSet = portrait_set: Profile, Accounts, 200, Admin;
            GetFeed = get_feed: Liveroom, Events, 200, Admin;
            GetParkedWebhooks = get_parked_webhooks: Liveroom, Events, 20, Admin;
            ReplayWebhooks = replay_webhooks: Liveroom, Events, 20, Admin;
            GetWebhookStats = get_webhook_stats: Liveroom, Events, 20, Admin;
        }
    };
}

/// A service of `/v4/<service>/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `live_engine_http_srv`: rooms, metadata, members, messages.
    LiveEngine,
    /// `im_open_login_svc`: importing accounts (docs/behaviour.md §13).
    ImLogin,
    /// `profile`: accounts' profiles (docs/behaviour.md §13).
    Profile,
    /// `group_open_http_svc`: Chat's group messages, where a group is a room
    /// (docs/behaviour.md §15).
    ImGroup,
    /// `liveroom_http_srv`: liveroom's own extensions, which Tencent does not have: the
    /// change feed and the webhook outbox (docs/webhooks.md §6).
    Liveroom,
}

/// The path segment of each service, as a literal (path lookup matches on it).
macro_rules! service_path {
    (LiveEngine) => {
        "live_engine_http_srv"
    };
    (ImLogin) => {
        "im_open_login_svc"
    };
    (Profile) => {
        "profile"
    };
    (ImGroup) => {
        "group_open_http_svc"
    };
    (Liveroom) => {
        "liveroom_http_srv"
    };
}

impl Service {
    pub const fn path(self) -> &'static str {
        match self {
            Service::LiveEngine => service_path!(LiveEngine),
            Service::ImLogin => service_path!(ImLogin),
            Service::Profile => service_path!(Profile),
            Service::ImGroup => service_path!(ImGroup),
            Service::Liveroom => service_path!(Liveroom),
        }
    }

    /// Whether a command's answer goes beside the envelope's fields rather than under
    /// `Response`: Chat's services answer so (docs/behaviour.md §13).
    pub const fn answers_at_top_level(self) -> bool {
        !matches!(self, Service::LiveEngine | Service::Liveroom)
    }

    /// The code of an invalid field: the live engine's 100002, Chat's 70402.
    pub const fn invalid_parameter(self) -> ErrorCode {
        match self {
            Service::LiveEngine | Service::Liveroom => ErrorCode::InvalidParameter,
            Service::ImLogin | Service::Profile => ErrorCode::AccountInvalidParameters,
            Service::ImGroup => ErrorCode::GroupInvalidParameter,
        }
    }
}

/// What a command acts on: the groups docs/behaviour.md presents the commands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Rooms,
    Metadata,
    /// A room's people: moderation, administrators, robots (docs/behaviour.md §14), and
    /// members (§15).
    Members,
    Messages,
    Accounts,
    /// The change feed and the webhook outbox (docs/webhooks.md §6).
    Events,
}

/// Who may call a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// One of the app's administrators (docs/behaviour.md §2 row 14).
    Admin,
    /// Any identifier of the app with a valid UserSig: the users of the real-time gateway
    /// (docs/protocol.md).
    Member,
}

macro_rules! define_commands {
    ($($variant:ident = $module:ident: $service:ident, $family:ident, $rate:literal, $access:ident;)*) => {
        /// A command liveroom implements. Every other path answers 60009.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Command {
            $($variant,)*
        }

        impl Command {
            pub const ALL: [Command; [$(stringify!($variant)),*].len()] = [$(Command::$variant,)*];

            /// The command at `/v4/<service>/<name>`.
            pub fn from_path(service: &str, name: &str) -> Option<Self> {
                match (service, name) {
                    $((service_path!($service), stringify!($module)) => Some(Command::$variant),)*
                    _ => None,
                }
            }

            /// The command of this name in any service (configuration names commands so).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($module) => Some(Command::$variant),)*
                    _ => None,
                }
            }

            pub const fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => stringify!($module),)*
                }
            }

            pub const fn service(self) -> Service {
                match self {
                    $(Command::$variant => Service::$service,)*
                }
            }

            pub const fn family(self) -> Family {
                match self {
                    $(Command::$variant => Family::$family,)*
                }
            }

            /// Requests per second per app when the configuration does not say.
            pub const fn default_rate_limit(self) -> u32 {
                match self {
                    $(Command::$variant => $rate,)*
                }
            }

            pub const fn access(self) -> Access {
                match self {
                    $(Command::$variant => Access::$access,)*
                }
            }
        }
    };
}

with_commands!(define_commands);

impl Command {
    /// docs/behaviour.md §2 row 1: a request path `/v4/<service>/<command>` naming a command
    /// liveroom serves.
    pub fn from_uri_path(path: &str) -> Result<Self, ApiError> {
        path.strip_prefix("/v4/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(service, command)| Self::from_path(service, command))
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidRes, "unknown service or command"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for command in Command::ALL {
            assert_eq!(
                Command::from_path(command.service().path(), command.name()),
                Some(command)
            );
            assert_eq!(Command::from_name(command.name()), Some(command));
        }
        assert_eq!(
            Command::from_path("room_engine_http_mic", "get_seat_list"),
            None
        );
        assert_eq!(
            Command::from_path("room_engine_http_mic", "create_room"),
            None
        );
        assert_eq!(
            Command::from_path(Service::LiveEngine.path(), "get_seat_list"),
            None
        );
    }

    #[test]
    fn defaults_of_the_table() {
        assert_eq!(Command::GetRoomList.default_rate_limit(), 10);
        assert_eq!(Command::DelRoomMetadata.default_rate_limit(), 200);
        assert_eq!(Command::DelRoomMetadata.family(), Family::Metadata);
        assert_eq!(Command::GetRoomStats.default_rate_limit(), 100);
        assert_eq!(Command::PortraitSet.default_rate_limit(), 200);
        assert_eq!(Command::AccountImport.service(), Service::ImLogin);
        assert_eq!(Command::MuteMember.default_rate_limit(), 200);
        assert_eq!(Command::GetBannedMemberList.family(), Family::Members);
        for robots in [Command::AddRobot, Command::DelRobot, Command::GetRobot] {
            assert_eq!(robots.default_rate_limit(), 100);
        }
    }

    #[test]
    fn uri_paths() {
        assert_eq!(
            Command::from_uri_path("/v4/live_engine_http_srv/del_room_metadata"),
            Ok(Command::DelRoomMetadata)
        );
        assert_eq!(
            Command::from_uri_path("/v4/im_open_login_svc/account_import"),
            Ok(Command::AccountImport)
        );
        assert_eq!(
            Command::from_uri_path("/v4/profile/portrait_get"),
            Ok(Command::PortraitGet)
        );
        assert_eq!(
            Command::from_uri_path("/v4/live_engine_http_srv/get_banned_member_list"),
            Ok(Command::GetBannedMemberList)
        );
        for bad in [
            "/v4/live_engine_http_srv/",
            "/v4/live_engine_http_srv",
            "/v4/live_engine_http_srv/del_room_metadata/x",
            "/v4/room_engine_http_srv/get_room_info",
            "/v4/live_engine_http_srv/get_seat_list",
            "/v4//del_room_metadata",
            "/v3/live_engine_http_srv/del_room_metadata",
            "/v4/profile/account_import",
            "/v4/live_engine_http_srv/portrait_get",
        ] {
            assert_eq!(
                Command::from_uri_path(bad).unwrap_err().code,
                ErrorCode::InvalidRes,
                "{bad}"
            );
        }
    }
}
