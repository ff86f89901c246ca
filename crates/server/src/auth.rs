//! Who is calling: decisions.md §2 rows 4–14, and the failed-authentication throttle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use liveroom_protocol::{ApiError, ErrorCode, RestQuery};

use crate::config::{AppConfig, ThrottleConfig};

/// An authenticated caller: an administrator of a configured, enabled app.
pub(crate) struct Caller<'a> {
    pub app: &'a AppConfig,
    pub identifier: &'a str,
}

pub(crate) struct Apps {
    by_id: HashMap<u32, AppConfig>,
    verified: VerifiedSigs,
}

/// UserSigs that verified, with the second after which each expires. Keyed by the whole
/// credentials (app, identifier, UserSig); keys never change while the server runs, so a hit
/// stands for a fresh HMAC check, and expiry is still checked on every request. Only
/// signatures made with an app's key get in, and the cache is bounded by bytes.
struct VerifiedSigs(quick_cache::sync::Cache<(u32, String, String), u64, CredentialBytes>);

/// A lookup key borrowing the request's strings, so that a cache hit allocates nothing. It
/// hashes exactly like the owned `(u32, String, String)` key.
#[derive(Hash)]
struct Credentials<'a>(u32, &'a str, &'a str);

impl quick_cache::Equivalent<(u32, String, String)> for Credentials<'_> {
    fn equivalent(&self, key: &(u32, String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1 && self.2 == key.2
    }
}

#[derive(Clone)]
struct CredentialBytes;

impl quick_cache::Weighter<(u32, String, String), u64> for CredentialBytes {
    fn weight(&self, key: &(u32, String, String), _: &u64) -> u64 {
        (key.1.len() + key.2.len() + 64) as u64
    }
}

impl VerifiedSigs {
    const MAX_BYTES: u64 = 8 * 1024 * 1024;
    /// A typical entry (a 200-character UserSig) weighs about 300 bytes.
    const ESTIMATED_ITEMS: usize = (Self::MAX_BYTES / 300) as usize;

    fn new() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            Self::ESTIMATED_ITEMS,
            Self::MAX_BYTES,
            CredentialBytes,
        ))
    }

    /// Rows 9–13 for `app`: the cached outcome when these credentials verified before,
    /// otherwise a full verification.
    fn verify(
        &self,
        app: &AppConfig,
        identifier: &str,
        usersig: &str,
        now: u64,
    ) -> Result<(), ApiError> {
        let expires_at = match self.0.get(&Credentials(app.sdkappid, identifier, usersig)) {
            Some(expires_at) => expires_at,
            None => {
                let sig = liveroom_usersig::verify(
                    usersig,
                    app.sdkappid,
                    identifier,
                    app.secret_key.expose(),
                    now,
                )?;
                let key = (app.sdkappid, identifier.to_owned(), usersig.to_owned());
                self.0.insert(key, sig.expires_at());
                return Ok(());
            }
        };
        if now > expires_at {
            return Err(liveroom_usersig::VerifyError::Expired.into());
        }
        Ok(())
    }
}

impl Apps {
    pub fn new(apps: Vec<AppConfig>) -> Self {
        Self {
            by_id: apps.into_iter().map(|app| (app.sdkappid, app)).collect(),
            verified: VerifiedSigs::new(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &AppConfig> {
        self.by_id.values()
    }

    /// Rows 4–14 in order; `now` is Unix seconds.
    pub fn authenticate<'a>(
        &'a self,
        query: &'a RestQuery,
        now: u64,
    ) -> Result<Caller<'a>, ApiError> {
        let sdkappid = query.sdkappid()?;
        let app = self.by_id.get(&sdkappid).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSdkAppId,
                "sdkappid is not a configured app",
            )
        })?;
        if !app.enabled {
            return Err(ApiError::new(
                ErrorCode::SdkAppIdForbidden,
                "this app is disabled",
            ));
        }
        let identifier = query.identifier()?;
        let usersig = query.usersig()?;
        self.verified.verify(app, identifier, usersig, now)?;
        if !app.admins.iter().any(|admin| admin == identifier) {
            return Err(ApiError::new(
                ErrorCode::IdNotAdmin,
                "identifier is not an App administrator",
            ));
        }
        Ok(Caller { app, identifier })
    }
}

/// Counts failed authentications per client address and blocks an address that fails too
/// often. Memory is bounded: at most [`Throttle::MAX_TRACKED`] addresses are tracked, stale
/// ones are dropped first, and past that new addresses go untracked rather than evicting a
/// blocked one.
pub(crate) struct Throttle {
    config: ThrottleConfig,
    clients: Mutex<Clients>,
    /// Mirrors `clients.len()` so that the common case (nobody failing) takes no lock.
    tracked: AtomicUsize,
}

#[derive(Default)]
struct Clients {
    records: HashMap<IpAddr, Record>,
    /// When stale records were last swept: at most one sweep a second, so that a flood of
    /// new addresses cannot make every failure scan the whole table.
    last_sweep: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Duration,
    failures: u32,
    blocked_until: Duration,
}

impl Record {
    fn is_stale(&self, now: Duration, window: Duration) -> bool {
        now >= self.blocked_until && now.saturating_sub(self.window_start) >= window
    }
}

