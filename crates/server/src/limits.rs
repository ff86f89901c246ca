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
    debit: Debit,
    /// How long leased tokens stay usable: as long as they took to accrue.
    keep: Duration,
    held: Mutex<Held>,
    /// One lease at a time: requests that find no token wait for the lease under way and
    /// share it, instead of each emptying the bucket by a lease of their own.
    leasing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Held {
    tokens: u32,
    until: Duration,
    /// The bucket refused: no need to ask it again before then.
    refused_until: Duration,
}

/// A node leases about this long's worth of an app's rate at once (at least one request).
const LEASE: Duration = Duration::from_millis(10);

impl Shared {
    /// Leases of `k` tokens from a bucket of the whole rate's burst less `k`, each usable for
    /// `k` intervals: over any interval t the cluster admits at most rate × t + burst, the same
    /// bound as one node's bucket (docs/cluster.md §7).
    fn new(per_second: u32) -> Self {
        let tokens = ((u64::from(per_second) * LEASE.as_millis() as u64 / 1000) as u32).max(1);
        let (burst, keep) = if tokens > 1 {
            let interval = Duration::from_secs(1) / per_second;
            (per_second - tokens, interval * tokens)
        } else {
            // One token at a time, spent at once: exactly one node's bucket.
            (per_second, Duration::ZERO)
        };
        Self {
            debit: Debit {
                per_second,
                burst,
                tokens,
            },
            keep,
            held: Mutex::default(),
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
        match store
            .take_tokens(app, command.name(), self.debit, now)
            .await
        {
            Ok(taken) => {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                if taken {
                    if now >= held.until {
                        held.tokens = 0;
                    }
                    held.tokens += self.debit.tokens - 1;
                    held.until = now + self.keep;
                } else {
                    let interval = Duration::from_secs(1) / self.debit.per_second.max(1);
                    held.refused_until = now + interval * self.debit.tokens;
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
