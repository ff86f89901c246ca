//! How the server's logs are written: to stderr, from a background thread, so that request
//! handlers do not wait on a write(2) per line. The thread blocks rather than drops lines when
//! it falls behind.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use tracing_appender::non_blocking::WorkerGuard as LogGuard;

/// Installs the global subscriber: `LIVEROOM_LOG` filters (any `tracing` filter, default
/// `info`), `LIVEROOM_LOG_FORMAT=json` writes JSON lines. Keep the guard until exit: dropping
/// it flushes what is queued.
pub fn init_logging() -> LogGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The background writer drains every queued line, then flushes: buffered, a busy
        // server makes one write(2) per burst instead of one per request line.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter = EnvFilter::try_from_env("LIVEROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a person at a terminal; plain text for files and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if std::env::var("LIVEROOM_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}
