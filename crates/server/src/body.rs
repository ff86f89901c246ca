//! Request bodies: read within the 1 MiB limit and the body timeout, or, when the answer needs
//! none of the body, drained, so that the connection can carry the client's next request
//! (docs/behaviour.md §1). Clients pool connections and do not retry a POST, so a connection
//! that dies after an early answer (a rate limit, a bad signature) loses a request.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use liveroom_protocol::{ApiError, ErrorCode, MAX_BODY_BYTES};

use crate::config::ConnectionLimits;

/// A request's body, read at most once by the pipeline. Whatever is left unread is drained
/// before the answer goes out ([`RequestBody::finish`]).
pub(crate) struct RequestBody {
    /// Empty once read.
    body: Body,
    /// False once a read stopped before the end: the rest of the body is still on the
    /// connection, which cannot carry another request.
    reusable: bool,
}

impl RequestBody {
    pub fn new(body: Body) -> Self {
        Self {
            body,
            reusable: true,
        }
    }

    /// Reads the whole body, at most [`MAX_BODY_BYTES`] within the body timeout.
    pub async fn read(&mut self, limits: &ConnectionLimits) -> Result<Bytes, ApiError> {
        // One more byte than the limit tells that the body is too large.
        let read = async |body| axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await;
        let bytes = within_limits(std::mem::take(&mut self.body), limits, read).await;
        self.reusable &= bytes.is_ok();
        bytes
    }

    /// Gives `response` once the connection is ready for the next request: what is left of the
    /// body is read and discarded first. When that cannot be done (the body declared or found
    /// over 1 MiB, too slow, or a read already stopped short), the response closes the
    /// connection, and says so.
    pub async fn finish(self, limits: &ConnectionLimits, mut response: Response) -> Response {
        if !(self.reusable && within_limits(self.body, limits, discard).await.is_ok()) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Runs `consume` over `body` within the limits: a declared length over [`MAX_BODY_BYTES`] is
/// refused before waiting for a byte of it, and the rest must arrive within the body timeout.
async fn within_limits<T, E>(
    body: Body,
    limits: &ConnectionLimits,
    consume: impl AsyncFnOnce(Body) -> Result<T, E>,
) -> Result<T, ApiError> {
    if http_body::Body::size_hint(&body).lower() > MAX_BODY_BYTES as u64 {
        return Err(ApiError::new(
            ErrorCode::ReqJsonParseFailed,
            "request body is larger than 1 MiB",
        ));
    }
    let mut consuming = pin!(consume(body));
    // A body that came with the headers is read at the first poll: no timer for it.
    let first = poll_fn(|cx| Poll::Ready(consuming.as_mut().poll(cx))).await;
    let outcome = match first {
        Poll::Ready(consumed) => Ok(consumed),
        Poll::Pending => tokio::time::timeout(limits.body_timeout, consuming).await,
    };
    match outcome {
        Ok(Ok(consumed)) => Ok(consumed),
        Ok(Err(_)) => Err(ApiError::new(
            ErrorCode::ReqJsonParseFailed,
            "request body is larger than 1 MiB or was cut short",
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "request body was not received in time",
        )),
    }
}

/// Reads `body` to its end without keeping it: an error if it is over [`MAX_BODY_BYTES`]
/// (chunked bodies declare no length) or cut short.
async fn discard(mut body: Body) -> Result<(), axum::Error> {
    let mut left = MAX_BODY_BYTES;
    while let Some(frame) = poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await
    {
        if let Some(data) = frame?.data_ref() {
            left = left
                .checked_sub(data.len())
                .ok_or_else(|| axum::Error::new("request body is larger than 1 MiB"))?;
        }
    }
    Ok(())
}
