//! Every way a UserSig can fail to decode, and the rule that error messages never carry the
//! UserSig or the key.

mod common;

use std::time::{Duration, Instant};

use common::*;
use liveroom_usersig::{
    DecodeErrorKind as Kind, Field, MAX_INFLATED_BYTES, MAX_USERSIG_LEN, VerifyError, decode,
    generate, verify,
};

const APPID: u64 = 1_400_000_000;

#[track_caller]
fn kind_of(usersig: &str) -> Kind {
    match decode(usersig) {
        Ok(d) => panic!("decoded unexpectedly: {d:?}"),
        Err(e) => e.kind(),
    }
}

/// A document with one field replaced by `raw` (raw JSON text), or removed when `None`.
fn doc_with(field: &str, raw: Option<&str>) -> String {
    let sig = good_sig(K, "xiaojun", APPID, T0, 100);
    let fields = [
        ("TLS.ver", "\"2.0\"".to_owned()),
        ("TLS.identifier", "\"xiaojun\"".to_owned()),
        ("TLS.sdkappid", APPID.to_string()),
        ("TLS.expire", "100".to_owned()),
        ("TLS.time", T0.to_string()),
        ("TLS.sig", format!("\"{sig}\"")),
    ];
    let body: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| {
            if *name == field {
                raw.map(|r| format!("\"{name}\": {r}"))
            } else {
                Some(format!("\"{name}\": {value}"))
            }
        })
        .collect();
    wrap(&format!("{{{}}}", body.join(", ")))
}

#[test]
fn the_document_builder_makes_valid_sigs() {
    let usersig = doc_with("none", None);
    assert!(verify(&usersig, APPID as u32, "xiaojun", K, T0).is_ok());
}

#[test]
fn empty_and_too_long() {
    assert_eq!(kind_of(""), Kind::Empty);
    assert_eq!(kind_of(&"A".repeat(MAX_USERSIG_LEN + 1)), Kind::TooLong);
    // Just below the cap it is decoded (and fails later, for another reason).
    assert_ne!(kind_of(&"A".repeat(MAX_USERSIG_LEN)), Kind::TooLong);
}

#[test]
fn characters_outside_the_alphabet() {
    // Standard base64's `+`, `/` and `=` are not Tencent's; nor is whitespace or non-ASCII.
    for bad in ['+', '/', '=', ' ', '\n', '.', '%', 'é', '\0'] {
        let mut usersig = A_GO.to_owned();
        usersig.replace_range(10..11, &bad.to_string());
        assert_eq!(kind_of(&usersig), Kind::BadCharacter, "{bad:?}");
    }
    let std_alphabet = A_PYTHON.replace('-', "/").replace('_', "=");
    assert_eq!(kind_of(&std_alphabet), Kind::BadCharacter);
    assert_eq!(kind_of(&format!(" {A_GO}")), Kind::BadCharacter);
    assert_eq!(kind_of(&format!("{A_GO}\n")), Kind::BadCharacter);
}

#[test]
fn invalid_base64() {
    assert_eq!(kind_of("A"), Kind::NotBase64);
    assert_eq!(kind_of("eJyrV"), Kind::NotBase64); // length 1 mod 4
    assert_eq!(kind_of("eJ_r"), Kind::NotBase64); // padding in the middle
    assert_eq!(kind_of("____"), Kind::NotBase64);
    assert_eq!(kind_of("QR__"), Kind::NotBase64); // non-zero trailing bits
    assert_eq!(kind_of(&format!("{A_PYTHON}_")), Kind::NotBase64); // too much padding
    // A_PYTHON ends "Ug__": `g` carries 2 data bits and 4 unused ones, which must be zero.
    assert!(A_PYTHON.ends_with("Ug__"));
    assert_eq!(kind_of(&A_PYTHON.replace("Ug__", "Uh__")), Kind::NotBase64);
    assert_eq!(kind_of(&A_PYTHON.replace("Ug__", "Uh")), Kind::NotBase64);
}

