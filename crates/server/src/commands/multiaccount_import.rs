//! `im_open_login_svc/multiaccount_import`: `{"Accounts":[UserID…]}` (1 to 100) →
//! `{"FailAccounts":[…]}`, the entries that are no valid UserID; the others are imported, or
//! left as they are when they exist (docs/behaviour.md §13).

use liveroom_domain::account::IMPORT_MAX_ACCOUNTS;
use liveroom_domain::{Account, IfExists, NewAccounts, Profile, account::check_count};
use liveroom_protocol::{ApiError, Fields, Response};
use liveroom_store::Store;
use serde::Serialize;

use super::{Call, respond, store_error};
use crate::gateway::State;

pub(crate) struct Handler;

pub(crate) struct Import {
    valid: Vec<Account>,
    failed: Vec<String>,
}

#[derive(Serialize)]
struct Answer {
    #[serde(rename = "FailAccounts")]
    fail_accounts: Vec<String>,
}

impl super::Handler for Handler {
    type Request = Import;

    fn parse(fields: &Fields<'_>, _: &Call<'_>) -> Result<Import, ApiError> {
        let accounts = fields.required("Accounts", Fields::string_array)?;
        check_count("Accounts", accounts.len(), IMPORT_MAX_ACCOUNTS)?;
        let (mut valid, mut failed) = (Vec::new(), Vec::new());
        for raw in accounts {
            match Account::parse("Accounts", raw.clone()) {
                Ok(account) => valid.push(account),
                Err(_) => failed.push(raw),
            }
        }
        Ok(Import { valid, failed })
    }

    async fn handle<S: Store>(
        state: &State<S>,
        call: &Call<'_>,
        import: Import,
    ) -> Result<Response, ApiError> {
        if !import.valid.is_empty() {
            let accounts = import
                .valid
                .into_iter()
                .map(|a| (a, Profile::default()))
                .collect();
            let accounts = NewAccounts::new("Accounts", accounts)?;
            state
                .store
                .import_accounts(call.app, accounts, IfExists::Keep)
                .await
                .map_err(store_error)?;
        }
        Ok(respond(&Answer {
            fail_accounts: import.failed,
        }))
    }
}
