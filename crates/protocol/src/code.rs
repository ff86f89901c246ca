use liveroom_domain::DomainError;
use liveroom_usersig::VerifyError;

/// Every code liveroom answers, with the meaning Tencent documents for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Ok,
    /// 60002: the URL or method is not what the API takes.
    InvalidHttpUrl,
    /// 60003: the body is not a JSON object.
    ReqJsonParseFailed,
    /// 60004: `identifier` is missing.
    InvalidAccount,
    /// 60006: `sdkappid` is not a configured app.
    InvalidSdkAppId,
    /// 60007: the per-(app, command) rate limit is exceeded.
    RestFreqLimit,
    /// 60008: the client did not send its request in time.
    RequestTimeout,
    /// 60009: unknown service or command.
    InvalidRes,
    /// 60010: `identifier` is not an App administrator.
    IdNotAdmin,
    /// 60012: `sdkappid` is missing.
    SdkAppIdMiss,
    /// 60016: the app is disabled.
    SdkAppIdForbidden,
    /// 70001
    UserSigExpired,
    /// 70002
    UserSigEmpty,
    /// 70003: the UserSig cannot be decoded.
    UserSigCheckFailed,
    /// 70009: the HMAC does not verify with the app's key.
    UserSigMismatchKey,
    /// 70013
    UserSigMismatchId,
    /// 70014
    UserSigMismatchSdkAppId,
    /// 70050: too many failed authentications from this client; retry after a while.
    AuthFreqLimit,
    /// 70102: `account_import` of an account that exists.
    AccountExists,
    /// 70107: the account was never imported.
    AccountNotFound,
    /// 70402: an invalid field of an account or profile call (their 100002).
    AccountInvalidParameters,
    /// 10004: an invalid field of a Chat group call (their 100002).
    GroupInvalidParameter,
    /// 10010: a Chat group call for a group (room) that does not exist (their 100004).
    GroupNotFound,
    /// 10007: banned from the room (Tencent IM's "no permission" for a group).
    Banned,
    /// 10014: the room holds `MaxMemberCount` members (Tencent IM's "group is full").
    RoomFull,
    /// 10016: the app's before-send hook blocked the message (Tencent IM's "the App backend
    /// intercepted it through a third-party callback").
    MessageBlocked,
    /// 10017: the sender is muted, or the room's messages are disabled (Tencent IM's
    /// "muted in the group").
    Muted,
    /// 100001: storage failed; nothing was applied.
    Internal,
    /// 100002
    InvalidParameter,
    /// 100003
    RoomIdExists,
    /// 100004
    RoomNotFound,
    /// 100005: the account is not a member of the room.
    NotAMember,
    /// 100006: a room member may not do this (only the room's owner and administrators may).
    NoPermission,
    /// 100007: the command is not enabled for this app.
    NotEnabled,
    /// 100010: the RoomId exists and has the requested owner.
    RoomIdExistsSameOwner,
    /// 100012: the same RoomId was created less than a second ago.
    CreateFreqLimit,
    /// 190001 (liveroom's own, outside Tencent's ranges): a compare-and-set write expected
    /// another metadata revision.
    RevisionMismatch,
    /// 100500
    MetadataTooManyKeys,
    /// 100501
    MetadataValueTooLarge,
    /// 100502
    MetadataTooLarge,
    /// 100503
    MetadataNoSuchKeys,
}

impl ErrorCode {
    /// The number that goes into `ErrorCode`.
    pub const fn number(self) -> u32 {
        use ErrorCode::*;
        match self {
            Ok => 0,
            InvalidHttpUrl => 60002,
            ReqJsonParseFailed => 60003,
            InvalidAccount => 60004,
            InvalidSdkAppId => 60006,
            RestFreqLimit => 60007,
            RequestTimeout => 60008,
            InvalidRes => 60009,
            IdNotAdmin => 60010,
            SdkAppIdMiss => 60012,
            SdkAppIdForbidden => 60016,
            UserSigExpired => 70001,
            UserSigEmpty => 70002,
            UserSigCheckFailed => 70003,
            UserSigMismatchKey => 70009,
            UserSigMismatchId => 70013,
            UserSigMismatchSdkAppId => 70014,
            AuthFreqLimit => 70050,
            AccountExists => 70102,
            AccountNotFound => 70107,
            AccountInvalidParameters => 70402,
            GroupInvalidParameter => 10004,
            GroupNotFound => 10010,
            Banned => 10007,
            RoomFull => 10014,
            MessageBlocked => 10016,
            Muted => 10017,
            Internal => 100001,
            InvalidParameter => 100002,
            RoomIdExists => 100003,
            RoomNotFound => 100004,
            NotAMember => 100005,
            NoPermission => 100006,
            NotEnabled => 100007,
            RoomIdExistsSameOwner => 100010,
            CreateFreqLimit => 100012,
            RevisionMismatch => 190001,
            MetadataTooManyKeys => 100500,
            MetadataValueTooLarge => 100501,
            MetadataTooLarge => 100502,
            MetadataNoSuchKeys => 100503,
        }
    }

