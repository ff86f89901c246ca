//! The request pipeline: every `/v4/…` request goes through [`handle`], which applies the
//! checks of docs/behaviour.md §2 in order, dispatches to a command handler, and writes the one
//! log line and the metrics of the request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::Request as HttpRequest;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use liveroom_domain::Clock;
use liveroom_protocol::{
    ApiError, Command, ErrorCode, RequestIds, Response as ApiResponse, RestQuery, parse_body,
    render,
};
use liveroom_store::Store;

use crate::auth::{Apps, Throttle};
use crate::body::RequestBody;
use crate::commands::{self, Call};
use crate::config::{ConnectionLimits, ServerConfig};
use crate::limits::RateLimits;
use crate::metrics;
use crate::realtime::{self, Realtime};

/// The address of the connection a request came on, put there by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub SocketAddr);

/// Everything the pipeline and the handlers share.
pub(crate) struct State<S> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    pub apps: Apps,
    pub throttle: Throttle,
    pub realtime: Realtime,
    /// The apps' before-send hooks (docs/webhooks.md §7).
    pub before_send: liveroom_webhooks::BeforeSend,
    rate_limits: RateLimits,
    request_ids: RequestIds,
    connections: ConnectionLimits,
}

impl<S: Store> State<S> {
    /// Starts the task that writes presence into the feed: call it inside the runtime.
    pub fn new(store: Arc<S>, config: ServerConfig, clock: Arc<dyn Clock>) -> Self {
        let (recorder, recording) = realtime::Recorder::start(Arc::clone(&store), clock.clone());
        tokio::spawn(recording);
        let before_send = liveroom_webhooks::BeforeSend::new(
            config
                .apps
                .iter()
                .filter_map(|a| a.before_send.clone().map(|b| (a.sdkappid, b))),
            clock.clone(),
        );
        let apps = Apps::new(config.apps);
        let shared_limits = store.shares_rate_limits();
        Self {
            before_send,
            store,
            rate_limits: RateLimits::new(&apps, clock.clone(), shared_limits),
            throttle: Throttle::new(config.auth_failure_throttle),
            apps,
            clock,
            request_ids: RequestIds::default(),
            connections: config.connections,
            realtime: Realtime::new(config.realtime, recorder),
        }
    }
}

/// Every request of a connection: `/v4/…` to the pipeline, `GET /v1/realtime` to the
/// real-time gateway, `GET /metrics` to the metrics, `GET /healthz` and `/readyz` to the
/// health checks, anything else 404. A plain `match`, not a
/// router: one route carries all the traffic.
pub(crate) async fn route<S: Store>(state: &Arc<State<S>>, request: HttpRequest) -> Response {
    let path = request.uri().path();
    if path.starts_with("/v4/") {
        return handle(state, request).await;
    }
    if path == realtime::PATH && request.method() == Method::GET {
        return realtime::upgrade(state, request).await;
    }
    let response = match (path, request.method()) {
        ("/metrics", &Method::GET | &Method::HEAD) => metrics::render().into_response(),
        // Liveness: the process answers. Readiness: and its store can serve (docs/cluster.md §6).
        ("/healthz", &Method::GET | &Method::HEAD) => "ok\n".into_response(),
        ("/readyz", &Method::GET | &Method::HEAD) => match state.store.ready().await {
            Ok(()) => "ready\n".into_response(),
            Err(error) => {
                tracing::warn!(%error, "readiness check failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
            }
        },
        ("/metrics" | "/healthz" | "/readyz", _) | (realtime::PATH, _) => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(
                header::ALLOW,
                if path == realtime::PATH {
                    "GET"
                } else {
                    "GET,HEAD"
                },
            )],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    RequestBody::new(request.into_body())
        .finish(&state.connections, response)
        .await
}

/// What the log line and the metrics say of a request besides its outcome.
#[derive(Default)]
struct Seen {
    command: Option<Command>,
    sdkappid: Option<u32>,
}

async fn handle<S: Store>(state: &State<S>, request: HttpRequest) -> Response {
    let started = Instant::now();
    let request_id = state.request_ids.next();
    let mut seen = Seen::default();
    // The body is held here, so that what an early answer left unread is drained at the end.
    let (head, request_body) = request.into_parts();
    let mut request_body = RequestBody::new(request_body);
    let request = HttpRequest::from_parts(head, ());
    let outcome = pipeline(state, &request, &mut request_body, &mut seen).await;

    let code = outcome
        .as_ref()
        .err()
        .map_or(ErrorCode::Ok, |e| e.code)
        .number();
    let elapsed = started.elapsed();
    metrics::record_request(seen.command, code, elapsed);
    let command = seen.command.map_or("-", Command::name);
    let info = outcome.as_ref().err().map_or("", |e| e.info.as_str());
    // Storage failures are logged with their cause where they happen (commands::store_error).
    tracing::info!(
        request_id,
        command,
        sdkappid = seen.sdkappid,
        code,
        info,
        elapsed_us = elapsed.as_micros() as u64,
        "request"
    );

    let at_top_level = seen
        .command
        .is_some_and(|c| c.service().answers_at_top_level());
    let body = render(&request_id, &outcome, at_top_level);
    let response = (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response();
    request_body.finish(&state.connections, response).await
}

/// docs/behaviour.md §2, rows 1 to 20, in order; the first failure answers.
async fn pipeline<S: Store>(
    state: &State<S>,
    request: &HttpRequest<()>,
    body: &mut RequestBody,
    seen: &mut Seen,
) -> Result<ApiResponse, ApiError> {
    let command = Command::from_uri_path(request.uri().path())?;
    seen.command = Some(command);
    if request.method() != Method::POST {
        return Err(ApiError::new(
            ErrorCode::InvalidHttpUrl,
            "the method must be POST",
        ));
    }
    let query = RestQuery::parse(request.uri().query())?;

    let peer = request
        .extensions()
        .get::<ClientAddr>()
        .map(|addr| addr.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let client = state.throttle.client(peer, request.headers());
    let now = state.clock.since_epoch();
    if state.throttle.is_blocked(client, now) {
        return Err(ApiError::new(
            ErrorCode::AuthFreqLimit,
            "too many failed authentications from this address; retry in a minute",
        ));
    }
    let caller = state
        .apps
        .authenticate(&query, command.access(), now.as_secs())
        .inspect_err(|error| {
            if error.code.is_auth_failure() {
                state.throttle.record_failure(client, now);
            }
        })?;
    let app = caller.app.sdkappid;
    seen.sdkappid = Some(app);

    if !state.rate_limits.admit(&*state.store, app, command).await {
        return Err(ApiError::new(
            ErrorCode::RestFreqLimit,
            format!(
                "{} is limited to {} requests per second",
                command.name(),
                caller.app.rate_limit(command)
            ),
        ));
    }
    let body = body.read(&state.connections).await?;
    let body = parse_body(&body)?;
    if caller.app.disabled_commands.contains(&command) {
        return Err(ApiError::new(
            ErrorCode::NotEnabled,
            format!("{} is not enabled for this app", command.name()),
        ));
    }
    let call = Call {
        app,
        caller: caller.identifier,
        now,
    };
    commands::dispatch(state, command, &call, &body).await
}
