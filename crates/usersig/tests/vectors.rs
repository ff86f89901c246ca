//! Spec §4.4 test vectors A–D: signatures, every given encoding, and the official Go unit
//! test's semantics.

mod common;

use common::*;
use liveroom_usersig::{
    DEFAULT_EXPIRE_SECS, DecodeErrorKind, VerifyError, decode, generate, generate_with_userbuf,
    verify,
};

#[test]
fn signatures_reproduce_from_content_strings() {
    let cases = [
        (
            K,
            "TLS.identifier:xiaojun\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:15552000\n",
            A_SIG,
        ),
        (
            K,
            "TLS.identifier:xiaojun\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:15552000\nTLS.userbuf:YWJj\n",
            B_SIG,
        ),
        (
            "2",
            "TLS.identifier:3\nTLS.sdkappid:1\nTLS.time:1700000000\nTLS.expire:4\n",
            C_SIG,
        ),
        (
            K,
            "TLS.identifier:admin\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:86400\n",
            D_SIG,
        ),
    ];
    for (key, content, sig) in cases {
        assert_eq!(sig_b64(key, content), sig, "content {content:?}");
    }
    // The test helper builds the same content strings.
    assert_eq!(content("3", 1, T0, 4), cases[2].1);
}

#[test]
fn generate_carries_the_vector_signatures() {
    let cases = [
        (generate(1_400_000_000, K, "xiaojun", T0, 15_552_000), A_SIG),
        (generate(1, "2", "3", T0, 4), C_SIG),
        (generate(1_400_000_000, K, "admin", T0, 86_400), D_SIG),
        (
            generate_with_userbuf(1_400_000_000, K, "xiaojun", T0, 15_552_000, b"abc"),
            B_SIG,
        ),
    ];
    for (usersig, sig) in cases {
        assert_eq!(inner_json(&usersig)["TLS.sig"], sig);
    }
}

#[test]
fn generate_matches_the_go_layout_byte_for_byte() {
    // The crate generates Go's layout (compact JSON + "\n", zlib level 0), so the spec's
    // Go-style strings are reproduced exactly.
    assert_eq!(generate(1_400_000_000, K, "xiaojun", T0, 15_552_000), A_GO);
    assert_eq!(
        generate_with_userbuf(1_400_000_000, K, "xiaojun", T0, 15_552_000, b"abc"),
        B_GO
    );
    assert_eq!(
        inner_json(&generate_with_userbuf(1, "2", "3", T0, 4, b"abc"))["TLS.userbuf"],
        "YWJj"
    );
}

#[test]
fn default_expiry_is_180_days() {
    assert_eq!(DEFAULT_EXPIRE_SECS, 180 * 24 * 3600);
    assert_eq!(DEFAULT_EXPIRE_SECS, 15_552_000);
}

#[test]
fn vector_a_every_encoding_verifies_until_it_expires() {
    for usersig in [A_PYTHON, A_NODE, A_GO] {
        let decoded = decode(usersig).expect("decodes");
        assert_eq!(decoded.sdkappid(), 1_400_000_000);
        assert_eq!(decoded.identifier(), "xiaojun");
        assert_eq!(decoded.time(), T0);
        assert_eq!(decoded.expire(), 15_552_000);
        assert_eq!(decoded.expires_at(), 1_715_552_000);

        for now in [T0, T0 + 1, 1_715_551_999, 1_715_552_000] {
            let ok = verify(usersig, 1_400_000_000, "xiaojun", K, now).expect("valid");
            assert_eq!(ok.identifier(), "xiaojun");
        }
        for now in [1_715_552_001, u64::MAX] {
            assert_eq!(
                verify(usersig, 1_400_000_000, "xiaojun", K, now).map(drop),
                Err(VerifyError::Expired)
            );
        }
    }
}

#[test]
fn a_future_time_is_not_rejected() {
    // docs/behaviour.md §3: no lower bound on TLS.time, as in the official verifiers.
    for now in [0, 1, T0 - 1] {
        assert!(verify(A_GO, 1_400_000_000, "xiaojun", K, now).is_ok());
    }
}

