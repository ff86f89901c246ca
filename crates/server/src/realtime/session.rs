//! One real-time connection: the `hello` that authenticates it, then a loop over the client's
//! frames, the room events the fan-out queues for it, and the heartbeat; and the writer task
//! that sends its frames, so that a client slow to read never stalls this loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use liveroom_domain::{AppId, Position, RoomId};
use liveroom_protocol::{Access, ApiError, ErrorCode};
use liveroom_store::Store;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use super::fanout::{ConnectionId, Delivery, Mailbox, Removes};
use super::frames::{self, Frame, Op};
use super::presence::Cause;
use crate::auth::Credentials;
use crate::config::RealtimeConfig;
use crate::gateway::State;
use crate::limits::ConnectionLimiter;
use crate::metrics;

/// How long closing waits for the client to take the close frame and answer it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long before its UserSig expires a connection is told to `refresh` it.
const SIG_EXPIRY_NOTICE: Duration = Duration::from_secs(60);

/// Why the server closes a connection: a close code of docs/protocol.md and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Close(pub u16, pub &'static str);

impl Close {
    /// The client closed, or went away.
    const NORMAL: Close = Close(1000, "bye");
    const HELLO_TIMEOUT: Close = Close(4001, "no hello in time");
    const PONG_TIMEOUT: Close = Close(4002, "no pong in time");
    const SIG_EXPIRED: Close = Close(4003, "usersig expired");
    const SLOW: Close = Close(4008, "slow");
    const FLOOD: Close = Close(4029, "too many commands");
    /// The connection ended without a close frame.
    const GONE: Close = Close(1001, "connection lost");
    pub(crate) const SHUTDOWN: Close = Close(4100, "server shutting down");
    const PROTOCOL: Close = Close(4500, "protocol error");
    /// Broken framing or a frame over the limit, as the WebSocket layer reports it.
    const TRANSPORT: Close = Close(4500, "transport error");
    const AUTH_FAILED: Close = Close(4501, "authentication failed");

    /// How the connection's rooms see its member go: a client that closed, or that broke the
    /// protocol, left; any other end is an interrupt it may recover from (docs/protocol.md,
    /// "Members and presence").
    fn departure(self) -> Cause {
        match self {
            Close::NORMAL | Close::PROTOCOL | Close::FLOOD | Close::AUTH_FAILED => Cause::Leave,
            _ => Cause::HeartbeatInterrupt,
        }
    }

