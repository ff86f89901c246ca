//! Prometheus metrics, recorded once per request by the gateway and served at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use liveroom_protocol::Command;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` if another recorder was
/// installed first (then liveroom's metrics go there).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Folds recorded histogram samples into their summaries. Without it, samples pile up until
/// something scrapes `/metrics` (the exporter runs no upkeep of its own when installed as a
/// bare recorder). Runs until the server stops.
pub(crate) async fn upkeep() {
    let Some(handle) = handle() else { return };
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

pub(crate) fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// One command's series that every request touches, looked up once: finding a series by its
/// labels (hashing them, locking the registry) cost more than the update itself.
struct CommandSeries {
    ok: Counter,
    duration: Histogram,
}

impl CommandSeries {
    fn new(command: &'static str) -> Self {
        Self {
            ok: metrics::counter!("liveroom_requests_total", "command" => command, "code" => "0"),
            duration: metrics::histogram!("liveroom_request_duration_seconds", "command" => command),
        }
    }
}

/// Indexed like [`Command::ALL`], then one for requests whose command is not known.
static SERIES: OnceLock<Vec<CommandSeries>> = OnceLock::new();

/// `command` is `None` when the request named no known command.
pub(crate) fn record_request(command: Option<Command>, code: u32, elapsed: Duration) {
    let series = SERIES.get_or_init(|| {
        handle();
        Command::ALL
            .iter()
            .map(|c| c.name())
            .chain(["-"])
            .map(CommandSeries::new)
            .collect()
    });
    // `Command::ALL` lists the commands in declaration order, so a command's discriminant is
    // its index there.
    let index = command.map_or(Command::ALL.len(), |c| c as usize);
    let Some(series) = series.get(index) else {
        return;
    };
    if code == 0 {
        series.ok.increment(1);
    } else {
        let command = command.map_or("-", Command::name);
        metrics::counter!("liveroom_requests_total", "command" => command, "code" => code.to_string())
            .increment(1);
    }
    series.duration.record(elapsed.as_secs_f64());
}

pub(crate) fn realtime_connection_opened() {
    metrics::gauge!("liveroom_realtime_connections").increment(1);
}

/// The server decided to close a real-time connection with `code` (docs/protocol.md, "Close
/// codes"); it is gone once [`realtime_connection_ended`].
pub(crate) fn realtime_connection_closing(code: u16) {
    metrics::counter!("liveroom_realtime_closes_total", "code" => code.to_string()).increment(1);
}

pub(crate) fn realtime_connection_ended() {
    metrics::gauge!("liveroom_realtime_connections").decrement(1);
}
