//! Closing a connection without destroying the answer on it. An answer that says
//! `Connection: close` may leave part of a request body unread (a body refused unread,
//! docs/behaviour.md §1), and the client may still be sending it. Closing the socket then makes
//! the kernel reset the connection, and a reset can discard the answer before the client has
//! read it. So such a connection closes in stages (RFC 9112 §9.6): shut down the sending side,
//! read and discard until the client closes its side, then close; within the body timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Whether a connection's last answer said `Connection: close`; shared by the connection's
/// service, which sees the answers, and its [`Lingering`] stream, which closes.
#[derive(Clone, Default)]
pub(crate) struct CloseAnnounced(Arc<AtomicBool>);

impl CloseAnnounced {
    pub fn note(&self, response: &Response) {
        if response.headers().get(header::CONNECTION) == Some(&HeaderValue::from_static("close")) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A connection's stream whose shutdown lingers once a close was announced.
pub(crate) struct Lingering<T> {
    io: T,
    announced: CloseAnnounced,
    bound: Duration,
    /// Set once the sending side is shut down: when lingering gives up.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> Lingering<T> {
    pub fn new(io: T, announced: CloseAnnounced, bound: Duration) -> Self {
        Self {
            io,
            announced,
            bound,
            deadline: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lingering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.announced.0.load(Ordering::Relaxed) {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        if this.deadline.is_none() {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.deadline = Some(Box::pin(tokio::time::sleep(this.bound)));
        }
        let deadline = this.deadline.as_mut().expect("set above");
        let mut discarded = [0; 8 * 1024];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut discarded);
            match ready!(Pin::new(&mut this.io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => continue,
                // The client closed its side (or the connection failed): nothing left to wait for.
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}
