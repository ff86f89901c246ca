//! The real-time scenarios of issue 9, against a liveroom child of their own: many held
//! connections (the server's memory per connection), one big room's fan-out (latency and
//! deliveries per second) and a small room's latency. Members are liveroom-client
//! connections (docs/protocol.md: `hello`, then `enter`); every change is a REST
//! `set_room_metadata` whose `room.metadata.set` event reaches each member of the room
//! (docs/protocol.md, "Events"). The value written is the write's number, so a member knows
//! which write each event is, and its latency is measured from when that REST request was
//! sent to when the event arrived.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hdrhistogram::Histogram;
use liveroom_client::{Client, Credentials};
use liveroom_domain::{Clock, SystemClock};
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::children::{SDKAPPID, SECRET_KEY, room_id};
use crate::load::Caller;
use crate::report::{TargetCheck, thousands};
use crate::scenarios::Api;
use crate::system::{self, FdLimit};

pub const CONNECTIONS: &str = "rt-connections";
pub const FANOUT: &str = "rt-fanout";
pub const LATENCY: &str = "rt-latency";
pub const NAMES: [&str; 3] = [CONNECTIONS, FANOUT, LATENCY];

/// Rooms the real-time server is preloaded with (`room-0` …): the connections scenario
/// spreads over the first [`CONNECTION_ROOMS`]; the others have one room each.
pub const ROOMS: u64 = 16;
const CONNECTION_ROOMS: u64 = 8;
const FANOUT_ROOM: u64 = 10;
const LATENCY_ROOM: u64 = 11;
/// The metadata key every write sets; its value is the write's number.
const KEY: &str = "rt";

/// Connections being opened at once (TCP, WebSocket handshake, `hello`, `enter`).
const OPENING_AT_ONCE: usize = 64;
/// Client connections per loopback source address (127.0.0.2, 127.0.0.3, …), far below
/// the ephemeral port range of one address.
const PER_SOURCE: usize = 2_000;
/// Files each side keeps for itself besides the real-time connections: the listener, the
/// database, logs, the REST callers.
const FD_RESERVE: u64 = 1_000;
/// Latencies are recorded in microseconds up to this bound (larger ones are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;
/// How long the last event of a phase may take to reach every member before the missing
/// ones count as failures.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(30);

/// What the real-time scenarios are run with.
pub struct Settings {
    pub connections: Option<usize>,
    pub members: usize,
    pub quick: bool,
}

/// Where the scenarios reach the server.
pub struct Target {
    pub addr: SocketAddr,
    pub pid: u32,
    pub api: Arc<Api>,
}

#[derive(Debug, Serialize)]
pub struct RealtimeReport {
    /// This process's open-file limit, raised to its hard limit at start.
    pub bench_fd_limit: FdLimit,
    /// The server child's soft open-file limit, as it inherited it.
    pub server_fd_limit: Option<u64>,
    /// The machine's 1-minute load average when the scenarios began: on a shared machine,
    /// what else wanted its CPUs.
    pub load_average: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
    /// Connections that failed to open, events missing or unexpected, failed writes.
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    pub requested: usize,
    pub opened: usize,
    pub source_addresses: usize,
    pub open_secs: f64,
    pub opened_per_sec: f64,
    pub server_rss_before_mb: f64,
    pub server_rss_after_mb: f64,
    pub bytes_per_connection: f64,
    /// The same on the client side (this process: liveroom-client with an 8 KiB read buffer,
    /// a reader task per connection), for comparison.
    pub bench_bytes_per_connection: f64,
    /// Over the opening, in cores.
    pub server_cpu_cores: f64,
    pub bench_cpu_cores: f64,
    /// One write per room afterwards: every held connection must receive its room's event.
    pub events_delivered: u64,
}

