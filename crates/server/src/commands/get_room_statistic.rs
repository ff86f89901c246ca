//! `get_room_statistic`: the name Tencent's console uses for `get_room_stats`; the same
//! request and answer.

pub(crate) use super::get_room_stats::Handler;
