//! Per-(app, command) rate limits (60007): per process, or shared by a cluster's nodes
//! through the store (docs/cluster.md §7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::nanos::Nanos;
use governor::{Quota, RateLimiter, clock, middleware::NoOpMiddleware, state};
use liveroom_domain::{AppId, Clock};
use liveroom_protocol::Command;
use liveroom_store::{Debit, Store};

use crate::auth::Apps;

/// governor's view of the injected clock, so that tests can move time for limits too.
#[derive(Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl clock::Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        self.0.since_epoch().into()
    }
}

type Limiter =
    RateLimiter<state::NotKeyed, state::InMemoryState, LimiterClock, NoOpMiddleware<Nanos>>;

/// One GCRA bucket per (app, command), built once from the configuration: the set of keys is
/// fixed, so nothing grows with traffic. In memory, or shared by every node through the store
/// (docs/cluster.md §7).
pub(crate) struct RateLimits {
    buckets: HashMap<(AppId, Command), Bucket>,
    clock: Arc<dyn Clock>,
}

enum Bucket {
    Local(Limiter),
    Shared(Shared),
}

/// A bucket of the store's, and what this node holds of it.
struct Shared {
    per_second: u32,
    /// The shared bucket's burst: the rate's, less the largest lease.
    burst: u32,
    /// The largest lease: [`LEASE`] of the rate.
    most: u32,
    /// How long leased tokens stay usable: as long as the largest lease took to accrue.
    keep: Duration,
    held: Mutex<Held>,
    /// One lease at a time: requests that find no token wait for the lease under way and
    /// share it, instead of each emptying the bucket by a lease of their own.
    leasing: tokio::sync::Mutex<()>,
}

struct Held {
    tokens: u32,
    until: Duration,
    /// The bucket refused: no need to ask it again before then.
    refused_until: Duration,
    /// The size of the current lease, and of the next.
    leased: u32,
    next: u32,
}

/// A node leases at most this long's worth of an app's rate at once (at least one request).
const LEASE: Duration = Duration::from_millis(10);

impl Shared {
    /// Leases of at most `most` tokens from a bucket of the rate's burst less `most`, each
    /// usable for `most` intervals: over any interval t the cluster admits at most
    /// rate × t + burst, one node's bound (docs/cluster.md §7). A node leases what it spent of
    /// its last lease, twice as much when it ran out, so that what expires unspent is small.
    fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let most = ((u64::from(per_second) * LEASE.as_millis() as u64 / 1000) as u32).max(1);
        let (burst, keep) = if most > 1 {
            let interval = Duration::from_secs(1) / per_second;
            (per_second - most, interval * most)
        } else {
            // One token at a time, spent at once: exactly one node's bucket.
            (per_second, Duration::ZERO)
        };
        Self {
            per_second,
            burst,
            most,
            keep,
            held: Mutex::new(Held {
                tokens: 0,
                until: Duration::ZERO,
                refused_until: Duration::ZERO,
                leased: 0,
                next: 1,
            }),
            leasing: tokio::sync::Mutex::new(()),
        }
    }

    /// Spends a held token, or says why not: `Some(false)` refused lately, `None` none held.
    fn spend(&self, now: Duration) -> Option<bool> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.tokens > 0 && now < held.until {
            held.tokens -= 1;
            return Some(true);
        }
        (now < held.refused_until).then_some(false)
    }

    /// The size of the lease to ask for now.
    fn lease_size(&self) -> u32 {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.next = if held.tokens > 0 {
            // Expired with tokens left: lease what was spent.
            (held.leased - held.tokens).max(1)
        } else if held.leased == held.next {
            (held.next * 2).min(self.most)
        } else {
            held.next
        };
        held.tokens = 0;
        held.next
    }

    async fn admit<S: Store>(
        &self,
        store: &S,
        app: AppId,
        command: Command,
        now: Duration,
    ) -> bool {
        if let Some(spent) = self.spend(now) {
            return spent;
        }
        let _leasing = self.leasing.lock().await;
        if let Some(spent) = self.spend(now) {
            return spent;
        }
        let tokens = self.lease_size();
        let debit = Debit {
            per_second: self.per_second,
            burst: self.burst,
            tokens,
        };
        match store.take_tokens(app, command.name(), debit, now).await {
            Ok(taken) => {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                if taken {
                    held.tokens = tokens - 1;
                    held.leased = tokens;
                    held.until = now + self.keep;
                } else if tokens > 1 {
                    // What is left may still hold one: the next request asks for one.
                    held.leased = 0;
                    held.next = 1;
                } else {
                    held.leased = 0;
                    held.refused_until = now + Duration::from_secs(1) / self.per_second;
                }
                taken
            }
            Err(error) => {
                // The request needs the same store, and fails there if it is really gone.
                tracing::warn!(app, %error, "shared rate limit unavailable; admitting");
                true
            }
        }
    }
}