#[derive(Debug, Serialize)]
pub struct Latencies {
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub members: usize,
    pub open_secs: f64,
    /// Writes each sent once the previous one reached every member: one write's fan-out
    /// with nothing else going on.
    pub isolated_writes: usize,
    pub isolated: Latencies,
    /// Per isolated write, the latency of its last delivery: the median over the writes.
    pub isolated_last_member_ms: f64,
    /// Writes one every `paced_interval_ms`.
    pub paced_writes: usize,
    pub paced_interval_ms: f64,
    /// REST send to arrival, over every delivery of the paced writes.
    pub paced: Latencies,
    /// Per paced write, the latency of its last delivery: median and worst over the writes.
    pub last_member_median_ms: f64,
    pub last_member_max_ms: f64,
    pub paced_server_cpu_cores: f64,
    pub paced_bench_cpu_cores: f64,
    /// Writes sent back to back by `burst_callers` REST connections.
    pub burst_writes: usize,
    pub burst_callers: usize,
    /// From the first burst write sent to its last delivery.
    pub burst_secs: f64,
    pub burst_deliveries_per_sec: f64,
    pub burst_writes_per_sec: f64,
    pub burst: Latencies,
    pub burst_server_cpu_cores: f64,
    pub burst_bench_cpu_cores: f64,
    /// Deliveries per CPU-second of the server and of this process during the burst: what
    /// a CPU achieves, whatever share of the machine each side got.
    pub burst_deliveries_per_server_cpu_sec: f64,
    pub burst_deliveries_per_bench_cpu_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub members: usize,
    pub writes: usize,
    /// REST send to arrival, over every delivery.
    pub delivery: Latencies,
    /// The REST round trip of the writes themselves.
    pub rest_p50_ms: f64,
    pub rest_p99_ms: f64,
}

/// What the members of every scenario share: the clock and tallies.
struct Shared {
    origin: Instant,
    delivered: AtomicU64,
    /// Woken on every delivery and every failure.
    progress: Notify,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            delivered: AtomicU64::new(0),
            progress: Notify::new(),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
    }

    fn micros(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    fn fail(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(message);
        self.progress.notify_one();
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `delivered` events in all have arrived, or `patience` passed.
    async fn wait_for(&self, delivered: u64, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if self.delivered.load(Ordering::Acquire) >= delivered {
                return true;
            }
            if tokio::time::timeout_at(deadline, self.progress.notified())
                .await
                .is_err()
            {
                return self.delivered.load(Ordering::Acquire) >= delivered;
            }
        }
    }
}

/// One member's arrivals: (write number, microseconds since [`Shared::origin`]).
type Arrivals = Vec<(u32, u64)>;

/// Connections opened by this process so far, which picks each one's source address.
static OPENED: AtomicUsize = AtomicUsize::new(0);

fn source_address(connection: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + ((connection / PER_SOURCE) % 250) as u8)
}

/// Held connections, each with a task that reads its events until told to stop.
struct Members {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Arrivals>>,
    opened: usize,
    open_secs: f64,
    sources: usize,
}

