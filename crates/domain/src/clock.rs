use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where every layer gets "now" from, so that tests can move time instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Time since the Unix epoch.
    fn since_epoch(&self) -> Duration;

    /// Whole Unix seconds, the unit of `CreateTime` and UserSig expiry.
    fn unix_secs(&self) -> u64 {
        self.since_epoch().as_secs()
    }

    /// Unix milliseconds, the unit of events' times.
    fn unix_ms(&self) -> u64 {
        self.since_epoch().as_millis() as u64
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn since_epoch(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that moves only when told to; clones share one time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn at(since_epoch: Duration) -> Self {
        let clock = Self::default();
        clock.set(since_epoch);
        clock
    }

    pub fn set(&self, since_epoch: Duration) {
        self.nanos
            .store(since_epoch.as_nanos() as u64, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn since_epoch(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}
