//! The webhook sender (docs/webhooks.md §5): for each app with a webhook, a task that asks the
//! store's outbox for the rooms whose first waiting entry is due, sends each one (up to
//! `max_in_flight` rooms at once, one entry per room at a time), and records every outcome
//! durably. It holds no more than `2 × max_in_flight` entries whatever the backlog (those being
//! sent, and one outbox read of at most as many, which passes over the rooms it is busy with):
//! the backlog stays on disk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use liveroom_domain::{AppId, Clock, FeedEntry, RoomId};
use liveroom_protocol::webhook::{callback_body, callback_command};
use liveroom_store::{Outcome, Pending, Store};
use rand::Rng as _;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::WebhookConfig;
use crate::http::HttpClient;
use crate::sign::{message_id, sign};

/// How often an idle app's outbox is looked at for entries that no commit announced (member
/// changes, retries coming due, entries left by a previous run).
const POLL: Duration = Duration::from_millis(100);
/// How long a finished attempt may wait to be recorded with others while attempts are
/// running; its room gets its next entry only once it is recorded.
const RECORD_WITHIN: Duration = Duration::from_millis(5);
/// How often the backlog gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// One app's webhook, with what its requests need to know of the app.
#[derive(Debug, Clone)]
pub struct AppWebhook {
    pub app: AppId,
    /// The app's administrators: their entries say `OptPlatform=RESTAPI`.
    pub admins: Vec<String>,
    pub config: WebhookConfig,
}

/// The outbox filter the store must be opened with, for these webhooks.
pub fn outboxes(webhooks: &[AppWebhook]) -> liveroom_store::Outboxes {
    Arc::new(webhooks.iter().map(|w| (w.app, w.config.hooks)).collect())
}

