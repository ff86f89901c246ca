//! Who is calling: docs/behaviour.md §2 rows 4–14, and the failed-authentication throttle.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use liveroom_protocol::{Access, ApiError, ErrorCode, RestQuery};

use crate::config::{AppConfig, ThrottleConfig, TrustedProxies};

/// An authenticated caller of a configured, enabled app: an administrator for REST, any
/// identifier for the real-time gateway.
pub(crate) struct Caller<'a> {
    pub app: &'a AppConfig,
    pub identifier: &'a str,
    /// Unix second after which the UserSig is no longer valid.
    pub expires_at: u64,
}

/// Where a caller's credentials come from (the REST query string, a real-time `hello`).
/// Each accessor answers its own row of docs/behaviour.md §2 when its value is missing or
/// malformed, and is asked in the order of the rows.
pub(crate) trait Credentials {
    /// Rows 4–5 (the number only; whether it is configured is checked here).
    fn sdkappid(&self) -> Result<u32, ApiError>;
    /// Row 7.
    fn identifier(&self) -> Result<&str, ApiError>;
    /// Row 8.
    fn usersig(&self) -> Result<&str, ApiError>;
}

impl Credentials for RestQuery<'_> {
    fn sdkappid(&self) -> Result<u32, ApiError> {
        RestQuery::sdkappid(self)
    }

    fn identifier(&self) -> Result<&str, ApiError> {
        RestQuery::identifier(self)
    }

    fn usersig(&self) -> Result<&str, ApiError> {
        RestQuery::usersig(self)
    }
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
struct CredentialsKey<'a>(u32, &'a str, &'a str);

impl quick_cache::Equivalent<(u32, String, String)> for CredentialsKey<'_> {
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
    ) -> Result<u64, ApiError> {
        let expires_at = match self
            .0
            .get(&CredentialsKey(app.sdkappid, identifier, usersig))
        {
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
                return Ok(sig.expires_at());
            }
        };
        if now > expires_at {
            return Err(liveroom_usersig::VerifyError::Expired.into());
        }
        Ok(expires_at)
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

    /// A configured app, enabled or not.
    pub fn get(&self, sdkappid: u32) -> Option<&AppConfig> {
        self.by_id.get(&sdkappid)
    }

    /// Rows 4–14 in order; `now` is Unix seconds.
    pub fn authenticate<'a>(
        &'a self,
        query: &'a impl Credentials,
        access: Access,
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
        let expires_at = self.verified.verify(app, identifier, usersig, now)?;
        let allowed = match access {
            Access::Admin => app.admins.iter().any(|admin| admin == identifier),
            Access::Member => true,
        };
        if !allowed {
            return Err(ApiError::new(
                ErrorCode::IdNotAdmin,
                "identifier is not an App administrator",
            ));
        }
        Ok(Caller {
            app,
            identifier,
            expires_at,
        })
    }
}

/// The header a proxy adds the address it was connected from to.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// How much of `X-Forwarded-For` is looked at, from the right: enough for any real chain of
/// proxies, and a bound on the work a request can ask for.
const MAX_FORWARDED_ENTRIES: usize = 16;
const MAX_FORWARDED_BYTES: usize = 1024;

/// The address a request's failed authentications count against. From a trusted proxy, it
/// is the right-most `X-Forwarded-For` address that is not itself a trusted proxy: each proxy
/// appends the address its connection came from, so that entry was written by a trusted proxy
/// about its own peer, while anything left of it may be forged by the client. All trusted:
/// the left-most address looked at. No header, or an entry that is not an address: the peer.
/// From any other peer the header is ignored, so that a client cannot pick its own key.
pub(crate) fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    // Values of repeated headers join with commas, in order (RFC 9110 §5.3).
    let entries = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&byte| byte == b','));
    let mut bytes_left = MAX_FORWARDED_BYTES;
    let mut leftmost_trusted = None;
    for entry in entries.take(MAX_FORWARDED_ENTRIES) {
        let Some(left) = bytes_left.checked_sub(entry.len() + 1) else {
            break;
        };
        bytes_left = left;
        let Some(address) = forwarded_address(entry) else {
            return peer;
        };
        if !trusted.contains(address) {
            return address;
        }
        leftmost_trusted = Some(address);
    }
    leftmost_trusted.unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, or an address and port as some proxies write it.
fn forwarded_address(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry.trim_ascii()).ok()?;
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()?;
    Some(address.to_canonical())
}