    /// Whether this failure is a failed authentication attempt, which counts toward the
    /// per-client throttle (70050).
    pub const fn is_auth_failure(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            SdkAppIdMiss
                | InvalidSdkAppId
                | InvalidAccount
                | UserSigEmpty
                | UserSigCheckFailed
                | UserSigMismatchSdkAppId
                | UserSigMismatchId
                | UserSigMismatchKey
                | UserSigExpired
                | IdNotAdmin
        )
    }
}

/// A failed request: its code and a short English `ErrorInfo` naming the field or rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub info: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, info: impl Into<String>) -> Self {
        Self {
            code,
            info: info.into(),
        }
    }

    /// This error as `service` numbers it: an invalid field is 100002, 70402 or 10004; a
    /// missing room is 100004, or 10010 for a Chat group.
    pub fn in_service(mut self, service: crate::Service) -> Self {
        match self.code {
            ErrorCode::InvalidParameter => self.code = service.invalid_parameter(),
            ErrorCode::RoomNotFound if service == crate::Service::ImGroup => {
                self.code = ErrorCode::GroupNotFound;
            }
            _ => {}
        }
        self
    }

    /// 100001 without details: storage failed, or a defect; nothing was applied.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal server error, please retry")
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let code = match &error {
            DomainError::InvalidField { .. } => ErrorCode::InvalidParameter,
            DomainError::RoomNotFound => ErrorCode::RoomNotFound,
            DomainError::AccountExists => ErrorCode::AccountExists,
            DomainError::AccountNotFound => ErrorCode::AccountNotFound,
            DomainError::RoomExists { same_owner: true } => ErrorCode::RoomIdExistsSameOwner,
            DomainError::RoomExists { same_owner: false } => ErrorCode::RoomIdExists,
            DomainError::TooManyKeys => ErrorCode::MetadataTooManyKeys,
            DomainError::ValueTooLarge { .. } => ErrorCode::MetadataValueTooLarge,
            DomainError::MetadataTooLarge => ErrorCode::MetadataTooLarge,
            DomainError::NoSuchKeys => ErrorCode::MetadataNoSuchKeys,
            DomainError::NoPermission => ErrorCode::NoPermission,
            DomainError::NotAMember => ErrorCode::NotAMember,
            DomainError::Banned { .. } => ErrorCode::Banned,
            DomainError::RoomFull => ErrorCode::RoomFull,
            DomainError::Muted { .. } | DomainError::MessagesDisabled => ErrorCode::Muted,
            DomainError::CreatedTooSoon => ErrorCode::CreateFreqLimit,
            DomainError::RevisionMismatch { .. } => ErrorCode::RevisionMismatch,
            // A defect, not the request's fault: answered like a storage failure.
            DomainError::OutOfOrder => return Self::internal(),
        };
        Self::new(code, error.to_string())
    }
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        let (code, info) = match &error {
            VerifyError::Malformed(reason) => (
                ErrorCode::UserSigCheckFailed,
                format!("usersig cannot be decoded: {reason}"),
            ),
            VerifyError::SdkAppIdMismatch => (
                ErrorCode::UserSigMismatchSdkAppId,
                "usersig was made for another sdkappid".to_owned(),
            ),
            VerifyError::IdentifierMismatch => (
                ErrorCode::UserSigMismatchId,
                "usersig was made for another identifier".to_owned(),
            ),
            VerifyError::SignatureMismatch => (
                ErrorCode::UserSigMismatchKey,
                "usersig does not verify with the app's secret key".to_owned(),
            ),
            VerifyError::Expired => (ErrorCode::UserSigExpired, "usersig has expired".to_owned()),
        };
        Self::new(code, info)
    }
}
