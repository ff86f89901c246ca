//! The request body: docs/behaviour.md §2 row 16.

use serde_json::{Map, Value};

use crate::{ApiError, ErrorCode};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Row 16: the body must be a JSON object of at most [`MAX_BODY_BYTES`].
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let fail = |info: &str| ApiError::new(ErrorCode::ReqJsonParseFailed, info);
    if body.is_empty() {
        return Err(fail(
            "request body is empty; send {} when a command needs no fields",
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(fail("request body is larger than 1 MiB"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(fail("request body is not a JSON object")),
        Err(_) => Err(fail("request body is not valid JSON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_must_be_an_object() {
        for body in [&b""[..], b"[]", b"1", b"{", b"\xff\xfe", b"null"] {
            assert_eq!(
                parse_body(body).unwrap_err().code,
                ErrorCode::ReqJsonParseFailed
            );
        }
        let nested = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_body(nested.as_bytes()).unwrap_err().code,
            ErrorCode::ReqJsonParseFailed
        );
        assert!(parse_body(b"{}").is_ok());
    }
}
