//! The cluster scenarios of issue 11 (docs/cluster.md): the `liveroom` binary on SQLite, on
//! PostgreSQL as one node and as three nodes of one schema, driven by the same closed-loop
//! writes (`set_room_metadata`) and reads (`get_room_metadata`) in alternating runs; `pgbench`
//! on the same PostgreSQL server running a one-row durable UPDATE at the same client count, as
//! the engine's own ceiling; and the latency from a write's REST answer on one node to its
//! event at a member of another, with NOTIFY and with the poll alone.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use liveroom_client::{Client, Credentials};
use serde::Serialize;

use crate::binary::{Launch, Liveroom};
use crate::children::{ADMIN, RATE_LIMIT, SDKAPPID, SECRET_KEY, preloaded_rooms, room_id};
use crate::load::{self, Caller, Load, Outcome, Pace, Workload};
use crate::report::{Run, Series, TargetCheck, median, thousands};
use crate::scenarios::{self, Api};

pub const NAME: &str = "cluster";
const NODES: usize = 3;
/// The poll-only pair's interval: what the no-NOTIFY latency is held to, plus 50 ms.
const POLL_ONLY_MS: u64 = 100;
/// Writes per second while the event latency is measured: a rate every node keeps up with.
const PACED_RATE: f64 = 100.0;

