//! `profile/portrait_set`: `{"From_Account","ProfileItem":[{"Tag","Value"}]}` → the bare
//! envelope, or 70107 when the account was never imported (docs/behaviour.md §13).

use liveroom_domain::account::check_count;
use liveroom_domain::{Account, Profile, ProfileTag, ProfileValue};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, account, profile_tag, profile_value, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

/// One `{"Tag","Value"}` of a `ProfileItem` list, as `portrait_get` answers it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagValue<'a> {
    pub(super) tag: &'static str,
    pub(super) value: WireValue<'a>,
}

/// A value in the JSON type it was given in.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum WireValue<'a> {
    Text(&'a str),
    Number(u32),
}

impl<'a> From<&'a ProfileValue> for WireValue<'a> {
    fn from(value: &'a ProfileValue) -> Self {
        match value {
            ProfileValue::Text(text) => WireValue::Text(text),
            ProfileValue::Number(n) => WireValue::Number(*n),
        }
    }
}

impl super::Handler for Handler {
    type Request = (Account, Profile);

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Self::Request, ApiError> {
        let user = account(fields, "From_Account")?;
        let items = fields.required("ProfileItem", Fields::array)?;
        check_count("ProfileItem", items.len(), ProfileTag::ALL.len())?;
        let items = items
            .iter()
            .map(|item| {
                let item = item
                    .as_object()
                    .map(Fields::new)
                    .ok_or_else(|| liveroom_domain::DomainError::invalid("ProfileItem", "must hold objects"))?;
                let tag = profile_tag(&item.required("Tag", Fields::string)?)?;
                let value = item
                    .value("Value")
                    .ok_or_else(|| liveroom_domain::DomainError::invalid("Value", "is missing"))?;
                Ok((tag, profile_value(tag, value)?))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok((user, Profile::new(items)?))
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        (user, changes): Self::Request,
    ) -> Result<Response, ApiError> {
        state
            .store
            .set_profile(call.app, user, changes)
            .await
            .map_err(store_error)?;
        Ok(None)
    }
}
