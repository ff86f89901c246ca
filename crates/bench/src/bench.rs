//! The benchmark run: place the processes, preload data, start the servers, run every
//! scenario against liveroom (and the --against build's liveroom) and the baseline back to
//! back, run the scale scenario, report.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use liveroom_domain::{Clock, SystemClock};

use crate::children::{ADMIN, PRELOAD_KEYS, SDKAPPID, SECRET_KEY, VALUE_BYTES};
use crate::load::{self, Load, Pace, Workload};
use crate::realtime;
use crate::report::{
    AgainstComparison, Comparison, Machine, Measure, Report, Run, ScaleReport, ScenarioReport,
    Series, Settings, paired_ratio, thousands,
};
use crate::scenarios::{self, Api, Scenario};
use crate::system::{self, ChildGuard, FdLimit, THIS_EXE};
use crate::webhooks;
use crate::{Options, Switch, cluster};

/// How long a server child may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Reading every room of the scale data set stops after this long, whatever is left.
const SCALE_WARMUP_CAP: Duration = Duration::from_secs(300);

/// Where the processes run.
enum Placement {
    Pinned {
        server: usize,
        generator: usize,
    },
    Shared {
        cpus: Vec<usize>,
        asked_to_pin: bool,
    },
}

impl Placement {
    fn server_cpus(&self) -> Vec<usize> {
        match self {
            Placement::Pinned { server, .. } => vec![*server],
            Placement::Shared { .. } => Vec::new(),
        }
    }

    fn describe(&self, workers: usize, generator_workers: usize) -> String {
        match self {
            Placement::Pinned { server, generator } => format!(
                "pinned: servers on CPU {server} ({workers} worker thread(s) each), load generator on CPU \
                 {generator} ({generator_workers} worker thread(s))"
            ),
            Placement::Shared { cpus, asked_to_pin } => format!(
                "{}servers ({workers} worker thread(s) each) and load generator ({generator_workers} worker \
                 thread(s)) share CPUs {cpus:?}",
                if *asked_to_pin {
                    "not pinned (pinning needs 2 CPUs, only 1 is available): "
                } else {
                    "not pinned: "
                }
            ),
        }
    }
}

pub fn run(mut options: Options) -> anyhow::Result<ExitCode> {
    // First, so that every server child inherits it: the real-time scenarios hold one file
    // per connection on each side.
    let fd_limit = system::raise_fd_limit().context("cannot raise the open-file limit")?;
    if options.quick {
        options.duration = 0.6;
        options.warmup = 0.2;
        options.repeat = 1;
        options.scale_rooms = 2_000;
    }
    ensure!(
        options.duration > 0.0 && options.warmup >= 0.0,
        "--duration must be positive and --warmup not negative"
    );
    ensure!(
        options.repeat >= 1 && options.connections >= 1,
        "--repeat and --connections must be at least 1"
    );
    ensure!(options.rate > 0.0, "--rate must be positive");
    // del_room_metadata gives every connection rooms of its own.
    ensure!(
        options.rooms >= options.connections as u64,
        "--rooms must be at least --connections ({})",
        options.connections
    );
    ensure!(options.scale_rooms >= 1, "--scale-rooms must be at least 1");
    if let Some(path) = &options.against {
        options.against =
            Some(executable(path).with_context(|| format!("--against {}", path.display()))?);
    }

    let allowed = system::allowed_cpus();
    let placement = match allowed.as_slice() {
        [server, generator, ..] if options.pin => Placement::Pinned {
            server: *server,
            generator: *generator,
        },
        _ => Placement::Shared {
            cpus: allowed.clone(),
            asked_to_pin: options.pin,
        },
    };
    let pinned = matches!(placement, Placement::Pinned { .. });
    let workers = options.workers.unwrap_or(if pinned { 1 } else { 2 });
    let generator_workers = if pinned { 1 } else { 2 };
    if let Placement::Pinned { generator, .. } = placement {
        // Before the runtime starts its threads, so that all of them inherit it.
        system::pin_current_thread(&[generator]).context("cannot pin the load generator")?;
    }
    let runtime = crate::children::runtime(generator_workers)?;
    let report = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            report = bench(&options, &placement, &allowed, workers, generator_workers, fd_limit) => report,
            // Dropping the benchmark's future kills the servers and removes the data.
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = terminate.recv() => bail!("terminated"),
        }
    })?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    if report.errors > 0 {
        eprintln!("liveroom-bench: {} request(s) failed", report.errors);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The absolute path of `path`, if it is an executable file.
fn executable(path: &Path) -> anyhow::Result<PathBuf> {
    let path = std::fs::canonicalize(path)?;
    let mode = std::fs::metadata(&path)?.permissions().mode();
    ensure!(
        path.is_file() && mode & 0o111 != 0,
        "not an executable file"
    );
    Ok(path)
}

/// The `liveroom` binary for the webhook scenarios (--liveroom, or the one beside this
/// executable), copied into `root` so that a rebuild during the run cannot swap it between
/// the starts that are compared.
fn liveroom_binary(options: &Options, root: &Path) -> anyhow::Result<PathBuf> {
    let path = match &options.liveroom {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("liveroom"),
    };
    let path = executable(&path).with_context(|| {
        format!(
            "the webhook scenarios start the liveroom binary {}: build it (`cargo build -p \
             liveroom`, with --release for a release run) or name one with --liveroom",
            path.display()
        )
    })?;
    let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(binary), Some(bench)) = (built(&path), built(&std::env::current_exe()?))
        && let Ok(older) = bench.duration_since(binary)
        && older > Duration::from_secs(60)
    {
        eprintln!(
            "webhooks: {} was built {:.0} min before this benchmark: if liveroom changed since, \
             rebuild it",
            path.display(),
            older.as_secs_f64() / 60.0
        );
    }
    let copy = root.join("liveroom");
    std::fs::copy(&path, &copy)
        .with_context(|| format!("cannot copy {} into the run's directory", path.display()))?;
    Ok(copy)
}

