//! Property tests: round trips, single-character tampering, and "decode never panics".

mod common;

use common::*;
use liveroom_usersig::{VerifyError, decode, generate, verify};
use proptest::prelude::*;

/// Every single-byte change of `usersig` (to any ASCII byte; a non-ASCII byte in place of an
/// ASCII one is never valid UTF-8, so it cannot even be passed in). Returns those accepted.
fn accepted_alterations(usersig: &str, appid: u32, id: &str, key: &str, now: u64) -> Vec<String> {
    let bytes = usersig.as_bytes();
    let mut accepted = Vec::new();
    for pos in 0..bytes.len() {
        for replacement in 0u8..0x80 {
            if replacement == bytes[pos] {
                continue;
            }
            let mut altered = bytes.to_vec();
            altered[pos] = replacement;
            let altered = String::from_utf8(altered).expect("ASCII");
            if verify(&altered, appid, id, key, now).is_ok() {
                accepted.push(altered);
            }
        }
    }
    accepted
}

#[test]
fn no_single_character_change_of_a_generated_usersig_verifies() {
    // Exhaustive over positions and replacement bytes, for the spec's Go-layout strings and
    // the crate's own output (which is the same layout).
    let cases = [
        (A_GO.to_owned(), 1_400_000_000, "xiaojun", K, T0),
        (generate(1, "2", "3", T0, 4), 1, "3", "2", T0),
        (
            generate(1_400_000_000, K, "admin", T0, 86_400),
            1_400_000_000,
            "admin",
            K,
            T0,
        ),
        (
            generate(u32::MAX, "", "a", 0, u64::MAX),
            u32::MAX,
            "a",
            "",
            0,
        ),
        (
            generate(7, "k", "用户 \"x\"", u64::MAX, 0),
            7,
            "用户 \"x\"",
            "k",
            u64::MAX,
        ),
    ];
    for (usersig, appid, id, key, now) in cases {
        assert!(verify(&usersig, appid, id, key, now).is_ok());
        assert_eq!(
            accepted_alterations(&usersig, appid, id, key, now),
            Vec::<String>::new()
        );
    }
}

#[test]
fn compressed_layouts_only_admit_alterations_that_inflate_to_the_same_document() {
    // A compressed deflate stream can sometimes be changed in one character and still inflate
    // to the identical document (a back-reference moved to another copy of the same bytes).
    // That is harmless, the credential is unchanged, and unavoidable without rejecting
    // the official libraries' output; check that nothing else slips through.
    let cases = [
        (A_PYTHON, 1_400_000_000, "xiaojun", K),
        (A_NODE, 1_400_000_000, "xiaojun", K),
        (C_PYTHON, 1, "3", "2"),
        (D_PYTHON, 1_400_000_000, "admin", K),
    ];
    for (usersig, appid, id, key) in cases {
        let original = inflate(&from_tencent_b64(usersig));
        for altered in accepted_alterations(usersig, appid, id, key, T0) {
            assert_eq!(inflate(&from_tencent_b64(&altered)), original);
        }
    }
}

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{1,32}",
        1 => "\\PC{1,12}",
    ]
}