impl RateLimits {
    /// Buckets for every app's commands; shared through `store` when it shares them.
    pub fn new(apps: &Apps, clock: Arc<dyn Clock>, shared: bool) -> Self {
        let limiter_clock = LimiterClock(clock.clone());
        let mut buckets = HashMap::new();
        for app in apps.iter() {
            for command in Command::ALL {
                let per_second = std::num::NonZeroU32::new(app.rate_limit(command))
                    .unwrap_or(std::num::NonZeroU32::MIN);
                let bucket = if shared {
                    Bucket::Shared(Shared::new(per_second.get()))
                } else {
                    Bucket::Local(RateLimiter::direct_with_clock(
                        Quota::per_second(per_second),
                        limiter_clock.clone(),
                    ))
                };
                buckets.insert((app.sdkappid, command), bucket);
            }
        }
        Self { buckets, clock }
    }

    /// Whether one more request of `command` for `app` fits its limit now.
    pub async fn admit<S: Store>(&self, store: &S, app: AppId, command: Command) -> bool {
        match self.buckets.get(&(app, command)) {
            None => true,
            Some(Bucket::Local(limiter)) => limiter.check().is_ok(),
            Some(Bucket::Shared(shared)) => {
                shared
                    .admit(store, app, command, self.clock.since_epoch())
                    .await
            }
        }
    }
}

/// The commands of one real-time connection per second (docs/protocol.md, "Limits").
pub(crate) struct ConnectionLimiter(Limiter);

impl ConnectionLimiter {
    pub fn new(per_second: u32, clock: Arc<dyn Clock>) -> Self {
        let per_second = std::num::NonZeroU32::new(per_second).unwrap_or(std::num::NonZeroU32::MIN);
        Self(RateLimiter::direct_with_clock(
            Quota::per_second(per_second),
            LimiterClock(clock),
        ))
    }

    pub fn admit(&self) -> bool {
        self.0.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, SecretKey};
    use liveroom_domain::ManualClock;

    #[test]
    fn limit_refills_with_time() {
        let clock = ManualClock::at(Duration::from_secs(1_000));
        let mut app = AppConfig::new(1, SecretKey::new("k".into()), vec![]);
        app.rate_limits.insert(Command::GetRoomInfo, 3);
        let limits = RateLimits::new(&Apps::new(vec![app]), Arc::new(clock.clone()), false);
        let store = liveroom_store::MemoryStore::new();
        let admitted = |limits: &RateLimits, command| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            (0..10)
                .filter(|_| runtime.block_on(limits.admit(&store, 1, command)))
                .count()
        };
        assert_eq!(admitted(&limits, Command::GetRoomInfo), 3);
        clock.advance(Duration::from_secs(1));
        assert_eq!(admitted(&limits, Command::GetRoomInfo), 3);
        // Other commands have their own budget.
        assert_eq!(admitted(&limits, Command::GetRoomList), 10);
    }
}
