//! `liveroom-bench`: runs the real liveroom server and a bare axum baseline as child
//! processes, drives both with the same HTTP/1.1 load generator, and prints throughput,
//! latency, CPU and memory side by side, checked against the targets of issue 3.
//!
//! `main` dispatches between the benchmark itself ([`bench`]) and the hidden child modes
//! ([`children`]) that the benchmark starts by re-running its own executable.

mod bench;
mod binary;
mod children;
mod cluster;
mod load;
mod realtime;
mod report;
mod scenarios;
mod system;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Benchmarks liveroom against the HTTP stack's ceiling on this machine.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    child: Option<ChildMode>,
    #[command(flatten)]
    options: Options,
}

#[derive(Args, Clone)]
pub struct Options {
    /// Seconds measured per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs per measurement; the table shows medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Keep-alive HTTP/1.1 connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Pin the servers to one CPU and the load generator to another.
    #[arg(long)]
    pin: bool,
    /// Tokio worker threads of each server [default: 1 when pinned, else 2].
    #[arg(long)]
    workers: Option<usize>,
    /// Rooms preloaded for the main scenarios; also the reference size of the scale scenario.
    #[arg(long, default_value_t = 1_000)]
    rooms: u64,
    /// Rooms preloaded for the scale scenario.
    #[arg(long, default_value_t = 1_000_000)]
    scale_rooms: u64,
    /// Requests per second offered in the open-loop scenarios.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Real-time connections held by rt-connections [default: as many as the open-file
    /// limit allows].
    #[arg(long, value_name = "N")]
    rt_connections: Option<usize>,
    /// Members of the one room of rt-fanout.
    #[arg(long, value_name = "M", default_value_t = 10_000)]
    rt_members: usize,
    /// Only scenarios whose name contains this text (`scale` for the scale scenario;
    /// `rt-connections`, `rt-fanout`, `rt-latency` for the real-time ones, `rt-` for all three;
    /// `webhooks-overhead`, `webhooks-delivery`, `webhooks-` for both).
    #[arg(long)]
    only: Option<String>,
    /// Print the results as one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Every scenario briefly (CI smoke run): fails only if a request failed.
    #[arg(long)]
    quick: bool,
    /// liveroom's request log: `on` is production's (info, one line per request, to a file).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    request_log: Switch,
    /// The `liveroom` binary the webhook scenarios start [default: `liveroom` beside this
    /// executable, as `cargo build -p liveroom` leaves it].
    #[arg(long, value_name = "PATH")]
    liveroom: Option<PathBuf>,
    /// Writes made while the webhook scenarios' receiver is down [default: 10,000; 200 with
    /// --quick].
    #[arg(long, value_name = "N")]
    webhook_backlog: Option<u64>,
    /// Another (older) liveroom-bench executable whose liveroom is measured beside this one's.
    #[arg(long, value_name = "PATH")]
    against: Option<PathBuf>,
    /// The PostgreSQL server of the cluster scenarios (a libpq connection string; default: the
    /// TEST_POSTGRES variable that scripts/with-postgres.sh sets). Without one they are skipped.
    #[arg(long, value_name = "CONNINFO", env = "TEST_POSTGRES")]
    postgres: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Subcommand)]
enum ChildMode {
    #[command(name = "__serve-liveroom", hide = true)]
    ServeLiveroom {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        workers: usize,
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
        /// Install the production log subscriber. A flag, off when absent: older builds
        /// started with --against get the same arguments minus this one.
        #[arg(long)]
        request_log: bool,
    },
    #[command(name = "__serve-baseline", hide = true)]
    ServeBaseline {
        #[arg(long)]
        workers: usize,
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
    },
    #[command(name = "__preload", hide = true)]
    Preload {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        rooms: u64,
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.child {
        Some(mode) => run_child(mode).map(|()| ExitCode::SUCCESS),
        None => bench::run(cli.options),
    };
    result.unwrap_or_else(|error| {
        eprintln!("liveroom-bench: {error:#}");
        ExitCode::FAILURE
    })
}

fn run_child(mode: ChildMode) -> anyhow::Result<()> {
    system::die_with_parent();
    let cpus = match &mode {
        ChildMode::ServeLiveroom { cpus, .. }
        | ChildMode::ServeBaseline { cpus, .. }
        | ChildMode::Preload { cpus, .. } => cpus,
    };
    if !cpus.is_empty() {
        // Before any thread starts, so that every thread of the child inherits it.
        system::pin_current_thread(cpus)?;
    }
    match mode {
        ChildMode::ServeLiveroom {
            data_dir,
            workers,
            request_log,
            ..
        } => children::serve_liveroom(&data_dir, workers, request_log),
        ChildMode::ServeBaseline { workers, .. } => children::serve_baseline(workers),
        ChildMode::Preload {
            data_dir, rooms, ..
        } => children::preload(&data_dir, rooms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_liveroom_takes_the_arguments_of_older_builds() {
        let cli = Cli::try_parse_from([
            "liveroom-bench",
            "__serve-liveroom",
            "--data-dir",
            "/d",
            "--workers",
            "1",
            "--cpus=0",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            cli.child,
            Some(ChildMode::ServeLiveroom {
                request_log: false,
                ..
            })
        ));
    }

    #[test]
    fn request_log_is_on_unless_turned_off() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(["liveroom-bench"].iter().chain(args))
                .unwrap_or_else(|e| panic!("{e}"));
            cli.options.request_log
        };
        assert_eq!(parse(&[]), Switch::On);
        assert_eq!(parse(&["--request-log", "off"]), Switch::Off);
        assert_eq!(parse(&["--request-log=on"]), Switch::On);
    }
}
