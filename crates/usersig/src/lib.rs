//! Tencent Cloud UserSig ("TLS sig v2"): generation and verification, without I/O or a clock.
//!
//! A UserSig is a small JSON object, zlib-compressed and base64-encoded with Tencent's own
//! alphabet (`+`→`*`, `/`→`-`, pad `=`→`_`):
//!
//! ```text
//! {"TLS.ver":"2.0","TLS.identifier":"xiaojun","TLS.sdkappid":1400000000,
//!  "TLS.expire":15552000,"TLS.time":1700000000,"TLS.sig":"<base64 of 32 bytes>"}
//! ```
//!
//! `TLS.sig` is HMAC-SHA256, keyed with the bytes of the app's secret-key string (not
//! hex-decoded), over the content string
//! `"TLS.identifier:{id}\nTLS.sdkappid:{appid}\nTLS.time:{time}\nTLS.expire:{expire}\n"`
//! (plus `"TLS.userbuf:{b64}\n"` when a userbuf is carried). The signature covers only those
//! values, not the JSON bytes, and the official libraries differ in key order, whitespace,
//! zlib level and base64 padding. So [`decode`] parses the JSON and never compares bytes.
//!
//! Verification is two steps so that the server can map each failure to its own ErrorCode
//! (docs/behaviour.md §2 rows 9–13): [`decode`] (anything unreadable → [`DecodeError`]), then
//! [`DecodedSig::check`] (sdkappid, identifier, HMAC, expiry, in that order). [`verify`] does both.
//!
//! ```
//! use liveroom_usersig::{DEFAULT_EXPIRE_SECS, VerifyError, generate, verify};
//!
//! let now = 1_700_000_000;
//! let usersig = generate(1_400_000_000, "secret", "administrator", now, DEFAULT_EXPIRE_SECS);
//! let decoded = verify(&usersig, 1_400_000_000, "administrator", "secret", now + 60)?;
//! assert_eq!(decoded.expires_at(), now + DEFAULT_EXPIRE_SECS);
//! assert_eq!(
//!     verify(&usersig, 1_400_000_000, "administrator", "other", now).map(drop),
//!     Err(VerifyError::SignatureMismatch)
//! );
//! # Ok::<(), VerifyError>(())
//! ```
//!
//! Decoding is strict: canonical base64 only, the zlib stream must end exactly at the end of
//! the data with a correct Adler-32, and bits that inflaters ignore (stored-block header
//! alignment, the final byte's padding) must be zero. So no single-character change of a
//! UserSig from [`generate`] (or Go's library) verifies. A compressed stream (the other
//! libraries) can occasionally be changed in one character and still inflate to the very same
//! document; that is the same credential, and nothing short of rejecting those libraries could
//! prevent it.

#![forbid(unsafe_code)]

mod error;

use std::io::{Read, Write};

use base64::Engine as _;
use base64::alphabet::{self, Alphabet, Symbol};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use sha2::Sha256;

pub use error::{DecodeError, DecodeErrorKind, Field, VerifyError};

/// Default validity of the official libraries: 180 days.
pub const DEFAULT_EXPIRE_SECS: u64 = 15_552_000;

/// Largest inflated JSON accepted (docs/behaviour.md §2 row 9): 4 KiB.
pub const MAX_INFLATED_BYTES: usize = 4096;

/// Longest UserSig text accepted, checked before any decoding work. A 4 KiB JSON document in
/// zlib stored blocks (the worst case of any real encoder) is about 5,500 characters.
pub const MAX_USERSIG_LEN: usize = 8192;

type HmacSha256 = Hmac<Sha256>;

/// Tencent's base64: standard alphabet with `+`→`*`, `/`→`-` and padding `=`→`_`. Decoding
/// accepts padded and unpadded input but rejects non-zero trailing bits, so that every bit of
/// the text is significant. Public for tools and tests that build UserSigs by hand.
pub const TENCENT_B64: GeneralPurpose = {
    let Some(pad) = Symbol::new(b'_') else {
        panic!("`_` is a valid base64 symbol")
    };
    let Ok(alphabet) = Alphabet::new_with_padding(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-",
        pad,
    ) else {
        panic!("Tencent's alphabet is valid")
    };
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
};

