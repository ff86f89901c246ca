//! The command handlers: a checked [`Request`] in, a [`Reply`] or an [`ApiError`] out. One
//! module per command family; they only talk to the store and the domain.

mod metadata;
mod rooms;

use liveroom_domain::AppId;
use liveroom_protocol::{ApiError, ErrorCode, Reply, Request};
use liveroom_store::{Store, StoreError};

use crate::gateway::State;

pub(crate) async fn execute<S: Store>(
    state: &State<S>,
    app: AppId,
    request: Request,
) -> Result<Reply, ApiError> {
    match request {
        Request::CreateRoom(room) => rooms::create(state, app, room).await,
        Request::DestroyRoom(room) => rooms::destroy(state, app, room).await,
        Request::UpdateRoomInfo { room, changes } => rooms::update(state, app, room, changes).await,
        Request::GetRoomInfo(room) => rooms::info(state, app, room).await,
        Request::GetRoomList { after, count } => rooms::list(state, app, after, count).await,
        Request::GetRoomMetadata { room, keys } => metadata::get(state, app, room, keys).await,
        Request::SetRoomMetadata { room, entries } => {
            metadata::set(state, app, room, entries).await
        }
        Request::DelRoomMetadata { room, keys } => metadata::delete(state, app, room, keys).await,
    }
}

/// A store failure as the client sees it. Storage trouble is logged here with its cause and
/// answered 100001 without details.
fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Rule(rule) => rule.into(),
        StoreError::Unavailable(cause) => {
            tracing::error!(%cause, "storage failed; request not applied");
            ApiError::new(ErrorCode::Internal, "internal server error, please retry")
        }
    }
}
