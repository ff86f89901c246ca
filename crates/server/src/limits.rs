//! Per-(app, command) rate limits (60007) and the once-per-second `create_room` rule
//! (100012). Limits are per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::nanos::Nanos;
use governor::{Quota, RateLimiter, clock, middleware::NoOpMiddleware, state};
use liveroom_domain::{AppId, Clock, RoomId};
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

/// RoomIds created in the last second, per app.
pub(crate) struct RecentCreations {
    clock: Arc<dyn Clock>,
    created: Mutex<HashMap<(AppId, RoomId), Duration>>,
}

impl RecentCreations {
    const INTERVAL: Duration = Duration::from_secs(1);
    /// Past this many entries, entries older than the interval are swept.
    const SWEEP_AT: usize = 4096;

    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            created: Mutex::new(HashMap::new()),
        }
    }

    pub fn too_soon(&self, app: AppId, room: &RoomId) -> bool {
        let now = self.clock.since_epoch();
        let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        created
            .get(&(app, room.clone()))
            .is_some_and(|at| now.saturating_sub(*at) < Self::INTERVAL)
    }

    pub fn record(&self, app: AppId, room: RoomId) {
        let now = self.clock.since_epoch();
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if created.len() >= Self::SWEEP_AT {
            created.retain(|_, at| now.saturating_sub(*at) < Self::INTERVAL);
        }
        created.insert((app, room), now);
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

    #[test]
    fn recent_creations_expire_and_stay_bounded() {
        let clock = ManualClock::at(Duration::from_secs(1_000));
        let recent = RecentCreations::new(Arc::new(clock.clone()));
        let room = RoomId::parse("r".into()).unwrap();
        recent.record(1, room.clone());
        assert!(recent.too_soon(1, &room));
        assert!(!recent.too_soon(2, &room));
        clock.advance(Duration::from_secs(1));
        assert!(!recent.too_soon(1, &room));
        for i in 0..10_000 {
            recent.record(1, RoomId::parse(format!("r{i}")).unwrap());
            clock.advance(Duration::from_millis(1));
        }
        assert!(recent.created.lock().unwrap().len() <= RecentCreations::SWEEP_AT + 1000);
    }
}