#[test]
fn not_zlib() {
    assert_eq!(kind_of(&tencent_b64(b"hello, world")), Kind::ZlibCorrupt);
    // gzip framing instead of zlib.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"{}").expect("write");
    assert_eq!(
        kind_of(&tencent_b64(&gz.finish().expect("gz"))),
        Kind::ZlibCorrupt
    );
    // Raw deflate without the zlib header.
    let raw = zlib(b"{\"a\":1}", 6);
    assert_eq!(kind_of(&tencent_b64(&raw[2..])), Kind::ZlibCorrupt);
    // A header asking for a preset dictionary (FDICT).
    let mut fdict = zlib(b"{}", 6);
    fdict[1] = 0xbb; // 0x78bb % 31 == 0, FDICT set
    assert_eq!(kind_of(&tencent_b64(&fdict)), Kind::ZlibCorrupt);
    // A broken header check.
    let mut header = zlib(b"{}", 6);
    header[1] ^= 1;
    assert_eq!(kind_of(&tencent_b64(&header)), Kind::ZlibCorrupt);
}

#[test]
fn wrong_adler32() {
    for usersig in [A_PYTHON, A_GO] {
        let mut bytes = from_tencent_b64(usersig);
        *bytes.last_mut().expect("non-empty") ^= 0x01;
        assert_eq!(kind_of(&tencent_b64(&bytes)), Kind::ZlibCorrupt);
    }
}

#[test]
fn truncated_zlib() {
    for usersig in [A_PYTHON, A_GO] {
        let bytes = from_tencent_b64(usersig);
        for cut in [1, 2, 4, 5, 10, bytes.len() - 2, bytes.len() - 1] {
            let truncated = &bytes[..bytes.len() - cut];
            assert_eq!(
                kind_of(&tencent_b64(truncated)),
                Kind::ZlibTruncated,
                "cut {cut}"
            );
        }
    }
}

#[test]
fn bytes_after_the_zlib_stream() {
    for usersig in [A_PYTHON, A_NODE, A_GO] {
        let bytes = from_tencent_b64(usersig);
        for tail in [&[0u8][..], b"x", b"\0\0\0", &bytes] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(tail);
            assert_eq!(kind_of(&tencent_b64(&longer)), Kind::TrailingData);
        }
    }
}

#[test]
fn non_zero_ignored_bits_in_a_stored_block_header() {
    // A_GO starts 78 01 | 01 ...: the stored block's header byte has 5 bits that inflaters skip.
    let bytes = from_tencent_b64(A_GO);
    assert_eq!(bytes[2], 0x01);
    for bit in 3..8 {
        let mut altered = bytes.clone();
        altered[2] |= 1 << bit;
        // Without the check this would inflate to the very same JSON.
        assert_eq!(inflate(&altered), inflate(&bytes));
        assert_eq!(kind_of(&tencent_b64(&altered)), Kind::ZlibNotCanonical);
    }
}

#[test]
fn non_zero_padding_bits_after_the_final_block() {
    // Find compressed sigs whose last deflate byte has padding bits, set them, and check that
    // the result (which inflates to the same JSON) is refused.
    let mut tested = 0;
    for n in 0..200u64 {
        let json = python_json(K, &format!("user{n}"), APPID, T0 + n, 100);
        let bytes = zlib(json.as_bytes(), 6);
        let last = bytes.len() - 5;
        for bit in (1..8).rev() {
            let mut altered = bytes.clone();
            altered[last] |= 1 << bit;
            if altered[last] == bytes[last] {
                continue;
            }
            let same = {
                let mut out = Vec::new();
                let ok = std::io::Read::read_to_end(
                    &mut flate2::read::ZlibDecoder::new(&altered[..]),
                    &mut out,
                )
                .is_ok();
                ok && out == json.as_bytes()
            };
            if same {
                assert_eq!(kind_of(&tencent_b64(&altered)), Kind::ZlibNotCanonical);
                tested += 1;
            }
        }
    }
    assert!(tested > 20, "only {tested} padding cases found");
}