/// Delivers every app's webhook until `stop` turns true; then lets attempts in flight finish
/// (each within its timeout) and records them before returning.
pub async fn run<S: Store>(
    store: Arc<S>,
    webhooks: Vec<AppWebhook>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) {
    if webhooks.is_empty() {
        return;
    }
    let client = HttpClient::new();
    let wakes: HashMap<AppId, Arc<Notify>> = webhooks
        .iter()
        .map(|w| (w.app, Arc::new(Notify::new())))
        .collect();
    let mut apps = JoinSet::new();
    for webhook in webhooks {
        let wake = Arc::clone(&wakes[&webhook.app]);
        let sender = AppSender {
            store: Arc::clone(&store),
            client: client.clone(),
            clock: Arc::clone(&clock),
            meters: Arc::new(Meters::of(webhook.app)),
            app: Arc::new(webhook),
        };
        apps.spawn(sender.run(wake, stop.clone()));
    }
    // Commits wake their app's sender at once; the poll catches whatever this misses.
    let mut commits = store.subscribe();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            batch = commits.recv() => match batch {
                Ok(events) => {
                    for app in events.iter().map(|e| e.app) {
                        if let Some(wake) = wakes.get(&app) {
                            wake.notify_one();
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    wakes.values().for_each(|w| w.notify_one());
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    while apps.join_next().await.is_some() {}
}

struct AppSender<S> {
    store: Arc<S>,
    client: HttpClient,
    clock: Arc<dyn Clock>,
    app: Arc<AppWebhook>,
    meters: Arc<Meters>,
}

/// An app's metrics of every attempt (docs/webhooks.md §6), registered once rather than
/// looked up by name and labels for each delivery.
struct Meters {
    delivery_seconds: metrics::Histogram,
    delivered: metrics::Counter,
    retried: metrics::Counter,
    parked: metrics::Counter,
}

impl Meters {
    fn of(app: AppId) -> Self {
        let app = app.to_string();
        let attempts = |outcome: &'static str| metrics::counter!("liveroom_webhook_attempts_total", "app" => app.clone(), "outcome" => outcome);
        Self {
            delivery_seconds: metrics::histogram!("liveroom_webhook_delivery_seconds", "app" => app.clone()),
            delivered: attempts("delivered"),
            retried: attempts("retry"),
            parked: attempts("parked"),
        }
    }
}

/// An attempt's result: the entry, and what became of it.
struct Attempted {
    seq: u64,
    room: RoomId,
    outcome: Outcome,
}

impl<S: Store> AppSender<S> {
    async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let app = self.app.app;
        let limit = self.app.config.max_in_flight;
        // Under load, finished attempts are recorded and free slots refilled a quarter of the
        // slots at a time, so that one outbox read and one store write serve many deliveries.
        let batch = (limit / 4).max(1);
        let mut running: JoinSet<Attempted> = JoinSet::new();
        // Rooms being sent to or waiting for their outcome to be recorded: none of them gets
        // its next entry before that (in order per room).
        let max_held = 2 * limit;
        let mut held: HashSet<RoomId> = HashSet::new();
        let mut finished: Vec<Attempted> = Vec::new();
        // One record at a time, in its own task, so that attempts go on while it commits (it
        // waits in the writer's queue behind the API's writes); the rooms it frees.
        let mut recording: JoinSet<()> = JoinSet::new();
        let mut recorded_rooms: Vec<RoomId> = Vec::new();
        let mut record_by = tokio::time::Instant::now();
        // Whether the outbox may have a room to start: set by commits, the poll, freed rooms,
        // and finished attempts while the last read left due rooms unstarted.
        let mut look = true;
        let mut more_due = false;
        let mut gauges = tokio::time::interval(GAUGES_EVERY);
        loop {
            let stopping = *stop.borrow();
            if recording.is_empty()
                && !finished.is_empty()
                && (running.is_empty()
                    || stopping
                    || finished.len() >= batch
                    || tokio::time::Instant::now() >= record_by)
            {
                let outcomes;
                (recorded_rooms, outcomes) = finished
                    .drain(..)
                    .map(|done| (done.room, (done.seq, done.outcome)))
                    .unzip();
                recording.spawn(self.record(outcomes));
            }
            if stopping && running.is_empty() && finished.is_empty() && recording.is_empty() {
                return;
            }
            let free = limit
                .saturating_sub(running.len())
                .min(max_held.saturating_sub(held.len()));
            if look && !stopping && free > 0 && (running.is_empty() || free >= batch) {
                more_due = self.start_due(free, &mut running, &mut held).await;
                look = false;
            }
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if finished.is_empty() {
                        record_by = tokio::time::Instant::now() + RECORD_WITHIN;
                    }
                    finished.extend(done.ok());
                    while let Some(done) = running.try_join_next() {
                        finished.extend(done.ok());
                    }
                    look |= more_due;
                }
                Some(_) = recording.join_next(), if !recording.is_empty() => {
                    for room in recorded_rooms.drain(..) {
                        held.remove(&room);
                    }
                    look = true;
                }
                _ = tokio::time::sleep_until(record_by), if !finished.is_empty() && recording.is_empty() => {}
                _ = wake.notified(), if !stopping => look = true,
                _ = tokio::time::sleep(POLL), if !stopping => look = true,
                _ = gauges.tick() => self.refresh_gauges().await,
                _ = stop.changed(), if !stopping => {
                    tracing::debug!(app, held = held.len(), "webhooks: stopping");
                }
            }
        }
    }

    /// Starts an attempt for each due room that is not held already (the store passes over
    /// those), up to `free` of them; returns whether due rooms may be left unstarted.
    async fn start_due(
        &self,
        free: usize,
        running: &mut JoinSet<Attempted>,
        held: &mut HashSet<RoomId>,
    ) -> bool {
        let due = match self
            .store
            .due(self.app.app, self.clock.unix_ms(), free, held)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(app = self.app.app, %error, "webhooks: cannot read the outbox");
                return false;
            }
        };
        let full = due.len() == free;
        for pending in due {
            held.insert(pending.entry.room.clone());
            let attempt = Attempt {
                client: self.client.clone(),
                clock: Arc::clone(&self.clock),
                app: Arc::clone(&self.app),
                meters: Arc::clone(&self.meters),
            };
            running.spawn(attempt.run(pending));
        }
        full
    }

    /// Records finished attempts in one store write. If that fails, the entries stay first in
    /// their rooms and are sent again: at least once.
    fn record(&self, outcomes: Vec<(u64, Outcome)>) -> impl Future<Output = ()> + Send + 'static {
        let store = Arc::clone(&self.store);
        let app = self.app.app;
        async move {
            if let Err(error) = store.settle(app, outcomes).await {
                tracing::error!(app, %error, "webhooks: cannot record deliveries; they will be sent again");
            }
        }
    }

    async fn refresh_gauges(&self) {
        let Ok(backlog) = self.store.backlog(self.app.app).await else {
            return;
        };
        let app = self.app.app.to_string();
        metrics::gauge!("liveroom_webhook_pending", "app" => app.clone())
            .set(backlog.pending as f64);
        metrics::gauge!("liveroom_webhook_parked", "app" => app.clone()).set(backlog.parked as f64);
        let age_ms = backlog
            .oldest_pending_ms
            .map_or(0, |ms| self.clock.unix_ms().saturating_sub(ms));
        metrics::gauge!("liveroom_webhook_oldest_pending_seconds", "app" => app)
            .set(age_ms as f64 / 1000.0);
    }
}

