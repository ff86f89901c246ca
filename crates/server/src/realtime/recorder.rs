//! Presence into the app's feed (docs/webhooks.md §1): every member who came or went is one
//! feed entry, so that webhooks and the change feed see members as they see changes. Entries
//! are queued here in the order presence decided them and written by one task, a batch at a
//! time (each batch shares the store's group commit), so they stay in that order.

use std::sync::Arc;

use liveroom_domain::{Account, AppId, Clock, MemberCause, MemberChange, RoomId};
use liveroom_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Presence changes waiting to be written; beyond that, new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// Most entries written concurrently.
const BATCH: usize = 512;

struct Change {
    app: AppId,
    room: RoomId,
    member: Account,
    cause: MemberCause,
}

/// What the writing task is handed, in order.
enum Queued {
    Change(Change),
    /// Answered once every change queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Where sessions hand their members' comings and goings.
#[derive(Clone)]
pub(crate) struct Recorder(mpsc::Sender<Queued>);

impl Recorder {
    /// A recorder and the task that writes what it is given into `store`, until every
    /// recorder is dropped.
    pub fn start<S: Store>(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, changes) = mpsc::channel(QUEUE);
        (Self(queue), write(store, clock, changes))
    }

    /// Queues a member's coming or going, never waiting.
    pub fn record(&self, app: AppId, room: &RoomId, user: &str, cause: MemberCause) {
        let Ok(member) = Account::parse("identifier", user.to_owned()) else {
            return;
        };
        let change = Change {
            app,
            room: room.clone(),
            member,
            cause,
        };
        if self.0.try_send(Queued::Change(change)).is_err() {
            metrics::counter!("liveroom_feed_presence_dropped_total").increment(1);
            tracing::warn!(
                app,
                room = room.as_str(),
                "presence for the feed dropped: its queue is full"
            );
        }
    }

    /// Returns once everything recorded so far is written: before the store closes, so that
    /// the departures of a stop are in the feed.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.0.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write<S: Store>(store: Arc<S>, clock: Arc<dyn Clock>, mut queued: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let now = clock.since_epoch();
        let mut flushes = Vec::new();
        let changes = batch.drain(..).filter_map(|q| match q {
            Queued::Change(change) => Some(change),
            Queued::Flush(done) => {
                flushes.push(done);
                None
            }
        });
        // Polled in order, so queued in order: the store applies one caller's writes so.
        let writes = changes.map(|c| {
            let change = MemberChange {
                cause: c.cause,
                accounts: vec![c.member.clone()],
            };
            let store = &store;
            async move {
                let outcome = store
                    .record_members(c.app, &c.room, c.member, change, now)
                    .await;
                match outcome {
                    // A room destroyed meanwhile records no more presence.
                    Ok(()) | Err(StoreError::Rule(_)) => {}
                    Err(error) => tracing::warn!(%error, "presence for the feed not recorded"),
                }
            }
        });
        futures_util::future::join_all(writes).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}
