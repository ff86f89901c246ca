//! A client of liveroom's real-time protocol, `liveroom.v1.json` (docs/protocol.md).
//!
//! ```no_run
//! # async fn example() -> Result<(), liveroom_client::Error> {
//! use liveroom_client::{Client, Credentials};
//! let credentials = Credentials {
//!     sdkappid: 1400000000,
//!     userid: "alice".into(),
//!     usersig: "eJw…".into(),
//! };
//! let mut client = Client::connect("ws://127.0.0.1:8080/v1/realtime", &credentials).await?;
//! let entered = client.enter("live-1").await?;
//! println!("at rev {}: {:?}", entered.rev, entered.mode);
//! loop {
//!     let event = client.next_event().await?;
//!     println!("{} {} {:?}", event.ev, event.room, event.d);
//! }
//! # }
//! ```
//!
//! The client answers the server's `ping` by itself and remembers, per room, the position
//! (`epoch`, `rev`) of the last event it handed out, so that [`Client::enter`] after a
//! reconnect or a `sub.reset` asks only for what it missed ([`Client::resume`]).

use std::collections::{HashMap, VecDeque};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The WebSocket subprotocol of this version of the protocol.
pub const SUBPROTOCOL: &str = "liveroom.v1.json";

/// Who connects: a user of an app, with a UserSig made for that user.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub sdkappid: u32,
    pub userid: String,
    pub usersig: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered the request with an error.
    #[error("server error {code}: {msg}")]
    Server { code: u64, msg: String },
    /// The connection is closed; `code` is the close code (docs/protocol.md, "Close codes").
    #[error("connection closed ({code}: {reason})")]
    Closed { code: u16, reason: String },
    #[error("transport: {0}")]
    Transport(#[from] tungstenite::Error),
    /// The server sent something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether reconnecting may help (close codes 4000–4499, or the network).
    pub fn may_reconnect(&self) -> bool {
        match self {
            Error::Closed { code, .. } => (4000..4500).contains(code) || *code == 1006,
            Error::Transport(_) => true,
            Error::Server { .. } | Error::Protocol(_) => false,
        }
    }
}

/// Where a room's events stand: its incarnation and the revision of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub rev: u64,
}

/// A pushed event: a room event (with its position), or a live, control or session event
/// (without).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ev: String,
    /// Empty for a session event.
    pub room: String,
    pub position: Option<Position>,
    /// Unix milliseconds of the change.
    pub ts: Option<u64>,
    pub d: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `events` hold exactly what followed the position asked for.
    Delta,
    /// `state` holds the room as it is: start again from it.
    Snapshot,
}

/// The answer to `enter`.
#[derive(Debug, Clone)]
pub struct Entered {
    pub mode: Mode,
    pub epoch: u64,
    pub rev: u64,
    /// Delta only: the missed events, oldest first.
    pub events: Vec<Event>,
    /// Snapshot only: `{"info":{…},"metadata":{…}}`.
    pub state: Value,
    /// Members in the room now, robots included (0 when the delta ends with `room.destroyed`).
    pub members: u64,
    /// The user's standing in the room: `{"role","muted_until"}`.
    pub standing: Value,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    socket: Socket,
    next_id: u32,
    /// Events read while waiting for a reply.
    events: VecDeque<Event>,
    positions: HashMap<String, Position>,
    auto_pong: bool,
    /// The `ok` of the `hello` reply: session, heartbeat and limits.
    pub session: Value,
}

impl Client {
    /// Opens the WebSocket at `url` (`ws://host:port/v1/realtime`) and says `hello`.
    pub async fn connect(url: &str, credentials: &Credentials) -> Result<Self, Error> {
        let mut client = Self::open(url).await?;
        client.hello(credentials).await?;
        Ok(client)
    }