#[test]
fn zlib_bomb_is_stopped_at_the_cap() {
    // 4 MiB of spaces compress to about 4 KiB: within MAX_USERSIG_LEN, so the inflate cap is
    // what stops it.
    let bomb = wrap_level(&" ".repeat(4 << 20), 9);
    assert!(bomb.len() <= MAX_USERSIG_LEN, "{}", bomb.len());
    let started = Instant::now();
    assert_eq!(kind_of(&bomb), Kind::TooLarge);
    assert!(started.elapsed() < Duration::from_millis(500));

    // A valid-looking document followed by a huge run of whitespace.
    let json = python_json(K, "xiaojun", APPID, T0, 100) + &" ".repeat(1 << 20);
    assert_eq!(kind_of(&wrap_level(&json, 9)), Kind::TooLarge);
}

#[test]
fn ten_megabyte_bomb_is_refused_before_inflating() {
    let bomb = wrap_level(&" ".repeat(10 << 20), 9);
    let started = Instant::now();
    assert_eq!(kind_of(&bomb), Kind::TooLong);
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn inflated_size_limit_is_exact() {
    let json = python_json(K, "xiaojun", APPID, T0, 100);
    let fill = MAX_INFLATED_BYTES - json.len();
    let at_limit = format!("{json}{}", " ".repeat(fill));
    assert_eq!(at_limit.len(), MAX_INFLATED_BYTES);
    for level in [0, 6] {
        let usersig = wrap_level(&at_limit, level);
        assert!(
            verify(&usersig, APPID as u32, "xiaojun", K, T0).is_ok(),
            "level {level}"
        );
        let over = wrap_level(&format!("{at_limit} "), level);
        assert_eq!(kind_of(&over), Kind::TooLarge, "level {level}");
    }
}

#[test]
fn not_json() {
    for text in [
        "",
        "hello",
        "{",
        "{\"TLS.ver\": \"2.0\"",
        "{\"TLS.ver\": \"2.0\",}",
        "{'TLS.ver': '2.0'}",
        "{} {}",
        "{}x",
        "\u{feff}{}",
    ] {
        assert_eq!(kind_of(&wrap(text)), Kind::NotJson, "{text:?}");
    }
    // Invalid UTF-8 inside a string.
    let mut bytes = python_json(K, "xiaojun", APPID, T0, 100).into_bytes();
    let at = bytes.iter().position(|&b| b == b'x').expect("has x");
    bytes[at] = 0xff;
    assert_eq!(kind_of(&tencent_b64(&zlib(&bytes, 6))), Kind::NotJson);
    // Deep nesting never overflows the stack: in a known field serde_json's recursion limit
    // refuses it; in an unknown field it is skipped without recursion.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert_eq!(kind_of(&doc_with("TLS.sig", Some(&deep))), Kind::NotJson);
    let unknown = wrap(&format!("{{\"x\":{deep}}}"));
    assert_eq!(kind_of(&unknown), Kind::Missing(Field::Ver));
}

#[test]
fn json_that_is_not_an_object() {
    for text in [
        "[]",
        "[{\"TLS.ver\":\"2.0\"}]",
        "null",
        "true",
        "1",
        "\"TLS.ver\"",
    ] {
        assert_eq!(kind_of(&wrap(text)), Kind::NotObject, "{text:?}");
    }
}

#[test]
fn each_missing_field() {
    let cases = [
        ("TLS.ver", Field::Ver),
        ("TLS.identifier", Field::Identifier),
        ("TLS.sdkappid", Field::SdkAppId),
        ("TLS.time", Field::Time),
        ("TLS.expire", Field::Expire),
        ("TLS.sig", Field::Sig),
    ];
    for (name, field) in cases {
        assert_eq!(
            kind_of(&doc_with(name, None)),
            Kind::Missing(field),
            "{name}"
        );
    }
    assert_eq!(kind_of(&wrap("{}")), Kind::Missing(Field::Ver));
    // Key names are case-sensitive and exact.
    let doc =
        wrap(&python_json(K, "xiaojun", APPID, T0, 100).replace("\"TLS.sig\"", "\"tls.sig\""));
    assert_eq!(kind_of(&doc), Kind::Missing(Field::Sig));
}

#[test]
fn wrong_field_types() {
    let numbers = [
        ("TLS.sdkappid", Field::SdkAppId),
        ("TLS.time", Field::Time),
        ("TLS.expire", Field::Expire),
    ];
    let not_integers = [
        "\"1400000000\"",
        "1400000000.0",
        "1.4e9",
        "1e2",
        "-1",
        "-0",
        "18446744073709551616",
        "true",
        "null",
        "[1]",
        "{}",
    ];
    for (name, field) in numbers {
        for raw in not_integers {
            assert_eq!(
                kind_of(&doc_with(name, Some(raw))),
                Kind::WrongType(field),
                "{name} = {raw}"
            );
        }
    }
    let strings = [
        ("TLS.ver", Field::Ver),
        ("TLS.identifier", Field::Identifier),
        ("TLS.sig", Field::Sig),
    ];
    for (name, field) in strings {
        for raw in ["2.0", "2", "null", "true", "[\"2.0\"]", "{}"] {
            assert_eq!(
                kind_of(&doc_with(name, Some(raw))),
                Kind::WrongType(field),
                "{name} = {raw}"
            );
        }
    }
}

#[test]
fn duplicate_fields() {
    let json = python_json(K, "xiaojun", APPID, T0, 100);
    let twice = json.replacen('{', "{\"TLS.identifier\": \"admin\", ", 1);
    assert_eq!(kind_of(&wrap(&twice)), Kind::Duplicate(Field::Identifier));
    let twice = json.replacen('{', "{\"TLS.time\": 1700000000, ", 1);
    assert_eq!(kind_of(&wrap(&twice)), Kind::Duplicate(Field::Time));
}

#[test]
fn version_other_than_2_0() {
    for ver in ["\"1.0\"", "\"2\"", "\"2.0 \"", "\"\"", "\"3.0\""] {
        assert_eq!(
            kind_of(&doc_with("TLS.ver", Some(ver))),
            Kind::BadVersion,
            "{ver}"
        );
    }
}

#[test]
fn any_userbuf_is_refused() {
    let json = python_json(K, "xiaojun", APPID, T0, 100);
    for value in ["\"YWJj\"", "\"\"", "null", "0"] {
        let with = json.replacen('{', &format!("{{\"TLS.userbuf\": {value}, "), 1);
        assert_eq!(kind_of(&wrap(&with)), Kind::HasUserbuf, "{value}");
    }
}

#[test]
fn signature_not_32_bytes() {
    use base64::Engine as _;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    for sig in [
        String::new(),
        b64(31),
        b64(33),
        b64(64),
        "not base64!".to_owned(),
        // 32 bytes with the Tencent alphabet instead of the standard one.
        A_SIG.replace('/', "-").replace('+', "*"),
        // Non-zero trailing bits.
        A_SIG.replace("B4=", "B5="),
        format!("{A_SIG}="),
        " ".repeat(44) + A_SIG,
    ] {
        let raw = format!("\"{sig}\"");
        assert_eq!(
            kind_of(&doc_with("TLS.sig", Some(&raw))),
            Kind::BadSig,
            "{sig}"
        );
    }
}

#[test]
fn decode_errors_become_malformed() {
    assert_eq!(
        verify("", 1, "a", "k", 0).map(drop),
        Err(VerifyError::Malformed(decode("").unwrap_err()))
    );
    let e = verify(B_GO, 1_400_000_000, "xiaojun", K, T0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "UserSig cannot be decoded: carries a TLS.userbuf"
    );
}

#[test]
fn messages_are_short_english_reasons() {
    let cases = [
        ("", "is empty"),
        ("A", "not valid base64"),
        ("+AAA", "contains a character outside the UserSig alphabet"),
        (B_GO, "carries a TLS.userbuf"),
    ];
    for (usersig, message) in cases {
        assert_eq!(decode(usersig).unwrap_err().to_string(), message);
    }
    assert_eq!(kind_of(&wrap("[]")).to_string(), "JSON is not an object");
    assert_eq!(Kind::Missing(Field::Sig).to_string(), "missing TLS.sig");
    assert_eq!(
        Kind::WrongType(Field::Time).to_string(),
        "TLS.time is not a non-negative integer"
    );
    assert_eq!(Kind::TooLarge.to_string(), "inflates past 4096 bytes");
    assert_eq!(Kind::BadVersion.to_string(), "TLS.ver is not 2.0");
    assert_eq!(Kind::ZlibCorrupt.to_string(), "zlib data is corrupt");
    assert_eq!(Kind::NotJson.to_string(), "not JSON");
}

/// Any 8-character piece of `secret` found in `text`.
fn leaked_piece<'a>(text: &str, secret: &'a str) -> Option<&'a str> {
    let chars: Vec<(usize, char)> = secret.char_indices().collect();
    chars.windows(8).find_map(|w| {
        let start = w[0].0;
        let end = w[7].0 + w[7].1.len_utf8();
        text.contains(&secret[start..end])
            .then(|| &secret[start..end])
    })
}

