//! The webhook scenarios of issue 10 (docs/webhooks.md), against the `liveroom` binary itself,
//! started from a configuration file as production starts it, with the receiver inside this
//! process. Every write is a durable `set_room_metadata` whose value names the write
//! (`w000…<id>`), so the receiver knows which write each `Live.CallbackAfterSetMetadata` is.
//!
//! - `webhooks-overhead`: the same binary twice, without `[apps.webhook]` and with one (signed),
//!   driven by the same closed-loop writes in alternating runs; once a run with the webhook
//!   ends, the next waits until the receiver has caught up, so no run pays for another's backlog.
//! - `webhooks-delivery`: with the webhook on, writes as fast as the connections go, then at a
//!   fixed rate, each write's REST answer → its arrival at the receiver; then a backlog: the
//!   receiver answers 503 while N writes are made, and the time until all N arrived once it
//!   answers 200 again.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::binary::{Launch, Liveroom, START_TIMEOUT};
use crate::children::{ADMIN, RATE_LIMIT, SDKAPPID, SECRET_KEY, VALUE_BYTES};
use crate::load::{self, Caller, Load, Pace, Script, Workload};
use crate::report::{Run, Series, TargetCheck, median, paired_ratio, thousands};
use crate::scenarios::Api;

pub const OVERHEAD: &str = "webhooks-overhead";
pub const DELIVERY: &str = "webhooks-delivery";
pub const NAMES: [&str; 2] = [OVERHEAD, DELIVERY];

/// docs/webhooks.md §2's example secret: `whsec_` and 24 bytes in base64.
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CALLBACK: &str = "Live.CallbackAfterSetMetadata";
/// The metadata key every write sets.
const KEY: &str = "wh";
/// What the receiver answers: Tencent's success envelope.
const ACK: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;
/// Retries soon after a failure, so that a drain measures the sender rather than its back-off.
const RETRY_MIN_MS: u64 = 50;
const RETRY_MAX_MS: u64 = 200;
/// Writes per second of the delivery scenario's paced phase: one the sender should keep up with.
const PACED_RATE: f64 = 200.0;
/// The receiver has caught up once no request came for this long.
const QUIET: Duration = Duration::from_millis(500);
/// How long deliveries may trail the last write before the missing ones count as failures,
/// plus a second per this many writes.
const PATIENCE: Duration = Duration::from_secs(30);
const PATIENCE_WRITES_PER_SEC: u64 = 500;
/// How often a wait looks at the receiver's log.
const POLL: Duration = Duration::from_millis(20);
const MAX_LATENCY_US: u64 = 600_000_000;

/// CPU microseconds per acknowledged write of `run`, given `cores` of it over its window.
fn per_write_us(cores: f64, run: &Run) -> f64 {
    cores * 1e6 / run.requests_per_sec.max(1e-9)
}

/// What the webhook scenarios are run with.
pub struct Settings {
    /// The `liveroom` binary, copied into the run's directory.
    pub binary: PathBuf,
    pub quick: bool,
    pub repeat: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    /// Rooms preloaded into each data directory; writes pick one at random.
    pub rooms: u64,
    /// Writes made while the receiver is down.
    pub backlog: u64,
    /// Tokio workers of each server (`TOKIO_WORKER_THREADS`) and the CPUs it is pinned to.
    pub workers: usize,
    pub cpus: Vec<usize>,
}

/// The data directories, preloaded with [`Settings::rooms`] rooms: the webhook-off server's
/// (only for `webhooks-overhead`) and the webhook-on server's.
pub struct Dirs<'a> {
    pub off: Option<&'a Path>,
    pub on: &'a Path,
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// One webhook request answered 200.
struct Arrival {
    at: Instant,
    unix_ms: u64,
    seq: u64,
    room: String,
    write: Option<u64>,
    event_time_ms: u64,
}

#[derive(Default)]
struct Log {
    /// In arrival order; a `Seq` seen before is counted in `duplicates`, not kept.
    arrivals: Vec<Arrival>,
    /// Index in `arrivals` of each write's delivery.
    by_write: HashMap<u64, usize>,
    seqs: HashSet<u64>,
    duplicates: u64,
    /// Requests answered 503 while the receiver was down.
    refused: u64,
    /// Requests that do not follow docs/webhooks.md §3–4 (answered 200 all the same).
    malformed: u64,
    first_malformed: Option<String>,
    last_request: Option<Instant>,
}

impl Log {
    fn record(&mut self, arrival: Arrival) {
        if !self.seqs.insert(arrival.seq) {
            self.duplicates += 1;
            return;
        }
        if let Some(write) = arrival.write {
            self.by_write.entry(write).or_insert(self.arrivals.len());
        }
        self.arrivals.push(arrival);
    }