    /// Opens the WebSocket without saying `hello` yet.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let (socket, _) = tokio_tungstenite::connect_async_with_config(
            upgrade_request(url)?,
            Some(websocket_config()),
            false,
        )
        .await?;
        Ok(Self::over(socket))
    }

    /// [`Client::connect`] over `stream`, a TCP connection the caller has already made to the
    /// server of `url` (from a local address of its choosing, say). Plain `ws://` only: no TLS
    /// is started on `stream`.
    pub async fn connect_on(
        stream: TcpStream,
        url: &str,
        credentials: &Credentials,
    ) -> Result<Self, Error> {
        let mut client = Self::open_on(stream, url).await?;
        client.hello(credentials).await?;
        Ok(client)
    }

    /// [`Client::open`] over an already connected `stream` (see [`Client::connect_on`]).
    pub async fn open_on(stream: TcpStream, url: &str) -> Result<Self, Error> {
        let request = upgrade_request(url)?;
        let (socket, _) = tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(websocket_config()),
        )
        .await?;
        Ok(Self::over(socket))
    }

    fn over(socket: Socket) -> Self {
        Self {
            socket,
            next_id: 1,
            events: VecDeque::new(),
            positions: HashMap::new(),
            auto_pong: true,
            session: Value::Null,
        }
    }

    pub async fn hello(&mut self, credentials: &Credentials) -> Result<&Value, Error> {
        let d = json!({
            "v": 1,
            "sdkappid": credentials.sdkappid,
            "userid": credentials.userid,
            "usersig": credentials.usersig,
        });
        self.session = self.request("hello", d).await?;
        Ok(&self.session)
    }

    /// Connects again and enters every room `previous` was in, each from where it stood.
    pub async fn resume(
        url: &str,
        credentials: &Credentials,
        previous: &Client,
    ) -> Result<(Self, Vec<(String, Entered)>), Error> {
        let mut client = Self::connect(url, credentials).await?;
        client.positions = previous.positions.clone();
        let mut entered = Vec::new();
        let mut rooms: Vec<String> = previous.positions.keys().cloned().collect();
        rooms.sort();
        for room in rooms {
            let answer = client.enter(&room).await?;
            entered.push((room, answer));
        }
        Ok((client, entered))
    }

    /// Whether the client answers the server's `ping` by itself (the default).
    pub fn set_auto_pong(&mut self, on: bool) {
        self.auto_pong = on;
    }

    /// The position of the last event of `room` this client handed out.
    pub fn position(&self, room: &str) -> Option<Position> {
        self.positions.get(room).copied()
    }

    /// Enters `room`, asking for what followed the remembered position if there is one.
    pub async fn enter(&mut self, room: &str) -> Result<Entered, Error> {
        let since = self.position(room);
        self.enter_since(room, since).await
    }

    /// Enters `room` from `since` (`None`: a snapshot).
    pub async fn enter_since(
        &mut self,
        room: &str,
        since: Option<Position>,
    ) -> Result<Entered, Error> {
        self.subscribe("enter", room, since).await
    }

    /// Follows `room`'s events without becoming a member, from the remembered position.
    pub async fn watch(&mut self, room: &str) -> Result<Entered, Error> {
        let since = self.position(room);
        self.subscribe("watch", room, since).await
    }

    async fn subscribe(
        &mut self,
        op: &str,
        room: &str,
        since: Option<Position>,
    ) -> Result<Entered, Error> {
        let mut d = json!({"room": room});
        if let Some(since) = since {
            d["since"] = json!({"epoch": since.epoch, "rev": since.rev});
        }
        let ok = self.request(op, d).await?;
        let mode = match ok["mode"].as_str() {
            Some("delta") => Mode::Delta,
            Some("snapshot") => Mode::Snapshot,
            _ => return Err(Error::Protocol(format!("enter answered {ok}"))),
        };
        let epoch = number(&ok["epoch"])?;
        let rev = number(&ok["rev"])?;
        let events: Vec<Event> = ok["events"]
            .as_array()
            .map(|events| events.iter().map(parse_event).collect())
            .transpose()?
            .unwrap_or_default();
        let ended = events.iter().any(|e| e.ev == "room.destroyed");
        if ended {
            self.positions.remove(room);
        } else {
            self.positions
                .insert(room.to_owned(), Position { epoch, rev });
        }
        Ok(Entered {
            mode,
            epoch,
            rev,
            events,
            state: ok["state"].clone(),
            // Absent from a delta that ends with the room's destruction.
            members: ok["members"].as_u64().unwrap_or(0),
            standing: ok["self"].clone(),
        })
    }

    pub async fn exit(&mut self, room: &str) -> Result<(), Error> {
        self.request("exit", json!({"room": room})).await?;
        self.positions.remove(room);
        Ok(())
    }

    /// `RoomInfo` in Tencent's field names.
    pub async fn get_info(&mut self, room: &str) -> Result<Value, Error> {
        Ok(self.request("get_info", json!({"room": room})).await?["info"].take())
    }

    /// The room's metadata; `keys` empty means every key.
    pub async fn get_metadata(&mut self, room: &str, keys: &[&str]) -> Result<Value, Error> {
        let d = json!({"room": room, "keys": keys});
        Ok(self.request("get_metadata", d).await?["metadata"].take())
    }

    /// Sets keys (the room's owner and administrators only); answers the position of the
    /// write's event.
    pub async fn set_metadata(
        &mut self,
        room: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Position, Error> {
        let metadata: serde_json::Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let ok = self
            .request("set_metadata", json!({"room": room, "metadata": metadata}))
            .await?;
        position(&ok)
    }

    /// Deletes keys (the room's owner and administrators only); answers the position of the
    /// write's event.
    pub async fn del_metadata(&mut self, room: &str, keys: &[&str]) -> Result<Position, Error> {
        let ok = self
            .request("del_metadata", json!({"room": room, "keys": keys}))
            .await?;
        position(&ok)
    }

    /// One page of the room's members: `{"members","users":[{"id","nick"?,"avatar"?}],"next"}`;
    /// `after` is the previous page's `next`.
    pub async fn get_members(&mut self, room: &str, after: Option<&str>) -> Result<Value, Error> {
        let mut d = json!({"room": room});
        if let Some(after) = after {
            d["after"] = after.into();
        }
        self.request("get_members", d).await
    }

    /// Sends a text message into an entered room; answers its id.
    pub async fn send_text(
        &mut self,
        room: &str,
        text: &str,
        ext: Option<&str>,
    ) -> Result<String, Error> {
        let mut d = json!({"room": room, "text": text});
        if let Some(ext) = ext {
            d["ext"] = ext.into();
        }
        message_id(&self.request("send_text", d).await?)
    }

    /// Sends a custom message into an entered room; answers its id.
    pub async fn send_custom(
        &mut self,
        room: &str,
        business_id: &str,
        data: &str,
    ) -> Result<String, Error> {
        let d = json!({"room": room, "business_id": business_id, "data": data});
        message_id(&self.request("send_custom", d).await?)
    }

    /// Replaces the connection's UserSig with a fresh one of the same user (after
    /// `session.sig_expiring`); answers the seconds until the new one expires.
    pub async fn refresh(&mut self, usersig: &str) -> Result<u64, Error> {
        let ok = self.request("refresh", json!({"usersig": usersig})).await?;
        number(&ok["sig_expires_in"])
    }

    /// Sends `{"op":"ping"}`; the `pong` is consumed by the next read.
    pub async fn ping(&mut self) -> Result<(), Error> {
        self.send(json!({"op": "ping"})).await
    }

    /// Any request: its `ok`, or its `err` as [`Error::Server`]. Events that arrive first are
    /// kept for [`Client::next_event`].
    pub async fn request(&mut self, op: &str, d: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.send(json!({"id": id, "op": op, "d": d})).await?;
        loop {
            let mut frame = self.read().await?;
            if frame["id"].as_u64() == Some(u64::from(id)) {
                if let Some(err) = frame.get("err") {
                    return Err(Error::Server {
                        code: err["code"].as_u64().unwrap_or(0),
                        msg: err["msg"].as_str().unwrap_or("").to_owned(),
                    });
                }
                return Ok(frame["ok"].take());
            }
            if frame.get("ev").is_some() {
                let event = self.follow(parse_event(&frame)?);
                self.events.push_back(event);
            }
        }
    }

    /// The next pushed event, in the order the server sent them.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            let frame = self.read().await?;
            if frame.get("ev").is_some() {
                return Ok(self.follow(parse_event(&frame)?));
            }
        }
    }

    /// Remembers where `event` leaves its room.
    fn follow(&mut self, event: Event) -> Event {
        match (event.ev.as_str(), event.position) {
            ("room.destroyed", _) => {
                self.positions.remove(&event.room);
            }
            (_, Some(position)) => {
                self.positions.insert(event.room.clone(), position);
            }
            _ => {}
        }
        event
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), Error> {
        self.socket.close(None).await?;
        while let Some(message) = self.socket.next().await {
            if message.is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn send(&mut self, frame: Value) -> Result<(), Error> {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next JSON frame; answers `ping` on the way.
    async fn read(&mut self) -> Result<Value, Error> {
        loop {
            let message = match self.socket.next().await {
                Some(message) => message?,
                None => return Err(closed(None)),
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => return Err(closed(frame)),
                Message::Binary(_) => return Err(Error::Protocol("a binary frame".into())),
                _ => continue,
            };
            let frame: Value = serde_json::from_str(&text)
                .map_err(|e| Error::Protocol(format!("not JSON: {e}")))?;
            match frame["op"].as_str() {
                Some("ping") => {
                    if self.auto_pong {
                        self.send(json!({"op": "pong"})).await?;
                    }
                }
                Some("pong") => {}
                _ => return Ok(frame),
            }
        }
    }
}

/// The WebSocket's read buffer. tungstenite's default, 128 KiB, is zero-filled up to its
/// capacity on every read: 128 KiB of resident memory per connection and a 128 KiB memset
/// per frame read. The server's frames are small (docs/protocol.md, "Limits": at most a
/// room's metadata and info), and a larger one grows the buffer as it needs.
const READ_BUFFER_BYTES: usize = 8 * 1024;

fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES)
}