proptest! {
    #[test]
    fn generate_then_verify(
        appid in any::<u32>(),
        id in identifier(),
        key in "\\PC{0,80}",
        time in any::<u64>(),
        expire in any::<u64>(),
    ) {
        let usersig = generate(appid, &key, &id, time, expire);
        let decoded = verify(&usersig, appid, &id, &key, time)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.sdkappid(), u64::from(appid));
        prop_assert_eq!(decoded.identifier(), id.as_str());
        prop_assert_eq!(decoded.time(), time);
        prop_assert_eq!(decoded.expire(), expire);
        prop_assert_eq!(decoded.expires_at(), time.saturating_add(expire));
        prop_assert!(verify(&usersig, appid, &id, &key, decoded.expires_at()).is_ok());
        if let Some(after) = decoded.expires_at().checked_add(1) {
            prop_assert_eq!(
                verify(&usersig, appid, &id, &key, after).map(drop),
                Err(VerifyError::Expired)
            );
        }
        let other_key = format!("{key}x");
        prop_assert_eq!(
            verify(&usersig, appid, &id, &other_key, time).map(drop),
            Err(VerifyError::SignatureMismatch)
        );
        prop_assert_eq!(
            verify(&usersig, appid.wrapping_add(1), &id, &key, time).map(drop),
            Err(VerifyError::SdkAppIdMismatch)
        );
        // The JSON inside is what an official library would read.
        let json = inner_json(&usersig);
        prop_assert_eq!(&json["TLS.ver"], "2.0");
        prop_assert_eq!(&json["TLS.identifier"], id.as_str());
        let expected_sig = good_sig(&key, &id, u64::from(appid), time, expire);
        prop_assert_eq!(&json["TLS.sig"], expected_sig.as_str());
    }

    #[test]
    fn any_single_tampered_byte_is_rejected(
        appid in any::<u32>(),
        id in identifier(),
        key in "[0-9a-f]{0,64}",
        time in any::<u64>(),
        expire in any::<u64>(),
        index in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let usersig = generate(appid, &key, &id, time, expire);
        let mut bytes = usersig.clone().into_bytes();
        let at = index.index(bytes.len());
        prop_assume!(bytes[at] != replacement);
        bytes[at] = replacement;
        // A byte that breaks UTF-8 cannot reach `verify` (it takes &str): rejected by type.
        if let Ok(altered) = String::from_utf8(bytes) {
            prop_assert!(verify(&altered, appid, &id, &key, time).is_err());
        }
    }

    #[test]
    fn decode_never_panics_on_any_string(text in "\\PC{0,300}") {
        let _ = decode(&text);
    }

    #[test]
    fn decode_never_panics_on_any_alphabet_string(text in "[A-Za-z0-9*_-]{0,400}") {
        let _ = decode(&text);
    }

    #[test]
    fn decode_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&tencent_b64(&bytes));
        let _ = decode(&tencent_b64_unpadded(&bytes));
    }

    #[test]
    fn decode_never_panics_on_any_zlib_payload(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        level in 0u32..=9,
    ) {
        let compressed = zlib(&bytes, level);
        let _ = decode(&tencent_b64(&compressed));
    }

    #[test]
    fn decode_never_panics_on_json_like_documents(
        fields in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "TLS.ver", "TLS.identifier", "TLS.sdkappid", "TLS.time",
                    "TLS.expire", "TLS.sig", "TLS.userbuf", "other",
                ]),
                prop_oneof![
                    Just("\"2.0\"".to_owned()),
                    any::<i64>().prop_map(|n| n.to_string()),
                    any::<u64>().prop_map(|n| n.to_string()),
                    any::<f64>().prop_map(|n| n.to_string()),
                    "\"[ -~]{0,50}\"",
                    Just("null".to_owned()),
                    Just("[]".to_owned()),
                    Just("{}".to_owned()),
                ],
            ),
            0..9,
        ),
        level in 0u32..=9,
    ) {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let json = format!("{{{}}}", body.join(","));
        let _ = decode(&wrap_level(&json, level));
    }

    #[test]
    fn corrupting_the_compressed_bytes_never_panics_or_alters_the_meaning(
        index in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        level in 0u32..=9,
    ) {
        let json = python_json(K, "xiaojun", 1_400_000_000, T0, 100);
        let mut bytes = zlib(json.as_bytes(), level);
        let at = index.index(bytes.len());
        bytes[at] ^= xor;
        if let Ok(decoded) = decode(&tencent_b64(&bytes)) {
            // Only possible if it inflated to the very same document.
            prop_assert_eq!(inflate(&bytes), json.as_bytes());
            prop_assert!(decoded.check(1_400_000_000, "xiaojun", K, T0).is_ok());
        }
    }
}