    /// Deliveries of a room that came after one with a higher `Seq` (§5: in order per room).
    fn out_of_order(&self) -> u64 {
        let mut highest: HashMap<&str, u64> = HashMap::new();
        let mut late = 0;
        for a in &self.arrivals {
            let top = highest.entry(a.room.as_str()).or_insert(0);
            if a.seq < *top {
                late += 1;
            }
            *top = (*top).max(a.seq);
        }
        late
    }

    fn delivery_of(&self, write: u64) -> Option<&Arrival> {
        self.by_write.get(&write).map(|&i| &self.arrivals[i])
    }
}

struct ReceiverState {
    up: AtomicBool,
    log: Mutex<Log>,
}

impl ReceiverState {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A loopback HTTP server in this process that answers every webhook with [`ACK`] (or 503
/// while down) and logs it.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(ReceiverState {
            up: AtomicBool::new(true),
            log: Mutex::new(Log::default()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    fn url(&self) -> String {
        format!("http://{}/liveroom/callback", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::Relaxed);
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.state.log()
    }

    /// Waits until no request came for [`QUIET`] (at most `cap`); answers whether it did.
    async fn quiet(&self, cap: Duration) -> bool {
        let give_up = Instant::now() + cap;
        loop {
            let last = self.log().last_request;
            let now = Instant::now();
            if last.is_none_or(|at| now.duration_since(at) >= QUIET) {
                return true;
            }
            if now >= give_up {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until each of `writes` was delivered, at most `patience`; answers how many were not.
    async fn await_deliveries(&self, writes: &[Written], patience: Duration) -> u64 {
        let give_up = Instant::now() + patience;
        let mut pending: Vec<u64> = writes.iter().map(|w| w.id).collect();
        loop {
            {
                let log = self.log();
                pending.retain(|id| !log.by_write.contains_key(id));
            }
            if pending.is_empty() || Instant::now() >= give_up {
                return pending.len() as u64;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let unix_ms = unix_ms();
    let up = state.up.load(Ordering::Relaxed);
    // Parsed outside the lock.
    let parsed = up.then(|| parse(&uri, &headers, &body, unix_ms / 1000));
    let mut log = state.log();
    log.last_request = Some(at);
    match parsed {
        None => {
            log.refused += 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "receiver down").into_response();
        }
        Some(Err(problem)) => {
            log.malformed += 1;
            log.first_malformed.get_or_insert(problem);
        }
        Some(Ok(hook)) => log.record(Arrival {
            at,
            unix_ms,
            seq: hook.seq,
            room: hook.room,
            write: hook.write,
            event_time_ms: hook.event_time_ms,
        }),
    }
    drop(log);
    ([(header::CONTENT_TYPE, "application/json")], ACK).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HookBody {
    callback_command: String,
    room_id: Option<String>,
    metadata: Option<Vec<HookPair>>,
    event_time: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HookPair {
    key: String,
    value: String,
}

struct Hook {
    seq: u64,
    room: String,
    write: Option<u64>,
    event_time_ms: u64,
}

/// The webhook of a `set_room_metadata`, checked against docs/webhooks.md §3–4. The signature's
/// shape is checked, not its HMAC: that would need crates this one does not depend on.
fn parse(uri: &Uri, headers: &HeaderMap, body: &[u8], now_secs: u64) -> Result<Hook, String> {
    let query: HashMap<&str, &str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("no {name} header"))
    };
    let body: HookBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "body is not a webhook's ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    let sdkappid = SDKAPPID.to_string();
    for (name, expected) in [
        ("SdkAppid", sdkappid.as_str()),
        ("CallbackCommand", CALLBACK),
        ("contenttype", "json"),
        ("OptPlatform", "RESTAPI"),
    ] {
        let got = query.get(name).copied();
        if got != Some(expected) {
            return Err(format!(
                "query {name}={got:?}, expected {expected:?} (URI {uri})"
            ));
        }
    }
    if body.callback_command != CALLBACK {
        return Err(format!(
            "body CallbackCommand {:?}, expected {CALLBACK:?}",
            body.callback_command
        ));
    }
    let id = header("webhook-id")?;
    let seq = id
        .strip_prefix(&format!("evt_{SDKAPPID}_"))
        .and_then(|seq| seq.parse::<u64>().ok())
        .ok_or_else(|| format!("webhook-id {id:?} is not evt_{SDKAPPID}_<Seq>"))?;
    let timestamp = header("webhook-timestamp")?;
    let fresh = timestamp
        .parse::<u64>()
        .is_ok_and(|t| t.abs_diff(now_secs) <= 300);
    if !fresh {
        return Err(format!(
            "webhook-timestamp {timestamp:?} is not within 300 s of {now_secs}"
        ));
    }
    let signature = header("webhook-signature")?;
    let signed = signature.split_whitespace().any(|s| {
        s.strip_prefix("v1,").is_some_and(|b64| {
            // 32 bytes of HMAC-SHA256 in padded standard base64.
            b64.len() == 44
                && b64.ends_with('=')
                && b64[..43]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        })
    });
    if !signed {
        return Err(format!(
            "webhook-signature {signature:?} is not v1,<base64 of 32 bytes>"
        ));
    }
    let room = body.room_id.ok_or("body has no RoomId")?;
    let write = body
        .metadata
        .iter()
        .flatten()
        .find(|p| p.key == KEY)
        .and_then(|p| p.value.strip_prefix('w')?.parse().ok());
    Ok(Hook {
        seq,
        room,
        write,
        event_time_ms: body.event_time,
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The file `liveroom serve --config` reads: the benchmark's one app, limits out of the way,
/// and the webhook (docs/webhooks.md §2) if given.
fn config_text(webhook: Option<&str>) -> String {
    let mut text = format!(
        "[auth_failure_throttle]\nmax_failures = 0\n\n\
         [[apps]]\nsdkappid = {SDKAPPID}\nsecret_key = \"{SECRET_KEY}\"\nadmins = [\"{ADMIN}\"]\n\n\
         [apps.rate_limits]\n\"*\" = {RATE_LIMIT}\n"
    );
    if let Some(url) = webhook {
        let _ = write!(
            text,
            "\n[apps.webhook]\nurl = \"{url}\"\nsecret = \"{SIGNING_SECRET}\"\n\
             retry_min_ms = {RETRY_MIN_MS}\nretry_max_ms = {RETRY_MAX_MS}\n"
        );
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The writes

/// A value of the preloaded size that names write `id`.
fn value(id: u64) -> String {
    format!("w{id:0>width$}", width = VALUE_BYTES - 1)
}

fn rng(connection: usize) -> SmallRng {
    SmallRng::seed_from_u64(0x3EB0_0C50 ^ connection as u64)
}

/// The load driver's workload: each request sets [`KEY`] of a random room to a new write's value.
fn workload(api: &Arc<Api>, rooms: u64, ids: &Arc<AtomicU64>) -> Workload {
    let (api, ids) = (Arc::clone(api), Arc::clone(ids));
    Arc::new(move |connection, _| {
        let (api, ids) = (Arc::clone(&api), Arc::clone(&ids));
        let mut rng = rng(connection);
        Box::new(move || {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            Some(api.set_value(rng.random_range(0..rooms), KEY, &value(id)))
        }) as Script
    })
}

/// One acknowledged write.
struct Written {
    id: u64,
    acked: Instant,
}

struct Writes {
    acked: Vec<Written>,
    failed: u64,
    first_error: Option<String>,
    started: Instant,
    finished: Instant,
}

#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    Count(u64),
}

/// Writes from `callers` connections (closed loop, or `rate` per second in total) until
/// `until`, noting when each answer came. Unlike the load driver, it keeps every write's id.
async fn write_load(
    addr: SocketAddr,
    api: &Arc<Api>,
    callers: usize,
    rooms: u64,
    ids: &Arc<AtomicU64>,
    until: Until,
    rate: Option<f64>,
) -> anyhow::Result<Writes> {
    let mut connected = Vec::with_capacity(callers);
    for _ in 0..callers {
        connected.push(Caller::connect(addr).await?);
    }
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut caller) in connected.into_iter().enumerate() {
        let (api, ids, issued) = (Arc::clone(api), Arc::clone(ids), Arc::clone(&issued));
        let pace = rate.map(|rate| {
            (
                Duration::from_secs_f64(i as f64 / rate),
                Duration::from_secs_f64(callers as f64 / rate),
            )
        });
        tasks.spawn(async move {
            let mut rng = rng(i);
            let mut due = pace.map(|(offset, _)| started + offset);
            let mut acked = Vec::new();
            let (mut failed, mut first_error) = (0, None);
            loop {
                let end = match until {
                    Until::Elapsed(limit) => Some(started + limit),
                    Until::Count(n) if issued.fetch_add(1, Ordering::Relaxed) >= n => break,
                    Until::Count(_) => None,
                };
                if let (Some(at), Some((_, interval))) = (due, pace) {
                    if end.is_some_and(|end| at >= end) {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    due = Some(at + interval);
                } else if end.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let step = api.set_value(rng.random_range(0..rooms), KEY, &value(id));
                match caller.call(step).await {
                    Ok(()) => acked.push(Written {
                        id,
                        acked: Instant::now(),
                    }),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(format!("set_room_metadata: {e}"));
                        // The connection is in an unknown state.
                        match Caller::connect(addr).await {
                            Ok(fresh) => caller = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (acked, failed, first_error)
        });
    }
    let mut writes = Writes {
        acked: Vec::new(),
        failed: 0,
        first_error: None,
        started,
        finished: started,
    };
    while let Some(joined) = tasks.join_next().await {
        let (acked, failed, first_error) = joined.context("a writer task failed")?;
        writes.acked.extend(acked);
        writes.failed += failed;
        if let Some(e) = first_error {
            writes.first_error.get_or_insert(e);
        }
    }
    writes.finished = Instant::now();
    Ok(writes)
}

fn patience(writes: u64) -> Duration {
    PATIENCE + Duration::from_secs(writes / PATIENCE_WRITES_PER_SEC)
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

fn latencies(h: &Histogram<u64>) -> Latencies {
    let ms = |us: u64| us as f64 / 1000.0;
    Latencies {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

#[derive(Debug, Serialize)]
pub struct OverheadRun {
    /// Deliveries that arrived in (about) the measured window, per second.
    pub delivered_per_sec_in_window: f64,
    /// Deliveries of the whole run, warm-up included, once the receiver caught up.
    pub delivered: u64,
    /// The load's end → the receiver quiet for 0.5 s (included).
    pub caught_up_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct OverheadReport {
    pub off: Series,
    pub on: Series,
    /// Median over repeats of on ÷ off, each pair measured back to back.
    pub throughput_ratio: f64,
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    pub on_runs: Vec<OverheadRun>,
}

/// One phase of writes of the delivery scenario.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub writes: u64,
    pub failed_writes: u64,
    pub writes_per_sec: f64,
    pub delivered: u64,
    pub missing: u64,
    /// The phase's deliveries ÷ (its first write sent → its last delivery).
    pub delivered_per_sec: f64,
    /// The last write's answer → the last delivery.
    pub lag_at_end_ms: f64,
    /// Each write's REST answer (as this process got it) → its arrival at the receiver, on
    /// this process's monotonic clock; one that arrived first counts as 0.
    pub answer_to_receiver: Latencies,
    /// Deliveries that arrived before their write's REST answer.
    pub before_answer: u64,
    /// The body's `EventTime` (the commit, in ms) → arrival, on the system clock.
    pub event_time_to_receiver: Latencies,
}

#[derive(Debug, Serialize)]
pub struct Drain {
    pub writes: u64,
    pub failed_writes: u64,
    /// The receiver down (503) → back up.
    pub outage_secs: f64,
    /// Attempts answered 503 meanwhile.
    pub refused_attempts: u64,
    /// Back up → the first delivery.
    pub first_delivery_ms: f64,
    /// Back up → every write of the backlog delivered.
    pub drain_secs: f64,
    /// The backlog ÷ (its first delivery → its last).
    pub drained_per_sec: f64,
    pub missing: u64,
}

#[derive(Debug, Serialize)]
pub struct DeliveryRun {
    pub saturated: Phase,
    pub paced: Phase,
    pub drain: Drain,
}

#[derive(Debug, Serialize)]
pub struct DeliveryReport {
    pub callers: usize,
    pub saturated_secs: f64,
    pub paced_rate: f64,
    pub paced_secs: f64,
    pub backlog: u64,
    pub runs: Vec<DeliveryRun>,
}

#[derive(Debug, Serialize)]
pub struct WebhooksReport {
    pub binary: String,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<OverheadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryReport>,
    /// Over the whole run.
    pub requests: u64,
    pub refused: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub malformed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_malformed: Option<String>,
    /// Failed writes, missing deliveries, malformed webhooks.
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, count: u64, message: impl FnOnce() -> String) {
        if count > 0 {
            self.count += count;
            self.first.get_or_insert_with(message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// Runs the chosen webhook scenarios (`wanted` by name).
pub async fn run(
    settings: &Settings,
    dirs: &Dirs<'_>,
    api: &Arc<Api>,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<WebhooksReport> {
    let receiver = Receiver::start().await?;
    let url = receiver.url();
    let launch = Launch {
        binary: &settings.binary,
        workers: settings.workers,
        cpus: &settings.cpus,
    };
    let on = Liveroom::start(&launch, "webhook on", dirs.on, &config_text(Some(&url))).await?;
    let off = match dirs.off {
        Some(dir) => Some(Liveroom::start(&launch, "webhook off", dir, &config_text(None)).await?),
        None => None,
    };
    for server in [Some(&on), off.as_ref()].into_iter().flatten() {
        eprintln!(
            "webhooks: {}: pid {} on {}",
            server.name,
            server.guard.pid(),
            server.addr
        );
        answers(server, api).await?;
    }
    let ids = Arc::new(AtomicU64::new(0));
    let mut failures = Failures::default();

    let overhead = match &off {
        Some(off) if wanted(OVERHEAD) => {
            Some(overhead(settings, off, &on, &receiver, api, &ids, &mut failures).await?)
        }
        _ => None,
    };
    let delivery = if wanted(DELIVERY) {
        Some(delivery(settings, &on, &receiver, api, &ids, &mut failures).await?)
    } else {
        None
    };

    let log = receiver.log();
    failures.add(log.malformed, || {
        format!(
            "malformed webhook: {}",
            log.first_malformed.as_deref().unwrap_or("")
        )
    });
    Ok(WebhooksReport {
        binary: settings.binary.display().to_string(),
        retry_min_ms: RETRY_MIN_MS,
        retry_max_ms: RETRY_MAX_MS,
        overhead,
        delivery,
        requests: log.arrivals.len() as u64 + log.duplicates + log.refused + log.malformed,
        refused: log.refused,
        duplicates: log.duplicates,
        out_of_order: log.out_of_order(),
        malformed: log.malformed,
        first_malformed: log.first_malformed.clone(),
        errors: failures.count,
        first_error: failures.first,
    })
}

/// Waits for the server's first successful answer.
async fn answers(server: &Liveroom, api: &Api) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        match load::request_once(server.addr, api.get(0)).await {
            Ok(()) => return Ok(()),
            Err(e) if since.elapsed() > START_TIMEOUT => {
                anyhow::bail!("{}: no successful answer: {e}", server.name)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn overhead(
    settings: &Settings,
    off: &Liveroom,
    on: &Liveroom,
    receiver: &Receiver,
    api: &Arc<Api>,
    ids: &Arc<AtomicU64>,
    failures: &mut Failures,
) -> anyhow::Result<OverheadReport> {
    let workload = workload(api, settings.rooms, ids);
    let (mut off_runs, mut on_runs, mut deliveries) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 1..=settings.repeat {
        // Each takes its turn going first, so that neither gains from its slot.
        let order = if repeat % 2 == 1 {
            [off, on]
        } else {
            [on, off]
        };
        for server in order {
            let load = Load {
                addr: server.addr,
                connections: settings.connections,
                warmup: settings.warmup,
                duration: settings.duration,
                pace: Pace::Closed,
            };
            let before = receiver.log().arrivals.len();
            let started = Instant::now();
            let outcome = load::run(&load, &workload, server.guard.pid()).await?;
            let run = Run::of(&outcome);
            if std::ptr::eq(server, off) {
                off_runs.push(run);
                continue;
            }
            let ended = Instant::now();
            let cap = patience(run.requests);
            if !receiver.quiet(cap).await {
                failures.add(1, || {
                    format!("{OVERHEAD}: deliveries still coming {cap:?} after the load")
                });
            }
            let caught_up_secs = ended.elapsed().as_secs_f64();
            let (delivered, in_window) = {
                let log = receiver.log();
                // The load's clock starts once its connections are open: a few ms late.
                let from = started + settings.warmup;
                let to = from + settings.duration;
                let mine = &log.arrivals[before..];
                let in_window = mine.iter().filter(|a| (from..to).contains(&a.at)).count();
                (mine.len() as u64, in_window)
            };
            // Every write answered in the window must have arrived, and more (the warm-up's).
            failures.add(run.requests.saturating_sub(delivered), || {
                format!(
                    "{OVERHEAD}: {delivered} deliveries for {} writes answered in the window",
                    run.requests
                )
            });
            deliveries.push(OverheadRun {
                delivered_per_sec_in_window: in_window as f64 / settings.duration.as_secs_f64(),
                delivered,
                caught_up_secs,
            });
            on_runs.push(run);
        }
        let (off_run, on_run) = (&off_runs[repeat - 1], &on_runs[repeat - 1]);
        eprintln!(
            "[{repeat}/{}] {OVERHEAD}: off {} writes/s (p99 {:.2} ms) | on {} writes/s (p99 {:.2} ms), \
             {} delivered, caught up {:.1} s after",
            settings.repeat,
            thousands(off_run.requests_per_sec),
            off_run.p99_ms,
            thousands(on_run.requests_per_sec),
            on_run.p99_ms,
            thousands(deliveries[repeat - 1].delivered as f64),
            deliveries[repeat - 1].caught_up_secs,
        );
    }
    for run in off_runs.iter().chain(&on_runs) {
        failures.add(run.errors, || {
            format!(
                "{OVERHEAD}: {}",
                run.first_error.as_deref().unwrap_or("a write failed")
            )
        });
    }
    let (off, on) = (Series::new(off_runs), Series::new(on_runs));
    Ok(OverheadReport {
        throughput_ratio: paired_ratio(&on, &off, |r| r.requests_per_sec),
        p50_ratio: paired_ratio(&on, &off, |r| r.p50_ms),
        p99_ratio: paired_ratio(&on, &off, |r| r.p99_ms),
        off,
        on,
        on_runs: deliveries,
    })
}

async fn delivery(
    settings: &Settings,
    on: &Liveroom,
    receiver: &Receiver,
    api: &Arc<Api>,
    ids: &Arc<AtomicU64>,
    failures: &mut Failures,
) -> anyhow::Result<DeliveryReport> {
    let (callers, rooms) = (settings.connections, settings.rooms);
    let saturated_for = settings.warmup + settings.duration;
    let paced_for = settings.duration;
    let mut runs = Vec::new();
    for repeat in 1..=settings.repeat {
        let writes = write_load(
            on.addr,
            api,
            callers,
            rooms,
            ids,
            Until::Elapsed(saturated_for),
            None,
        )
        .await?;
        let saturated = phase(receiver, &writes, "saturated", failures).await;
        let writes = write_load(
            on.addr,
            api,
            callers.min(16),
            rooms,
            ids,
            Until::Elapsed(paced_for),
            Some(PACED_RATE),
        )
        .await?;
        let paced = phase(receiver, &writes, "paced", failures).await;
        let drain = drain(settings, on, receiver, api, ids, failures).await?;
        eprintln!(
            "[{repeat}/{}] {DELIVERY}: saturated {} writes/s, {} delivered/s, answer → receiver p50 \
             {:.1} ms p99 {:.1} ms | paced p50 {:.2} ms p99 {:.2} ms | backlog of {} drained in {:.2} s \
             ({} /s)",
            settings.repeat,
            thousands(saturated.writes_per_sec),
            thousands(saturated.delivered_per_sec),
            saturated.answer_to_receiver.p50_ms,
            saturated.answer_to_receiver.p99_ms,
            paced.answer_to_receiver.p50_ms,
            paced.answer_to_receiver.p99_ms,
            thousands(drain.writes as f64),
            drain.drain_secs,
            thousands(drain.drained_per_sec),
        );
        runs.push(DeliveryRun {
            saturated,
            paced,
            drain,
        });
    }
    Ok(DeliveryReport {
        callers,
        saturated_secs: saturated_for.as_secs_f64(),
        paced_rate: PACED_RATE,
        paced_secs: paced_for.as_secs_f64(),
        backlog: settings.backlog,
        runs,
    })
}

/// Waits for the deliveries of `writes`, counting failed writes and missing deliveries as
/// failures of phase `name`; returns how many writes were acknowledged and how many of them
/// were never delivered.
async fn await_writes(
    receiver: &Receiver,
    writes: &Writes,
    name: &str,
    failures: &mut Failures,
) -> (u64, u64) {
    let acked = writes.acked.len() as u64;
    let missing = receiver
        .await_deliveries(&writes.acked, patience(acked))
        .await;
    failures.add(writes.failed, || {
        format!(
            "{DELIVERY} ({name}): {}",
            writes.first_error.as_deref().unwrap_or("a write failed")
        )
    });
    failures.add(missing, || {
        format!("{DELIVERY} ({name}): {missing} of {acked} acknowledged writes never delivered")
    });
    (acked, missing)
}

/// Waits for the deliveries of `writes`, then measures them.
async fn phase(receiver: &Receiver, writes: &Writes, name: &str, failures: &mut Failures) -> Phase {
    let (acked, missing) = await_writes(receiver, writes, name, failures).await;
    let log = receiver.log();
    let (mut answer, mut event) = (histogram(), histogram());
    let (mut before_answer, mut last) = (0, writes.started);
    for w in &writes.acked {
        let Some(a) = log.delivery_of(w.id) else {
            continue;
        };
        last = last.max(a.at);
        match a.at.checked_duration_since(w.acked) {
            Some(d) => answer.saturating_record((d.as_micros() as u64).max(1)),
            None => {
                before_answer += 1;
                answer.saturating_record(1);
            }
        }
        let ms = a.unix_ms.saturating_sub(a.event_time_ms);
        event.saturating_record((ms * 1000).max(1));
    }
    let delivered = acked - missing;
    let write_secs = writes.finished.duration_since(writes.started).as_secs_f64();
    let last_answer = writes.acked.iter().map(|w| w.acked).max();
    Phase {
        writes: acked,
        failed_writes: writes.failed,
        writes_per_sec: acked as f64 / write_secs,
        delivered,
        missing,
        delivered_per_sec: delivered as f64 / last.duration_since(writes.started).as_secs_f64(),
        lag_at_end_ms: last_answer.map_or(0.0, |at| {
            last.saturating_duration_since(at).as_secs_f64() * 1000.0
        }),
        answer_to_receiver: latencies(&answer),
        before_answer,
        event_time_to_receiver: latencies(&event),
    }
}

/// The receiver down while `backlog` writes are made, then up again: how long the backlog takes.
async fn drain(
    settings: &Settings,
    on: &Liveroom,
    receiver: &Receiver,
    api: &Arc<Api>,
    ids: &Arc<AtomicU64>,
    failures: &mut Failures,
) -> anyhow::Result<Drain> {
    let refused_before = receiver.log().refused;
    receiver.set_up(false);
    let down = Instant::now();
    let writes = write_load(
        on.addr,
        api,
        settings.connections,
        settings.rooms,
        ids,
        Until::Count(settings.backlog),
        None,
    )
    .await?;
    // Long enough for every waiting room's first attempts to fail and back off.
    tokio::time::sleep(Duration::from_millis(if settings.quick {
        300
    } else {
        1_000
    }))
    .await;
    receiver.set_up(true);
    let up = Instant::now();
    let refused_attempts = receiver.log().refused - refused_before;
    let (acked, missing) = await_writes(receiver, &writes, "backlog", failures).await;
    let log = receiver.log();
    let times: Vec<Instant> = writes
        .acked
        .iter()
        .filter_map(|w| Some(log.delivery_of(w.id)?.at))
        .collect();
    let first = times.iter().min().copied().unwrap_or(up);
    let last = times.iter().max().copied().unwrap_or(up);
    let early = times.iter().filter(|&&at| at < up).count() as u64;
    failures.add(early, || {
        format!("{DELIVERY} (backlog): {early} deliveries while the receiver answered 503")
    });
    Ok(Drain {
        writes: acked,
        failed_writes: writes.failed,
        outage_secs: up.duration_since(down).as_secs_f64(),
        refused_attempts,
        first_delivery_ms: first.saturating_duration_since(up).as_secs_f64() * 1000.0,
        drain_secs: last.saturating_duration_since(up).as_secs_f64(),
        drained_per_sec: times.len() as f64 / last.duration_since(first).as_secs_f64(),
        missing,
    })
}

impl WebhooksReport {
    pub fn targets(&self) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        if let Some(o) = &self.overhead {
            checks.push(TargetCheck {
                what: format!("{OVERHEAD}: set_room_metadata throughput, webhook on ÷ off"),
                target: "≥ 0.90 ×".into(),
                measured: format!(
                    "{:.2} × ({} vs {} writes/s)",
                    o.throughput_ratio,
                    thousands(o.on.median.requests_per_sec),
                    thousands(o.off.median.requests_per_sec)
                ),
                met: o.throughput_ratio >= 0.9,
            });
        }
        checks.push(TargetCheck {
            what: "webhooks: every acknowledged write delivered, in order per room, once".into(),
            target: "0 missing, 0 out of order, 0 duplicates".into(),
            measured: format!(
                "{} missing, {} out of order, {} duplicates",
                self.missing(),
                self.out_of_order,
                self.duplicates
            ),
            met: self.missing() == 0 && self.out_of_order == 0 && self.duplicates == 0,
        });
        checks
    }

    fn missing(&self) -> u64 {
        self.delivery.iter().flat_map(|d| &d.runs).fold(0, |n, r| {
            n + r.saturated.missing + r.paced.missing + r.drain.missing
        })
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nWebhooks (the `liveroom` binary {}, started with a configuration file; the receiver in \
             this process; signed; retry_min_ms {}, retry_max_ms {}):\n",
            self.binary, self.retry_min_ms, self.retry_max_ms
        );
        if let Some(o) = &self.overhead {
            let row = |out: &mut String, name: &str, r: &Run| {
                let _ = writeln!(
                    out,
                    "| {OVERHEAD} | {name} | {} | {:.3} | {:.3} | {:.3} | {} | {:.2} cores | {:.0} | {:.0} |",
                    thousands(r.requests_per_sec),
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.errors,
                    r.server_cpu_cores,
                    per_write_us(r.server_cpu_cores, r),
                    per_write_us(r.writer_cpu_cores, r),
                );
            };
            out.push_str(
                "| scenario | webhook | writes/s | p50 ms | p99 ms | max ms | errors | server CPU | \
                 server CPU µs per write | writer thread µs per write |\n\
                 |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
            );
            row(&mut out, "off", &o.off.median);
            row(&mut out, "on", &o.on.median);
            let per_sec = median(
                o.on_runs
                    .iter()
                    .map(|r| r.delivered_per_sec_in_window)
                    .collect(),
            );
            let caught_up = median(o.on_runs.iter().map(|r| r.caught_up_secs).collect());
            let _ = writeln!(
                out,
                "\nOn ÷ off (median of paired runs): **{:.2} × writes/s**, p50 {:.2} ×, p99 {:.2} ×. \
                 With the webhook on, {} deliveries/s arrived during the window (median), and the \
                 receiver was quiet {:.2} s after the load ended (0.5 s of quiet included).",
                o.throughput_ratio,
                o.p50_ratio,
                o.p99_ratio,
                thousands(per_sec),
                caught_up
            );
            let (off, on) = (&o.off.median, &o.on.median);
            let (server_off, server_on) = (
                per_write_us(off.server_cpu_cores, off),
                per_write_us(on.server_cpu_cores, on),
            );
            let (writer_off, writer_on) = (
                per_write_us(off.writer_cpu_cores, off),
                per_write_us(on.writer_cpu_cores, on),
            );
            let _ = writeln!(
                out,
                "\nCPU per write: the whole server {:.0} µs off, {:.0} µs on (off ÷ on {:.2} ×: what \
                 writes/s can reach when the server's cores are all busy); its SQLite writer \
                 thread {:.0} µs off, {:.0} µs on (off ÷ on {:.2} ×: what they can reach when the \
                 one writer thread is what limits them, on a machine with cores to spare).",
                server_off,
                server_on,
                server_off / server_on,
                writer_off,
                writer_on,
                writer_off / writer_on,
            );
        }
        if let Some(d) = &self.delivery {
            let m = |f: fn(&DeliveryRun) -> f64| median(d.runs.iter().map(f).collect());
            let _ = writeln!(
                out,
                "\n{DELIVERY} (median of {} run(s)):\n\
                 - saturated, {} connections for {:.1} s: {} writes/s; **{} deliveries/s**; REST answer \
                 → receiver p50 {:.2} ms, **p99 {:.2} ms** (EventTime → receiver p50 {:.0} ms, p99 {:.0} \
                 ms); the last delivery {:.0} ms after the last answer.\n\
                 - paced, {} writes/s for {:.1} s: REST answer → receiver p50 {:.2} ms, **p99 {:.2} ms**, \
                 max {:.2} ms (EventTime → receiver p50 {:.0} ms, p99 {:.0} ms).\n\
                 - backlog of {} writes made while the receiver answered 503 ({:.1} s, {} attempts \
                 refused): **drained in {:.2} s** after it came back (first delivery after {:.0} ms), \
                 {} deliveries/s.",
                d.runs.len(),
                d.callers,
                d.saturated_secs,
                thousands(m(|r| r.saturated.writes_per_sec)),
                thousands(m(|r| r.saturated.delivered_per_sec)),
                m(|r| r.saturated.answer_to_receiver.p50_ms),
                m(|r| r.saturated.answer_to_receiver.p99_ms),
                m(|r| r.saturated.event_time_to_receiver.p50_ms),
                m(|r| r.saturated.event_time_to_receiver.p99_ms),
                m(|r| r.saturated.lag_at_end_ms),
                d.paced_rate,
                d.paced_secs,
                m(|r| r.paced.answer_to_receiver.p50_ms),
                m(|r| r.paced.answer_to_receiver.p99_ms),
                m(|r| r.paced.answer_to_receiver.max_ms),
                m(|r| r.paced.event_time_to_receiver.p50_ms),
                m(|r| r.paced.event_time_to_receiver.p99_ms),
                thousands(d.backlog as f64),
                m(|r| r.drain.outage_secs),
                thousands(m(|r| r.drain.refused_attempts as f64)),
                m(|r| r.drain.drain_secs),
                m(|r| r.drain.first_delivery_ms),
                thousands(m(|r| r.drain.drained_per_sec)),
            );
        }
        let _ = writeln!(
            out,
            "\nReceiver: {} requests ({} answered 503), {} duplicates, {} out of order, {} malformed. \
             Webhook failures: {}.",
            thousands(self.requests as f64),
            thousands(self.refused as f64),
            self.duplicates,
            self.out_of_order,
            self.malformed,
            self.errors
        );
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "First webhook failure: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_headers(id: &str, timestamp: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().unwrap());
        headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
        headers.insert(
            "webhook-signature",
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
                .parse()
                .unwrap(),
        );
        headers
    }

    #[test]
    fn parses_a_documented_webhook() {
        let uri: Uri = format!(
            "/liveroom/callback?SdkAppid={SDKAPPID}&CallbackCommand={CALLBACK}&contenttype=json\
             &ClientIP=&OptPlatform=RESTAPI"
        )
        .parse()
        .unwrap();
        let body = format!(
            r#"{{"CallbackCommand":"{CALLBACK}","Operator_Account":"administrator","RoomId":"room-7","Metadata":[{{"Key":"{KEY}","Value":"{}"}}],"EventTime":1764662400123}}"#,
            value(42)
        );
        let id = format!("evt_{SDKAPPID}_9");
        let hook = parse(&uri, &signed_headers(&id, 1000), body.as_bytes(), 1010)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (hook.seq, hook.room.as_str(), hook.write, hook.event_time_ms),
            (9, "room-7", Some(42), 1_764_662_400_123)
        );
        assert!(parse(&uri, &signed_headers(&id, 1000), body.as_bytes(), 2000).is_err());
        assert!(
            parse(
                &uri,
                &signed_headers("evt_1_9", 1000),
                body.as_bytes(),
                1000
            )
            .is_err()
        );
        assert!(parse(&uri, &HeaderMap::new(), body.as_bytes(), 1000).is_err());
    }

    #[test]
    fn values_name_their_write_at_the_preloaded_size() {
        assert_eq!(value(42).len(), VALUE_BYTES);
        assert_eq!(
            value(42).strip_prefix('w').unwrap().parse::<u64>().ok(),
            Some(42)
        );
    }

    #[test]
    fn order_is_per_room() {
        let mut log = Log::default();
        let now = Instant::now();
        let arrival = |seq, room: &str| Arrival {
            at: now,
            unix_ms: 0,
            seq,
            room: room.into(),
            write: None,
            event_time_ms: 0,
        };
        for (seq, room) in [(10, "a"), (30, "b"), (20, "a"), (40, "a"), (20, "a")] {
            log.record(arrival(seq, room));
        }
        // Seq counts per app: 20 after 30 is in order, as 30 is another room's.
        assert_eq!(log.duplicates, 1);
        assert_eq!(log.out_of_order(), 0);
        log.record(arrival(25, "b"));
        assert_eq!(log.out_of_order(), 1);
    }
}