impl Members {
    /// Opens `count` connections, connection `i` entering `rooms[i % rooms.len()]`, and
    /// returns once each is in its room or has failed (or `patience` passed).
    async fn open(
        target: &Target,
        shared: &Arc<Shared>,
        count: usize,
        rooms: &[u64],
        patience: Duration,
    ) -> Self {
        let server = target.addr;
        let url = Arc::<str>::from(format!("ws://{server}/v1/realtime"));
        // Signed before the clock starts: a real client brings its UserSig along.
        let now = SystemClock.unix_secs();
        let credentials: Vec<Credentials> = (0..count)
            .map(|i| {
                let userid = format!("rt-user-{i}");
                Credentials {
                    sdkappid: SDKAPPID,
                    usersig: liveroom_usersig::generate(
                        SDKAPPID,
                        SECRET_KEY,
                        &userid,
                        now,
                        2 * 86_400,
                    ),
                    userid,
                }
            })
            .collect();
        let first = OPENED.fetch_add(count, Ordering::Relaxed);
        let sources = (first..first + count)
            .map(source_address)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let (stop, stopped) = watch::channel(false);
        let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
        // Connections in their room, and connections that failed to get there.
        let ready = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks = credentials
            .into_iter()
            .enumerate()
            .map(|(i, credentials)| {
                let room = room_id(rooms[i % rooms.len()]);
                let source = source_address(first + i);
                let (url, shared, opening) = (url.clone(), shared.clone(), opening.clone());
                let (ready, failed) = (ready.clone(), failed.clone());
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let permit = opening.acquire_owned().await;
                    let client = match join(server, &url, source, &credentials, &room).await {
                        Ok(client) => client,
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Release);
                            shared.fail(format!("connection {i} from {source}: {e:#}"));
                            return Vec::new();
                        }
                    };
                    drop(permit);
                    ready.fetch_add(1, Ordering::Release);
                    shared.progress.notify_one();
                    listen(client, &shared, stopped).await
                })
            })
            .collect();
        let deadline = tokio::time::Instant::now() + patience;
        let settled = || ready.load(Ordering::Acquire) + failed.load(Ordering::Acquire);
        while settled() < count {
            if tokio::time::timeout_at(deadline, shared.progress.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let opened = ready.load(Ordering::Acquire);
        let open_secs = started.elapsed().as_secs_f64();
        if settled() < count {
            shared.fail(format!(
                "only {opened} of {count} connections opened within {patience:?}"
            ));
        }
        Self {
            shared: shared.clone(),
            stop,
            tasks,
            opened,
            open_secs,
            sources,
        }
    }

    /// Stops every member; answers each one's arrivals.
    async fn finish(self) -> Vec<Arrivals> {
        self.stop.send_replace(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            match task.await {
                Ok(arrivals) => all.push(arrivals),
                Err(e) => self.shared.fail(format!("member task failed: {e}")),
            }
        }
        all
    }
}

/// Connects from `source`, says `hello` and enters `room`.
async fn join(
    server: SocketAddr,
    url: &str,
    source: Ipv4Addr,
    credentials: &Credentials,
    room: &str,
) -> anyhow::Result<Client> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddrV4::new(source, 0).into())
        .with_context(|| format!("cannot bind to {source}"))?;
    let stream = socket.connect(server).await.context("connect")?;
    stream.set_nodelay(true)?;
    let mut client = Client::connect_on(stream, url, credentials)
        .await
        .context("hello")?;
    client.enter(room).await.context("enter")?;
    Ok(client)
}

/// Reads events until `stopped` flips, noting when each write's event arrived.
async fn listen(
    mut client: Client,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
) -> Arrivals {
    let mut arrivals = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = stopped.changed() => break,
            event = client.next_event() => {
                let at = shared.micros();
                match event {
                    Ok(event) => {
                        let write = (event.ev == "room.metadata.set")
                            .then(|| event.d["metadata"][KEY].as_str()?.parse::<u32>().ok())
                            .flatten();
                        match write {
                            Some(write) => {
                                arrivals.push((write, at));
                                shared.delivered.fetch_add(1, Ordering::Release);
                                shared.progress.notify_one();
                            }
                            // Live events (other members coming and going, counts) are not
                            // the writes measured (docs/protocol.md, "Live events").
                            None if event.position.is_none() && !event.ev.starts_with("sub.") => {}
                            None => shared.fail(format!("unexpected event {} {}", event.ev, event.d)),
                        }
                    }
                    Err(e) => {
                        shared.fail(format!("member connection: {e}"));
                        break;
                    }
                }
            }
        }
    }
    arrivals
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

fn latencies(histogram: &Histogram<u64>) -> Latencies {
    let ms = |us: u64| us as f64 / 1000.0;
    Latencies {
        deliveries: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
    }
}

/// CPU time of the server and of this process, to turn into cores over a window.
struct CpuClock {
    server_pid: u32,
    at: Instant,
    server: Duration,
    bench: Duration,
}

impl CpuClock {
    fn start(server_pid: u32) -> Self {
        Self {
            server_pid,
            at: Instant::now(),
            server: system::cpu_time(server_pid).unwrap_or_default(),
            bench: system::cpu_time(std::process::id()).unwrap_or_default(),
        }
    }