pub struct Settings {
    pub binary: PathBuf,
    /// libpq connection string of the PostgreSQL server to run on.
    pub postgres: String,
    pub quick: bool,
    pub repeat: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    pub rooms: u64,
    pub workers: usize,
    pub cpus: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct Measured {
    pub what: &'static str,
    pub store: &'static str,
    pub series: Series,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub events: u64,
}

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub measured: Vec<Measured>,
    /// pgbench's transactions per second for one durable one-row UPDATE (median of repeats).
    pub pgbench_tps: Option<f64>,
    pub latency_notify: Latency,
    pub latency_poll: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Runs every cluster scenario; `root` holds the data directories.
pub async fn run(
    settings: &Settings,
    root: &Path,
    api: &Arc<Api>,
) -> anyhow::Result<ClusterReport> {
    let backup = root.join("cluster-preload.backup");
    write_preload(&backup, settings.rooms).await?;
    let schema = format!("bench_{}", std::process::id());
    let launch = Launch {
        binary: &settings.binary,
        workers: settings.workers,
        cpus: &settings.cpus,
    };
    let sqlite_dir = root.join("cluster-sqlite");
    let sqlite_config = config_text(None);
    import(settings, &sqlite_dir, &sqlite_config, &backup)?;
    let pg_config = config_text(Some((&settings.postgres, &schema, true, 500)));
    import(settings, &root.join("cluster-import"), &pg_config, &backup)?;

    let sqlite = Liveroom::start(&launch, "sqlite", &sqlite_dir, &sqlite_config).await?;
    let mut nodes = Vec::with_capacity(NODES);
    for n in 0..NODES {
        let dir = root.join(format!("cluster-node-{n}"));
        nodes.push(Liveroom::start(&launch, "postgres", &dir, &pg_config).await?);
    }
    eprintln!(
        "cluster: sqlite pid {}; postgres nodes {:?} on schema {schema}",
        sqlite.guard.pid(),
        nodes.iter().map(|n| n.guard.pid()).collect::<Vec<_>>()
    );

    let writes = scenarios::random_set(api, settings.rooms);
    let reads = scenarios::random_get(api, settings.rooms);
    let measured = {
        let one = [&nodes[0]];
        let three: Vec<&Liveroom> = nodes.iter().collect();
        let plan: [(&'static str, &'static str, &Workload, &[&Liveroom]); 6] = [
            ("set_room_metadata", "sqlite", &writes, &[&sqlite]),
            ("set_room_metadata", "postgres, 1 node", &writes, &one),
            ("set_room_metadata", "postgres, 3 nodes", &writes, &three),
            ("get_room_metadata", "sqlite", &reads, &[&sqlite]),
            ("get_room_metadata", "postgres, 1 node", &reads, &one),
            ("get_room_metadata", "postgres, 3 nodes", &reads, &three),
        ];
        let mut runs: Vec<Vec<Run>> = plan.iter().map(|_| Vec::new()).collect();
        for repeat in 0..settings.repeat {
            for (i, (what, store, workload, targets)) in plan.iter().enumerate() {
                let outcome = measure(settings, workload, targets).await?;
                let run = Run::of(&outcome);
                eprintln!(
                    "[{}/{}] cluster {what} on {store}: {} requests/s (p99 {:.2} ms)",
                    repeat + 1,
                    settings.repeat,
                    thousands(run.requests_per_sec),
                    run.p99_ms
                );
                runs[i].push(run);
            }
        }
        plan.iter()
            .zip(runs)
            .map(|((what, store, ..), runs)| Measured {
                what,
                store,
                series: Series::new(runs),
            })
            .collect::<Vec<_>>()
    };
    drop(sqlite);

    let mut pgbench = Vec::new();
    for _ in 0..settings.repeat {
        match pgbench_tps(settings, &schema) {
            Ok(Some(tps)) => pgbench.push(tps),
            Ok(None) => break,
            Err(error) => {
                eprintln!("cluster: pgbench failed: {error:#}");
                break;
            }
        }
    }

    let latency_notify = event_latency(settings, api, nodes[0].addr, nodes[1].addr).await?;
    drop(nodes);
    let poll_config = config_text(Some((&settings.postgres, &schema, false, POLL_ONLY_MS)));
    let a = Liveroom::start(
        &launch,
        "poll-only",
        &root.join("cluster-poll-a"),
        &poll_config,
    )
    .await?;
    let b = Liveroom::start(
        &launch,
        "poll-only",
        &root.join("cluster-poll-b"),
        &poll_config,
    )
    .await?;
    let latency_poll = event_latency(settings, api, a.addr, b.addr).await?;

    let errors = measured.iter().map(|m| m.series.median.errors).sum();
    let first_error = measured
        .iter()
        .find_map(|m| m.series.median.first_error.clone());
    Ok(ClusterReport {
        measured,
        pgbench_tps: (!pgbench.is_empty()).then(|| median(pgbench)),
        latency_notify,
        latency_poll,
        errors,
        first_error,
    })
}

/// The binary's configuration: the benchmark's app, and `(url, schema, notify, poll_ms)` for
/// PostgreSQL, or SQLite.
fn config_text(postgres: Option<(&str, &str, bool, u64)>) -> String {
    let mut text = format!(
        "[auth_failure_throttle]\nmax_failures = 0\n\n\
         [[apps]]\nsdkappid = {SDKAPPID}\nsecret_key = \"{SECRET_KEY}\"\nadmins = [\"{ADMIN}\"]\n\n\
         [apps.rate_limits]\n\"*\" = {RATE_LIMIT}\n"
    );
    if let Some((url, schema, notify, poll_ms)) = postgres {
        let _ = write!(
            text,
            "\n[storage]\nbackend = \"postgres\"\n[storage.postgres]\nurl = {url:?}\n\
             schema = \"{schema}\"\nnotify = {notify}\npoll_ms = {poll_ms}\n\
             pool_size = {}\n",
            16
        );
    }
    text
}

/// A backup of the preloaded rooms (the main scenarios' shape), made in memory.
async fn write_preload(path: &Path, rooms: u64) -> anyhow::Result<()> {
    let store = liveroom_store::MemoryStore::new();
    store.import_rooms(SDKAPPID, preloaded_rooms(rooms)).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    liveroom_store::backup::export(&store, &mut out).await?;
    Ok(())
}

/// `liveroom import` of `backup` into the store `config` names (SQLite in `dir`).
fn import(settings: &Settings, dir: &Path, config: &str, backup: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = dir.with_extension("import.toml");
    std::fs::write(&file, config)?;
    let status = Command::new(&settings.binary)
        .arg("import")
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir)
        .arg("--input")
        .arg(backup)
        .env("LIVEROOM_LOG", "warn")
        .status()
        .context("cannot run liveroom import")?;
    anyhow::ensure!(status.success(), "liveroom import: {status}");
    Ok(())
}

