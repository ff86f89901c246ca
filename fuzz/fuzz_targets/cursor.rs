//! The `get_room_list` cursor (docs/behaviour.md §6: `Next` is opaque; one that cannot be decoded
//! is 100002). The first byte picks the mode: decode arbitrary text, or encode an arbitrary
//! position. Properties: nothing panics; a decoded cursor re-encodes to one that decodes to the
//! same position; a canonical cursor (what `encode_cursor` writes: no leading zeros, lowercase
//! hex) re-encodes to itself; every position survives encode then decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveroom_domain::{ListPosition, RoomId};
use liveroom_protocol::{ErrorCode, decode_cursor, encode_cursor};

fn canonical_number(s: &str) -> bool {
    s == "0" || (!s.starts_with('0') && !s.is_empty())
}

fn is_canonical(cursor: &str) -> bool {
    let mut parts = cursor.split('-');
    let (Some(a), Some(b), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    canonical_number(a) && canonical_number(b) && !hex.bytes().any(|c| c.is_ascii_uppercase())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        match decode_cursor(&text) {
            Ok(position) => {
                let again = encode_cursor(&position);
                assert_eq!(decode_cursor(&again).as_ref(), Ok(&position));
                if is_canonical(&text) {
                    assert_eq!(again, text, "a canonical cursor re-encodes to itself");
                }
            }
            Err(error) => assert_eq!(error.code, ErrorCode::InvalidParameter),
        }
    } else {
        if rest.len() < 16 {
            return;
        }
        let (numbers, id) = rest.split_at(16);
        let view_count = u64::from_le_bytes(numbers[..8].try_into().expect("8 bytes"));
        let create_time = u64::from_le_bytes(numbers[8..].try_into().expect("8 bytes"));
        let Ok(room_id) = RoomId::parse(String::from_utf8_lossy(id).into_owned()) else {
            return;
        };
        let position = ListPosition {
            view_count,
            create_time,
            room_id,
        };
        let cursor = encode_cursor(&position);
        assert!(is_canonical(&cursor));
        assert_eq!(decode_cursor(&cursor), Ok(position));
    }
});