/// Standard base64 as used for `TLS.sig` and `TLS.userbuf`: padded on output, padding optional
/// on input.
const STD_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Generate a UserSig exactly like the official Go library (compact JSON, zlib level 0), valid
/// from `now` for `expire` seconds.
///
/// Level 0 (stored blocks) is chosen on purpose: a compressed deflate stream can often be
/// altered in one character and still inflate to the same JSON (a back-reference pointing at
/// another copy of the same bytes), while stored data is covered bit for bit by the Adler-32
/// and the padding checks in [`decode`]. So any change to a generated UserSig is rejected.
#[must_use]
pub fn generate(sdkappid: u32, key: &str, identifier: &str, now: u64, expire: u64) -> String {
    generate_inner(sdkappid, key, identifier, now, expire, None)
}

/// Same as [`generate`] with a userbuf (PrivateMapKey style). [`decode`] rejects such UserSigs;
/// this exists for tests and for spec vector B.
#[must_use]
pub fn generate_with_userbuf(
    sdkappid: u32,
    key: &str,
    identifier: &str,
    now: u64,
    expire: u64,
    userbuf: &[u8],
) -> String {
    generate_inner(sdkappid, key, identifier, now, expire, Some(userbuf))
}

fn generate_inner(
    sdkappid: u32,
    key: &str,
    identifier: &str,
    now: u64,
    expire: u64,
    userbuf: Option<&[u8]>,
) -> String {
    let userbuf_b64 = userbuf.map(|buf| STD_B64.encode(buf));
    let content = content_to_sign(
        identifier,
        u64::from(sdkappid),
        now,
        expire,
        userbuf_b64.as_deref(),
    );
    let sig = STD_B64.encode(hmac_sha256(key, &content));

    // Go's layout (compact, this key order, trailing newline); `Value`'s Display escapes the
    // identifier as JSON requires.
    let id_json = Value::from(identifier);
    let mut json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":{id_json},\"TLS.sdkappid\":{sdkappid},\
         \"TLS.expire\":{expire},\"TLS.time\":{now},"
    );
    if let Some(b64) = &userbuf_b64 {
        json.push_str("\"TLS.userbuf\":\"");
        json.push_str(b64);
        json.push_str("\",");
    }
    json.push_str("\"TLS.sig\":\"");
    json.push_str(&sig);
    json.push_str("\"}\n");

    TENCENT_B64.encode(zlib_compress(json.as_bytes()))
}

/// zlib at level 0: stored blocks, as Go does (see [`generate`] for why).
fn zlib_compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(data.len() + 16), Compression::none());
    match encoder.write_all(data).and_then(|()| encoder.finish()) {
        Ok(compressed) => compressed,
        // Compressing from memory into a Vec has no failure mode.
        Err(e) => unreachable!("in-memory zlib compression failed: {e}"),
    }
}

/// The string the HMAC covers; every line ends with `\n`, the last one included.
fn content_to_sign(
    identifier: &str,
    sdkappid: u64,
    time: u64,
    expire: u64,
    userbuf_b64: Option<&str>,
) -> String {
    let mut content = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    if let Some(b64) = userbuf_b64 {
        content.push_str("TLS.userbuf:");
        content.push_str(b64);
        content.push('\n');
    }
    content
}

fn new_mac(key: &str) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this never fails.
    match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn hmac_sha256(key: &str, content: &str) -> [u8; 32] {
    new_mac(key)
        .chain_update(content.as_bytes())
        .finalize()
        .into_bytes()
        .into()
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A UserSig whose container decoded cleanly. Nothing in it is trusted until
/// [`DecodedSig::check`] has passed.
#[derive(Clone)]
pub struct DecodedSig {
    sdkappid: u64,
    identifier: String,
    time: u64,
    expire: u64,
    sig: [u8; 32],
}

impl std::fmt::Debug for DecodedSig {
    // The signature bytes are left out: they are part of the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedSig")
            .field("sdkappid", &self.sdkappid)
            .field("identifier", &self.identifier)
            .field("time", &self.time)
            .field("expire", &self.expire)
            .finish_non_exhaustive()
    }
}

impl DecodedSig {
    /// `TLS.sdkappid` as parsed (may exceed `u32`, in which case no app matches).
    #[must_use]
    pub fn sdkappid(&self) -> u64 {
        self.sdkappid
    }

    /// `TLS.identifier`.
    #[must_use]
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// `TLS.time`: Unix seconds at generation.
    #[must_use]
    pub fn time(&self) -> u64 {
        self.time
    }

