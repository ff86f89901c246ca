//! Tencent's wire format for `/v4/live_engine_http_srv/*`, and nothing else.
//!
//! This is the only crate that knows Tencent's JSON: it turns a query string and a body into
//! a typed [`Request`] (validated by the domain's rules), and a [`Reply`] or an [`ApiError`]
//! into the response envelope. [`ErrorCode`] is the one table of codes liveroom answers.

mod code;
mod command;
mod envelope;
mod fields;
mod metadata;
mod query;
mod request;
mod rooms;

pub use code::{ApiError, ErrorCode};
pub use command::{Command, SERVICE};
pub use envelope::{Reply, RequestIds, render};
pub use query::RestQuery;
pub use request::{MAX_BODY_BYTES, Request, parse_body};
pub use rooms::{decode_cursor, encode_cursor};
