use liveroom_domain::{AppId, MetadataEntry, RoomId, select_metadata};
use liveroom_protocol::{ApiError, Reply};
use liveroom_store::Store;

use super::store_error;
use crate::gateway::State;

pub(super) async fn get<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
    keys: Vec<String>,
) -> Result<Reply, ApiError> {
    let metadata = state.store.metadata(app, room).await.map_err(store_error)?;
    Ok(Reply::Metadata(select_metadata(metadata, &keys)))
}

pub(super) async fn set<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
    entries: Vec<MetadataEntry>,
) -> Result<Reply, ApiError> {
    state
        .store
        .set_metadata(app, room, entries)
        .await
        .map_err(store_error)?;
    Ok(Reply::Done)
}

pub(super) async fn delete<S: Store>(
    state: &State<S>,
    app: AppId,
    room: RoomId,
    keys: Vec<String>,
) -> Result<Reply, ApiError> {
    state
        .store
        .delete_metadata(app, room, keys)
        .await
        .map_err(store_error)?;
    Ok(Reply::Done)
}
