//! A room's members and live frames as every caller sees them (docs/protocol.md, "Members and
//! presence"; docs/cluster.md §4): on a store whose nodes share presence, every node's members
//! and every node's live frames; otherwise this node's alone.

use std::collections::BTreeSet;

use liveroom_domain::{Account, AppId, RoomId};
use liveroom_protocol::ApiError;
use liveroom_store::{Listed, Relay, Reported, Store};

use super::presence;
use crate::commands::store_error;
use crate::gateway::State;

/// Up to `limit` members of the room after `after` in account order (robots among them), and
/// how many there are.
pub(crate) async fn listing<S: Store>(
    state: &State<S>,
    app: AppId,
    room: &RoomId,
    robots: &BTreeSet<Account>,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Listed>, usize), ApiError> {
    let roster = if state.store.shares_presence() {
        state
            .store
            .members(app, room, robots, after, limit)
            .await
            .map_err(store_error)?
    } else {
        state
            .realtime
            .presence
            .roster(app, room, robots, after, limit)
    };
    Ok(presence::listing(roster, robots, after, limit))
}

/// Members in the room now, robots included.
pub(crate) async fn count<S: Store>(
    state: &State<S>,
    app: AppId,
    room: &RoomId,
    robots: &BTreeSet<Account>,
) -> Result<usize, ApiError> {
    Ok(listing(state, app, room, robots, None, 0).await?.1)
}

/// Whether `user` is connected to the room (through any node).
pub(crate) async fn is_member<S: Store>(
    state: &State<S>,
    app: AppId,
    room: &RoomId,
    user: &Account,
) -> Result<bool, ApiError> {
    if !state.store.shares_presence() {
        return Ok(state.realtime.presence.is_member(app, room, user.as_str()));
    }
    // Asked as a robot: whether it is among the connected ones.
    let user = BTreeSet::from([user.clone()]);
    let roster = state
        .store
        .members(app, room, &user, None, 0)
        .await
        .map_err(store_error)?;
    Ok(roster.robots_connected > 0)
}

/// Tells the other nodes of this node's members' changes, once they can see them; nothing to
/// do when presence is not shared.
pub(crate) async fn report<S: Store>(
    state: &State<S>,
    changes: Vec<Reported>,
) -> Result<(), ApiError> {
    if !state.store.shares_presence() || changes.is_empty() {
        return Ok(());
    }
    state
        .store
        .report_members(changes)
        .await
        .map_err(store_error)
}

/// Hands a live-only frame to the room's subscribers here and on every other node.
pub(crate) fn publish_live<S: Store>(state: &State<S>, app: AppId, room: &RoomId, text: String) {
    if state.store.shares_presence() {
        state.store.relay(app, room, Relay::Frame(text.clone()));
    }
    state.realtime.hub.publish_live(app, room, text);
}
