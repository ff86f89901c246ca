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
    /// A room member who is not the room's owner asked to write what only the owner may
    /// (docs/behaviour.md §7).
    #[error("only the room's owner may do this")]
    NoPermission,
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
