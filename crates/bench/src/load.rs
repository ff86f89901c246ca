//! The load generator: N keep-alive HTTP/1.1 connections on loopback (raw
//! `hyper::client::conn::http1`, one task per connection), closed loop or open loop at a
//! fixed total rate, latencies in an HDR histogram, every answer checked for
//! `"ErrorCode":0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::system;

/// A request that takes longer than this counts as failed, and its connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Latencies are recorded in microseconds up to this bound (larger ones are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;

/// One request of a script.
pub struct Step {
    pub uri: Uri,
    pub body: Bytes,
    /// Whether it counts toward throughput and latency (a `set` that only prepares a
    /// `del_room_metadata` does not). Every answer is checked either way.
    pub measured: bool,
}

/// One connection's sequence of requests; `None` ends that connection early.
pub type Script = Box<dyn FnMut() -> Option<Step> + Send>;
/// Makes the script of connection `i` (of `connections`); connections share no state.
pub type Workload = Arc<dyn Fn(usize, usize) -> Script + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous answer arrives.
    Closed,
    /// `rate` requests per second in total, on a fixed schedule, whatever the answers do.
    Open { rate: f64 },
}

pub struct Load {
    pub addr: SocketAddr,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub pace: Pace,
}

/// What one measurement saw.
/// The name liveroom's SQLite store gives its one writer thread.
const WRITER_THREAD: &str = "liveroom-writer";

pub struct Outcome {
    /// Measured requests answered inside the measured window.
    pub requests: u64,
    /// Failed requests of the whole run, warm-up and unmeasured steps included.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Microseconds.
    pub latency: Histogram<u64>,
    pub window: Duration,
    pub server_cpu: Duration,
    /// The part of `server_cpu` spent by the SQLite writer thread (zero on other backends).
    pub writer_cpu: Duration,
    pub server_rss: u64,
    pub generator_cpu: Duration,
}

/// Per-connection tallies, merged at the end so connections share nothing while running.
struct Tally {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: 0,
            errors: 0,
            first_error: None,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Adds a finished connection's tally (or its failure) to this one.
    fn absorb(&mut self, joined: Result<Tally, tokio::task::JoinError>) -> anyhow::Result<()> {
        match joined {
            Ok(tally) => {
                self.requests += tally.requests;
                self.errors += tally.errors;
                if let Some(e) = tally.first_error {
                    self.first_error.get_or_insert(e);
                }
                self.latency.add(&tally.latency)?;
            }
            Err(join) => self.error(format!("connection task failed: {join}")),
        }
        Ok(())
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }
}

/// The phases of a run, on the tokio clock.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// Runs `workload` against `load.addr` and measures it; `server_pid`'s CPU time and RSS are
/// read from `/proc` over the measured window.
pub async fn run(load: &Load, workload: &Workload, server_pid: u32) -> anyhow::Result<Outcome> {
    let host = HeaderValue::from_str(&load.addr.to_string())?;
    // Connections are opened before the clock starts, so connecting is not measured.
    let mut senders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        senders.push(connect(load.addr).await?);
    }
    let start = Instant::now();
    let window = Window {
        start,
        measure_from: start + load.warmup,
        end: start + load.warmup + load.duration,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sender) in senders.into_iter().enumerate() {
        let script = workload(i, load.connections);
        let pace = match load.pace {
            Pace::Closed => None,
            // Connection i sends at offsets i/rate, (i + n)/rate, …: together, `rate` evenly
            // spaced requests per second.
            Pace::Open { rate } => Some((
                Duration::from_secs_f64(i as f64 / rate),
                Duration::from_secs_f64(load.connections as f64 / rate),
            )),
        };
        tasks.spawn(drive(load.addr, host.clone(), sender, script, window, pace));
    }

    let mut total = Tally::new();
    tokio::time::sleep_until(window.measure_from).await;
    let server_before = system::cpu_time(server_pid)?;
    let writer_before = system::thread_cpu_time(server_pid, WRITER_THREAD)?;
    let self_before = system::cpu_time(std::process::id())?;
    // The window closes at its end, or earlier once every script has run out.
    let measured_until = loop {
        tokio::select! {
            () = tokio::time::sleep_until(window.end) => break window.end,
            joined = tasks.join_next() => match joined {
                Some(joined) => total.absorb(joined)?,
                None => break Instant::now(),
            },
        }
    };
    let server_cpu = system::cpu_time(server_pid)?.saturating_sub(server_before);
    let writer_cpu =
        system::thread_cpu_time(server_pid, WRITER_THREAD)?.saturating_sub(writer_before);
    let generator_cpu = system::cpu_time(std::process::id())?.saturating_sub(self_before);
    let server_rss = system::rss_bytes(server_pid)?;

    // Requests already sent finish within REQUEST_TIMEOUT; anything later is a bug, counted.
    let give_up = window.end + REQUEST_TIMEOUT + Duration::from_secs(5);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(give_up, tasks.join_next()).await {
            Ok(Some(joined)) => total.absorb(joined)?,
            Ok(None) => break,
            Err(_) => {
                total.error(format!(
                    "{} connection(s) did not stop at the deadline",
                    tasks.len()
                ));
                tasks.abort_all();
                break;
            }
        }
    }
    Ok(Outcome {
        requests: total.requests,
        errors: total.errors,
        first_error: total.first_error,
        latency: total.latency,
        window: measured_until.saturating_duration_since(window.measure_from),
        server_cpu,
        writer_cpu,
        server_rss,
        generator_cpu,
    })
}