#[test]
fn vector_b_carries_a_userbuf_and_is_malformed() {
    for usersig in [B_PYTHON, B_GO] {
        assert_eq!(
            decode(usersig).unwrap_err().kind(),
            DecodeErrorKind::HasUserbuf
        );
        match verify(usersig, 1_400_000_000, "xiaojun", K, T0) {
            Err(VerifyError::Malformed(e)) => assert_eq!(e.kind(), DecodeErrorKind::HasUserbuf),
            other => panic!("expected Malformed(HasUserbuf), got {other:?}"),
        }
    }
}

#[test]
fn vector_c_reproduces_the_official_go_unit_test() {
    let go_layout = generate(1, "2", "3", T0, 4);
    for usersig in [C_PYTHON, go_layout.as_str()] {
        for now in T0..=T0 + 4 {
            assert!(verify(usersig, 1, "3", "2", now).is_ok(), "valid at {now}");
        }
        assert_eq!(
            verify(usersig, 1, "3", "2", T0 + 5).map(drop),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(usersig, 1, "3", "2", T0 + 3600).map(drop),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(usersig, 2, "3", "2", T0).map(drop),
            Err(VerifyError::SdkAppIdMismatch)
        );
        assert_eq!(
            verify(usersig, 1, "4", "2", T0).map(drop),
            Err(VerifyError::IdentifierMismatch)
        );
        assert_eq!(
            verify(usersig, 1, "3", "3", T0).map(drop),
            Err(VerifyError::SignatureMismatch)
        );
    }
}

#[test]
fn vector_d_admin_for_one_day() {
    assert!(verify(D_PYTHON, 1_400_000_000, "admin", K, T0 + 86_400).is_ok());
    assert_eq!(
        verify(D_PYTHON, 1_400_000_000, "admin", K, T0 + 86_401).map(drop),
        Err(VerifyError::Expired)
    );
    assert_eq!(
        verify(D_PYTHON, 1_400_000_000, "xiaojun", K, T0).map(drop),
        Err(VerifyError::IdentifierMismatch)
    );
}

#[test]
fn checks_run_in_the_documented_order() {
    // Each call breaks several rules at once; the first in docs/behaviour.md §2 order answers.
    let now_expired = 1_715_552_001;
    let cases = [
        (
            1,
            "other",
            "wrong key",
            now_expired,
            VerifyError::SdkAppIdMismatch,
        ),
        (
            1_400_000_000,
            "other",
            "wrong key",
            now_expired,
            VerifyError::IdentifierMismatch,
        ),
        (
            1_400_000_000,
            "xiaojun",
            "wrong key",
            now_expired,
            VerifyError::SignatureMismatch,
        ),
        (
            1_400_000_000,
            "xiaojun",
            K,
            now_expired,
            VerifyError::Expired,
        ),
    ];
    let decoded = decode(A_PYTHON).expect("decodes");
    for (appid, id, key, now, expected) in cases {
        assert_eq!(decoded.check(appid, id, key, now), Err(expected.clone()));
        assert_eq!(
            verify(A_PYTHON, appid, id, key, now).map(drop),
            Err(expected)
        );
    }
    // And a malformed UserSig answers before any of them.
    assert!(matches!(
        verify("", 1, "other", "wrong key", now_expired),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn identifier_comparison_is_exact() {
    for other in ["Xiaojun", "xiaojun ", " xiaojun", "xiaoju", "xiaojunn", ""] {
        assert_eq!(
            verify(A_GO, 1_400_000_000, other, K, T0).map(drop),
            Err(VerifyError::IdentifierMismatch),
            "{other:?}"
        );
    }
}

#[test]
fn the_key_is_used_as_a_string_not_hex_decoded() {
    assert_eq!(
        verify(A_GO, 1_400_000_000, "xiaojun", &K.to_uppercase(), T0).map(drop),
        Err(VerifyError::SignatureMismatch)
    );
    assert_eq!(
        verify(A_GO, 1_400_000_000, "xiaojun", &K[..63], T0).map(drop),
        Err(VerifyError::SignatureMismatch)
    );
}