    /// (server, bench) cores since the start.
    fn cores(&self) -> (f64, f64) {
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        let server = system::cpu_time(self.server_pid).unwrap_or_default();
        let bench = system::cpu_time(std::process::id()).unwrap_or_default();
        (
            server.saturating_sub(self.server).as_secs_f64() / secs,
            bench.saturating_sub(self.bench).as_secs_f64() / secs,
        )
    }
}

/// The soft open-file limit of process `pid`.
fn fd_limit_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the chosen real-time scenarios (`wanted` by name) against `target`.
pub async fn run(
    settings: &Settings,
    target: &Target,
    bench_fd_limit: FdLimit,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<RealtimeReport> {
    let server_fd_limit = fd_limit_of(target.pid);
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let limit = bench_fd_limit
        .soft
        .min(server_fd_limit.unwrap_or(bench_fd_limit.soft));
    let room = limit.saturating_sub(FD_RESERVE) as usize;
    let shared = Shared::new();
    let mut caller = Caller::connect(target.addr).await?;

    let connections = if wanted(CONNECTIONS) {
        let count = match (settings.connections, settings.quick) {
            (Some(n), _) => n,
            (None, true) => 200,
            (None, false) => room,
        };
        ensure!(
            count >= 1 && count <= room,
            "--rt-connections {count}: the open-file limit ({limit}) leaves room for {room} \
             connections (one file each on both sides, {FD_RESERVE} kept for the rest); more need \
             a higher hard limit, or several client processes"
        );
        Some(connections(target, &shared, &mut caller, count).await?)
    } else {
        None
    };
    let fanout = if wanted(FANOUT) {
        let members = if settings.quick {
            200
        } else {
            settings.members
        };
        ensure!(
            members >= 1 && members <= room,
            "--rt-members {members}: the open-file limit ({limit}) leaves room for {room}"
        );
        Some(fanout(target, &shared, settings.quick, members).await?)
    } else {
        None
    };
    let latency = if wanted(LATENCY) {
        Some(latency(target, &shared, settings.quick).await?)
    } else {
        None
    };
    Ok(RealtimeReport {
        bench_fd_limit,
        server_fd_limit,
        load_average,
        connections,
        fanout,
        latency,
        errors: shared.errors(),
        first_error: shared.first_error(),
    })
}

/// Sends write `write` (setting [`KEY`] of `room` to its number).
async fn write(caller: &mut Caller, api: &Api, shared: &Shared, room: u64, write: u32) {
    if let Err(e) = caller
        .call(api.set_value(room, KEY, &write.to_string()))
        .await
    {
        shared.fail(format!("set_room_metadata {write}: {e}"));
    }
}

async fn connections(
    target: &Target,
    shared: &Arc<Shared>,
    caller: &mut Caller,
    count: usize,
) -> anyhow::Result<ConnectionsReport> {
    let rss_before = system::rss_bytes(target.pid)?;
    let bench_rss_before = system::rss_bytes(std::process::id())?;
    let rooms: Vec<u64> = (0..CONNECTION_ROOMS).collect();
    eprintln!(
        "{CONNECTIONS}: opening {} connections …",
        thousands(count as f64)
    );
    let cpu = CpuClock::start(target.pid);
    let patience = Duration::from_secs(30 + count as u64 / 200);
    let members = Members::open(target, shared, count, &rooms, patience).await;
    let (server_cpu_cores, bench_cpu_cores) = cpu.cores();
    // Let the server finish whatever the last connections started.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = system::rss_bytes(target.pid)?;
    let bench_rss_after = system::rss_bytes(std::process::id())?;
    let opened = members.opened;
    let per_connection =
        |before: u64, after: u64| after.saturating_sub(before) as f64 / opened.max(1) as f64;
    let bytes_per_connection = per_connection(rss_before, rss_after);
    let bench_bytes_per_connection = per_connection(bench_rss_before, bench_rss_after);
    eprintln!(
        "{CONNECTIONS}: {} open in {:.1} s ({} /s) from {} source address(es); server RSS {:.0} → {:.0} MB, \
         {:.1} KiB per connection (client side {:.1} KiB)",
        thousands(opened as f64),
        members.open_secs,
        thousands(opened as f64 / members.open_secs),
        members.sources,
        rss_before as f64 / 1e6,
        rss_after as f64 / 1e6,
        bytes_per_connection / 1024.0,
        bench_bytes_per_connection / 1024.0,
    );

    // Every held connection is alive and in its room: one write per room reaches all of them.
    let before = shared.delivered.load(Ordering::Acquire);
    for room in &rooms {
        write(caller, &target.api, shared, *room, 0).await;
    }
    let all = before + opened as u64;
    if !shared.wait_for(all, DELIVERY_PATIENCE).await {
        let got = shared.delivered.load(Ordering::Acquire) - before;
        shared.fail(format!(
            "{CONNECTIONS}: {} of {opened} held connections did not receive their room's event",
            opened as u64 - got.min(opened as u64)
        ));
    }
    let events_delivered = shared.delivered.load(Ordering::Acquire) - before;
    let (sources, open_secs) = (members.sources, members.open_secs);
    members.finish().await;
    Ok(ConnectionsReport {
        requested: count,
        opened,
        source_addresses: sources,
        open_secs,
        opened_per_sec: opened as f64 / open_secs,
        server_rss_before_mb: rss_before as f64 / 1e6,
        server_rss_after_mb: rss_after as f64 / 1e6,
        bytes_per_connection,
        bench_bytes_per_connection,
        server_cpu_cores,
        bench_cpu_cores,
        events_delivered,
    })
}

async fn fanout(
    target: &Target,
    shared: &Arc<Shared>,
    quick: bool,
    count: usize,
) -> anyhow::Result<FanoutReport> {
    let (isolated_writes, paced_writes, interval, burst_writes, burst_callers) = if quick {
        (2, 5, Duration::from_millis(50), 20, 2)
    } else {
        (5, 25, Duration::from_millis(200), 100, 4)
    };
    // Write numbers: isolated first, then paced, then the burst.
    let paced_from = isolated_writes;
    let burst_from = paced_from + paced_writes;
    let total_writes = burst_from + burst_writes;
    eprintln!(
        "{FANOUT}: opening {} members of one room …",
        thousands(count as f64)
    );
    let patience = Duration::from_secs(30 + count as u64 / 200);
    let members = Members::open(target, shared, count, &[FANOUT_ROOM], patience).await;
    let opened = members.opened as u64;
    let sent: Arc<[AtomicU64]> = (0..total_writes).map(|_| AtomicU64::new(0)).collect();
    let before = shared.delivered.load(Ordering::Acquire);

    let mut caller = Caller::connect(target.addr).await?;
    // Isolated: each write alone in the room.
    for i in 0..paced_from {
        sent[i].store(shared.micros(), Ordering::Relaxed);
        write(&mut caller, &target.api, shared, FANOUT_ROOM, i as u32).await;
        if !shared
            .wait_for(before + opened * (i as u64 + 1), DELIVERY_PATIENCE)
            .await
        {
            shared.fail(format!("{FANOUT}: isolated write {i}: events missing"));
        }
    }

    // Paced: one write every `interval`, whether the previous one has reached everyone or not.
    let cpu = CpuClock::start(target.pid);
    let start = tokio::time::Instant::now();
    for (n, i) in (paced_from..burst_from).enumerate() {
        tokio::time::sleep_until(start + interval * n as u32).await;
        sent[i].store(shared.micros(), Ordering::Relaxed);
        write(&mut caller, &target.api, shared, FANOUT_ROOM, i as u32).await;
    }
    let paced_all = before + opened * burst_from as u64;
    if !shared.wait_for(paced_all, DELIVERY_PATIENCE).await {
        shared.fail(format!("{FANOUT}: paced writes: events missing"));
    }
    let (paced_server_cpu_cores, paced_bench_cpu_cores) = cpu.cores();
    eprintln!("{FANOUT}: {paced_writes} paced writes delivered; burst of {burst_writes} …");

    // Burst: writes back to back from several REST connections.
    let cpu = CpuClock::start(target.pid);
    let next = Arc::new(AtomicUsize::new(burst_from));
    let mut callers = Vec::new();
    for _ in 0..burst_callers {
        let mut caller = Caller::connect(target.addr).await?;
        let (next, sent, shared, api) = (
            next.clone(),
            sent.clone(),
            shared.clone(),
            target.api.clone(),
        );
        callers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total_writes {
                    break;
                }
                sent[i].store(shared.micros(), Ordering::Relaxed);
                write(&mut caller, &api, &shared, FANOUT_ROOM, i as u32).await;
            }
        }));
    }
    for caller in callers {
        caller.await?;
    }
    let burst_all = before + opened * total_writes as u64;
    if !shared.wait_for(burst_all, DELIVERY_PATIENCE).await {
        shared.fail(format!("{FANOUT}: burst writes: events missing"));
    }
    let (burst_server_cpu_cores, burst_bench_cpu_cores) = cpu.cores();
    let (open_secs, opened) = (members.open_secs, members.opened);
    let arrivals = members.finish().await;

    let sent: Vec<u64> = sent.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let (mut isolated, mut paced, mut burst) = (histogram(), histogram(), histogram());
    // Per write before the burst, its last delivery.
    let mut last_member = vec![0u64; burst_from];
    let mut burst_end = 0u64;
    let mut missing = 0u64;
    for member in &arrivals {
        if member.len() < total_writes {
            missing += (total_writes - member.len()) as u64;
        }
        for &(write, at) in member {
            let i = write as usize;
            let Some(&sent_at) = sent.get(i) else {
                continue;
            };
            let us = at.saturating_sub(sent_at).clamp(1, MAX_LATENCY_US);
            if i < burst_from {
                let phase = if i < paced_from {
                    &mut isolated
                } else {
                    &mut paced
                };
                phase.saturating_record(us);
                last_member[i] = last_member[i].max(us);
            } else {
                burst.saturating_record(us);
                burst_end = burst_end.max(at);
            }
        }
    }
    if missing > 0 {
        shared.fail(format!("{FANOUT}: {missing} deliveries missing"));
    }
    let burst_start = sent[burst_from..].iter().copied().min().unwrap_or(0);
    let burst_secs = burst_end.saturating_sub(burst_start) as f64 / 1e6;
    let ms = |us: &[u64]| {
        us.iter()
            .map(|&us| us as f64 / 1000.0)
            .collect::<Vec<f64>>()
    };
    let (isolated_last, last) = (
        ms(&last_member[..paced_from]),
        ms(&last_member[paced_from..]),
    );
    let report = FanoutReport {
        members: opened,
        open_secs,
        isolated_writes,
        isolated: latencies(&isolated),
        isolated_last_member_ms: crate::report::median(isolated_last),
        paced_writes,
        paced_interval_ms: interval.as_secs_f64() * 1000.0,
        paced: latencies(&paced),
        last_member_median_ms: crate::report::median(last.clone()),
        last_member_max_ms: last.iter().copied().fold(0.0, f64::max),
        paced_server_cpu_cores,
        paced_bench_cpu_cores,
        burst_writes,
        burst_callers,
        burst_secs,
        burst_deliveries_per_sec: burst.len() as f64 / burst_secs.max(1e-9),
        burst_writes_per_sec: burst_writes as f64 / burst_secs.max(1e-9),
        burst: latencies(&burst),
        burst_server_cpu_cores,
        burst_bench_cpu_cores,
        burst_deliveries_per_server_cpu_sec: burst.len() as f64
            / (burst_server_cpu_cores * burst_secs).max(1e-9),
        burst_deliveries_per_bench_cpu_sec: burst.len() as f64
            / (burst_bench_cpu_cores * burst_secs).max(1e-9),
    };
    eprintln!(
        "{FANOUT}: {} members: one write alone reaches the last in {:.2} ms; paced p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms; burst {} deliveries/s (server {:.2} cores, bench {:.2} cores)",
        thousands(report.members as f64),
        report.isolated_last_member_ms,
        report.paced.p50_ms,
        report.paced.p99_ms,
        report.paced.max_ms,
        thousands(report.burst_deliveries_per_sec),
        report.burst_server_cpu_cores,
        report.burst_bench_cpu_cores,
    );
    Ok(report)
}

