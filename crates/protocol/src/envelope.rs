use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<'a> {
    action_status: &'static str,
    error_info: &'a str,
    error_code: u32,
    request_id: &'a str,
}

/// A command's `Response` object, already serialized; `None` answers the bare envelope.
pub type Response = Option<Vec<u8>>;

/// The JSON body answering a request: the envelope, with `Response` last when there is one,
/// or with its fields after the envelope's when `at_top_level` (Chat's services).
pub fn render(
    request_id: &str,
    outcome: &Result<Response, ApiError>,
    at_top_level: bool,
) -> Vec<u8> {
    let (code, info, response) = match outcome {
        Ok(response) => (ErrorCode::Ok, "", response.as_deref()),
        Err(error) => (error.code, error.info.as_str(), None),
    };
    let envelope = Envelope {
        action_status: if code == ErrorCode::Ok { "OK" } else { "FAIL" },
        error_info: info,
        error_code: code.number(),
        request_id,
    };
    // Serializing this plain struct to a Vec cannot fail.
    let mut body = serde_json::to_vec(&envelope).unwrap_or_default();
    match response {
        // An object's fields, without its braces, when it has any.
        Some([b'{', fields @ .., b'}']) if at_top_level && !fields.is_empty() => {
            body.pop(); // the closing brace
            body.push(b',');
            body.extend_from_slice(fields);
            body.push(b'}');
        }
        Some([b'{', b'}']) if at_top_level => {}
        Some(response) => {
            body.pop(); // the closing brace
            body.extend_from_slice(br#","Response":"#);
            body.extend_from_slice(response);
            body.push(b'}');
        }
        None => {}
    }
    body
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
    fn top_level_answers_go_beside_the_envelope() {
        let body = render("r", &Ok(Some(br#"{"FailAccounts":[]}"#.to_vec())), true);
        assert_eq!(
            body,
            br#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"r","FailAccounts":[]}"#
        );
        let empty = render("r", &Ok(Some(b"{}".to_vec())), true);
        assert_eq!(empty, render("r", &Ok(None), true));
    }

    #[test]
    fn seed_success_shape() {
        let body = render("Id-x-O-Seq-1", &Ok(None), false);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"Id-x-O-Seq-1"}"#
        );
        let body = render("r", &Ok(Some(br#"{"RoomId":"a"}"#.to_vec())), false);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"r","Response":{"RoomId":"a"}}"#
        );
    }

    #[test]
    fn failure_shape() {
        let error = ApiError::new(ErrorCode::MetadataNoSuchKeys, "none of the keys exists");
        let body: serde_json::Value =
            serde_json::from_slice(&render("r", &Err(error), false)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ActionStatus":"FAIL","ErrorInfo":"none of the keys exists","ErrorCode":100503,"RequestId":"r"})
        );
    }
}
