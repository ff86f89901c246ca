//! UserSig decoding and verification (docs/behaviour.md §2 rows 9–13) on arbitrary input.
//!
//! The first byte picks how the rest is used, so that the fuzzer reaches every layer and not
//! only the base64 check: raw UserSig text; a JSON document wrapped the way encoders do (zlib,
//! then Tencent's base64), to reach the field checks behind the Adler-32; raw zlib bytes, to
//! reach the inflater; or a freshly generated UserSig that is then tampered with.
//! Properties: nothing panics, `verify` agrees with `decode` + `check`, a generated UserSig
//! verifies until exactly `time + expire`, no single-character change or truncation of one
//! verifies, and no error message repeats the UserSig.
#![no_main]

use std::io::Write;

use base64::Engine as _;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use libfuzzer_sys::fuzz_target;
use liveroom_usersig::{VerifyError, decode, generate, verify};

const APP: u32 = 1_400_000_000;
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const ADMIN: &str = "administrator";
const NOW: u64 = 1_700_000_000;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_";

fn tencent_b64(bytes: &[u8]) -> String {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-")
            .expect("valid alphabet");
    let engine = GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new().with_encode_padding(false),
    );
    // Tencent pads with `_`; the decoder accepts padded and unpadded text.
    let mut text = engine.encode(bytes);
    while text.len() % 4 != 0 {
        text.push('_');
    }
    text
}

fn zlib(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

fn check_text(usersig: &str) {
    let decoded = decode(usersig);
    let verified = verify(usersig, APP, ADMIN, KEY, NOW);
    match (&decoded, &verified) {
        (Err(a), Err(VerifyError::Malformed(b))) => assert_eq!(a, b),
        (Err(e), other) => panic!("decode failed ({e}) but verify said {other:?}"),
        (Ok(_), Err(VerifyError::Malformed(e))) => panic!("decode succeeded but verify said {e}"),
        (Ok(sig), _) => {
            assert_eq!(
                sig.check(APP, ADMIN, KEY, NOW),
                verified.as_ref().map(drop).map_err(Clone::clone)
            );
            if verified.is_ok() {
                assert_eq!(sig.sdkappid(), u64::from(APP));
                assert_eq!(sig.identifier(), ADMIN);
                assert!(!sig.is_expired(NOW));
            }
            // Checked against its own claims, only the HMAC can fail (at its own issue time).
            if let Ok(app) = u32::try_from(sig.sdkappid()) {
                match sig.check(app, sig.identifier(), KEY, sig.time()) {
                    Ok(()) | Err(VerifyError::SignatureMismatch) => {}
                    Err(other) => panic!("self-check failed with {other:?}"),
                }
            }
            // Debug output leaves the signature out.
            let _ = format!("{sig:?}");
        }
    }
    // Error messages go into ErrorInfo and logs: they must never carry the credential.
    if let Err(error) = &verified
        && usersig.len() >= 8
    {
        assert!(!error.to_string().contains(usersig));
    }
}

/// A generated UserSig, then changed: one character replaced, or cut short.
fn tamper(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let id_len = usize::from(next() % 40);
    let id_bytes: Vec<u8> = (0..id_len).map(|_| next()).collect();
    let identifier = String::from_utf8_lossy(&id_bytes).into_owned();
    let expire = u64::from(u32::from_le_bytes([next(), next(), next(), next()]));
    let position = usize::from(u16::from_le_bytes([next(), next()]));
    let replacement = ALPHABET[usize::from(next()) % ALPHABET.len()];

    let usersig = generate(APP, KEY, &identifier, NOW, expire);
    assert!(verify(&usersig, APP, &identifier, KEY, NOW).is_ok());
    assert!(verify(&usersig, APP, &identifier, KEY, NOW + expire).is_ok());
    assert_eq!(
        verify(&usersig, APP, &identifier, KEY, NOW + expire + 1).map(drop),
        Err(VerifyError::Expired)
    );

    let position = position % usersig.len();
    let mut changed = usersig.clone().into_bytes();
    if changed[position] != replacement {
        changed[position] = replacement;
        let changed = String::from_utf8(changed).expect("ASCII");
        assert!(
            verify(&changed, APP, &identifier, KEY, NOW).is_err(),
            "one character changed at {position} still verifies"
        );
    }
    // Dropping only `_` padding is allowed (the decoder takes unpadded text, as Node's does).
    let cut = &usersig[..position];
    if cut.trim_end_matches('_').len() < usersig.trim_end_matches('_').len() {
        assert!(
            verify(cut, APP, &identifier, KEY, NOW).is_err(),
            "truncated to {position} characters still verifies"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => check_text(&String::from_utf8_lossy(rest)),
        1 => {
            let Some((&level, json)) = rest.split_first() else {
                return;
            };
            check_text(&tencent_b64(&zlib(json, u32::from(level % 10))));
        }
        2 => check_text(&tencent_b64(rest)),
        _ => tamper(rest),
    }
});