async fn latency(
    target: &Target,
    shared: &Arc<Shared>,
    quick: bool,
) -> anyhow::Result<LatencyReport> {
    const MEMBERS: usize = 10;
    let writes = if quick { 20 } else { 1_000 };
    let members = Members::open(
        target,
        shared,
        MEMBERS,
        &[LATENCY_ROOM],
        Duration::from_secs(30),
    )
    .await;
    let opened = members.opened as u64;
    let mut caller = Caller::connect(target.addr).await?;
    let mut sent = Vec::with_capacity(writes);
    let mut rest = histogram();
    let before = shared.delivered.load(Ordering::Acquire);
    for i in 0..writes {
        let at = shared.micros();
        sent.push(at);
        write(&mut caller, &target.api, shared, LATENCY_ROOM, i as u32).await;
        rest.saturating_record((shared.micros() - at).clamp(1, MAX_LATENCY_US));
        // One at a time: the next write waits until every member has this one.
        if !shared
            .wait_for(before + opened * (i as u64 + 1), DELIVERY_PATIENCE)
            .await
        {
            shared.fail(format!("{LATENCY}: write {i} did not reach every member"));
            break;
        }
    }
    let opened = members.opened;
    let arrivals = members.finish().await;
    let mut delivery = histogram();
    for &(write, at) in arrivals.iter().flatten() {
        if let Some(&sent_at) = sent.get(write as usize) {
            delivery.saturating_record(at.saturating_sub(sent_at).clamp(1, MAX_LATENCY_US));
        }
    }
    let report = LatencyReport {
        members: opened,
        writes,
        delivery: latencies(&delivery),
        rest_p50_ms: rest.value_at_quantile(0.5) as f64 / 1000.0,
        rest_p99_ms: rest.value_at_quantile(0.99) as f64 / 1000.0,
    };
    eprintln!(
        "{LATENCY}: {} writes to {} members: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        writes,
        report.members,
        report.delivery.p50_ms,
        report.delivery.p99_ms,
        report.delivery.max_ms
    );
    Ok(report)
}