    fn frame(self) -> CloseFrame {
        CloseFrame {
            code: self.0,
            reason: Utf8Bytes::from_static(self.1),
        }
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A room a connection follows.
pub(crate) struct Subscription {
    /// The position of the last event the client has.
    pub position: Position,
    /// Entered (a member, in presence), not only watched.
    pub member: bool,
}

/// An authenticated connection.
pub(crate) struct Session<S> {
    pub(super) state: Arc<State<S>>,
    pub(super) id: ConnectionId,
    pub(super) app: AppId,
    pub(super) user: String,
    /// The rooms subscribed to.
    pub(super) rooms: HashMap<RoomId, Subscription>,
    pub(super) mailbox: Mailbox,
    /// Frames for the writer task.
    out: mpsc::Sender<Message>,
    /// The room events the fan-out queued for this connection.
    inbox: mpsc::Receiver<Delivery>,
    limiter: ConnectionLimiter,
    /// Commands refused by the limiter since the last admitted one.
    refused: u32,
    /// When the UserSig expires.
    expires: tokio::time::Instant,
    /// Whether `session.sig_expiring` was sent for the UserSig in use.
    expiry_told: bool,
}

/// Serves one upgraded connection from `client` until either side closes it.
pub(crate) async fn run<S: Store>(
    state: Arc<State<S>>,
    socket: WebSocket,
    client: IpAddr,
    _slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    metrics::realtime_connection_opened();
    let config = &state.realtime.config;
    let (sink, mut stream) = socket.split();
    let (out, frames) = mpsc::channel(config.outbound_queue);
    let (abort, aborted) = mpsc::channel(1);
    let writer = tokio::spawn(write(sink, frames, aborted));
    let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);

    let (close, who) = match hello(&state, &mut stream, &out, client, id).await {
        Ok(mut session) => {
            let close = session.serve(&mut stream).await;
            let rooms: Vec<RoomId> = session.rooms.keys().cloned().collect();
            for room in rooms {
                session.leave(&room, close.departure()).await;
            }
            (close, Some((session.app, session.user)))
        }
        Err(close) => (close, None),
    };
    metrics::realtime_connection_closing(close.0);
    // After the replies already queued, unless the queue is what overflowed.
    if let Err(mpsc::error::TrySendError::Full(_)) =
        out.try_send(Message::Close(Some(close.frame())))
    {
        let _ = abort.try_send(close.frame());
    }
    drop(out);
    // Read on until the client answers the close, so that closing never resets the
    // connection under frames the client has not read yet.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    let _ = writer.await;
    let (sdkappid, user) = who.unzip();
    tracing::info!(
        connection = id,
        sdkappid,
        user,
        close_code = close.0,
        reason = close.1,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "realtime connection"
    );
    metrics::realtime_connection_ended();
}

/// Most frames written to the socket before one flush.
const FRAMES_PER_FLUSH: usize = 64;

/// Sends the session's frames in order: each frame and those queued behind it (up to
/// [`FRAMES_PER_FLUSH`]) go out with one flush, so a burst of events costs a system call per
/// batch rather than per frame. A close frame ends it; so does `abort`, which skips whatever
/// is still queued (the client was too slow to read it).
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Message>,
    mut abort: mpsc::Receiver<CloseFrame>,
) {
    loop {
        let first = tokio::select! {
            biased;
            Some(close) = abort.recv() => Message::Close(Some(close)),
            message = frames.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let mut closing = None;
        let batch = async {
            let mut next = Some(first);
            let mut fed = 0;
            while let Some(message) = next.take() {
                if let Message::Close(_) = message {
                    closing = Some(message);
                    break;
                }
                sink.feed(message).await?;
                fed += 1;
                if fed < FRAMES_PER_FLUSH {
                    next = frames.try_recv().ok();
                }
            }
            sink.flush().await
        };
        let sent = tokio::select! {
            biased;
            Some(close) = abort.recv() => {
                closing = Some(Message::Close(Some(close)));
                Ok(())
            }
            sent = batch => sent,
        };
        if let Some(close) = closing {
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
            return;
        }
        if sent.is_err() {
            return;
        }
    }
}

/// The `hello` fields, checked in the order of the REST query's (docs/behaviour.md §2 rows 4–8).
pub(super) struct Hello<'a>(pub &'a Map<String, Value>);

impl Credentials for Hello<'_> {
    fn sdkappid(&self) -> Result<u32, ApiError> {
        match self.0.get("sdkappid") {
            None | Some(Value::Null) => Err(ApiError::new(
                ErrorCode::SdkAppIdMiss,
                "sdkappid is missing",
            )),
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidSdkAppId,
                        "sdkappid must be an unsigned 32-bit integer",
                    )
                }),
        }
    }

    fn identifier(&self) -> Result<&str, ApiError> {
        non_empty(self.0, "userid")
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidAccount, "userid is missing"))
    }

    fn usersig(&self) -> Result<&str, ApiError> {
        non_empty(self.0, "usersig")
            .ok_or_else(|| ApiError::new(ErrorCode::UserSigEmpty, "usersig is missing"))
    }
}