/// Counts failed authentications per client address and blocks an address that fails too
/// often. Memory is bounded: at most [`Throttle::MAX_TRACKED`] addresses are tracked, stale
/// ones are dropped first, and past that new addresses go untracked rather than evicting a
/// blocked one.
///
/// Every request asks [`Throttle::is_blocked`], so that check must not serialize requests on
/// one lock: addresses are spread over [`Throttle::SHARDS`] independently locked tables, and
/// each table says, without its lock, until when any of its addresses may be blocked.
pub(crate) struct Throttle {
    config: ThrottleConfig,
    shards: Box<[Shard]>,
    /// Picks an address's shard; random per process so that nobody can aim at one shard.
    shard_hasher: RandomState,
    /// Records in all shards, kept exactly: the bound is on the whole table.
    tracked: AtomicUsize,
    /// When stale records were last swept, in nanoseconds: at most one sweep a second, so
    /// that a flood of new addresses cannot make every failure scan the whole table.
    last_sweep: AtomicU64,
}

/// Aligned to its own cache lines, so that failures locking one shard do not slow the
/// lock-free reads of its neighbours.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    records: Mutex<HashMap<IpAddr, Record>>,
    /// The latest `blocked_until` of this shard's records, in nanoseconds. Only ever raised,
    /// so a request at or past it cannot be blocked and need not take the lock.
    blocked_until: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Duration,
    failures: u32,
    blocked_until: Duration,
}

impl Record {
    fn new(now: Duration) -> Self {
        Self {
            window_start: now,
            failures: 0,
            blocked_until: Duration::ZERO,
        }
    }

    fn is_stale(&self, now: Duration, window: Duration) -> bool {
        now >= self.blocked_until && now.saturating_sub(self.window_start) >= window
    }
}

/// A time for an `AtomicU64`; saturates some 584 years after the epoch.
fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

