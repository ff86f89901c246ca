use std::sync::atomic::{AtomicU64, Ordering};

use liveroom_domain::{ListPosition, Room};
use serde::Serialize;

use crate::rooms::{RoomInfoWire, RoomListEntry, encode_cursor};
use crate::{ApiError, ErrorCode};

/// Makes `RequestId`s of Tencent's shape, `Id-<32 lowercase hex>-O-Seq-<decimal>`: a random
/// part that differs across restarts and nodes, and a per-process sequence number.
#[derive(Debug)]
pub struct RequestIds {
    seq: AtomicU64,
    /// Chosen once per process, so that two runs of the server do not repeat Ids.
    key: [u64; 2],
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            seq: AtomicU64::new(0),
            key: rand::random(),
        }
    }
}

impl RequestIds {
    pub fn next(&self) -> String {
        use std::fmt::Write;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        // Unique through `seq`; the hex part only has to look random and not repeat across
        // restarts, which a keyed mix of the sequence number does without a random generator.
        let [high, low] = self.key.map(|key| splitmix64(seq ^ key));
        let mut id = String::with_capacity(64);
        let _ = write!(id, "Id-{high:016x}{low:016x}-O-Seq-{seq}");
        id
    }
}

/// The finalizer of SplitMix64: a bijection on u64 that scatters consecutive inputs.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What a successful command answers inside `Response` (or nothing).
#[derive(Debug)]
pub enum Reply {
    /// The bare envelope.
    Done,
    Created {
        room_id: String,
    },
    /// `destroy_room`'s statistics: zeros until statistics exist.
    Destroyed,
    RoomInfo(Box<Room>),
    RoomList {
        rooms: Vec<Room>,
        /// Where the next page starts, if there may be one.
        next: Option<ListPosition>,
    },
    Metadata(Vec<(String, String)>),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<'a, R: Serialize> {
    action_status: &'static str,
    error_info: &'a str,
    error_code: u32,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<R>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResponseWire<'a> {
    Created {
        #[serde(rename = "RoomId")]
        room_id: &'a str,
    },
    Destroyed {
        #[serde(rename = "Statistic")]
        statistic: Statistic,
    },
    RoomInfo {
        #[serde(rename = "RoomInfo")]
        room_info: RoomInfoWire<'a>,
    },
    RoomList {
        #[serde(rename = "Next")]
        next: String,
        #[serde(rename = "RoomList")]
        room_list: Vec<RoomListEntry<'a>>,
    },
    Metadata {
        #[serde(rename = "Metadata")]
        metadata: Vec<MetadataPair<'a>>,
    },
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Statistic {
    total_viewers: u64,
    total_gifts_sent: u64,
    total_gift_coins: u64,
    total_unique_gift_senders: u64,
    total_likes_received: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataPair<'a> {
    key: &'a str,
    value: &'a str,
}

/// The JSON body answering a request: the envelope, with `Response` when the reply has data.
pub fn render(request_id: &str, outcome: &Result<Reply, ApiError>) -> Vec<u8> {
    let (code, info, response) = match outcome {
        Ok(reply) => (ErrorCode::Ok, "", response_of(reply)),
        Err(error) => (error.code, error.info.as_str(), None),
    };
    let envelope = Envelope {
        action_status: if code == ErrorCode::Ok { "OK" } else { "FAIL" },
        error_info: info,
        error_code: code.number(),
        request_id,
        response,
    };
    // Serializing these plain structs to a Vec cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

fn response_of(reply: &Reply) -> Option<ResponseWire<'_>> {
    Some(match reply {
        Reply::Done => return None,
        Reply::Created { room_id } => ResponseWire::Created { room_id },
        Reply::Destroyed => ResponseWire::Destroyed {
            statistic: Statistic::default(),
        },
        Reply::RoomInfo(room) => ResponseWire::RoomInfo {
            room_info: RoomInfoWire::from(room.as_ref()),
        },
        Reply::RoomList { rooms, next } => ResponseWire::RoomList {
            next: next.as_ref().map(encode_cursor).unwrap_or_default(),
            room_list: rooms.iter().map(RoomListEntry::from).collect(),
        },
        Reply::Metadata(pairs) => ResponseWire::Metadata {
            metadata: pairs
                .iter()
                .map(|(key, value)| MetadataPair { key, value })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_have_tencents_shape_and_differ() {
        let ids = RequestIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a[..35], b[..35], "the hex parts differ too");
        assert_ne!(
            a,
            RequestIds::default().next(),
            "another process starts elsewhere"
        );
        let hex = a.strip_prefix("Id-").unwrap();
        let (hex, seq) = hex.split_once("-O-Seq-").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(seq, "0");
    }

    #[test]
    fn seed_success_shape() {
        let body = render("Id-x-O-Seq-1", &Ok(Reply::Done));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"Id-x-O-Seq-1"}"#
        );
    }

    #[test]
    fn failure_shape() {
        let error = ApiError::new(ErrorCode::MetadataNoSuchKeys, "none of the keys exists");
        let body: serde_json::Value = serde_json::from_slice(&render("r", &Err(error))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ActionStatus":"FAIL","ErrorInfo":"none of the keys exists","ErrorCode":100503,"RequestId":"r"})
        );
    }
}