/// The upgrade request for `url`, offering the subprotocol.
fn upgrade_request(url: &str) -> Result<tungstenite::handshake::client::Request, Error> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(request)
}

fn closed(frame: Option<CloseFrame>) -> Error {
    match frame {
        Some(frame) => Error::Closed {
            code: frame.code.into(),
            reason: frame.reason.to_string(),
        },
        None => Error::Closed {
            code: 1006,
            reason: "closed without a close frame".into(),
        },
    }
}

fn number(value: &Value) -> Result<u64, Error> {
    value
        .as_u64()
        .ok_or_else(|| Error::Protocol(format!("{value} is not a number")))
}

fn message_id(ok: &Value) -> Result<String, Error> {
    ok["mid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Protocol(format!("a message without an id: {ok}")))
}

fn position(ok: &Value) -> Result<Position, Error> {
    Ok(Position {
        epoch: number(&ok["epoch"])?,
        rev: number(&ok["rev"])?,
    })
}

fn parse_event(frame: &Value) -> Result<Event, Error> {
    let text = |field: &str| {
        frame[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol(format!("an event without {field}: {frame}")))
    };
    let position = match (frame["epoch"].as_u64(), frame["rev"].as_u64()) {
        (Some(epoch), Some(rev)) => Some(Position { epoch, rev }),
        _ => None,
    };
    Ok(Event {
        ev: text("ev")?,
        // Session events (`session.sig_expiring`) are of no room.
        room: frame["room"].as_str().unwrap_or_default().to_owned(),
        position,
        ts: frame["ts"].as_u64(),
        d: frame["d"].clone(),
    })
}