#[test]
fn errors_never_contain_the_usersig_or_the_key() {
    let key = "S3cretKeyThatMustNeverAppear0123456789abcdef";
    let good = generate(1_400_000_000, key, "xiaojun", T0, 100);
    let mut inputs = vec![
        good.clone(),
        format!("{good}+"),
        good[..good.len() - 7].to_owned(),
        format!("{good}AAAA"),
        good.replace('A', "B"),
        wrap("[\"S3cretKeyThatMustNeverAppear\"]"),
        doc_with(
            "TLS.sig",
            Some("\"S3cretKeyThatMustNeverAppear0123456789abcdef\""),
        ),
        doc_with("TLS.sdkappid", Some("\"S3cretKeyThatMustNeverAppear\"")),
        A_PYTHON.to_owned(),
        B_GO.to_owned(),
    ];
    inputs.push(inputs[0].to_uppercase());
    let mut messages = 0;
    for usersig in &inputs {
        let mut texts = Vec::new();
        if let Err(e) = decode(usersig) {
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
            texts.push(format!("{:?}", e.kind()));
        }
        for (appid, id, k, now) in [
            (1_400_000_000, "xiaojun", key, T0),
            (1_400_000_000, "xiaojun", key, T0 + 101),
            (1, "xiaojun", key, T0),
            (1_400_000_000, "other", key, T0),
            (1_400_000_000, "xiaojun", "another secret key value", T0),
        ] {
            match verify(usersig, appid, id, k, now) {
                Err(e) => {
                    texts.push(e.to_string());
                    texts.push(format!("{e:?}"));
                }
                // A decoded sig's Debug leaves the signature out.
                Ok(decoded) => texts.push(format!("{decoded:?}")),
            }
        }
        for text in texts {
            messages += 1;
            for secret in [usersig.as_str(), key, "another secret key value", A_SIG] {
                assert_eq!(leaked_piece(&text, secret), None, "{text:?}");
            }
            assert!(text.len() < 120, "not short: {text:?}");
        }
    }
    assert!(messages > 50);
}

#[test]
fn decoded_debug_omits_the_signature() {
    let decoded = decode(A_PYTHON).expect("decodes");
    let debug = format!("{decoded:?}");
    assert!(debug.contains("xiaojun"), "{debug}");
    assert!(leaked_piece(&debug, A_SIG).is_none(), "{debug}");
    assert!(!debug.contains("sig"), "{debug}");
}
