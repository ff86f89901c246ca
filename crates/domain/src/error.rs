/// Every way a request can break liveroom's rules. The protocol layer gives each variant its
/// wire code; nothing here knows those codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field is missing, of the wrong kind, or outside its documented bounds.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("room does not exist")]
    RoomNotFound,
    /// `account_import` of an account that was imported before (docs/behaviour.md §13).
    #[error("account already exists")]
    AccountExists,
    #[error("account does not exist")]
    AccountNotFound,
    /// The RoomId is taken; `same_owner` tells whether the caller asked for the same owner.
    #[error("room already exists")]
    RoomExists { same_owner: bool },
    #[error(
        "room metadata would hold more than {} keys",
        crate::limits::METADATA_MAX_KEYS
    )]
    TooManyKeys,
    #[error(
        "value of key {key:?} is longer than {} bytes",
        crate::limits::METADATA_VALUE_MAX_BYTES
    )]
    ValueTooLarge { key: String },
    #[error(
        "room metadata values would exceed {} bytes in total",
        crate::limits::METADATA_TOTAL_MAX_BYTES
    )]
    MetadataTooLarge,
    #[error("none of the keys exists")]
    NoSuchKeys,
    /// A room member who is neither the room's owner nor one of its administrators asked to
    /// write what only they may (docs/behaviour.md §7).
    #[error("only the room's owner or administrators may do this")]
    NoPermission,
    /// The account is not in the room (docs/behaviour.md §14).
    #[error("the account is not a member of the room")]
    NotAMember,
    /// The account is banned from the room until `until` (Unix seconds).
    #[error("banned from the room until {until}")]
    Banned { until: u64 },
    /// The room holds `MaxMemberCount` members already.
    #[error("the room is full")]
    RoomFull,
    /// The sender is muted in the room until `until` (Unix seconds).
    #[error("the sender is muted until {until}")]
    Muted { until: u64 },
    /// The room's `IsMessageDisabled` is set and the sender is neither its owner nor one of
    /// its administrators.
    #[error("messages are disabled in this room")]
    MessagesDisabled,
    /// A compare-and-set write expected another metadata revision; `current` is the room's.
    #[error("the room's metadata is at revision {current}, not the one expected")]
    RevisionMismatch { current: u64 },
    /// The RoomId was destroyed within the current second (docs/behaviour.md §5).
    #[error("the same RoomId can be created at most once per second")]
    CreatedTooSoon,
    /// A change does not follow the room's log: an operation's bug, or a follower that missed
    /// an event. Never caused by a request's content.
    #[error("the change does not follow the room's event log")]
    OutOfOrder,
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