/// A server child and where it listens.
struct Server {
    /// As the report names it.
    name: &'static str,
    guard: ChildGuard,
    addr: SocketAddr,
}

/// A liveroom-bench executable whose hidden subcommands preload and serve liveroom: this one,
/// or the older one given with --against. Each build gets data directories of its own, as
/// database formats differ between versions.
struct Build {
    /// Its server's name in the report.
    name: &'static str,
    exe: PathBuf,
    /// Whether its server logs every request; older builds never do.
    request_log: bool,
}

impl Build {
    fn this(request_log: Switch) -> Self {
        Self {
            name: "liveroom",
            exe: THIS_EXE.into(),
            request_log: request_log == Switch::On,
        }
    }

    fn against(exe: PathBuf) -> Self {
        Self {
            name: "liveroom (against)",
            exe,
            request_log: false,
        }
    }

    /// Fills a new data dir with `rooms` rooms in a child process that may use every CPU.
    async fn preload(
        &self,
        data_dir: &Path,
        rooms: u64,
        cpus: &[usize],
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut args = vec![
            "__preload".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--rooms".into(),
            rooms.to_string(),
        ];
        args.extend(cpus_arg(cpus));
        let (guard, _stdout) = system::spawn_child(&self.exe, &args, Stdio::inherit())?;
        let what = format!("preload of {}", self.name);
        tokio::task::spawn_blocking(move || guard.wait_success(&what)).await??;
        Ok(started.elapsed())
    }
}

/// Where the stderr of the liveroom serving `data_dir` goes, its request log included: a real
/// file in the run's directory, since writing one is what production pays for.
fn stderr_file(data_dir: &Path) -> PathBuf {
    data_dir.with_extension("log")
}

