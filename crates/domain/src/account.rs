//! Imported accounts and their profiles (docs/behaviour.md §13): which profile tags liveroom
//! keeps, the values each takes, and the bounds of the account calls.

use std::collections::BTreeMap;

use crate::{Account, DomainError};

/// Accounts one `multiaccount_import` may name.
pub const IMPORT_MAX_ACCOUNTS: usize = 100;
/// Accounts one `portrait_get` may name.
pub const PORTRAIT_GET_MAX_ACCOUNTS: usize = 100;
/// Bytes of a text profile value (`Nick`, `FaceUrl`, a role given as a string).
pub const PROFILE_TEXT_MAX_BYTES: usize = 500;

/// A profile field liveroom keeps, by Tencent's tag name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileTag {
    Nick,
    Image,
    Role,
}

impl ProfileTag {
    pub const ALL: [ProfileTag; 3] = [ProfileTag::Nick, ProfileTag::Image, ProfileTag::Role];

    pub const fn name(self) -> &'static str {
        match self {
            ProfileTag::Nick => "Tag_Profile_IM_Nick",
            ProfileTag::Image => "Tag_Profile_IM_Image",
            ProfileTag::Role => "Tag_Profile_IM_Role",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tag| tag.name() == name)
    }
}

/// A profile value, of the JSON type it was given in (a role may be a number or a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileValue {
    Text(String),
    Number(u32),
}

impl ProfileValue {
    /// `value` as `tag` may hold it: nick and image are text; a role is text or a number.
    pub fn check(tag: ProfileTag, value: ProfileValue) -> Result<Self, DomainError> {
        match (&value, tag) {
            (ProfileValue::Number(_), ProfileTag::Nick | ProfileTag::Image) => {
                Err(DomainError::invalid(tag.name(), "must be a string"))
            }
            (ProfileValue::Text(text), _) if text.len() > PROFILE_TEXT_MAX_BYTES => {
                Err(DomainError::invalid(
                    tag.name(),
                    format!("must be at most {PROFILE_TEXT_MAX_BYTES} bytes"),
                ))
            }
            _ => Ok(value),
        }
    }
}

/// The tags an account has a value for. A tag never set is absent (`portrait_get` leaves it
/// out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile(BTreeMap<ProfileTag, ProfileValue>);

impl Profile {
    /// A profile from checked values; a tag given twice is refused.
    pub fn new(
        items: impl IntoIterator<Item = (ProfileTag, ProfileValue)>,
    ) -> Result<Self, DomainError> {
        let mut profile = BTreeMap::new();
        for (tag, value) in items {
            let value = ProfileValue::check(tag, value)?;
            if profile.insert(tag, value).is_some() {
                return Err(DomainError::invalid(tag.name(), "is given more than once"));
            }
        }
        Ok(Self(profile))
    }

    pub fn get(&self, tag: ProfileTag) -> Option<&ProfileValue> {
        self.0.get(&tag)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ProfileTag, &ProfileValue)> {
        self.0.iter().map(|(tag, value)| (*tag, value))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets every tag `changes` has; the others keep their value.
    pub fn merge(&mut self, changes: &Profile) {
        self.0
            .extend(changes.0.iter().map(|(tag, value)| (*tag, value.clone())));
    }
}

/// What an import does with an account that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse the import (`account_import`: 70102) and change nothing.
    Refuse,
    /// Leave it as it is and import the others (`multiaccount_import`).
    Keep,
}

/// Accounts to import, each with its first profile: at most [`IMPORT_MAX_ACCOUNTS`], each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccounts(Vec<(Account, Profile)>);

impl NewAccounts {
    pub fn new(
        field: &'static str,
        accounts: Vec<(Account, Profile)>,
    ) -> Result<Self, DomainError> {
        check_count(field, accounts.len(), IMPORT_MAX_ACCOUNTS)?;
        Ok(Self(accounts))
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Account, Profile)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The accounts of `accounts` an import creates, in order, given which exist already: each
/// absent one once (the first time it is named). With [`IfExists::Refuse`], an existing one
/// refuses the whole import.
pub fn accounts_to_create(
    accounts: &NewAccounts,
    if_exists: IfExists,
    exists: impl Fn(&Account) -> bool,
) -> Result<Vec<&(Account, Profile)>, DomainError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut create = Vec::with_capacity(accounts.len());
    for entry in accounts.iter() {
        if exists(&entry.0) {
            if if_exists == IfExists::Refuse {
                return Err(DomainError::AccountExists);
            }
        } else if seen.insert(&entry.0) {
            create.push(entry);
        }
    }
    Ok(create)
}

/// 1 to `max` entries in a list field.
pub fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), DomainError> {
    if count == 0 || count > max {
        return Err(DomainError::invalid(
            field,
            format!("must hold 1 to {max} entries"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_values_are_checked() {
        for tag in ProfileTag::ALL {
            assert_eq!(ProfileTag::parse(tag.name()), Some(tag));
        }
        assert_eq!(ProfileTag::parse("Tag_Profile_IM_Gender"), None);
        assert!(ProfileValue::check(ProfileTag::Nick, ProfileValue::Number(1)).is_err());
        assert!(ProfileValue::check(ProfileTag::Role, ProfileValue::Number(1)).is_ok());
        let long = ProfileValue::Text("x".repeat(PROFILE_TEXT_MAX_BYTES + 1));
        assert!(ProfileValue::check(ProfileTag::Image, long).is_err());
        let twice = [
            (ProfileTag::Nick, ProfileValue::Text("a".into())),
            (ProfileTag::Nick, ProfileValue::Text("b".into())),
        ];
        assert!(Profile::new(twice).is_err());
    }

    #[test]
    fn merge_keeps_other_tags() {
        let mut profile = Profile::new([
            (ProfileTag::Nick, ProfileValue::Text("a".into())),
            (ProfileTag::Role, ProfileValue::Number(2)),
        ])
        .unwrap();
        profile.merge(&Profile::new([(ProfileTag::Nick, ProfileValue::Text("b".into()))]).unwrap());
        assert_eq!(
            profile.get(ProfileTag::Nick),
            Some(&ProfileValue::Text("b".into()))
        );
        assert_eq!(
            profile.get(ProfileTag::Role),
            Some(&ProfileValue::Number(2))
        );
        assert!(check_count("Accounts", 0, 100).is_err());
        assert!(check_count("Accounts", 101, 100).is_err());
    }
}