impl Throttle {
    pub const MAX_TRACKED: usize = 100_000;

    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(Clients::default()),
            tracked: AtomicUsize::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.config.max_failures > 0
    }

    pub fn is_blocked(&self, client: IpAddr, now: Duration) -> bool {
        if !self.enabled() || self.tracked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .records
            .get(&client)
            .is_some_and(|record| now < record.blocked_until)
    }

    pub fn record_failure(&self, client: IpAddr, now: Duration) {
        if !self.enabled() {
            return;
        }
        let mut guard = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let clients = &mut *guard;
        if clients.records.len() >= Self::MAX_TRACKED && !clients.records.contains_key(&client) {
            if now.saturating_sub(clients.last_sweep) >= Duration::from_secs(1) {
                clients.last_sweep = now;
                clients
                    .records
                    .retain(|_, record| !record.is_stale(now, self.config.window));
            }
            if clients.records.len() >= Self::MAX_TRACKED {
                return;
            }
        }
        let record = clients.records.entry(client).or_insert(Record {
            window_start: now,
            failures: 0,
            blocked_until: Duration::ZERO,
        });
        if now.saturating_sub(record.window_start) >= self.config.window {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures += 1;
        if record.failures > self.config.max_failures {
            record.blocked_until = now + self.config.block;
            record.window_start = now;
            record.failures = 0;
        }
        self.tracked.store(clients.records.len(), Ordering::Relaxed);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretKey;

    #[test]
    fn a_cached_verification_never_accepts_what_a_fresh_one_rejects() {
        let app = AppConfig::new(1, SecretKey::new("key".into()), vec!["admin".into()]);
        let cache = VerifiedSigs::new();
        let sig = liveroom_usersig::generate(1, "key", "admin", 100, 10);
        for _ in 0..2 {
            assert!(cache.verify(&app, "admin", &sig, 110).is_ok());
        }
        assert_eq!(
            cache.verify(&app, "admin", &sig, 111).unwrap_err().code,
            ErrorCode::UserSigExpired
        );
        // The same UserSig for another identifier or app is not a hit.
        assert_eq!(
            cache.verify(&app, "other", &sig, 105).unwrap_err().code,
            ErrorCode::UserSigMismatchId
        );
        let other_app = AppConfig::new(2, SecretKey::new("key".into()), vec!["admin".into()]);
        assert_eq!(
            cache
                .verify(&other_app, "admin", &sig, 105)
                .unwrap_err()
                .code,
            ErrorCode::UserSigMismatchSdkAppId
        );
        // Failures are not cached: a bad signature stays bad.
        let forged = liveroom_usersig::generate(1, "wrong", "admin", 100, 10);
        for _ in 0..2 {
            assert_eq!(
                cache.verify(&app, "admin", &forged, 105).unwrap_err().code,
                ErrorCode::UserSigMismatchKey
            );
        }
    }

    #[test]
    fn borrowed_credentials_hash_like_the_owned_key() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let owned = (7u32, "admin".to_owned(), "sig".to_owned());
        assert_eq!(
            hasher.hash_one(&owned),
            hasher.hash_one(Credentials(7, "admin", "sig"))
        );
        assert!(quick_cache::Equivalent::equivalent(
            &Credentials(7, "admin", "sig"),
            &owned
        ));
        assert!(!quick_cache::Equivalent::equivalent(
            &Credentials(7, "admin", "sig2"),
            &owned
        ));
    }

    #[test]
    fn the_cache_is_bounded_by_bytes() {
        let app = AppConfig::new(1, SecretKey::new("key".into()), vec![]);
        let cache = VerifiedSigs::new();
        for i in 0..60_000 {
            let identifier = format!("user-{i}");
            let sig = liveroom_usersig::generate(1, "key", &identifier, 100, 10);
            cache.verify(&app, &identifier, &sig, 100).unwrap();
        }
        assert!(cache.0.weight() <= VerifiedSigs::MAX_BYTES);
        assert!(cache.0.len() < 60_000);
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn blocks_after_more_than_max_failures_in_the_window() {
        let throttle = Throttle::new(ThrottleConfig::default());
        for _ in 0..20 {
            throttle.record_failure(IP, secs(100));
        }
        assert!(!throttle.is_blocked(IP, secs(100)));
        throttle.record_failure(IP, secs(109));
        assert!(throttle.is_blocked(IP, secs(109)));
        assert!(throttle.is_blocked(IP, secs(168)));
        assert!(!throttle.is_blocked(IP, secs(169)));
    }

    #[test]
    fn failures_spread_over_windows_do_not_block() {
        let throttle = Throttle::new(ThrottleConfig::default());
        for t in 0..100 {
            throttle.record_failure(IP, secs(t));
            throttle.record_failure(IP, secs(t));
        }
        assert!(!throttle.is_blocked(IP, secs(100)));
    }

    #[test]
    fn zero_turns_it_off() {
        let throttle = Throttle::new(ThrottleConfig::off());
        for _ in 0..1000 {
            throttle.record_failure(IP, secs(1));
        }
        assert!(!throttle.is_blocked(IP, secs(1)));
    }

    #[test]
    fn memory_is_bounded_under_many_addresses() {
        let throttle = Throttle::new(ThrottleConfig::default());
        for i in 0..(Throttle::MAX_TRACKED as u32 + 50_000) {
            throttle.record_failure(IpAddr::V4(i.into()), secs(1));
        }
        assert_eq!(throttle.tracked(), Throttle::MAX_TRACKED);
        // Once their windows pass, old addresses make room for new ones.
        throttle.record_failure(IP, secs(20));
        assert_eq!(throttle.tracked(), 1);
    }
}
