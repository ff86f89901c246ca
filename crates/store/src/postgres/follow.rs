//! How a node learns of every node's commits (docs/cluster.md §4): it reads each app's feed
//! after the last entry it has seen, in order, and publishes the room changes to its own
//! subscribers. The feed is numbered in commit order without gaps, so reading after a number
//! never skips anything. A read happens after this node's commits, after a notification from
//! another node, and at least every `poll`, which alone guarantees that nothing is missed:
//! notifications are hints, lost whenever the listening connection is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use futures_util::StreamExt as _;
use liveroom_domain::{AppId, FeedItem, RoomEvent, RoomId};
use tokio::sync::{Notify, watch};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{CHANNEL, describe, unsigned};
use crate::codec;
use crate::{EventBus, StoreError, StoreResult};

/// Entries read per query while catching up.
const PAGE: i64 = 1000;
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// Each app's last feed number now: a node follows from here, not from the beginning.
pub(super) async fn cursors(client: &Object) -> StoreResult<HashMap<i64, i64>> {
    let rows = client
        .query("SELECT app, last_seq FROM feed_apps", &[])
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot read the feed: {}", describe(&e))))?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

pub(super) struct Follower {
    pub(super) pool: Pool,
    pub(super) bus: EventBus,
    /// Told after this node's commits.
    pub(super) committed: Arc<Notify>,
    pub(super) poll: Duration,
    /// Per app, the last feed number published.
    pub(super) cursors: HashMap<i64, i64>,
    /// This node, whose own frames are not read back.
    pub(super) node_key: i64,
    /// Per other node, the last live frame relayed.
    pub(super) frames: super::shared::FrameCursors,
    pub(super) relayed: tokio::sync::broadcast::Sender<Arc<[crate::Relayed]>>,
}

impl Follower {
    /// Follows until `stop`; with `listen`, a connection of its own `LISTEN`s for other nodes'
    /// commits.
    pub(super) async fn run(
        mut self,
        listen: Option<(tokio_postgres::Config, Option<MakeRustlsConnect>)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let heard = Arc::new(Notify::new());
        let listener = listen.map(|(config, tls)| {
            let (heard, me) = (Arc::clone(&heard), self.node_key);
            match tls {
                Some(tls) => tokio::spawn(listener(config, tls, me, heard)),
                None => tokio::spawn(listener(config, NoTls, me, heard)),
            }
        });
        let mut ticks = tokio::time::interval(self.poll.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // This node's own commits bring no other node's live frames.
            let frames_too = tokio::select! {
                _ = self.committed.notified() => false,
                _ = heard.notified() => true,
                _ = ticks.tick() => true,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            if let Err(error) = self.catch_up(frames_too).await {
                tracing::warn!(%error, "postgres store: cannot read the feed; trying again");
            }
        }
        if let Some(listener) = listener {
            listener.abort();
        }
    }

    /// Publishes every app's entries after its cursor, in order, then (`frames_too`) relays
    /// the other nodes' live frames.
    async fn catch_up(&mut self, frames_too: bool) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| super::pool_error(&e))?;
        self.publish_feed(&client).await?;
        if !frames_too {
            return Ok(());
        }
        self.frames
            .catch_up(&client, self.node_key, &self.relayed)
            .await
    }

    async fn publish_feed(&mut self, client: &Object) -> Result<(), String> {
        let heads = client
            .query("SELECT app, last_seq FROM feed_apps", &[])
            .await
            .map_err(|e| describe(&e))?;
        for head in heads {
            let (app, last): (i64, i64) = (head.get(0), head.get(1));
            loop {
                let cursor = self.cursors.get(&app).copied().unwrap_or(0);
                if cursor >= last {
                    break;
                }
                let rows = client
                    .query(
                        "SELECT seq, room_id, at_ms, entry FROM feed \
                         WHERE app = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                        &[&app, &cursor, &PAGE],
                    )
                    .await
                    .map_err(|e| describe(&e))?;
                let Some(newest) = rows.last().map(|row| row.get::<_, i64>(0)) else {
                    // Swept meanwhile: nothing left to publish.
                    self.cursors.insert(app, last);
                    break;
                };
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    if let Some(event) = room_event(app, row) {
                        events.push(event);
                    }
                }
                self.bus.publish(events);
                self.cursors.insert(app, newest);
            }
        }
        Ok(())
    }
}

/// The room change a feed row holds (presence entries hold none); a row that does not decode is
/// logged and skipped, never published half.
fn room_event(app: i64, row: &tokio_postgres::Row) -> Option<RoomEvent> {
    let seq = unsigned(row.get(0));
    let decoded = RoomId::parse(row.get::<_, String>(1))
        .map_err(|_| codec::Malformed("room id"))
        .and_then(|room| codec::decode_feed(row.get(3), seq, room, unsigned(row.get(2))));
    let entry = match decoded {
        Ok(entry) => entry,
        Err(error) => {
            tracing::error!(app, seq, %error, "postgres store: a feed entry does not decode");
            return None;
        }
    };
    match entry.item {
        FeedItem::Room {
            position, change, ..
        } => Some(RoomEvent {
            app: AppId::try_from(app).ok()?,
            room: entry.room,
            position,
            at_ms: entry.at_ms,
            change,
        }),
        FeedItem::Members(_) => None,
    }
}

/// Keeps a connection that `LISTEN`s on [`CHANNEL`], and tells `heard` of every other node's
/// notification and of every new connection (what was notified while it was down is lost:
/// the follower must read).
async fn listener<T>(config: tokio_postgres::Config, tls: T, me: i64, heard: Arc<Notify>)
where
    T: MakeTlsConnect<Socket> + Clone,
    T::Stream: Send,
{
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let sql = format!("LISTEN {CHANNEL}");
                let listen = client.batch_execute(&sql);
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        done = &mut listen, if !listening => match done {
                            Ok(()) => {
                                listening = true;
                                heard.notify_one();
                            }
                            Err(error) => {
                                tracing::warn!(error = %describe(&error), "postgres store: LISTEN failed");
                                break;
                            }
                        },
                        message = messages.next() => match message {
                            // A node's own notifications: its commits woke it already.
                            Some(Ok(AsyncMessage::Notification(notice)))
                                if notice.payload().parse() == Ok(me) => {}
                            Some(Ok(AsyncMessage::Notification(_))) => heard.notify_one(),
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(error = %describe(&error), "postgres store: the listening connection failed");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %describe(&error), "postgres store: cannot connect to listen");
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
