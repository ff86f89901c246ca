//! Error types. Nothing here may carry any part of the UserSig or of a key: these values end up
//! in logs and in `ErrorInfo` strings, and a UserSig is a bearer credential.

use std::fmt;

/// A field of the JSON document inside a UserSig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `TLS.ver`, a string that must be `"2.0"`.
    Ver,
    /// `TLS.identifier`, a string.
    Identifier,
    /// `TLS.sdkappid`, a non-negative integer.
    SdkAppId,
    /// `TLS.time`, a non-negative integer (Unix seconds).
    Time,
    /// `TLS.expire`, a non-negative integer (seconds).
    Expire,
    /// `TLS.sig`, a string: standard base64 of the 32-byte HMAC-SHA256.
    Sig,
}

impl Field {
    /// The JSON key, e.g. `"TLS.sig"`.
    pub const fn key(self) -> &'static str {
        match self {
            Field::Ver => "TLS.ver",
            Field::Identifier => "TLS.identifier",
            Field::SdkAppId => "TLS.sdkappid",
            Field::Time => "TLS.time",
            Field::Expire => "TLS.expire",
            Field::Sig => "TLS.sig",
        }
    }

    const fn expected_type(self) -> &'static str {
        match self {
            Field::Ver | Field::Identifier | Field::Sig => "a string",
            Field::SdkAppId | Field::Time | Field::Expire => "a non-negative integer",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What exactly was wrong with a UserSig that could not be decoded.
///
/// Variants carry no data taken from the input, only which rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The UserSig is the empty string.
    Empty,
    /// Longer than [`crate::MAX_USERSIG_LEN`]; no valid UserSig is that long.
    TooLong,
    /// A character outside Tencent's alphabet (`A–Z a–z 0–9 * -`, pad `_`).
    BadCharacter,
    /// Alphabet is fine but it is not valid base64 (length, padding, non-zero trailing bits).
    NotBase64,
    /// The zlib stream ends before its end-of-stream marker and Adler-32.
    ZlibTruncated,
    /// The zlib stream is invalid (header, deflate data or Adler-32 checksum).
    ZlibCorrupt,
    /// Bits that inflaters ignore are not zero, so this is not the encoder's output.
    ZlibNotCanonical,
    /// Bytes follow the end of the zlib stream.
    TrailingData,
    /// The zlib stream inflates to more than [`crate::MAX_INFLATED_BYTES`].
    TooLarge,
    /// The inflated bytes are not a JSON document.
    NotJson,
    /// The JSON document is not an object.
    NotObject,
    /// A required field is absent.
    Missing(Field),
    /// A field has the wrong JSON type (or a number that is not a non-negative integer).
    WrongType(Field),
    /// A field appears more than once.
    Duplicate(Field),
    /// `TLS.ver` is not `"2.0"`.
    BadVersion,
    /// The document carries a `TLS.userbuf`, which REST UserSigs never do.
    HasUserbuf,
    /// `TLS.sig` is not standard base64 of exactly 32 bytes.
    BadSig,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong => write!(f, "is longer than {} characters", crate::MAX_USERSIG_LEN),
            Self::BadCharacter => f.write_str("contains a character outside the UserSig alphabet"),
            Self::NotBase64 => f.write_str("not valid base64"),
            Self::ZlibTruncated => f.write_str("zlib data is truncated"),
            Self::ZlibCorrupt => f.write_str("zlib data is corrupt"),
            Self::ZlibNotCanonical => f.write_str("zlib data has non-zero padding bits"),
            Self::TrailingData => f.write_str("has bytes after the end of the zlib stream"),
            Self::TooLarge => write!(f, "inflates past {} bytes", crate::MAX_INFLATED_BYTES),
            Self::NotJson => f.write_str("not JSON"),
            Self::NotObject => f.write_str("JSON is not an object"),
            Self::Missing(field) => write!(f, "missing {field}"),
            Self::WrongType(field) => write!(f, "{field} is not {}", field.expected_type()),
            Self::Duplicate(field) => write!(f, "{field} appears more than once"),
            Self::BadVersion => f.write_str("TLS.ver is not 2.0"),
            Self::HasUserbuf => f.write_str("carries a TLS.userbuf"),
            Self::BadSig => f.write_str("TLS.sig is not base64 of a 32-byte HMAC"),
        }
    }
}

/// Why a UserSig could not be decoded. `Display` is a short English reason that never contains
/// the UserSig or any part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
}

impl DecodeError {
    /// Which rule failed.
    pub const fn kind(&self) -> DecodeErrorKind {
        self.kind
    }
}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        Self { kind }
    }
}

/// Why a UserSig was rejected, in the order the checks run (docs/behaviour.md §2 rows 9–13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Row 9 (ErrorCode 70003): the UserSig cannot be decoded.
    // The reason is part of the message, so it is deliberately not also a `source`
    // (error reporters would print it twice).
    #[error("UserSig cannot be decoded: {0}")]
    Malformed(DecodeError),
    /// Row 10 (70014): `TLS.sdkappid` differs from the request's sdkappid.
    #[error("UserSig sdkappid does not match")]
    SdkAppIdMismatch,
    /// Row 11 (70013): `TLS.identifier` differs from the request's identifier.
    #[error("UserSig identifier does not match")]
    IdentifierMismatch,
    /// Row 12 (70009): the HMAC does not verify with the app's key.
    #[error("UserSig signature does not verify")]
    SignatureMismatch,
    /// Row 13 (70001): `now > TLS.time + TLS.expire`.
    #[error("UserSig has expired")]
    Expired,
}

impl From<DecodeError> for VerifyError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}