/// One closed-loop run of `workload` spread over `targets`' nodes, as one measurement.
async fn measure(
    settings: &Settings,
    workload: &Workload,
    targets: &[&Liveroom],
) -> anyhow::Result<Outcome> {
    let per_node = (settings.connections / targets.len()).max(1);
    let runs = targets.iter().map(|node| {
        let load = Load {
            addr: node.addr,
            connections: per_node,
            warmup: settings.warmup,
            duration: settings.duration,
            pace: Pace::Closed,
        };
        let pid = node.guard.pid();
        async move { load::run(&load, workload, pid).await }
    });
    let outcomes = futures_util::future::join_all(runs).await;
    let mut total: Option<Outcome> = None;
    for outcome in outcomes {
        let outcome = outcome?;
        total = Some(match total {
            None => outcome,
            Some(mut sum) => {
                sum.requests += outcome.requests;
                sum.errors += outcome.errors;
                sum.first_error = sum.first_error.or(outcome.first_error);
                sum.latency.add(&outcome.latency)?;
                sum.window = sum.window.max(outcome.window);
                sum.server_cpu += outcome.server_cpu;
                sum.writer_cpu += outcome.writer_cpu;
                sum.server_rss += outcome.server_rss;
                sum.generator_cpu = sum.generator_cpu.max(outcome.generator_cpu);
                sum
            }
        });
    }
    total.context("no node to measure")
}

fn find_pgbench() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin/pgbench")))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// pgbench's TPS for `UPDATE … SET v = v + 1 WHERE id = <random room>` on a table of as many
/// rows as rooms, at the same client count, durable (`synchronous_commit = on`); `None`
/// without pgbench.
fn pgbench_tps(settings: &Settings, schema: &str) -> anyhow::Result<Option<f64>> {
    let Some(pgbench) = find_pgbench() else {
        eprintln!("cluster: no pgbench found; its ceiling is not measured");
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("update.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {})\nUPDATE bench_rows SET v = v + 1 WHERE id = :id;\n",
            settings.rooms
        ),
    )?;
    let conninfo = format!(
        "{} options='-c search_path={schema} -c synchronous_commit=on'",
        settings.postgres
    );
    let setup = format!(
        "DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows (id INT PRIMARY KEY, v BIGINT NOT NULL); \
         INSERT INTO bench_rows SELECT g, 0 FROM generate_series(1, {}) g;",
        settings.rooms
    );
    let psql = pgbench.with_file_name("psql");
    let status = Command::new(&psql)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", &setup, &conninfo])
        .status()
        .with_context(|| format!("cannot run {}", psql.display()))?;
    anyhow::ensure!(status.success(), "psql: {status}");
    let output = Command::new(&pgbench)
        .args(["-n", "-j", "2"])
        .arg(format!("-c{}", settings.connections))
        .arg(format!("-T{}", settings.duration.as_secs().max(1)))
        .arg("-f")
        .arg(&script)
        .arg(&conninfo)
        .output()
        .context("cannot run pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{text}"))?;
    Ok(Some(tps))
}

/// Writes through `writer` at a fixed rate while a member of `reader` follows the room; each
/// event's arrival minus its write's REST answer.
async fn event_latency(
    settings: &Settings,
    api: &Arc<Api>,
    writer: SocketAddr,
    reader: SocketAddr,
) -> anyhow::Result<Latency> {
    let room = 0;
    let credentials = Credentials {
        sdkappid: SDKAPPID,
        userid: "watcher".into(),
        usersig: liveroom_usersig::generate(
            SDKAPPID,
            SECRET_KEY,
            "watcher",
            liveroom_domain::Clock::unix_secs(&liveroom_domain::SystemClock),
            86_400,
        ),
    };
    let mut watcher = Client::connect(&format!("ws://{reader}/v1/realtime"), &credentials)
        .await
        .context("the watcher's hello")?;
    watcher.enter(&room_id(room)).await.context("enter")?;
    let answered: Arc<Mutex<Vec<Option<Instant>>>> = Arc::default();
    let writes = if settings.quick {
        50
    } else {
        (PACED_RATE * 5.0) as u64
    };
    let next = Arc::new(AtomicU64::new(0));
    let writing = {
        let (api, answered, next) = (Arc::clone(api), Arc::clone(&answered), Arc::clone(&next));
        tokio::spawn(async move {
            let mut caller = Caller::connect(writer).await?;
            let mut due = tokio::time::Instant::now();
            for _ in 0..writes {
                tokio::time::sleep_until(due).await;
                due += Duration::from_secs_f64(1.0 / PACED_RATE);
                let id = next.fetch_add(1, Ordering::Relaxed);
                let step = api.set_value(room, "lat", &format!("{id}"));
                caller.call(step).await.map_err(anyhow::Error::msg)?;
                let mut answered = answered.lock().expect("not poisoned");
                answered.resize(id as usize + 1, None);
                answered[id as usize] = Some(Instant::now());
            }
            anyhow::Ok(())
        })
    };
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid");
    let mut seen = 0;
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs_f64(writes as f64 / PACED_RATE)
        + Duration::from_secs(30);
    while seen < writes {
        let event = tokio::time::timeout_at(deadline, watcher.next_event())
            .await
            .context("events stopped arriving")??;
        let arrived = Instant::now();
        let Some(id) = event.d["metadata"]["lat"]
            .as_str()
            .and_then(|v| v.parse::<usize>().ok())
        else {
            continue;
        };
        seen += 1;
        // An event may beat its own REST answer here: counted as zero.
        let answer = answered
            .lock()
            .expect("not poisoned")
            .get(id)
            .copied()
            .flatten();
        let micros = answer.map_or(0, |a| arrived.saturating_duration_since(a).as_micros());
        histogram.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
    }
    writing.await??;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Latency {
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        events: seen,
    })
}