impl RealtimeReport {
    pub fn targets(&self) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        if let Some(c) = &self.connections {
            let of_50k = if c.opened >= 50_000 {
                String::new()
            } else {
                " (issue: 50,000; the open-file limit allows no more here)".into()
            };
            checks.push(TargetCheck {
                what: format!(
                    "{} real-time connections{of_50k}: server memory per connection",
                    thousands(c.opened as f64)
                ),
                target: "≤ 16 KiB".into(),
                measured: format!("{:.1} KiB", c.bytes_per_connection / 1024.0),
                met: c.bytes_per_connection <= 16.0 * 1024.0 && c.opened == c.requested,
            });
        }
        if let Some(f) = &self.fanout {
            let of_10k = if f.members >= 10_000 {
                ""
            } else {
                " (issue: 10,000)"
            };
            checks.push(TargetCheck {
                what: format!(
                    "fan-out to {} members{of_10k}: p99 REST send → event",
                    thousands(f.members as f64)
                ),
                target: "≤ 50 ms".into(),
                measured: format!("{:.2} ms", f.paced.p99_ms),
                met: f.paced.p99_ms <= 50.0,
            });
            checks.push(TargetCheck {
                what: format!(
                    "fan-out burst to {} members{of_10k}: deliveries",
                    thousands(f.members as f64)
                ),
                target: "≥ 500,000 /s".into(),
                measured: format!(
                    "{} /s (server {:.2} cores, bench {:.2} cores)",
                    thousands(f.burst_deliveries_per_sec),
                    f.burst_server_cpu_cores,
                    f.burst_bench_cpu_cores
                ),
                met: f.burst_deliveries_per_sec >= 500_000.0,
            });
        }
        if let Some(l) = &self.latency {
            checks.push(TargetCheck {
                what: format!("{}-member room: p99 REST send → event", l.members),
                target: "≤ 5 ms".into(),
                measured: format!("{:.2} ms", l.delivery.p99_ms),
                met: l.delivery.p99_ms <= 5.0,
            });
        }
        checks
    }

    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nReal-time (this build only, a server of its own): open-file limit {} here (hard {}), \
             {} in the server; load average {} at the start.\n",
            self.bench_fd_limit.soft,
            self.bench_fd_limit.hard,
            self.server_fd_limit
                .map_or_else(|| "unknown".into(), |l| l.to_string()),
            self.load_average
                .map_or_else(|| "unknown".into(), |l| format!("{l:.2}")),
        );
        if let Some(c) = &self.connections {
            let _ = writeln!(
                out,
                "- {CONNECTIONS}: {} of {} connections (hello + enter, {} rooms, from {} loopback \
                 source addresses) opened in {:.1} s: {} /s (server {:.2} cores, bench {:.2} cores). \
                 Server RSS {:.1} → {:.1} MB: **{:.1} KiB per connection** (the client side, this \
                 process: {:.1} KiB). One write per room reached {} of them.",
                thousands(c.opened as f64),
                thousands(c.requested as f64),
                CONNECTION_ROOMS,
                c.source_addresses,
                c.open_secs,
                thousands(c.opened_per_sec),
                c.server_cpu_cores,
                c.bench_cpu_cores,
                c.server_rss_before_mb,
                c.server_rss_after_mb,
                c.bytes_per_connection / 1024.0,
                c.bench_bytes_per_connection / 1024.0,
                thousands(c.events_delivered as f64),
            );
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(
                out,
                "- {FANOUT}: {} members in one room (opened in {:.1} s). {} writes one at a time: \
                 p50 {:.2} ms, p99 {:.2} ms, the last member after {:.2} ms (median). {} writes, one every {:.0} ms: \
                 REST send → event p50 {:.2} ms, **p99 {:.2} ms**, max {:.2} ms over {} deliveries; \
                 the last member of a write after {:.2} ms (median; worst {:.2} ms); server {:.2} \
                 cores, bench {:.2} cores. Burst of {} writes from {} REST connections: {} deliveries \
                 in {:.2} s, **{} deliveries/s** ({:.0} writes/s), p50 {:.1} ms, p99 {:.1} ms; server \
                 {:.2} cores, bench {:.2} cores: {} deliveries per server CPU-second, {} per bench \
                 CPU-second.",
                thousands(f.members as f64),
                f.open_secs,
                f.isolated_writes,
                f.isolated.p50_ms,
                f.isolated.p99_ms,
                f.isolated_last_member_ms,
                f.paced_writes,
                f.paced_interval_ms,
                f.paced.p50_ms,
                f.paced.p99_ms,
                f.paced.max_ms,
                thousands(f.paced.deliveries as f64),
                f.last_member_median_ms,
                f.last_member_max_ms,
                f.paced_server_cpu_cores,
                f.paced_bench_cpu_cores,
                f.burst_writes,
                f.burst_callers,
                thousands(f.burst.deliveries as f64),
                f.burst_secs,
                thousands(f.burst_deliveries_per_sec),
                f.burst_writes_per_sec,
                f.burst.p50_ms,
                f.burst.p99_ms,
                f.burst_server_cpu_cores,
                f.burst_bench_cpu_cores,
                thousands(f.burst_deliveries_per_server_cpu_sec),
                thousands(f.burst_deliveries_per_bench_cpu_sec),
            );
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                out,
                "- {LATENCY}: {} members, {} writes one at a time: REST send → event p50 {:.2} ms, \
                 **p99 {:.2} ms**, max {:.2} ms over {} deliveries (the REST answer itself: p50 \
                 {:.2} ms, p99 {:.2} ms).",
                l.members,
                l.writes,
                l.delivery.p50_ms,
                l.delivery.p99_ms,
                l.delivery.max_ms,
                thousands(l.delivery.deliveries as f64),
                l.rest_p50_ms,
                l.rest_p99_ms,
            );
        }
        let _ = writeln!(out, "\nReal-time failures: {}.", self.errors);
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "First real-time failure: {e}");
        }
        out
    }
}
