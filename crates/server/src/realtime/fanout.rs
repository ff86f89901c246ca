//! Fan-out: one task takes every committed event from an [`EventFeed`] and hands it to the
//! connections subscribed to its room, each through its own bounded queue. A connection whose
//! queue is full is told it is slow (and closes, 4008) instead of holding up the room; a feed
//! that lost events resets every subscription instead of leaving a silent gap
//! (docs/protocol.md, "Ordering and resume").

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use liveroom_domain::{Account, AppId, Position, RoomChange, RoomEvent, RoomId};
use tokio::sync::{Notify, broadcast, mpsc};

use super::frames;

/// What the fan-out reads: every committed event of every room, in commit order. Today the
/// store's in-process bus; a multi-node mode feeds it from the shared database.
pub(crate) trait EventFeed: Send + 'static {
    /// The next batch; `None` once the feed has ended.
    fn next(&mut self) -> impl Future<Output = Option<Feed>> + Send;
}

pub(crate) enum Feed {
    Events(Arc<[RoomEvent]>),
    /// Some events were lost: no subscription can be trusted to be complete.
    Lost,
}

impl EventFeed for broadcast::Receiver<Arc<[RoomEvent]>> {
    async fn next(&mut self) -> Option<Feed> {
        match self.recv().await {
            Ok(events) => Some(Feed::Events(events)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Feed::Lost),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// An event encoded once for all of its room's subscribers.
#[derive(Debug)]
pub(crate) struct EventFrame {
    pub room: RoomId,
    pub position: Position,
    /// Whose subscription the event ends.
    pub removes: Removes,
    pub text: Utf8Bytes,
}

/// Who is no longer in the room after an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Removes {
    Nobody,
    /// `room.destroyed`.
    Everyone,
    /// `member.banned`: these users.
    Users(Vec<Account>),
}

impl Removes {
    fn of(change: &RoomChange) -> Self {
        match change {
            RoomChange::Destroyed => Removes::Everyone,
            RoomChange::Banned { accounts, .. } => Removes::Users(accounts.clone()),
            _ => Removes::Nobody,
        }
    }

    pub fn includes(&self, user: &str) -> bool {
        match self {
            Removes::Nobody => false,
            Removes::Everyone => true,
            Removes::Users(users) => users.iter().any(|u| u.as_str() == user),
        }
    }
}

/// A live-only frame of a room (presence, counts, messages): no position, no history
/// (docs/protocol.md, "Live events").
#[derive(Debug)]
pub(crate) struct LiveFrame {
    pub room: RoomId,
    pub text: Utf8Bytes,
}

/// What the fan-out puts in a connection's queue (cheap to clone: frames are shared).
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    Event(Arc<EventFrame>),
    Live(Arc<LiveFrame>),
    /// The room's events can no longer be followed: `sub.reset`.
    Reset(RoomId),
    /// Another connection of the same user entered the room: this one is out of it.
    Replaced(RoomId),
}

pub(crate) type ConnectionId = u64;

/// Where the fan-out reaches one connection.
#[derive(Clone)]
pub(crate) struct Mailbox {
    pub queue: mpsc::Sender<Delivery>,
    /// Woken when the queue overflowed.
    pub slow: Arc<Notify>,
}

impl Mailbox {
    /// Whether the connection can still be reached; a full queue tells it it is slow.
    fn deliver(&self, delivery: Delivery) -> bool {
        match self.queue.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The subscriptions of every connection, by room. Each connection holds at most
/// `max_rooms` of them and the connections are bounded, so this is too.
#[derive(Default)]
pub(crate) struct Hub {
    rooms: Mutex<HashMap<(AppId, RoomId), HashMap<ConnectionId, Mailbox>>>,
}

impl Hub {
    fn rooms(&self) -> MutexGuard<'_, HashMap<(AppId, RoomId), HashMap<ConnectionId, Mailbox>>> {
        // Nothing under this lock can panic halfway through an update.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, `room`'s events reach `mailbox`.
    pub fn join(&self, app: AppId, room: &RoomId, connection: ConnectionId, mailbox: Mailbox) {
        self.rooms()
            .entry((app, room.clone()))
            .or_default()
            .insert(connection, mailbox);
    }

    pub fn leave(&self, app: AppId, room: &RoomId, connection: ConnectionId) {
        self.remove(app, room, connection);
    }

    /// Takes `connection` out of `room`; its mailbox, if it was in.
    fn remove(&self, app: AppId, room: &RoomId, connection: ConnectionId) -> Option<Mailbox> {
        let mut rooms = self.rooms();
        let key = (app, room.clone());
        let subscribers = rooms.get_mut(&key)?;
        let mailbox = subscribers.remove(&connection);
        if subscribers.is_empty() {
            rooms.remove(&key);
        }
        mailbox
    }

    /// Hands each event to its room's subscribers, encoded once. A subscriber that cannot
    /// take it is dropped from the room: it is closing (slow, or gone).
    fn dispatch(&self, events: &[RoomEvent]) {
        let mut rooms = self.rooms();
        for event in events {
            deliver_to(&mut rooms, (event.app, event.room.clone()), || {
                Delivery::Event(Arc::new(EventFrame {
                    room: event.room.clone(),
                    position: event.position,
                    removes: Removes::of(&event.change),
                    text: frames::event(event).to_string().into(),
                }))
            });
        }
    }

    /// Hands a live-only frame to the room's subscribers on this server.
    pub fn publish_live(&self, app: AppId, room: &RoomId, text: String) {
        deliver_to(&mut self.rooms(), (app, room.clone()), || {
            Delivery::Live(Arc::new(LiveFrame {
                room: room.clone(),
                text: text.into(),
            }))
        });
    }

    /// Takes `connection` out of `room` and tells it so: its user entered the room again over
    /// another connection.
    pub fn replace(&self, app: AppId, room: &RoomId, connection: ConnectionId) {
        if let Some(mailbox) = self.remove(app, room, connection) {
            mailbox.deliver(Delivery::Replaced(room.clone()));
        }
    }

    /// Resets every subscription: after lost events none can be continued.
    fn reset_all(&self) {
        let mut rooms = self.rooms();
        for ((_, room), subscribers) in rooms.drain() {
            for mailbox in subscribers.values() {
                mailbox.deliver(Delivery::Reset(room.clone()));
            }
        }
    }
}

/// Queues the delivery `make` builds (once, and only if the room has subscribers) for each of
/// the room's subscribers; drops those that cannot take it (closing: slow, or gone).
fn deliver_to(
    rooms: &mut HashMap<(AppId, RoomId), HashMap<ConnectionId, Mailbox>>,
    key: (AppId, RoomId),
    make: impl FnOnce() -> Delivery,
) {
    let Some(subscribers) = rooms.get_mut(&key) else {
        return;
    };
    let delivery = make();
    subscribers.retain(|_, mailbox| mailbox.deliver(delivery.clone()));
    if subscribers.is_empty() {
        rooms.remove(&key);
    }
}

/// Feeds `hub` from `feed` until the feed ends. A destroyed room's members are all gone:
/// `forget` is told (its subscribers learn from the event itself).
pub(crate) async fn run(
    hub: Arc<Hub>,
    mut forget: impl FnMut(AppId, &RoomId) + Send,
    mut feed: impl EventFeed,
) {
    while let Some(item) = feed.next().await {
        match item {
            Feed::Events(events) => {
                for event in events.iter() {
                    if event.change == RoomChange::Destroyed {
                        forget(event.app, &event.room);
                    }
                }
                hub.dispatch(&events);
            }
            Feed::Lost => {
                tracing::warn!(
                    "real-time fan-out lagged behind the event log; resetting subscriptions"
                );
                hub.reset_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use liveroom_domain::Metadata;

    use super::*;

    fn event(room: &str, seq: u64) -> RoomEvent {
        RoomEvent {
            app: 1,
            room: RoomId::parse(room.into()).unwrap(),
            position: Position {
                incarnation: 9,
                seq,
            },
            at_ms: 5,
            change: RoomChange::MetadataSet(Metadata::from([("k".into(), "v".into())])),
        }
    }

    fn mailbox(capacity: usize) -> (Mailbox, mpsc::Receiver<Delivery>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let slow = Arc::new(Notify::new());
        (Mailbox { queue, slow }, receiver)
    }

    fn room(name: &str) -> RoomId {
        RoomId::parse(name.into()).unwrap()
    }

    #[tokio::test]
    async fn events_reach_their_rooms_subscribers_in_order_and_a_full_queue_is_slow() {
        let hub = Hub::default();
        let (fast, mut fast_rx) = mailbox(8);
        let (slow, _slow_rx) = mailbox(1);
        hub.join(1, &room("a"), 1, fast);
        hub.join(1, &room("a"), 2, slow.clone());
        hub.dispatch(&[event("a", 1), event("b", 1), event("a", 2)]);
        for seq in [1, 2] {
            let Some(Delivery::Event(frame)) = fast_rx.recv().await else {
                panic!("an event")
            };
            assert_eq!((frame.room.as_str(), frame.position.seq), ("a", seq));
        }
        assert!(fast_rx.try_recv().is_err());
        // The second event did not fit the slow queue: told, and dropped from the room.
        tokio::time::timeout(Duration::from_secs(5), slow.slow.notified())
            .await
            .unwrap();
        assert_eq!(hub.rooms()[&(1, room("a"))].len(), 1);
    }

    #[tokio::test]
    async fn a_lagging_feed_resets_every_subscription() {
        let hub = Arc::new(Hub::default());
        let (mailbox, mut rx) = mailbox(8);
        hub.join(1, &room("a"), 1, mailbox);
        let (sender, feed) = broadcast::channel(1);
        for seq in 1..=3 {
            sender.send(Arc::from([event("a", seq)])).unwrap();
        }
        drop(sender);
        run(hub.clone(), |_, _: &RoomId| {}, feed).await;
        let Some(Delivery::Reset(reset)) = rx.recv().await else {
            panic!("a reset first")
        };
        assert_eq!(reset.as_str(), "a");
        // After the reset the room is no longer followed, so nothing half-continued arrives.
        assert!(rx.try_recv().is_err());
        assert!(hub.rooms().is_empty());
    }
}