    /// `TLS.expire`: validity in seconds from [`Self::time`].
    #[must_use]
    pub fn expire(&self) -> u64 {
        self.expire
    }

    /// Last Unix second at which the UserSig is still valid: it is expired iff
    /// `now > expires_at()`. Saturates instead of overflowing.
    #[must_use]
    pub fn expires_at(&self) -> u64 {
        self.time.saturating_add(self.expire)
    }

    /// Whether the UserSig has expired at `now` (`now > time + expire`; equal is still valid).
    #[must_use]
    pub fn is_expired(&self, now: u64) -> bool {
        now > self.expires_at()
    }

    /// Check the decoded UserSig against a request, in this order (docs/behaviour.md §2 rows 10–13):
    /// sdkappid, identifier (exact, case-sensitive), HMAC (constant-time), expiry.
    ///
    /// # Errors
    ///
    /// The first check that fails, as [`VerifyError::SdkAppIdMismatch`],
    /// [`VerifyError::IdentifierMismatch`], [`VerifyError::SignatureMismatch`] or
    /// [`VerifyError::Expired`].
    pub fn check(
        &self,
        sdkappid: u32,
        identifier: &str,
        key: &str,
        now: u64,
    ) -> Result<(), VerifyError> {
        if self.sdkappid != u64::from(sdkappid) {
            return Err(VerifyError::SdkAppIdMismatch);
        }
        if self.identifier != identifier {
            return Err(VerifyError::IdentifierMismatch);
        }
        let content = content_to_sign(identifier, self.sdkappid, self.time, self.expire, None);
        new_mac(key)
            .chain_update(content.as_bytes())
            .verify_slice(&self.sig)
            .map_err(|_| VerifyError::SignatureMismatch)?;
        if self.is_expired(now) {
            return Err(VerifyError::Expired);
        }
        Ok(())
    }
}

/// [`decode`] then [`DecodedSig::check`]; returns the decoded UserSig when it is valid.
///
/// # Errors
///
/// [`VerifyError::Malformed`] if [`decode`] fails, otherwise whatever
/// [`DecodedSig::check`] returns.
pub fn verify(
    usersig: &str,
    sdkappid: u32,
    identifier: &str,
    key: &str,
    now: u64,
) -> Result<DecodedSig, VerifyError> {
    let decoded = decode(usersig)?;
    decoded.check(sdkappid, identifier, key, now)?;
    Ok(decoded)
}

/// Decode a UserSig: alphabet and base64, zlib inflate (bounded to [`MAX_INFLATED_BYTES`]),
/// JSON parse, required fields and their types, `TLS.ver == "2.0"`, no `TLS.userbuf`.
///
/// Never panics, whatever the input.
///
/// # Errors
///
/// A [`DecodeError`] naming the first rule the input breaks.
pub fn decode(usersig: &str) -> Result<DecodedSig, DecodeError> {
    use DecodeErrorKind as K;

    if usersig.is_empty() {
        return Err(K::Empty.into());
    }
    if usersig.len() > MAX_USERSIG_LEN {
        return Err(K::TooLong.into());
    }
    let zlib = TENCENT_B64.decode(usersig).map_err(|e| match e {
        base64::DecodeError::InvalidByte(_, byte) if !is_alphabet_byte(byte) => K::BadCharacter,
        _ => K::NotBase64,
    })?;
    let json = inflate_strict(&zlib)?;
    parse_json(&json)
}

fn is_alphabet_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'*' | b'-' | b'_')
}

/// Inflate a complete zlib stream that must fill `zlib` exactly.
fn inflate_strict(zlib: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let (json, consumed) = inflate_bounded(zlib)?;
    if consumed != zlib.len() {
        return Err(DecodeErrorKind::TrailingData.into());
    }
    check_ignored_bits(zlib, &json)?;
    Ok(json)
}

/// Inflate one zlib stream from the start of `zlib`, reading it to its end so that the Adler-32
/// is verified. Returns the output and how many input bytes the stream took. The output is
/// capped through `Read::take`, so a zlib bomb costs at most `MAX_INFLATED_BYTES + 1` bytes.
fn inflate_bounded(zlib: &[u8]) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(zlib);
    let mut out = Vec::with_capacity(MAX_INFLATED_BYTES + 1);
    let limit = MAX_INFLATED_BYTES as u64 + 1;
    (&mut decoder)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => DecodeErrorKind::ZlibTruncated,
            _ => DecodeErrorKind::ZlibCorrupt,
        })?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(DecodeErrorKind::TooLarge.into());
    }
    // `read_to_end` returned without error below the cap, so the decoder saw the end of the
    // stream; whatever it did not consume is left in the inner slice.
    let consumed = zlib.len() - decoder.get_ref().len();
    Ok((out, consumed))
}