fn non_empty<'a>(d: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    d.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Waits for the first frame, which must be a `hello` that authenticates (docs/protocol.md,
/// "Authentication"). Any failure is answered, then the connection closes.
async fn hello<S: Store>(
    state: &Arc<State<S>>,
    stream: &mut SplitStream<WebSocket>,
    out: &mpsc::Sender<Message>,
    client: IpAddr,
    id: ConnectionId,
) -> Result<Session<S>, Close> {
    let config = &state.realtime.config;
    let first = tokio::time::timeout(config.hello_timeout, stream.next())
        .await
        .map_err(|_| Close::HELLO_TIMEOUT)?;
    let text = match first {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(_))) | None => return Err(Close::NORMAL),
        Some(_) => return Err(Close::PROTOCOL),
    };
    let Ok(Frame::Request {
        id: request,
        op: Op::Hello,
        d,
    }) = frames::parse(&text)
    else {
        return Err(Close::PROTOCOL);
    };
    let refuse = |error: ApiError| {
        let _ = out.try_send(Message::Text(frames::err(request, &error).into()));
        Close::AUTH_FAILED
    };
    if d.get("v").and_then(Value::as_u64) != Some(1) {
        return Err(refuse(ApiError::new(
            ErrorCode::InvalidParameter,
            "v must be 1",
        )));
    }
    let now = state.clock.since_epoch();
    if state.throttle.is_blocked(client, now) {
        return Err(refuse(ApiError::new(
            ErrorCode::AuthFreqLimit,
            "too many failed authentications from this address; retry in a minute",
        )));
    }
    let credentials = Hello(&d);
    let caller = match state
        .apps
        .authenticate(&credentials, Access::Member, now.as_secs())
    {
        Ok(caller) => caller,
        Err(error) => {
            if error.code.is_auth_failure() {
                state.throttle.record_failure(client, now);
            }
            return Err(refuse(error));
        }
    };
    let sig_expires_in = caller.expires_at.saturating_sub(now.as_secs());
    let reply = json!({
        "session": format!("c{id}"),
        "user": caller.identifier,
        "ping_ms": config.ping_interval.as_millis() as u64,
        "pong_timeout_ms": config.pong_timeout.as_millis() as u64,
        "sig_expires_in": sig_expires_in,
        "limits": {
            "frame": RealtimeConfig::MAX_FRAME_BYTES,
            "rooms": config.max_rooms,
            "cmds_per_s": config.commands_per_sec,
            "queue": config.outbound_queue,
            "delta_events": super::rooms::MAX_DELTA_EVENTS,
        },
    });
    let (queue, inbox) = mpsc::channel(config.outbound_queue);
    let session = Session {
        state: state.clone(),
        id,
        app: caller.app.sdkappid,
        user: caller.identifier.to_owned(),
        rooms: HashMap::new(),
        mailbox: Mailbox {
            queue,
            slow: Arc::new(Notify::new()),
        },
        out: out.clone(),
        inbox,
        limiter: ConnectionLimiter::new(config.commands_per_sec, state.clock.clone()),
        refused: 0,
        expires: tokio::time::Instant::now() + Duration::from_secs(sig_expires_in),
        expiry_told: false,
    };
    session.send(frames::ok(request, reply))?;
    Ok(session)
}

impl<S: Store> Session<S> {
    /// `refresh {"usersig"}`: a new UserSig for the same user replaces the one in use, and
    /// with it the time the connection closes (docs/protocol.md, "Refreshing the UserSig").
    pub(super) fn refresh(&mut self, d: &Map<String, Value>) -> Result<Value, ApiError> {
        let mut credentials = d.clone();
        credentials.insert("sdkappid".into(), self.app.into());
        credentials.insert("userid".into(), self.user.as_str().into());
        let now = self.state.clock.since_epoch().as_secs();
        let credentials = Hello(&credentials);
        let caller = self
            .state
            .apps
            .authenticate(&credentials, Access::Member, now)?;
        let expires_in = caller.expires_at.saturating_sub(now);
        self.expires = tokio::time::Instant::now() + Duration::from_secs(expires_in);
        self.expiry_told = false;
        Ok(json!({"sig_expires_in": expires_in}))
    }

    /// When to send `session.sig_expiring`: 60 s before the UserSig expires, or at once.
    fn expiry_notice(&self) -> tokio::time::Instant {
        self.expires
            .checked_sub(SIG_EXPIRY_NOTICE)
            .unwrap_or_else(tokio::time::Instant::now)
    }

