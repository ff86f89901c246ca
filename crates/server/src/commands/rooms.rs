use liveroom_domain::{AppId, DomainError, ListPosition, NewRoom, RoomId, ValidChanges};
use liveroom_protocol::{ApiError, ErrorCode, Reply};
use liveroom_store::Store;

use super::store_error;
use crate::gateway::State;

pub(super) async fn create<S: Store>(
    state: &State<S>,
    app: AppId,
    room: NewRoom,
) -> Result<Reply, ApiError> {
    if state.recent_creations.too_soon(app, &room.id) {
        return Err(ApiError::new(
            ErrorCode::CreateFreqLimit,
            "the same RoomId can be created at most once per second",
        ));
    }
    let id = room.id.clone();
    state
        .store
        .create_room(app, room, state.clock.unix_secs())
        .await
        .map_err(store_error)?;
    state.recent_creations.record(app, id.clone());
    Ok(Reply::Created {
        room_id: id.as_str().to_owned(),
    })
}

pub(super) async fn destroy<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
) -> Result<Reply, ApiError> {
    state
        .store
        .destroy_room(app, room)
        .await
        .map_err(store_error)?;
    Ok(Reply::Destroyed)
}

pub(super) async fn update<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
    changes: ValidChanges,
) -> Result<Reply, ApiError> {
    state
        .store
        .update_room(app, room, changes)
        .await
        .map_err(store_error)?;
    Ok(Reply::Done)
}

pub(super) async fn info<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
) -> Result<Reply, ApiError> {
    match state.store.room(app, room).await.map_err(store_error)? {
        Some(room) => Ok(Reply::RoomInfo(Box::new(room))),
        None => Err(DomainError::RoomNotFound.into()),
    }
}

pub(super) async fn list<S: Store>(
    state: &State<S>,
    app: AppId,
    after: Option<ListPosition>,
    count: usize,
) -> Result<Reply, ApiError> {
    // One room more than asked tells whether another page exists, so that the last page
    // answers `Next: ""` instead of sending the caller for an empty one.
    let mut rooms = state
        .store
        .list_rooms(app, after, count + 1)
        .await
        .map_err(store_error)?;
    let next = if rooms.len() > count {
        rooms.truncate(count);
        rooms.last().map(ListPosition::of)
    } else {
        None
    };
    Ok(Reply::RoomList { rooms, next })
}
