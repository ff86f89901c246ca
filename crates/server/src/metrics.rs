//! Prometheus metrics, recorded once per request by the gateway and served at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

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

pub(crate) fn record_request(command: &'static str, code: u32, elapsed: Duration) {
    metrics::counter!("liveroom_requests_total", "command" => command, "code" => code.to_string())
        .increment(1);
    metrics::histogram!("liveroom_request_duration_seconds", "command" => command)
        .record(elapsed.as_secs_f64());
}