/// The last lines of a child's stderr file, to show why it failed.
pub(crate) fn tail(path: &Path) -> String {
    const LINES: usize = 10;
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

/// What the servers are started with.
struct ServerSetup {
    workers: usize,
    cpus: Vec<usize>,
}

impl ServerSetup {
    /// Starts `build`'s liveroom on `data_dir`, its stderr appended to [`stderr_file`]. Its
    /// stdout stays a pipe of its own, which carries nothing but the address it announces.
    async fn liveroom(&self, build: &Build, data_dir: &Path) -> anyhow::Result<Server> {
        let mut args = vec![
            "__serve-liveroom".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        if build.request_log {
            args.push("--request-log".into());
        }
        let stderr_path = stderr_file(data_dir);
        // Not a pipe: nobody reads it during the run, and once full it would block the server.
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .with_context(|| format!("cannot open {}", stderr_path.display()))?;
        self.start(build.name, &build.exe, args, stderr.into())
            .await
            .with_context(|| {
                format!(
                    "{} did not start; the end of its stderr ({}):\n{}",
                    build.name,
                    stderr_path.display(),
                    tail(&stderr_path)
                )
            })
    }

    async fn baseline(&self) -> anyhow::Result<Server> {
        let args = vec!["__serve-baseline".into()];
        self.start("baseline", Path::new(THIS_EXE), args, Stdio::inherit())
            .await
    }

    async fn start(
        &self,
        name: &'static str,
        exe: &Path,
        mut args: Vec<String>,
        stderr: Stdio,
    ) -> anyhow::Result<Server> {
        args.extend(["--workers".into(), self.workers.to_string()]);
        args.extend(cpus_arg(&self.cpus));
        let (guard, stdout) = system::spawn_child(exe, &args, stderr)?;
        let addr = system::listening_addr(stdout, START_TIMEOUT).await?;
        Ok(Server { name, guard, addr })
    }
}

fn cpus_arg(cpus: &[usize]) -> Option<String> {
    (!cpus.is_empty()).then(|| {
        format!(
            "--cpus={}",
            cpus.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    })
}

async fn bench(
    options: &Options,
    placement: &Placement,
    allowed: &[usize],
    workers: usize,
    generator_workers: usize,
    fd_limit: FdLimit,
) -> anyhow::Result<Report> {
    let root = tempfile::Builder::new()
        .prefix("liveroom-bench-")
        .tempdir()?;
    let machine = Machine {
        nproc: system::online_cpus(),
        cpu_model: system::cpu_model(),
        placement: placement.describe(workers, generator_workers),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        data_dir: root.path().display().to_string(),
        data_filesystem: system::filesystem(root.path()),
    };
    eprintln!(
        "liveroom-bench: {} CPUs ({}); {}",
        machine.nproc, machine.cpu_model, machine.placement
    );
    eprintln!(
        "liveroom-bench: data in {} ({})",
        machine.data_dir, machine.data_filesystem
    );

    let setup = ServerSetup {
        workers,
        cpus: placement.server_cpus(),
    };
    let this = Build::this(options.request_log);
    let main_dir = root.path().join("main");
    let took = this.preload(&main_dir, options.rooms, allowed).await?;
    eprintln!(
        "preloaded {} rooms in {:.1} s",
        thousands(options.rooms as f64),
        took.as_secs_f64()
    );
    let liveroom = setup.liveroom(&this, &main_dir).await?;
    let against = match options.against.clone().map(Build::against) {
        Some(build) => {
            let dir = root.path().join("against");
            let took = build.preload(&dir, options.rooms, allowed).await?;
            eprintln!(
                "{}: preloaded {} rooms with its own build in {:.1} s",
                build.name,
                thousands(options.rooms as f64),
                took.as_secs_f64()
            );
            Some(setup.liveroom(&build, &dir).await?)
        }
        None => None,
    };
    let baseline = setup.baseline().await?;
    // Every scenario measures these, in this order (but see the alternation below).
    let servers: Vec<&Server> = [Some(&liveroom), against.as_ref(), Some(&baseline)]
        .into_iter()
        .flatten()
        .collect();
    eprintln!(
        "{}",
        servers
            .iter()
            .map(|s| format!("{}: pid {} on {}", s.name, s.guard.pid(), s.addr))
            .collect::<Vec<_>>()
            .join("; ")
    );

    // Valid from now for two days: longer than any run.
    let usersig = liveroom_usersig::generate(
        SDKAPPID,
        SECRET_KEY,
        ADMIN,
        SystemClock.unix_secs(),
        2 * 86_400,
    );
    let api = Api::new(&usersig)?;
    let wanted = |name: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|only| name.contains(only))
    };

    let chosen: Vec<_> = scenarios::all(&api, options.rooms, options.rate)
        .into_iter()
        .filter(|s| wanted(s.name))
        .collect();
    let runs = measure_scenarios(options, &chosen, &servers, against.is_some()).await?;
    let scenarios = chosen
        .iter()
        .zip(runs)
        .map(|(scenario, runs)| {
            // In the order of `servers`.
            let mut series = runs.into_iter().map(Series::new);
            let mut next = || series.next().expect("one series per server");
            let liveroom = next();
            let against = against.is_some().then(&mut next);
            let baseline = next();
            let compared = Measure::compared(matches!(scenario.pace, Pace::Open { .. }));
            ScenarioReport {
                name: scenario.name.into(),
                offered_rate: match scenario.pace {
                    Pace::Open { rate } => Some(rate),
                    Pace::Closed => None,
                },
                throughput_ratio: paired_ratio(&liveroom, &baseline, |r| r.requests_per_sec),
                p99_ratio: paired_ratio(&liveroom, &baseline, |r| r.p99_ms),
                vs_against: against
                    .as_ref()
                    .map(|against| AgainstComparison::new(&liveroom, against, compared)),
                liveroom,
                against,
                baseline,
                target: scenario.target,
            }
        })
        .collect();

    let scale_dir = root.path().join("scale");
    let scale = if wanted("scale") {
        Some(scale(options, &setup, &this, &scale_dir, allowed, &api, &liveroom).await?)
    } else {
        None
    };
    let realtime_dir = root.path().join("realtime");
    let realtime = if realtime::NAMES.iter().any(|name| wanted(name)) {
        eprintln!(
            "real-time: open-file limit {} (hard {})",
            fd_limit.soft, fd_limit.hard
        );
        this.preload(&realtime_dir, realtime::ROOMS, allowed)
            .await?;
        let server = setup.liveroom(&this, &realtime_dir).await?;
        eprintln!(
            "real-time: {}: pid {} on {}",
            server.name,
            server.guard.pid(),
            server.addr
        );
        let target = realtime::Target {
            addr: server.addr,
            pid: server.guard.pid(),
            api: Arc::clone(&api),
        };
        let settings = realtime::Settings {
            connections: options.rt_connections,
            members: options.rt_members,
            quick: options.quick,
        };
        Some(realtime::run(&settings, &target, fd_limit, &wanted).await?)
    } else {
        None
    };
    let webhooks = if webhooks::NAMES.iter().any(|name| wanted(name)) {
        let binary = liveroom_binary(options, root.path())?;
        let (off_dir, on_dir) = (
            root.path().join("webhooks-off"),
            root.path().join("webhooks-on"),
        );
        let off = wanted(webhooks::OVERHEAD).then_some(off_dir.as_path());
        for dir in off.into_iter().chain([on_dir.as_path()]) {
            this.preload(dir, options.rooms, allowed).await?;
        }
        let settings = webhooks::Settings {
            binary,
            quick: options.quick,
            repeat: options.repeat,
            warmup: Duration::from_secs_f64(options.warmup),
            duration: Duration::from_secs_f64(options.duration),
            connections: options.connections,
            rooms: options.rooms,
            backlog: options
                .webhook_backlog
                .unwrap_or(if options.quick { 200 } else { 10_000 }),
            workers: setup.workers,
            cpus: setup.cpus.clone(),
        };
        let dirs = webhooks::Dirs { off, on: &on_dir };
        Some(webhooks::run(&settings, &dirs, &api, &wanted).await?)
    } else {
        None
    };
    let cluster = match (&options.postgres, wanted(cluster::NAME)) {
        (Some(postgres), true) => {
            let settings = cluster::Settings {
                binary: liveroom_binary(options, root.path())?,
                postgres: postgres.clone(),
                quick: options.quick,
                repeat: options.repeat,
                warmup: Duration::from_secs_f64(options.warmup),
                duration: Duration::from_secs_f64(options.duration),
                connections: options.connections,
                rooms: options.rooms,
                workers: setup.workers,
                cpus: setup.cpus.clone(),
            };
            Some(cluster::run(&settings, root.path(), &api).await?)
        }
        (None, true) if options.only.is_some() => {
            anyhow::bail!(
                "the cluster scenarios need a PostgreSQL server: --postgres or TEST_POSTGRES"
            )
        }
        (None, true) => {
            eprintln!("cluster: skipped (no PostgreSQL server: --postgres or TEST_POSTGRES)");
            None
        }
        (_, false) => None,
    };
    // What the request log wrote: production's cost of it, and proof that it was on.
    let request_log_mb = this.request_log.then(|| {
        [&main_dir, &scale_dir, &realtime_dir]
            .map(|dir| std::fs::metadata(stderr_file(dir)).map_or(0, |m| m.len()))
            .iter()
            .sum::<u64>() as f64
            / 1e6
    });
    let settings = Settings {
        quick: options.quick,
        repeats: options.repeat,
        duration_secs: options.duration,
        warmup_secs: options.warmup,
        connections: options.connections,
        rooms: options.rooms,
        scale_rooms: options.scale_rooms,
        open_rate: options.rate,
        request_log: this.request_log,
        request_log_mb,
        against: options.against.as_ref().map(|p| p.display().to_string()),
    };
    Ok(Report::new(
        machine, settings, scenarios, scale, realtime, webhooks, cluster,
    ))
}

/// Runs every scenario `--repeat` times on every server, back to back; returns
/// `runs[scenario][server]`, one run per repeat. With `two_builds`, `servers` starts with this
/// build's liveroom and the --against build's.
async fn measure_scenarios(
    options: &Options,
    chosen: &[Scenario],
    servers: &[&Server],
    two_builds: bool,
) -> anyhow::Result<Vec<Vec<Vec<Run>>>> {
    let mut runs: Vec<Vec<Vec<Run>>> = chosen
        .iter()
        .map(|_| vec![Vec::new(); servers.len()])
        .collect();
    for repeat in 1..=options.repeat {
        for (scenario, runs) in chosen.iter().zip(&mut runs) {
            let mut order: Vec<usize> = (0..servers.len()).collect();
            if two_builds && repeat % 2 == 0 {
                // The two builds take turns going first, so that neither gains from its slot.
                order.swap(0, 1);
            }
            for i in order {
                let run = measure(options, servers[i], scenario.pace, &scenario.workload).await?;
                runs[i].push(run);
            }
            let summary: Vec<String> = servers
                .iter()
                .zip(runs.iter())
                .map(|(server, runs)| {
                    let run = &runs[repeat - 1];
                    format!(
                        "{} {} req/s (p99 {:.3} ms, {} errors)",
                        server.name,
                        thousands(run.requests_per_sec),
                        run.p99_ms,
                        run.errors
                    )
                })
                .collect();
            eprintln!(
                "[{repeat}/{}] {}: {}",
                options.repeat,
                scenario.name,
                summary.join(" | ")
            );
        }
    }
    Ok(runs)
}

async fn measure(
    options: &Options,
    server: &Server,
    pace: Pace,
    workload: &Workload,
) -> anyhow::Result<Run> {
    let load = Load {
        addr: server.addr,
        connections: options.connections,
        warmup: Duration::from_secs_f64(options.warmup),
        duration: Duration::from_secs_f64(options.duration),
        pace,
    };
    Ok(Run::of(
        &load::run(&load, workload, server.guard.pid()).await?,
    ))
}

/// Starts `build`'s liveroom on `data_dir` and returns it with the time from spawn to its
/// first successful answer.
async fn start_and_time(
    setup: &ServerSetup,
    build: &Build,
    data_dir: &Path,
    api: &Api,
) -> anyhow::Result<(Server, Duration)> {
    let spawned = Instant::now();
    let server = setup.liveroom(build, data_dir).await?;
    loop {
        match load::request_once(server.addr, api.get(0)).await {
            Ok(()) => return Ok((server, spawned.elapsed())),
            Err(e) if spawned.elapsed() > START_TIMEOUT => {
                bail!("no successful answer after a restart: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// N rooms preloaded through the store into `dir`; memory after reading them all, time to
/// first answer after a start and after a kill, and get/set throughput at N against the main
/// data set. Only this build: preloading N rooms a second time, for the --against build,
/// would make the longest part of the run twice as long.
async fn scale(
    options: &Options,
    setup: &ServerSetup,
    build: &Build,
    dir: &Path,
    allowed: &[usize],
    api: &Arc<Api>,
    reference: &Server,
) -> anyhow::Result<ScaleReport> {
    let rooms = options.scale_rooms;
    eprintln!("scale: preloading {} rooms …", thousands(rooms as f64));
    let preload_took = build.preload(dir, rooms, allowed).await?;
    eprintln!(
        "scale: preloaded in {:.1} s ({} rooms/s)",
        preload_took.as_secs_f64(),
        thousands(rooms as f64 / preload_took.as_secs_f64())
    );
    let (server, first_start) = start_and_time(setup, build, dir, api).await?;
    eprintln!(
        "scale: pid {}, first answer {:.3} s after spawn; reading every room …",
        server.guard.pid(),
        first_start.as_secs_f64()
    );

    let read_all = Load {
        addr: server.addr,
        connections: options.connections,
        warmup: Duration::ZERO,
        duration: SCALE_WARMUP_CAP,
        pace: Pace::Closed,
    };
    let warmup = load::run(
        &read_all,
        &scenarios::read_every_room(api, rooms),
        server.guard.pid(),
    )
    .await?;
    let rss = warmup.server_rss as f64 / 1e6;
    let warmup_secs = warmup.window.as_secs_f64();
    let warmup = Run::of(&warmup);
    eprintln!(
        "scale: read {} rooms in {warmup_secs:.1} s; RSS {rss:.0} MB",
        thousands(warmup.requests as f64)
    );

    let mut runs: [Vec<Run>; 4] = Default::default();
    for repeat in 1..=options.repeat {
        let loads = [
            (&server, scenarios::random_get(api, rooms)),
            (reference, scenarios::random_get(api, options.rooms)),
            (&server, scenarios::random_set(api, rooms)),
            (reference, scenarios::random_set(api, options.rooms)),
        ];
        for ((target, workload), runs) in loads.iter().zip(&mut runs) {
            runs.push(measure(options, target, Pace::Closed, workload).await?);
        }
        eprintln!(
            "[{repeat}/{}] scale: get {} vs {} req/s, set {} vs {} req/s ({} vs {} rooms)",
            options.repeat,
            thousands(runs[0][repeat - 1].requests_per_sec),
            thousands(runs[1][repeat - 1].requests_per_sec),
            thousands(runs[2][repeat - 1].requests_per_sec),
            thousands(runs[3][repeat - 1].requests_per_sec),
            thousands(rooms as f64),
            thousands(options.rooms as f64),
        );
    }
    let [get_n, get_ref, set_n, set_ref] = runs.map(Series::new);

    // A crash: no clean close; the next start finds whatever the kill left.
    drop(server);
    let (restarted, restart) = start_and_time(setup, build, dir, api).await?;
    drop(restarted);
    eprintln!(
        "scale: first answer {:.3} s after a SIGKILL and restart",
        restart.as_secs_f64()
    );

    let raw_bytes = rooms
        * PRELOAD_KEYS
            .iter()
            .map(|k| (k.len() + VALUE_BYTES) as u64)
            .sum::<u64>();
    Ok(ScaleReport {
        rooms,
        reference_rooms: options.rooms,
        preload_secs: preload_took.as_secs_f64(),
        raw_metadata_mb: raw_bytes as f64 / 1e6,
        first_start_secs: first_start.as_secs_f64(),
        restart_after_kill_secs: restart.as_secs_f64(),
        warmup,
        warmup_secs,
        rss_after_warmup_mb: rss,
        rss_limit_mb: (2 * raw_bytes) as f64 / 1e6 + 200.0,
        get: Comparison {
            ratio: paired_ratio(&get_n, &get_ref, |r| r.requests_per_sec),
            at_scale: get_n,
            at_reference: get_ref,
        },
        set: Comparison {
            ratio: paired_ratio(&set_n, &set_ref, |r| r.requests_per_sec),
            at_scale: set_n,
            at_reference: set_ref,
        },
    })
}
