//! Standard Webhooks signatures (docs/webhooks.md §4).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::SigningKey;

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

/// Signs `body` as message `id` sent at `timestamp` (Unix seconds).
pub fn sign(key: &SigningKey, id: &str, timestamp: u64, body: &[u8]) -> Signed {
    let timestamp = timestamp.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes keys of any size");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    Signed {
        id: id.to_owned(),
        timestamp,
        signature: format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ),
    }
}

impl Signed {
    /// The request headers that carry the signature.
    pub(crate) fn headers(self) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", self.id),
            ("webhook-timestamp", self.timestamp),
            ("webhook-signature", self.signature),
        ]
    }
}

/// The `webhook-id` of the feed entry `seq` of app `sdkappid`: the same on every attempt.
pub fn message_id(sdkappid: u32, seq: u64) -> String {
    format!("evt_{sdkappid}_{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signed = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(message_id(1400000001, 7), "evt_1400000001_7");
    }
}
