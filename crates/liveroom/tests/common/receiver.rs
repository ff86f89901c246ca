//! A webhook receiver on loopback for `webhooks.rs`: a real HTTP/1.1 server on
//! `127.0.0.1:<port>` that records every request it reads (target, headers, body, order of
//! arrival, what it answered) and answers as its mode says. It can also go down (stop
//! listening and drop its connections, so that connecting is refused) and come back up on the
//! same port, as a receiver's restart looks to liveroom.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The answer of a Tencent callback receiver that took the request.
pub const OK_BODY: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

/// Decides, from a before-send question's body, whether to block the message.
pub type Blocks = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// How the receiver answers.
#[derive(Clone)]
pub enum Mode {
    /// 200 with [`OK_BODY`].
    Ok,
    /// This status (e.g. 503) with an empty body.
    Status(u16),
    /// No answer at all, until the mode changes: then the held requests are answered as the
    /// new mode says.
    Hang,
    /// The before-send hook (docs/webhooks.md §7): 200 with `{"ErrorCode":1}` when the
    /// predicate says block, `{"ErrorCode":0}` otherwise.
    BeforeSend(Blocks),
}

/// One request as the receiver read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Its place in the order of arrival, from 0.
    pub index: usize,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered, once it was (`None`: held, or its connection dropped first).
    pub answered: Option<u16>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    /// The query's pairs in order, undecoded (liveroom's values need no escapes).
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (pair.to_owned(), String::new()),
            })
            .collect()
    }

    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn delivered(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    /// Signalled on every arrival and every answer.
    changed: Condvar,
    mode: watch::Sender<Mode>,
}

pub struct Receiver {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    port: u16,
    /// The accept loop while listening; it owns every connection, so aborting it drops them.
    listening: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port, answering 200.
    pub fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            mode: watch::channel(Mode::Ok).0,
        });
        let mut receiver = Receiver {
            runtime: Some(runtime),
            shared,
            port: 0,
            listening: None,
        };
        receiver.up();
        receiver
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Listens again, on the same port as before (or a free one the first time).
    pub fn up(&mut self) {
        assert!(self.listening.is_none(), "the receiver is up already");
        let runtime = self.runtime.as_ref().unwrap();
        let port = self.port;
        let listener = runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            // The port was ours a moment ago; its closed connections may linger in TIME_WAIT.
            socket.set_reuseaddr(true).unwrap();
            socket
                .bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .unwrap_or_else(|e| panic!("binding 127.0.0.1:{port}: {e}"));
            socket.listen(1024).unwrap()
        });
        self.port = listener.local_addr().unwrap().port();
        let shared = self.shared.clone();
        self.listening = Some(runtime.spawn(accept_loop(listener, shared)));
    }

    /// Stops listening and drops every connection: from now on connecting is refused.
    pub fn down(&mut self) {
        let task = self.listening.take().expect("the receiver is down already");
        task.abort();
        // Wait until the listener and the connections are really closed.
        let _ = self.runtime.as_ref().unwrap().block_on(task);
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits, up to `within`, until `done` holds for the requests so far; returns them. Fails
    /// naming `what` and listing what arrived when time is up.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&[Request]) -> bool,
    ) -> Vec<Request> {
        let deadline = Instant::now() + within;
        let mut requests = self.shared.requests.lock().unwrap();
        loop {
            if done(&requests) {
                return requests.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let listed: Vec<String> = requests
                    .iter()
                    .map(|r| format!("#{} {:?} {} {}", r.index, r.answered, r.target, r.text()))
                    .collect();
                panic!(
                    "receiver: not {what} within {within:?}; {} requests:\n{}",
                    requests.len(),
                    listed.join("\n")
                );
            }
            requests = self
                .shared
                .changed
                .wait_timeout(requests, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub fn wait_count(&self, n: usize, within: Duration) -> Vec<Request> {
        self.wait_for(&format!("{n} requests"), within, |r| r.len() >= n)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.listening.take() {
            task.abort();
        }
        // Held requests are dropped with the runtime, which must not wait for them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(request, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    request: HttpRequest<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // The sender went away mid-body: not a request.
        Err(_) => return Ok(status(400, "")),
    };
    let index = {
        let mut requests = shared.requests.lock().unwrap();
        let index = requests.len();
        requests.push(Request {
            index,
            method,
            target,
            headers,
            body: body.clone(),
            answered: None,
        });
        shared.changed.notify_all();
        index
    };
    let mut mode = shared.mode.subscribe();
    let answer = loop {
        let current = mode.borrow_and_update().clone();
        match current {
            Mode::Ok => break status(200, OK_BODY),
            Mode::Status(code) => break status(code, ""),
            Mode::BeforeSend(blocks) => {
                let code = if blocks(&body) { 1 } else { 0 };
                break status(200, &format!(r#"{{"ErrorCode":{code}}}"#));
            }
            Mode::Hang => {
                if mode.changed().await.is_err() {
                    // The receiver is going away; hold on until the connection is dropped.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let mut requests = shared.requests.lock().unwrap();
    requests[index].answered = Some(answer.status().as_u16());
    shared.changed.notify_all();
    Ok(answer)
}

fn status(code: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}