/// Reject streams whose ignored bits are not zero. Inflaters skip (a) the bits after a stored
/// block's 3-bit header up to the byte boundary and (b) the bits after the final block up to the
/// byte boundary. Encoders write zeros there; anything else means the text was altered, and
/// without this check such an alteration would still verify.
///
/// Not covered: a stored block that follows a Huffman block (its position is only known after
/// Huffman decoding; only flush points produce one, and no official library flushes). The zlib
/// header's FLEVEL bits need no check: changing them alone breaks the header checksum (FCHECK),
/// and one base64 character cannot change both nibbles of that byte.
fn check_ignored_bits(zlib: &[u8], json: &[u8]) -> Result<(), DecodeError> {
    // Inflate succeeded, so there is a 2-byte header (no preset dictionary, which zlib refuses
    // without one), deflate data, and a 4-byte Adler-32.
    let Some(deflate) = zlib.get(2..zlib.len().saturating_sub(4)) else {
        return Ok(());
    };

    // (a) Walk the leading run of stored blocks (Go's level-0 output is nothing else). Their
    // headers start on a byte boundary, so their positions are known without Huffman decoding.
    let mut pos = 0;
    while let Some(&header) = deflate.get(pos) {
        if header & 0b110 != 0 {
            break; // a Huffman block: positions after it are not byte-aligned any more
        }
        if header & 0b1111_1000 != 0 {
            return Err(DecodeErrorKind::ZlibNotCanonical.into());
        }
        if header & 1 == 1 {
            return Ok(()); // the final block is stored: it ends on a byte boundary, no padding
        }
        let (Some(&lo), Some(&hi)) = (deflate.get(pos + 1), deflate.get(pos + 2)) else {
            return Ok(());
        };
        pos += 5 + usize::from(u16::from_le_bytes([lo, hi]));
    }

    // (b) The final padding is the top bits of the last deflate byte. If its highest set bit is
    // padding, clearing it leaves the decoded result unchanged; if that bit carries data
    // (the end-of-block code, a stored byte or LEN/NLEN), clearing it changes the output or
    // breaks the stream. One extra inflate of a few hundred bytes, and only if the byte is not 0.
    let Some(last_index) = zlib.len().checked_sub(5) else {
        return Ok(());
    };
    let Some(&last) = zlib.get(last_index) else {
        return Ok(());
    };
    if last == 0 || last_index < 2 {
        return Ok(());
    }
    let mut altered = zlib.to_vec();
    altered[last_index] = last & !(0x80 >> last.leading_zeros());
    match inflate_bounded(&altered) {
        Ok((other, consumed)) if consumed == zlib.len() && other == json => {
            Err(DecodeErrorKind::ZlibNotCanonical.into())
        }
        _ => Ok(()),
    }
}

/// The fields of the JSON document, collected without losing duplicates or type errors, so
/// that each failure can be named precisely.
#[derive(Default)]
struct RawFields {
    ver: Option<Value>,
    identifier: Option<Value>,
    sdkappid: Option<Value>,
    time: Option<Value>,
    expire: Option<Value>,
    sig: Option<Value>,
    has_userbuf: bool,
    duplicate: Option<Field>,
}

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawFieldsVisitor)
    }
}

struct RawFieldsVisitor;