/// Sends one request on a new connection: `Ok` only for HTTP 200 with `"ErrorCode":0`.
pub async fn request_once(addr: SocketAddr, step: Step) -> Result<(), String> {
    Caller::connect(addr)
        .await
        .map_err(|e| format!("{e:#}"))?
        .call(step)
        .await
}

/// One keep-alive connection that sends requests one at a time, each answer checked as the
/// load's are.
pub struct Caller {
    host: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
}

impl Caller {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            host: HeaderValue::from_str(&addr.to_string())?,
            sender: connect(addr).await?,
        })
    }

    /// `Ok` only for HTTP 200 with `"ErrorCode":0`.
    pub async fn call(&mut self, step: Step) -> Result<(), String> {
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(&mut self.sender, &self.host, step.uri, step.body),
        )
        .await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Answer(message) | Failure::Transport(message))) => Err(message),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // Ends when the sender is dropped or the server closes the connection.
    tokio::spawn(connection);
    Ok(sender)
}

/// One connection's loop. `pace` is `(first offset, interval)` in open loop.
async fn drive(
    addr: SocketAddr,
    host: HeaderValue,
    mut sender: SendRequest<Full<Bytes>>,
    mut script: Script,
    window: Window,
    pace: Option<(Duration, Duration)>,
) -> Tally {
    let mut tally = Tally::new();
    let mut due = pace.map(|(offset, _)| window.start + offset);
    let mut last_answer = window.start;
    loop {
        let now = Instant::now();
        if now >= window.end || due.is_some_and(|d| d >= window.end) {
            break;
        }
        let Some(step) = script() else { break };
        // Open loop measures from when the request was due, so that a slow answer delays
        // the next requests' clocks too (no coordinated omission). If the connection was
        // idle when the request came due, only the timer's own lateness (tokio's timer has
        // millisecond granularity) separates due and sent: that is the generator's, not the
        // server's, so such requests are measured from when they were sent.
        let (due_at, latency_from) = match (due, pace) {
            (Some(at), Some((_, interval))) => {
                due = Some(at + interval);
                if last_answer <= at {
                    tokio::time::sleep_until(at).await;
                    (at, Instant::now())
                } else {
                    (at, at)
                }
            }
            _ => (now, now),
        };
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(&mut sender, &host, step.uri, step.body),
        )
        .await;
        last_answer = Instant::now();
        let failure = match answer {
            Ok(Ok(())) if step.measured => {
                // Throughput counts answers inside the window (in open loop: the rate the
                // server achieved); latency counts requests due inside it, however late.
                if (window.measure_from..window.end).contains(&last_answer) {
                    tally.requests += 1;
                }
                if due_at >= window.measure_from {
                    let micros = (last_answer - latency_from).as_micros() as u64;
                    tally
                        .latency
                        .saturating_record(micros.clamp(1, MAX_LATENCY_US));
                }
                continue;
            }
            Ok(Ok(())) => continue,
            Ok(Err(Failure::Answer(message))) => {
                tally.error(message);
                continue;
            }
            Ok(Err(Failure::Transport(message))) => message,
            Err(_) => format!("no answer within {REQUEST_TIMEOUT:?}"),
        };
        tally.error(failure);
        // The connection is in an unknown state: replace it, or stop if we cannot.
        match connect(addr).await {
            Ok(fresh) => sender = fresh,
            Err(e) => {
                tally.error(format!("reconnect failed: {e:#}"));
                break;
            }
        }
    }
    tally
}

enum Failure {
    /// The server answered, but not with HTTP 200 and `"ErrorCode":0`.
    Answer(String),
    /// The connection failed.
    Transport(String),
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    host: &HeaderValue,
    uri: Uri,
    body: Bytes,
) -> Result<(), Failure> {
    let transport = |e: hyper::Error| Failure::Transport(format!("HTTP: {e}"));
    sender.ready().await.map_err(transport)?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = sender.send_request(request).await.map_err(transport)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(transport)?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(Failure::Answer(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    if !is_success(&body) {
        return Err(Failure::Answer(String::from_utf8_lossy(&body).into_owned()));
    }
    Ok(())
}

/// `"ErrorCode":0` not followed by another digit.
pub fn is_success(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"ErrorCode\":0";
    body.windows(NEEDLE.len() + 1)
        .any(|w| w.starts_with(NEEDLE) && !w[NEEDLE.len()].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_success;

    #[test]
    fn success_means_error_code_zero_exactly() {
        assert!(is_success(
            br#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"x"}"#
        ));
        assert!(is_success(br#"{"ErrorCode":0}"#));
        assert!(!is_success(
            br#"{"ActionStatus":"FAIL","ErrorCode":60007,"RequestId":"x"}"#
        ));
        assert!(!is_success(br#"{"ErrorCode":00}"#));
        assert!(!is_success(b"not json"));
    }
}
