//! The real-time gateway: `GET /v1/realtime` upgrades to a WebSocket that speaks
//! docs/protocol.md. [`session`] serves one connection (hello, commands, heartbeat, its
//! writer); [`rooms`] holds the room operations; [`fanout`] takes committed events and
//! live-only frames to the subscribed connections; [`presence`] knows who is in each room;
//! [`messages`] sends a room's messages (for REST and real-time callers alike); [`frames`] is
//! the wire format.

mod fanout;
pub(crate) mod frames;
pub(crate) mod members;
pub(crate) mod messages;
pub(crate) mod presence;
mod recorder;
mod rooms;
mod session;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::Request as HttpRequest;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use liveroom_domain::{Account, AppId, RoomId};
use liveroom_store::{Relay, Relayed, Reported, Store};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::config::RealtimeConfig;
use crate::gateway::{ClientAddr, State};
pub(crate) use fanout::{EventFeed, Hub};
pub(crate) use recorder::Recorder;
pub(crate) use rooms::member_info;

pub(crate) const PATH: &str = "/v1/realtime";
pub(crate) const SUBPROTOCOL: &str = "liveroom.v1.json";
/// Each connection's read and write buffers.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// What every real-time connection shares.
pub(crate) struct Realtime {
    pub config: RealtimeConfig,
    pub hub: Arc<Hub>,
    pub presence: Arc<presence::Presence>,
    /// Presence into the app's feed.
    pub recorder: Recorder,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    /// Flipped once, when the server stops: every connection closes with 4100.
    shutdown: watch::Sender<bool>,
}

impl Realtime {
    pub fn new(config: RealtimeConfig, recorder: Recorder) -> Self {
        Self {
            recorder,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            presence: Arc::new(presence::Presence::new(config.presence_grace)),
            config,
            hub: Arc::default(),
            shutdown: watch::channel(false).0,
        }
    }

    /// Closes every connection (4100) and waits until they are gone, or `patience` passed.
    pub async fn close_all(&self, patience: Duration) {
        self.shutdown.send_replace(true);
        let all = u32::try_from(self.config.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(patience, self.slots.acquire_many(all)).await;
    }
}

/// What runs beside the connections until the feed ends: the fan-out of `feed`, the live
/// frames other nodes relay (`relayed`, when presence is shared), and the once-a-second
/// upkeep of presence ([`upkeep`]).
pub(crate) fn background<S: Store>(
    state: Arc<State<S>>,
    feed: impl EventFeed,
    relayed: Option<broadcast::Receiver<Arc<[Relayed]>>>,
) -> impl Future<Output = ()> + Send + 'static {
    let realtime = &state.realtime;
    let forget = {
        let state = state.clone();
        move |app, room: &RoomId| {
            state.realtime.presence.forget_room(app, room);
            if state.store.shares_presence() {
                let (state, room) = (state.clone(), room.clone());
                tokio::spawn(async move {
                    let cleared = Reported::Cleared { app, room };
                    if let Err(error) = members::report(&state, vec![cleared]).await {
                        tracing::warn!(error = %error.info, "a destroyed room's members not cleared");
                    }
                });
            }
        }
    };
    let events = fanout::run(realtime.hub.clone(), forget, feed);
    let relay = relay(state.clone(), relayed);
    let upkeep = upkeep(state);
    async move {
        tokio::select! {
            () = events => {}
            () = relay => {}
            () = upkeep => {}
        }
    }
}