impl Throttle {
    pub const MAX_TRACKED: usize = 100_000;
    const SHARDS: usize = 16;
    const SWEEP_EVERY: Duration = Duration::from_secs(1);

    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            shards: (0..Self::SHARDS).map(|_| Shard::default()).collect(),
            shard_hasher: RandomState::new(),
            tracked: AtomicUsize::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.config.max_failures > 0
    }

    fn shard(&self, client: IpAddr) -> &Shard {
        let hash = self.shard_hasher.hash_one(client);
        &self.shards[hash as usize % self.shards.len()]
    }

    /// [`client_address`] with this throttle's trusted proxies.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_address(peer, headers, &self.config.trusted_proxies)
    }

    pub fn is_blocked(&self, client: IpAddr, now: Duration) -> bool {
        if !self.enabled() {
            return false;
        }
        let shard = self.shard(client);
        // Relaxed: a block raced by this very request may be missed, as it could be missed
        // by a request a moment earlier; the record itself is read under the lock.
        if nanos(now) >= shard.blocked_until.load(Ordering::Relaxed) {
            return false;
        }
        lock(&shard.records)
            .get(&client)
            .is_some_and(|record| now < record.blocked_until)
    }

    pub fn record_failure(&self, client: IpAddr, now: Duration) {
        if !self.enabled() {
            return;
        }
        if self.tracked.load(Ordering::Relaxed) >= Self::MAX_TRACKED {
            self.sweep_stale(now);
        }
        let shard = self.shard(client);
        let mut records = lock(&shard.records);
        let record = match records.entry(client) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                if !self.take_slot() {
                    return;
                }
                entry.insert(Record::new(now))
            }
        };
        if now.saturating_sub(record.window_start) >= self.config.window {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures += 1;
        if record.failures > self.config.max_failures {
            record.blocked_until = now + self.config.block;
            record.window_start = now;
            record.failures = 0;
            shard
                .blocked_until
                .fetch_max(nanos(record.blocked_until), Ordering::Relaxed);
        }
    }

    /// Counts one more record unless the table is full.
    fn take_slot(&self) -> bool {
        self.tracked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < Self::MAX_TRACKED).then_some(n + 1)
            })
            .is_ok()
    }

    /// Drops every stale record, unless another sweep ran less than a second ago. Holds one
    /// shard's lock at a time, and none while waiting for the next.
    fn sweep_stale(&self, now: Duration) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if nanos(now).saturating_sub(last) < nanos(Self::SWEEP_EVERY)
            || self
                .last_sweep
                .compare_exchange(last, nanos(now), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for shard in &self.shards {
            let mut records = lock(&shard.records);
            let before = records.len();
            records.retain(|_, record| !record.is_stale(now, self.config.window));
            self.tracked
                .fetch_sub(before - records.len(), Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let tracked = self.tracked.load(Ordering::Relaxed);
        let counted: usize = self.shards.iter().map(|s| lock(&s.records).len()).sum();
        assert_eq!(tracked, counted);
        tracked
    }
}

/// Poisoning is ignored: no update of a record can panic halfway, so what a panicking
/// thread left behind is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
            hasher.hash_one(CredentialsKey(7, "admin", "sig"))
        );
        assert!(quick_cache::Equivalent::equivalent(
            &CredentialsKey(7, "admin", "sig"),
            &owned
        ));
        assert!(!quick_cache::Equivalent::equivalent(
            &CredentialsKey(7, "admin", "sig2"),
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
        let blocked = IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
        for _ in 0..21 {
            throttle.record_failure(blocked, secs(1));
        }
        for i in 0..(Throttle::MAX_TRACKED as u32 + 50_000) {
            throttle.record_failure(IpAddr::V4(i.into()), secs(1));
        }
        assert_eq!(throttle.tracked(), Throttle::MAX_TRACKED);
        // Once their windows pass, old addresses make room for new ones; a block stays.
        throttle.record_failure(IP, secs(20));
        assert_eq!(throttle.tracked(), 2);
        assert!(throttle.is_blocked(blocked, secs(20)));
    }

    /// Runs `check` on another thread while this one holds every shard's lock: it can only
    /// answer if it took none.
    fn answers_without_locks(
        throttle: &Arc<Throttle>,
        check: impl FnOnce(&Throttle) -> bool + Send + 'static,
    ) -> Option<bool> {
        let _guards: Vec<_> = throttle.shards.iter().map(|s| lock(&s.records)).collect();
        let (answer, answered) = std::sync::mpsc::channel();
        let throttle = throttle.clone();
        std::thread::spawn(move || answer.send(check(&throttle)));
        answered.recv_timeout(Duration::from_secs(5)).ok()
    }

    #[test]
    fn the_check_takes_no_lock_while_nobody_is_blocked() {
        let throttle = Arc::new(Throttle::new(ThrottleConfig::default()));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
        for _ in 0..20 {
            throttle.record_failure(IP, secs(100));
        }
        assert_eq!(
            answers_without_locks(&throttle, |t| t.is_blocked(IP, secs(100))),
            Some(false)
        );
        assert_eq!(
            answers_without_locks(&throttle, move |t| t.is_blocked(other, secs(100))),
            Some(false)
        );
        // Once a block has ended, its shard is lock-free again.
        throttle.record_failure(IP, secs(100));
        assert!(throttle.is_blocked(IP, secs(159)));
        assert_eq!(
            answers_without_locks(&throttle, |t| t.is_blocked(IP, secs(160))),
            Some(false)
        );
    }

    #[test]
    fn a_block_leaves_the_other_shards_lock_free() {
        let throttle = Arc::new(Throttle::new(ThrottleConfig::default()));
        for _ in 0..21 {
            throttle.record_failure(IP, secs(100));
        }
        let elsewhere = (1..=255u8)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, i)))
            .find(|&ip| !std::ptr::eq(throttle.shard(ip), throttle.shard(IP)))
            .unwrap();
        assert_eq!(
            answers_without_locks(&throttle, move |t| t.is_blocked(elsewhere, secs(100))),
            Some(false)
        );
        assert!(throttle.is_blocked(IP, secs(100)));
        assert!(!throttle.is_blocked(elsewhere, secs(100)));
    }

    #[test]
    fn concurrent_failures_keep_the_count_exact() {
        let throttle = Throttle::new(ThrottleConfig::default());
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let throttle = &throttle;
                scope.spawn(move || {
                    for i in 0..1000 {
                        for _ in 0..21 {
                            throttle.record_failure(IpAddr::V4((t << 16 | i).into()), secs(1));
                        }
                    }
                });
            }
        });
        assert_eq!(throttle.tracked(), 4000);
        assert!(
            (0..4u32).all(|t| throttle.is_blocked(IpAddr::V4((t << 16 | 999).into()), secs(1)))
        );
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries.iter().copied()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client address of a request from `peer` carrying these `X-Forwarded-For` lines.
    fn resolve(peer: &str, forwarded: &[&[u8]], trusted: &TrustedProxies) -> IpAddr {
        let mut headers = HeaderMap::new();
        for &value in forwarded {
            let value = axum::http::HeaderValue::from_bytes(value).unwrap();
            headers.append(X_FORWARDED_FOR, value);
        }
        client_address(ip(peer), &headers, trusted)
    }

    #[test]
    fn without_a_trusted_peer_forwarded_for_is_ignored() {
        let spoof: &[&[u8]] = &[b"203.0.113.7"];
        assert_eq!(
            resolve("198.51.100.1", spoof, &TrustedProxies::default()),
            ip("198.51.100.1")
        );
        // Trusting some proxies does not make any other peer's header count.
        let lb = trusted(&["10.0.0.0/8"]);
        assert_eq!(resolve("198.51.100.1", spoof, &lb), ip("198.51.100.1"));
        assert_eq!(
            resolve("198.51.100.1", &[b"10.0.0.1"], &lb),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let lb = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(
            resolve("10.0.0.1", &[b"203.0.113.7"], &lb),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve("127.0.0.1", &[b"203.0.113.7"], &lb),
            ip("203.0.113.7")
        );
        // What the client wrote itself (left of its own address) is never reached.
        let chain: &[&[u8]] = &[b"192.0.2.66, not an address, 203.0.113.7,10.0.0.2 , 10.0.0.3"];
        assert_eq!(resolve("10.0.0.1", chain, &lb), ip("203.0.113.7"));
        // Several header lines are one list, in order.
        let lines: &[&[u8]] = &[b"192.0.2.66", b"203.0.113.7, 10.0.0.2", b"10.0.0.3"];
        assert_eq!(resolve("10.0.0.1", lines, &lb), ip("203.0.113.7"));
        // All trusted: the left-most.
        assert_eq!(
            resolve("10.0.0.1", &[b"10.0.0.3", b"10.0.0.2"], &lb),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn forwarded_for_may_carry_ports_ipv6_and_mapped_addresses() {
        let lb = trusted(&["127.0.0.1", "fd00::/8"]);
        assert_eq!(
            resolve("fd00::1", &[b"203.0.113.7:4711"], &lb),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve("fd00::1", &[b"[2001:db8::1]:4711"], &lb),
            ip("2001:db8::1")
        );
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: still the same address.
        assert_eq!(
            resolve("::ffff:127.0.0.1", &[b"::ffff:203.0.113.7"], &lb),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve("::ffff:198.51.100.1", &[], &TrustedProxies::default()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_missing_or_unparsable_header_leaves_the_peer() {
        let lb = trusted(&["10.0.0.0/8"]);
        for forwarded in [
            &[][..],
            &[&b""[..]],
            &[b"unknown"],
            &[b"203.0.113.7, garbage"],
            &[b"203.0.113.7,"],
            &[b"203.0.113.7/32"],
            &[b"\xff\xfe"],
            &[b"203.0.113.7", b"[::1"],
        ] {
            assert_eq!(
                resolve("10.0.0.1", forwarded, &lb),
                ip("10.0.0.1"),
                "{forwarded:?}"
            );
        }
    }

    #[test]
    fn only_the_rightmost_16_entries_and_1_kib_are_looked_at() {
        let lb = trusted(&["10.0.0.0/8"]);
        let hops = |n: usize| vec!["10.0.0.2"; n].join(", ");
        let within = format!("203.0.113.7, {}", hops(15));
        assert_eq!(
            resolve("10.0.0.1", &[within.as_bytes()], &lb),
            ip("203.0.113.7")
        );
        // Past 16 entries, the left-most looked at is trusted: it stands for the client.
        let beyond = format!("203.0.113.7, {}", hops(16));
        assert_eq!(
            resolve("10.0.0.1", &[beyond.as_bytes()], &lb),
            ip("10.0.0.2")
        );
        // An entry that would take the total past 1 KiB is not read.
        let padded = format!("203.0.113.7, {}10.0.0.2", " ".repeat(1024));
        assert_eq!(
            resolve("10.0.0.1", &[padded.as_bytes()], &lb),
            ip("10.0.0.1")
        );
        let long_line = format!("{}, 203.0.113.7", "192.0.2.1, ".repeat(10_000));
        assert_eq!(
            resolve("10.0.0.1", &[long_line.as_bytes()], &lb),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn the_throttle_resolves_with_its_own_trusted_proxies() {
        let config = ThrottleConfig {
            trusted_proxies: trusted(&["127.0.0.1"]),
            ..ThrottleConfig::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, "203.0.113.7".parse().unwrap());
        assert_eq!(
            Throttle::new(config).client(IP, &headers),
            ip("203.0.113.7")
        );
        let untrusting = Throttle::new(ThrottleConfig::default());
        assert_eq!(untrusting.client(IP, &headers), IP);
    }
}
