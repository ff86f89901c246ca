//! `im_open_login_svc/account_import`: `{"UserID","Nick","FaceUrl"}` → the bare envelope, or
//! 70102 when the account exists (docs/behaviour.md §13).

use liveroom_domain::{Account, IfExists, NewAccounts, Profile, ProfileTag, ProfileValue};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;

use super::{Call, account, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

impl super::Handler for Handler {
    type Request = (Account, Profile);

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Self::Request, ApiError> {
        let user = account(fields, "UserID")?;
        let mut items = Vec::new();
        for (field, tag) in [("Nick", ProfileTag::Nick), ("FaceUrl", ProfileTag::Image)] {
            if let Some(text) = fields.string(field)? {
                items.push((tag, ProfileValue::check(tag, ProfileValue::Text(text))?));
            }
        }
        Ok((user, Profile::new(items)?))
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        request: Self::Request,
    ) -> Result<Response, ApiError> {
        let accounts = NewAccounts::new("UserID", vec![request])?;
        state
            .store
            .import_accounts(call.app, accounts, IfExists::Refuse)
            .await
            .map_err(store_error)?;
        Ok(None)
    }
}
