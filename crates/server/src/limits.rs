//! Per-(app, command) rate limits (60007). Limits are per process.

use std::collections::HashMap;
use std::sync::Arc;

use governor::nanos::Nanos;
use governor::{Quota, RateLimiter, clock, middleware::NoOpMiddleware, state};
use liveroom_domain::{AppId, Clock};
use liveroom_protocol::Command;

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

/// One GCRA limiter per (app, command), built once from the configuration: the set of keys
/// is fixed, so nothing grows with traffic.
pub(crate) struct RateLimits {
    limiters: HashMap<(AppId, Command), Limiter>,
}

impl RateLimits {
    pub fn new(apps: &Apps, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        let mut limiters = HashMap::new();
        for app in apps.iter() {
            for command in Command::ALL {
                let per_second = std::num::NonZeroU32::new(app.rate_limit(command))
                    .unwrap_or(std::num::NonZeroU32::MIN);
                let limiter =
                    RateLimiter::direct_with_clock(Quota::per_second(per_second), clock.clone());
                limiters.insert((app.sdkappid, command), limiter);
            }
        }
        Self { limiters }
    }

    /// Whether one more request of `command` for `app` fits its limit now.
    pub fn admit(&self, app: AppId, command: Command) -> bool {
        self.limiters
            .get(&(app, command))
            .is_none_or(|limiter| limiter.check().is_ok())
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
    use std::time::Duration;

    #[test]
    fn limit_refills_with_time() {
        let clock = ManualClock::at(Duration::from_secs(1_000));
        let mut app = AppConfig::new(1, SecretKey::new("k".into()), vec![]);
        app.rate_limits.insert(Command::GetRoomInfo, 3);
        let limits = RateLimits::new(&Apps::new(vec![app]), Arc::new(clock.clone()));
        let admitted = (0..10)
            .filter(|_| limits.admit(1, Command::GetRoomInfo))
            .count();
        assert_eq!(admitted, 3);
        clock.advance(Duration::from_secs(1));
        let admitted = (0..10)
            .filter(|_| limits.admit(1, Command::GetRoomInfo))
            .count();
        assert_eq!(admitted, 3);
        // Other commands have their own budget.
        assert!(limits.admit(1, Command::GetRoomList));
    }
}