impl ClusterReport {
    fn rate(&self, what: &str, store: &str) -> f64 {
        self.measured
            .iter()
            .find(|m| m.what == what && m.store == store)
            .map_or(f64::NAN, |m| m.series.median.requests_per_sec)
    }

    pub fn targets(&self) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        let one_writes = self.rate("set_room_metadata", "postgres, 1 node");
        if let Some(tps) = self.pgbench_tps {
            let ratio = one_writes / tps;
            checks.push(TargetCheck {
                what: "cluster: durable set_room_metadata on one PostgreSQL node ÷ pgbench's one-row UPDATE".into(),
                target: "≥ 0.50 ×".into(),
                measured: format!("{ratio:.2} × ({} vs {} tps)", thousands(one_writes), thousands(tps)),
                met: ratio >= 0.5,
            });
        }
        let (one, three) = (
            self.rate("get_room_metadata", "postgres, 1 node"),
            self.rate("get_room_metadata", "postgres, 3 nodes"),
        );
        checks.push(TargetCheck {
            what: "cluster: get_room_metadata on three nodes ÷ one node".into(),
            target: "≥ 1.50 ×".into(),
            measured: format!(
                "{:.2} × ({} vs {} reads/s)",
                three / one,
                thousands(three),
                thousands(one)
            ),
            met: three / one >= 1.5,
        });
        checks.push(TargetCheck {
            what:
                "cluster: REST answer on one node → event at a member of another, p99, with NOTIFY"
                    .into(),
            target: "≤ 50 ms".into(),
            measured: format!("{:.1} ms", self.latency_notify.p99_ms),
            met: self.latency_notify.p99_ms <= 50.0,
        });
        let bound = POLL_ONLY_MS as f64 + 50.0;
        checks.push(TargetCheck {
            what: format!("cluster: the same without NOTIFY (poll every {POLL_ONLY_MS} ms), p99"),
            target: format!("≤ {bound:.0} ms"),
            measured: format!("{:.1} ms", self.latency_poll.p99_ms),
            met: self.latency_poll.p99_ms <= bound,
        });
        checks
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "\nCluster (the `liveroom` binary; PostgreSQL nodes on one schema, NOTIFY on; closed loop, \
             connections split evenly over the nodes):\n\n\
             | request | store | requests/s | p50 ms | p99 ms | errors | server CPU |\n\
             |---|---|--:|--:|--:|--:|--:|\n",
        );
        for m in &self.measured {
            let r = &m.series.median;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.3} | {} | {:.2} cores |",
                m.what,
                m.store,
                thousands(r.requests_per_sec),
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.server_cpu_cores
            );
        }
        match self.pgbench_tps {
            Some(tps) => {
                let _ = writeln!(
                    out,
                    "\npgbench, one durable one-row UPDATE per transaction on the same server and client count: {} tps.",
                    thousands(tps)
                );
            }
            None => out.push_str("\npgbench: not measured.\n"),
        }
        for (name, l) in [
            ("with NOTIFY", &self.latency_notify),
            ("poll only", &self.latency_poll),
        ] {
            let _ = writeln!(
                out,
                "- cross-node event latency {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events at {PACED_RATE} writes/s)",
                l.p50_ms, l.p99_ms, l.max_ms, l.events
            );
        }
        out
    }
}
