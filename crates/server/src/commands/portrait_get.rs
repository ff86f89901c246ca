//! `profile/portrait_get`: `{"To_Account":[…],"TagList":[…]}` → `{"UserProfileItem":[{
//! "To_Account","ProfileItem":[{"Tag","Value"}],"ResultCode","ResultInfo"}]}`, one item per
//! account asked, in order (docs/behaviour.md §13).

use liveroom_domain::account::{PORTRAIT_GET_MAX_ACCOUNTS, check_count};
use liveroom_domain::{Account, ProfileTag, ProfileValue};
use liveroom_protocol::{ApiError, ErrorCode, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, profile_tag, respond, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

pub(crate) struct Get {
    accounts: Vec<Account>,
    tags: Vec<ProfileTag>,
}

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "UserProfileItem")]
    user_profile_item: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Item<'a> {
    #[serde(rename = "To_Account")]
    to_account: &'a str,
    #[serde(rename = "ProfileItem")]
    profile_item: Vec<super::portrait_set::TagValue<'a>>,
    #[serde(rename = "ResultCode")]
    result_code: u32,
    #[serde(rename = "ResultInfo")]
    result_info: &'static str,
}

impl super::Handler for Handler {
    type Request = Get;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Get, ApiError> {
        let raw = fields.required("To_Account", Fields::string_array)?;
        check_count("To_Account", raw.len(), PORTRAIT_GET_MAX_ACCOUNTS)?;
        let accounts = raw
            .into_iter()
            .map(|raw| Account::parse("To_Account", raw))
            .collect::<Result<_, _>>()?;
        let names = fields.required("TagList", Fields::string_array)?;
        check_count("TagList", names.len(), ProfileTag::ALL.len())?;
        let tags = names
            .iter()
            .map(|name| profile_tag(name))
            .collect::<Result<_, _>>()?;
        Ok(Get { accounts, tags })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        get: Get,
    ) -> Result<Response, ApiError> {
        let profiles = state
            .store
            .profiles(call.app, get.accounts.clone())
            .await
            .map_err(store_error)?;
        let user_profile_item = get
            .accounts
            .iter()
            .zip(&profiles)
            .map(|(account, profile)| match profile {
                Some(profile) => Item {
                    to_account: account.as_str(),
                    profile_item: get
                        .tags
                        .iter()
                        .filter_map(|tag| profile.get(*tag).map(|v| tag_value(*tag, v)))
                        .collect(),
                    result_code: 0,
                    result_info: "",
                },
                None => Item {
                    to_account: account.as_str(),
                    profile_item: Vec::new(),
                    result_code: ErrorCode::AccountNotFound.number(),
                    result_info: "account does not exist",
                },
            })
            .collect();
        Ok(respond(&Answer { user_profile_item }))
    }
}

fn tag_value(tag: ProfileTag, value: &ProfileValue) -> super::portrait_set::TagValue<'_> {
    super::portrait_set::TagValue { tag: tag.name(), value: value.into() }
}
