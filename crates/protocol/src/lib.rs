//! Tencent's wire format, and nothing else: the table of commands ([`with_commands!`]), the
//! one table of codes ([`ErrorCode`]), the query string, the body, typed access to a body's
//! fields ([`Fields`]), the wire shapes several commands share, and the response envelope.
//! Each command's own fields and answer are written in its file in the server, with these.

mod body;
mod code;
mod command;
mod envelope;
mod fields;
mod query;
mod rooms;
pub mod webhook;

pub use body::{MAX_BODY_BYTES, parse_body};
pub use code::{ApiError, ErrorCode};
pub use command::{Access, Command, Family, Service};
pub use envelope::{RequestIds, Response, render};
pub use fields::Fields;
pub use query::RestQuery;
pub use rooms::{
    RoomChangesWire, RoomInfoWire, RoomListEntry, decode_cursor, decode_member_cursor,
    encode_cursor, encode_member_cursor, room_changes,
};