/// Hands what other nodes relay to this node: live frames to the rooms' subscribers; a user
/// who entered a room through another node ends its connection to that room here.
async fn relay<S: Store>(
    state: Arc<State<S>>,
    relayed: Option<broadcast::Receiver<Arc<[Relayed]>>>,
) {
    let Some(mut relayed) = relayed else {
        return std::future::pending().await;
    };
    let realtime = &state.realtime;
    loop {
        match relayed.recv().await {
            Ok(batch) => {
                for relayed in batch.iter() {
                    let (app, room) = (relayed.app, &relayed.room);
                    match &relayed.relay {
                        Relay::Frame(text) => realtime.hub.publish_live(app, room, text.clone()),
                        Relay::Replace { account } => {
                            let Some(connection) = realtime.presence.hand_over(app, room, account)
                            else {
                                continue;
                            };
                            realtime.hub.replace(app, room, connection);
                            let out = Reported::Out {
                                app,
                                room: room.clone(),
                                account: account.clone(),
                            };
                            if let Err(error) = members::report(&state, vec![out]).await {
                                tracing::warn!(error = %error.info, "a replaced member not reported");
                            }
                        }
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                ::metrics::counter!("liveroom_relay_missed_total").increment(missed);
                tracing::warn!(missed, "live frames of other nodes missed: too far behind");
            }
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Every second: `room.count` to the rooms over `presence_events_max_members` members whose
/// count changed (smaller rooms announce each entry and departure instead), and a `Leave` in
/// the feed for each interrupted member whose grace period ended (docs/webhooks.md §3). With
/// presence shared, also this node's lease, and the departure of the members of nodes whose
/// lease ended (docs/cluster.md §4).
async fn upkeep<S: Store>(state: Arc<State<S>>) {
    let realtime = &state.realtime;
    let max_announced = realtime.config.presence_events_max_members;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let tick = realtime.presence.tick(std::time::Instant::now());
        for ((app, room), here) in tick.counts {
            let members = if state.store.shares_presence() {
                let robots = robots(&state, app, &room).await;
                members::count(&state, app, &room, &robots)
                    .await
                    .unwrap_or(here)
            } else {
                here
            };
            if members > max_announced {
                members::publish_live(&state, app, &room, frames::room_count(&room, members));
            }
        }
        for ((app, room), user) in tick.gone {
            // Unless it came back through another node meanwhile (docs/cluster.md §4).
            let gone = !state.store.shares_presence()
                || state
                    .store
                    .end_interruption(app, &room, &user)
                    .await
                    .unwrap_or(true);
            if gone {
                realtime
                    .recorder
                    .record(app, &room, &user, presence::Cause::Leave);
            }
        }
        if state.store.shares_presence() {
            sweep(&state).await;
        }
    }
}

/// Renews this node's lease, and sees the members of nodes whose lease ended out: recorded in
/// the feed and announced, as if they had left.
async fn sweep<S: Store>(state: &State<S>) {
    let swept = match state.store.sweep_members(state.clock.since_epoch()).await {
        Ok(swept) => swept,
        Err(error) => {
            tracing::warn!(%error, "cannot renew this node's lease or sweep other nodes' members");
            return;
        }
    };
    if swept.rejoined {
        tracing::warn!("this node's lease had ended; its members are reported again");
        let everyone = state.realtime.presence.everyone();
        if let Err(error) = members::report(state, everyone).await {
            tracing::warn!(error = %error.info, "members not reported again");
        }
    }
    for departed in swept.gone {
        let (app, room, member) = (departed.app, &departed.room, &departed.member);
        let cause = presence::Cause::Leave;
        state
            .realtime
            .recorder
            .record(app, room, &member.account, cause);
        if departed.interrupted {
            continue; // announced when its connection dropped
        }
        let robots = robots(state, app, room).await;
        if let Ok(members) = members::count(state, app, room, &robots).await {
            let who = (member.account.as_str(), &member.info);
            rooms::announce(state, app, room, who, ("member.leave", cause), members);
        }
    }
}

/// The room's robots, none if it cannot be read.
async fn robots<S: Store>(state: &State<S>, app: AppId, room: &RoomId) -> BTreeSet<Account> {
    match state.store.room(app, room).await {
        Ok(Some(room)) => room.people.robots.clone(),
        _ => BTreeSet::new(),
    }
}

/// `GET /v1/realtime`: the WebSocket handshake, or a plain HTTP error when it cannot be
/// one of ours (not an upgrade, the subprotocol not offered, too many connections).
pub(crate) async fn upgrade<S: Store>(state: &Arc<State<S>>, request: HttpRequest) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let offered = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .flat_map(|p| p.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !offered {
        return (
            StatusCode::BAD_REQUEST,
            format!("the WebSocket subprotocol {SUBPROTOCOL} is required"),
        )
            .into_response();
    }
    let Ok(slot) = state.realtime.slots.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            "too many real-time connections",
        )
            .into_response();
    };
    let peer = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.0.ip());
    let client = state.throttle.client(peer, &parts.headers);
    let state = state.clone();
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(RealtimeConfig::MAX_FRAME_BYTES)
        .max_frame_size(RealtimeConfig::MAX_FRAME_BYTES)
        // The WebSocket layer's default buffers are 128 KiB each, and the read buffer is
        // zeroed before every read: measured, that was 128 of 144 KiB per connection and 40% of
        // the fan-out's CPU; with 4 KiB a connection takes about 17 KiB (BENCHMARKS.md). A
        // larger frame still arrives whole: the message buffer grows to the frame limit.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| session::run(state, socket, client, slot))
}