/// One request for one entry.
struct Attempt {
    client: HttpClient,
    clock: Arc<dyn Clock>,
    app: Arc<AppWebhook>,
    meters: Arc<Meters>,
}

impl Attempt {
    async fn run(self, pending: Pending) -> Attempted {
        let Pending { entry, attempts } = pending;
        let result = self.send(&entry).await;
        let now_ms = self.clock.unix_ms();
        let outcome = match result {
            Ok(()) => {
                let latency = now_ms.saturating_sub(entry.at_ms) as f64 / 1000.0;
                self.meters.delivery_seconds.record(latency);
                Outcome::Delivered
            }
            Err((reason, error)) => {
                metrics::counter!("liveroom_webhook_failures_total", "app" => self.app.app.to_string(), "reason" => reason)
                    .increment(1);
                let outcome = self.after_failure(&entry, attempts, now_ms, error);
                match &outcome {
                    Outcome::Park { error } => tracing::error!(
                        app = self.app.app, seq = entry.seq, room = entry.room.as_str(),
                        attempt = attempts + 1, %error, "webhooks: entry parked"
                    ),
                    Outcome::Retry { error, .. } => tracing::warn!(
                        app = self.app.app, seq = entry.seq, room = entry.room.as_str(),
                        attempt = attempts + 1, %error, "webhooks: attempt failed"
                    ),
                    Outcome::Delivered => {}
                }
                outcome
            }
        };
        let attempts = match outcome {
            Outcome::Delivered => &self.meters.delivered,
            Outcome::Retry { .. } => &self.meters.retried,
            Outcome::Park { .. } => &self.meters.parked,
        };
        attempts.increment(1);
        Attempted {
            seq: entry.seq,
            room: entry.room,
            outcome,
        }
    }

    /// A retry after an exponential, jittered delay; parked once the entry's time is up.
    fn after_failure(
        &self,
        entry: &FeedEntry,
        attempts: u32,
        now_ms: u64,
        error: String,
    ) -> Outcome {
        let config = &self.app.config;
        let deadline = entry
            .at_ms
            .saturating_add(config.retry_for.as_millis() as u64);
        if now_ms >= deadline {
            return Outcome::Park { error };
        }
        let delay = backoff(config.retry_min, config.retry_max, attempts);
        let jittered = rand::rng().random_range(delay / 2..=delay);
        Outcome::Retry {
            at_ms: now_ms.saturating_add(jittered).min(deadline),
            error,
        }
    }

    /// Delivers `entry`, or says why not: the failure's metrics label and its description.
    async fn send(&self, entry: &FeedEntry) -> Result<(), (&'static str, String)> {
        let webhook = &self.app;
        let config = &webhook.config;
        let body = callback_body(entry);
        let command = callback_command(entry.item.hook());
        let platform = if webhook.admins.iter().any(|a| a == entry.by.as_str()) {
            "RESTAPI"
        } else {
            "Unknown"
        };
        let url = config.url.callback_url(webhook.app, command, platform);
        let headers = config.secret.as_ref().map_or_else(Vec::new, |key| {
            let id = message_id(webhook.app, entry.seq);
            sign(key, &id, self.clock.unix_secs(), &body).headers()
        });
        let answer = self
            .client
            .post_json(&url, headers, body, config.timeout)
            .await
            .map_err(|error| (error.label(), error.to_string()))?;
        if !(200..300).contains(&answer.status) {
            return Err(("status", format!("HTTP {}", answer.status)));
        }
        if let Some(code) = answer.error_code
            && code != 0
        {
            tracing::warn!(
                app = webhook.app,
                seq = entry.seq,
                code,
                "webhooks: the receiver answered 2xx with a non-zero ErrorCode; delivered, not retried"
            );
            metrics::counter!("liveroom_webhook_rejected_total", "app" => webhook.app.to_string())
                .increment(1);
        }
        Ok(())
    }
}

/// `retry_min × 2^attempts`, at most `retry_max`, in milliseconds.
fn backoff(min: Duration, max: Duration, attempts: u32) -> u64 {
    let min = min.as_millis() as u64;
    let max = (max.as_millis() as u64).max(min);
    min.saturating_mul(1u64.checked_shl(attempts.min(62)).unwrap_or(u64::MAX))
        .min(max)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u64> = (0..6).map(|a| backoff(min, max, a)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(min, max, u32::MAX), 1000);
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 3), 1);
    }
}
