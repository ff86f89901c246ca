//! A kept-alive connection carries the next request after any answer (docs/behaviour.md §1):
//! an answer given before the body was read drains the body first, and only a body refused
//! unread closes the connection, with `Connection: close`, after the client could read the
//! whole envelope.
//!
//! Each test speaks raw HTTP/1.1 over one TCP connection, so that it controls exactly which
//! connection a request goes on, as a pooled client would reuse it.

mod common;

use std::io;
use std::time::Duration;

use common::*;
use liveroom_protocol::Command;
use liveroom_server::{ServerConfig, ThrottleConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

const MIB: usize = 1024 * 1024;
/// A bound on any one wait, reached only when the server is broken.
const DEADLINE: Duration = Duration::from_secs(10);
/// The command the tests rate-limit, to 1 request per second on a clock that never moves.
const LIMITED: &str = "get_room_list";

/// The main app with `LIMITED` at 1 request per second, and the throttle off (several
/// authentication failures come from one address).
async fn server() -> TestServer {
    let mut app = app();
    app.rate_limits.insert(Command::GetRoomList, 1);
    let config = ServerConfig {
        apps: vec![app],
        auth_failure_throttle: ThrottleConfig::off(),
        ..Default::default()
    };
    let server = TestServer::start(liveroom_store::MemoryStore::new(), config).await;
    // Spend `LIMITED`'s budget (on another connection): from now on it answers 60007.
    assert_eq!(server.code(LIMITED, json!({})).await, 0);
    server
}

/// 40 KB of valid JSON: more than hyper reads ahead with the headers, so an answer that leaves
/// the body unread leaves most of it on the connection.
fn body_40kb() -> String {
    format!(r#"{{"RoomId":"r","Padding":"{}"}}"#, "x".repeat(40 * 1024))
}

/// The path and query of `command` with these credentials.
fn target(command: &str, sdkappid: u32, identifier: &str, usersig: &str) -> String {
    format!(
        "/v4/live_engine_http_srv/{command}?sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&random=99999999&contenttype=json"
    )
}

/// `command` called as the App administrator.
fn admin(command: &str) -> String {
    target(command, APP, ADMIN, &admin_sig())
}

fn admin_sig() -> String {
    liveroom_usersig::generate(APP, KEY, ADMIN, START, 86_400)
}

fn request(method: &str, target: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: liveroom\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request's head that announces a body of `length` bytes, none of which it carries.
fn declared(target: &str, length: usize) -> Vec<u8> {
    format!("POST {target} HTTP/1.1\r\nHost: liveroom\r\nContent-Length: {length}\r\n\r\n")
        .into_bytes()
}

/// A chunked request carrying `length` bytes of body.
fn chunked(target: &str, length: usize) -> Vec<u8> {
    let mut request =
        format!("POST {target} HTTP/1.1\r\nHost: liveroom\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    request.extend(chunks(length));
    request
}

/// `length` bytes of body in 64 KiB chunks, and the last chunk.
fn chunks(length: usize) -> Vec<u8> {
    let mut chunks = Vec::new();
    for chunk in vec![b' '; length].chunks(64 * 1024) {
        chunks.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunks.extend_from_slice(chunk);
        chunks.extend_from_slice(b"\r\n");
    }
    chunks.extend_from_slice(b"0\r\n\r\n");
    chunks
}

/// The request each test sends after an early answer: answered 100004 (no such room) when the
/// connection still works.
fn follow_up() -> Vec<u8> {
    request("POST", &admin("get_room_info"), r#"{"RoomId":"r"}"#)
}

struct Answer {
    status: u16,
    /// The status line and headers, names in lower case.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }

    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }

    /// The `ErrorCode` of a well-formed envelope.
    fn code(&self) -> u64 {
        assert_eq!(self.status, 200, "{}", self.head);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let envelope: Value = serde_json::from_slice(&self.body).expect("a whole JSON envelope");
        code_of(&envelope)
    }
}

/// The reading side of one connection.
struct Reader(BufReader<OwnedReadHalf>);

impl Reader {
    /// The next answer, head and `Content-Length` body; `None` if the connection ended
    /// (closed or reset) first.
    async fn answer(&mut self) -> Option<Answer> {
        tokio::time::timeout(DEADLINE, self.read_answer())
            .await
            .expect("neither an answer nor a close in time")
            .ok()
    }

    async fn read_answer(&mut self) -> io::Result<Answer> {
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            if self.0.read_line(&mut head).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let head = head.to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let mut answer = Answer {
            status,
            head,
            body: Vec::new(),
        };
        let length = answer.header("content-length").expect("a Content-Length");
        answer.body = vec![0; length.parse().unwrap()];
        self.0.read_exact(&mut answer.body).await?;
        Ok(answer)
    }

    /// What the connection does after the last answer: `Ok(0)` for a clean close (FIN), an
    /// error for a reset.
    async fn end(&mut self) -> io::Result<usize> {
        let mut byte = [0];
        tokio::time::timeout(DEADLINE, self.0.read(&mut byte))
            .await
            .expect("the connection was neither closed nor reset in time")
    }
}

struct Connection {
    reader: Reader,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn open(server: &TestServer) -> Self {
        let address = server.base.strip_prefix("http://").unwrap();
        let (read, writer) = TcpStream::connect(address).await.unwrap().into_split();
        Self {
            reader: Reader(BufReader::new(read)),
            writer,
        }
    }

    async fn ask(&mut self, request: &[u8]) -> Option<Answer> {
        self.writer.write_all(request).await.ok()?;
        self.reader.answer().await
    }

    /// Sends `first` from a task, as a client streaming a large body does while it reads the
    /// answer; the task gives the writing side back, or the error that ended the sending.
    fn send_in_background(
        self,
        first: Vec<u8>,
    ) -> (Reader, JoinHandle<io::Result<OwnedWriteHalf>>) {
        let mut writer = self.writer;
        let sending = tokio::spawn(async move {
            writer.write_all(&first).await?;
            Ok(writer)
        });
        (self.reader, sending)
    }
}

/// What an early answer is: an envelope's code, or an HTTP status outside `/v4/`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expected {
    Code(u64),
    Status(u16),
}

/// Sends `early` on a new connection, then the follow-up on the same one; what went wrong.
async fn answer_then_reuse(server: &TestServer, early: &[u8], expected: Expected) -> Vec<String> {
    let mut connection = Connection::open(server).await;
    let Some(answer) = connection.ask(early).await else {
        return vec!["no answer".into()];
    };
    let mut problems = Vec::new();
    let got = match expected {
        Expected::Code(_) => Expected::Code(answer.code()),
        Expected::Status(_) => Expected::Status(answer.status),
    };
    if got != expected {
        problems.push(format!("answered {got:?}"));
    }
    if answer.closes() {
        problems.push("answered with Connection: close".into());
    }
    match connection.ask(&follow_up()).await {
        Some(next) if next.code() == 100004 => {}
        Some(next) => problems.push(format!("the next request got {}", next.code())),
        None => problems.push("the next request was not answered".into()),
    }
    problems
}

/// Sends `first` while reading its answer, which must be `code` and close the connection; then
/// sends `rest`, as a client does that is still sending when the answer comes, and ends its
/// side. What went wrong. A graceful close reads and discards `rest`, then closes cleanly; a
/// close that leaves `rest` unread resets the connection, and a reset can destroy an answer the
/// client has not read yet (RFC 9112 §9.6).
async fn answer_then_close(
    server: &TestServer,
    (first, rest): (Vec<u8>, Vec<u8>),
    code: u64,
) -> Vec<String> {
    let (mut reader, sending) = Connection::open(server).await.send_in_background(first);
    let Some(answer) = reader.answer().await else {
        return vec!["no whole envelope".into()];
    };
    let mut problems = Vec::new();
    if answer.code() != code {
        problems.push(format!("answered {}", answer.code()));
    }
    if !answer.closes() {
        problems.push("no Connection: close".into());
    }
    let sent = async {
        let mut writer = sending.await.unwrap()?;
        for piece in rest.chunks(16 * 1024) {
            writer.write_all(piece).await?;
        }
        writer.shutdown().await
    };
    if let Err(error) = sent.await {
        problems.push(format!("the rest of the body was refused: {error}"));
    }
    match reader.end().await {
        Ok(0) => {}
        end => problems.push(format!("not a clean close: {end:?}")),
    }
    problems
}

/// Runs every case; fails with each case's problems.
async fn assert_all<C>(cases: Vec<(&str, C)>, check: impl AsyncFn(C) -> Vec<String>) {
    let mut failed = Vec::new();
    for (label, case) in cases {
        let problems = check(case).await;
        if !problems.is_empty() {
            failed.push(format!("{label}: {}", problems.join("; ")));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test]
async fn every_answer_before_the_body_leaves_the_connection_usable() {
    use Expected::{Code, Status};
    let server = server().await;
    let body = body_40kb();
    let other_key = liveroom_usersig::generate(APP, "other-key", ADMIN, START, 86_400);
    let user1 = liveroom_usersig::generate(APP, KEY, "user1", START, 86_400);
    let mut exactly_1_mib = declared(&admin(LIMITED), MIB);
    exactly_1_mib.resize(exactly_1_mib.len() + MIB, b' ');
    #[rustfmt::skip]
    let cases = vec![
        ("unknown command", (request("POST", &admin("no_such_command"), &body), Code(60009))),
        ("method", (request("PUT", &admin("get_room_info"), &body), Code(60002))),
        ("unknown app", (request("POST", &target("get_room_info", 99, ADMIN, &admin_sig()), &body), Code(60006))),
        ("undecodable UserSig", (request("POST", &target("get_room_info", APP, ADMIN, "not-a-sig!"), &body), Code(70003))),
        ("wrong key", (request("POST", &target("get_room_info", APP, ADMIN, &other_key), &body), Code(70009))),
        ("not an administrator", (request("POST", &target("get_room_info", APP, "user1", &user1), &body), Code(60010))),
        ("rate limit", (request("POST", &admin(LIMITED), &body), Code(60007))),
        ("rate limit, chunked", (chunked(&admin(LIMITED), 40 * 1024), Code(60007))),
        ("rate limit, exactly 1 MiB", (exactly_1_mib, Code(60007))),
        ("outside /v4/", (request("POST", "/v3/x", &body), Status(404))),
        ("GET /metrics with a body", (request("GET", "/metrics", &body), Status(200))),
        ("POST /metrics", (request("POST", "/metrics", &body), Status(405))),
    ];
    assert_all(cases, async |(early, expected)| {
        answer_then_reuse(&server, &early, expected).await
    })
    .await;
}

#[tokio::test]
async fn a_body_declared_over_1_mib_is_refused_then_the_connection_closes_gracefully() {
    let server = server().await;
    // The head and 64 KiB before the answer, the rest of the 2 MiB after it.
    let over = |target: String| {
        let mut first = declared(&target, 2 * MIB);
        first.resize(first.len() + 64 * 1024, b' ');
        (first, vec![b' '; 2 * MIB - 64 * 1024])
    };
    // The first failing check answers: the body's own (row 16), or an earlier one.
    let cases = vec![
        ("valid request", (over(admin("get_room_info")), 60003)),
        ("rate limit", (over(admin(LIMITED)), 60007)),
    ];
    assert_all(cases, async |(request, code)| {
        answer_then_close(&server, request, code).await
    })
    .await;
}

#[tokio::test]
async fn a_chunked_body_over_1_mib_stops_the_drain_and_closes_the_connection() {
    let server = server().await;
    // 1 MiB and 64 KiB before the answer, and 1 MiB more after it.
    let over = |target: String| {
        let mut first = chunked(&target, MIB + 64 * 1024);
        first.truncate(first.len() - b"0\r\n\r\n".len());
        (first, chunks(MIB))
    };
    let cases = vec![
        ("valid request", (over(admin("get_room_info")), 60003)),
        ("rate limit", (over(admin(LIMITED)), 60007)),
    ];
    assert_all(cases, async |(request, code)| {
        answer_then_close(&server, request, code).await
    })
    .await;
}