    /// Queues a frame for the writer; a full queue means the client does not keep up.
    pub(super) fn send(&self, text: impl Into<Utf8Bytes>) -> Result<(), Close> {
        match self.out.try_send(Message::Text(text.into())) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Close::SLOW),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Close::NORMAL),
        }
    }

    /// Until the connection ends: the reason it ends.
    async fn serve(&mut self, stream: &mut SplitStream<WebSocket>) -> Close {
        let config = self.state.realtime.config.clone();
        let mut shutdown = self.state.realtime.shutdown.subscribe();
        let slow = self.mailbox.slow.clone();
        let mut next_ping = tokio::time::Instant::now() + config.ping_interval;
        let mut pong_due: Option<tokio::time::Instant> = None;
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => Err(Close::SHUTDOWN),
                () = slow.notified() => Err(Close::SLOW),
                () = tokio::time::sleep_until(self.expires) => Err(Close::SIG_EXPIRED),
                () = tokio::time::sleep_until(self.expiry_notice()), if !self.expiry_told => {
                    self.expiry_told = true;
                    let left = self.expires.saturating_duration_since(tokio::time::Instant::now());
                    self.send(frames::sig_expiring(left.as_secs()))
                }
                () = tokio::time::sleep_until(pong_due.unwrap_or(next_ping)), if pong_due.is_some() => {
                    Err(Close::PONG_TIMEOUT)
                }
                () = tokio::time::sleep_until(next_ping) => {
                    next_ping += config.ping_interval;
                    pong_due.get_or_insert(tokio::time::Instant::now() + config.pong_timeout);
                    self.send(frames::PING)
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => self.frame(&text, &mut pong_due).await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) => Err(Close::NORMAL),
                    None => Err(Close::GONE),
                    Some(Ok(Message::Binary(_))) => Err(Close::PROTOCOL),
                    // Frames over the size limit, broken framing, a reset connection.
                    Some(Err(_)) => Err(Close::TRANSPORT),
                },
                Some(delivery) = self.inbox.recv() => self.deliver(delivery).await,
            };
            if let Err(close) = step {
                return close;
            }
        }
    }

    /// One client text frame.
    async fn frame(
        &mut self,
        text: &str,
        pong_due: &mut Option<tokio::time::Instant>,
    ) -> Result<(), Close> {
        let frame = frames::parse(text).map_err(|_| Close::PROTOCOL)?;
        if !self.limiter.admit() {
            // A burst past the limit is answered; one that goes on for a whole second's worth
            // of commands without a pause ends the connection.
            self.refused += 1;
            if self.refused >= self.state.realtime.config.commands_per_sec {
                return Err(Close::FLOOD);
            }
            let error = ApiError::new(ErrorCode::RestFreqLimit, "too many commands per second");
            return match frame {
                Frame::Request { id, .. } | Frame::Unknown { id } => {
                    self.send(frames::err(id, &error))
                }
                Frame::Ping | Frame::Pong => Ok(()),
            };
        }
        self.refused = 0;
        match frame {
            Frame::Ping => self.send(frames::PONG),
            Frame::Pong => {
                *pong_due = None;
                Ok(())
            }
            Frame::Unknown { id } => self.send(frames::err(id, &frames::unknown_op())),
            Frame::Request { id, op, d } => {
                let answer = match self.request(op, &d).await {
                    Ok(answer) => frames::ok(id, answer),
                    Err(error) => frames::err(id, &error),
                };
                self.send(answer)
            }
        }
    }

    /// A room event from the fan-out, passed on if it is the next one of a subscribed room.
    async fn deliver(&mut self, delivery: Delivery) -> Result<(), Close> {
        let event = match delivery {
            Delivery::Event(event) => event,
            Delivery::Live(frame) => {
                if !self.rooms.contains_key(&frame.room) {
                    return Ok(()); // exited since it was queued
                }
                return self.send(frame.text.clone());
            }
            Delivery::Reset(room) => return self.reset(&room).await,
            Delivery::Replaced(room) => {
                // Out of the room without a departure: the user is still in it, elsewhere.
                if self.rooms.remove(&room).is_none() {
                    return Ok(());
                }
                return self.send(frames::sub_ended(room.as_str(), "entered_elsewhere"));
            }
        };
        let Some(subscription) = self.rooms.get_mut(&event.room) else {
            return Ok(()); // exited since it was queued
        };
        let cursor = &mut subscription.position;
        let position = event.position;
        let already_sent = position.incarnation < cursor.incarnation
            || (position.incarnation == cursor.incarnation && position.seq <= cursor.seq);
        if already_sent {
            // Held by the enter reply, or of the incarnation before it.
            return Ok(());
        }
        if position.incarnation != cursor.incarnation || position.seq != cursor.seq + 1 {
            // Not the next one: something was missed, so the client must catch up.
            return self.reset(&event.room).await;
        }
        *cursor = position;
        self.send(event.text.clone())?;
        match &event.removes {
            Removes::Everyone => self.unsubscribe(&event.room),
            removes if removes.includes(&self.user) => {
                self.leave(&event.room, Cause::Kicked).await;
                self.send(frames::sub_ended(event.room.as_str(), "banned"))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The room's events cannot be continued: the client must enter again, and until it does
    /// its member is away as if its connection had dropped.
    async fn reset(&mut self, room: &RoomId) -> Result<(), Close> {
        if !self.rooms.contains_key(room) {
            return Ok(());
        }
        self.leave(room, Cause::HeartbeatInterrupt).await;
        self.send(frames::sub_reset(room.as_str()))
    }
}