impl<'de> Visitor<'de> for RawFieldsVisitor {
    type Value = RawFields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
        let mut raw = RawFields::default();
        while let Some(key) = map.next_key::<String>()? {
            let (field, slot) = match key.as_str() {
                "TLS.ver" => (Field::Ver, &mut raw.ver),
                "TLS.identifier" => (Field::Identifier, &mut raw.identifier),
                "TLS.sdkappid" => (Field::SdkAppId, &mut raw.sdkappid),
                "TLS.time" => (Field::Time, &mut raw.time),
                "TLS.expire" => (Field::Expire, &mut raw.expire),
                "TLS.sig" => (Field::Sig, &mut raw.sig),
                "TLS.userbuf" => {
                    raw.has_userbuf = true;
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                // Unknown keys are ignored, as the official verifiers do.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<Value>()?;
            if slot.replace(value).is_some() && raw.duplicate.is_none() {
                raw.duplicate = Some(field);
            }
        }
        Ok(raw)
    }
}

fn parse_json(json: &[u8]) -> Result<DecodedSig, DecodeError> {
    use DecodeErrorKind as K;

    let raw: RawFields = serde_json::from_slice(json).map_err(|e| match e.classify() {
        // `Data` can only be the top-level "invalid type": the visitor accepts anything inside.
        serde_json::error::Category::Data => K::NotObject,
        _ => K::NotJson,
    })?;
    if let Some(field) = raw.duplicate {
        return Err(K::Duplicate(field).into());
    }

    let ver = take_string(raw.ver, Field::Ver)?;
    let identifier = take_string(raw.identifier, Field::Identifier)?;
    let sdkappid = take_u64(raw.sdkappid, Field::SdkAppId)?;
    let time = take_u64(raw.time, Field::Time)?;
    let expire = take_u64(raw.expire, Field::Expire)?;
    let sig_b64 = take_string(raw.sig, Field::Sig)?;

    if ver != "2.0" {
        return Err(K::BadVersion.into());
    }
    if raw.has_userbuf {
        return Err(K::HasUserbuf.into());
    }
    // 32 bytes are 44 characters padded, 43 unpadded; the length check keeps the decode small.
    if sig_b64.len() > 44 {
        return Err(K::BadSig.into());
    }
    let sig: [u8; 32] = STD_B64
        .decode(&sig_b64)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(K::BadSig)?;

    Ok(DecodedSig {
        sdkappid,
        identifier,
        time,
        expire,
        sig,
    })
}

fn take_string(value: Option<Value>, field: Field) -> Result<String, DecodeError> {
    match value {
        None => Err(DecodeErrorKind::Missing(field).into()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(DecodeErrorKind::WrongType(field).into()),
    }
}

fn take_u64(value: Option<Value>, field: Field) -> Result<u64, DecodeError> {
    match value {
        None => Err(DecodeErrorKind::Missing(field).into()),
        // `as_u64` is `None` for floats (even `1.0`), negatives and integers above u64::MAX
        // (which serde_json parses as floats).
        Some(v) => v
            .as_u64()
            .ok_or_else(|| DecodeErrorKind::WrongType(field).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    #[test]
    fn tencent_alphabet_is_standard_base64_with_three_characters_replaced() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..data.len() {
            let bytes = &data[..len];
            let replaced = STANDARD
                .encode(bytes)
                .replace('+', "*")
                .replace('/', "-")
                .replace('=', "_");
            assert_eq!(TENCENT_B64.encode(bytes), replaced);
            assert_eq!(TENCENT_B64.decode(&replaced).as_deref(), Ok(bytes));
            let unpadded = STANDARD_NO_PAD
                .encode(bytes)
                .replace('+', "*")
                .replace('/', "-");
            assert_eq!(TENCENT_B64.decode(&unpadded).as_deref(), Ok(bytes));
        }
    }

    #[test]
    fn content_string_layout() {
        assert_eq!(
            content_to_sign("id", 1, 2, 3, None),
            "TLS.identifier:id\nTLS.sdkappid:1\nTLS.time:2\nTLS.expire:3\n"
        );
        assert_eq!(
            content_to_sign("id", 1, 2, 3, Some("YWJj")),
            "TLS.identifier:id\nTLS.sdkappid:1\nTLS.time:2\nTLS.expire:3\nTLS.userbuf:YWJj\n"
        );
    }

    #[test]
    fn generated_stream_is_stored_blocks() {
        let zlib = zlib_compress(b"{\"a\":1}\n");
        assert_eq!(&zlib[..3], &[0x78, 0x01, 0x01]);
        assert_eq!(inflate_strict(&zlib).as_deref(), Ok(&b"{\"a\":1}\n"[..]));
    }

    #[test]
    fn ignored_bits_check_never_panics_on_short_inputs() {
        for len in 0..12 {
            for byte in [0x00, 0x01, 0x78, 0xff] {
                let _ = check_ignored_bits(&vec![byte; len], b"");
            }
        }
    }
}
