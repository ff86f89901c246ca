use crate::DomainError;
use crate::limits::*;

/// A room's identifier: 1–48 bytes of printable ASCII (0x20–0x7E).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(String);

impl RoomId {
    pub fn parse(raw: String) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > ROOM_ID_MAX_BYTES {
            return Err(DomainError::invalid(
                "RoomId",
                format!("must be 1 to {ROOM_ID_MAX_BYTES} bytes"),
            ));
        }
        if !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(DomainError::invalid(
                "RoomId",
                "must be printable ASCII (0x20 to 0x7E)",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Room identifiers order and hash as their strings, so sets of them are looked up by `&str`.
impl std::borrow::Borrow<str> for RoomId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A user account (`Owner_Account` and the like): 1–32 bytes with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account(String);

impl Account {
    pub fn parse(field: &'static str, raw: String) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > ACCOUNT_MAX_BYTES {
            return Err(DomainError::invalid(
                field,
                format!("must be 1 to {ACCOUNT_MAX_BYTES} bytes"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Accounts order as their strings, so sets of them are looked up by `&str`.
impl std::borrow::Borrow<str> for Account {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeSeatMode {
    FreeToTake,
    ApplyToTake,
}

impl TakeSeatMode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "FreeToTake" => Ok(Self::FreeToTake),
            "ApplyToTake" => Ok(Self::ApplyToTake),
            _ => Err(DomainError::invalid(
                "TakeSeatMode",
                "must be FreeToTake or ApplyToTake",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FreeToTake => "FreeToTake",
            Self::ApplyToTake => "ApplyToTake",
        }
    }
}

/// The settable part of a room, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFields {
    pub name: String,
    pub cover_url: String,
    pub notice: String,
    pub category: Vec<i64>,
    pub activity_status: i64,
    pub max_seat_count: u32,
    pub max_member_count: u32,
    pub take_seat_mode: TakeSeatMode,
    pub is_message_disabled: bool,
    pub is_public_visible: bool,
    pub is_seat_enabled: bool,
    pub seat_template: Option<String>,
    pub is_unlimited_room_enabled: Option<bool>,
}

impl RoomFields {
    /// A new room's settings before the request's own fields apply.
    fn defaults(id: &RoomId) -> Self {
        Self {
            name: id.as_str().to_owned(),
            cover_url: String::new(),
            notice: String::new(),
            category: Vec::new(),
            activity_status: 0,
            // TUILiveKit's default template, VideoDynamicGrid9Seats, has nine seats.
            max_seat_count: 9,
            max_member_count: 0,
            take_seat_mode: TakeSeatMode::FreeToTake,
            is_message_disabled: false,
            is_public_visible: true,
            is_seat_enabled: true,
            seat_template: None,
            is_unlimited_room_enabled: None,
        }
    }
}

/// Fields a request asks to set, exactly as it sent them; `None` leaves a field as it is.
/// [`RoomChanges::validate`] checks every bound before anything is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomChanges {
    pub name: Option<String>,
    pub cover_url: Option<String>,
    pub notice: Option<String>,
    pub category: Option<Vec<i64>>,
    pub activity_status: Option<i64>,
    pub max_seat_count: Option<i64>,
    pub max_member_count: Option<i64>,
    pub take_seat_mode: Option<String>,
    pub is_message_disabled: Option<bool>,
    pub is_public_visible: Option<bool>,
    pub is_seat_enabled: Option<bool>,
    pub seat_template: Option<String>,
    pub is_unlimited_room_enabled: Option<bool>,
}

fn check_len(field: &'static str, value: &Option<String>, max: usize) -> Result<(), DomainError> {
    match value {
        Some(v) if v.len() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} bytes"),
        )),
        _ => Ok(()),
    }
}

fn check_range(
    field: &'static str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), DomainError> {
    match value {
        Some(v) if !range.contains(&v) => Err(DomainError::invalid(
            field,
            format!("must be from {} to {}", range.start(), range.end()),
        )),
        _ => Ok(()),
    }
}

impl RoomChanges {
    /// Checks every bound of docs/behaviour.md §6; on success the changes can be applied to any room.
    pub fn validate(self) -> Result<ValidChanges, DomainError> {
        check_len("RoomName", &self.name, ROOM_NAME_MAX_BYTES)?;
        check_len("CoverURL", &self.cover_url, COVER_URL_MAX_BYTES)?;
        check_len("Notice", &self.notice, NOTICE_MAX_BYTES)?;
        check_len("SeatTemplate", &self.seat_template, SEAT_TEMPLATE_MAX_BYTES)?;
        if self
            .category
            .as_ref()
            .is_some_and(|c| c.len() > CATEGORY_MAX_ITEMS)
        {
            return Err(DomainError::invalid(
                "Category",
                format!("must hold at most {CATEGORY_MAX_ITEMS} integers"),
            ));
        }
        check_range("MaxSeatCount", self.max_seat_count, MAX_SEAT_COUNT_RANGE)?;
        check_range(
            "MaxMemberCount",
            self.max_member_count,
            MAX_MEMBER_COUNT_RANGE,
        )?;
        let take_seat_mode = self
            .take_seat_mode
            .as_deref()
            .map(TakeSeatMode::parse)
            .transpose()?;
        Ok(ValidChanges {
            changes: self,
            take_seat_mode,
        })
    }
}

/// [`RoomChanges`] whose bounds have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidChanges {
    changes: RoomChanges,
    take_seat_mode: Option<TakeSeatMode>,
}

impl ValidChanges {
    /// The fields as the request named them.
    pub fn requested(&self) -> &RoomChanges {
        &self.changes
    }

    /// Sets every field the request named and leaves the others.
    pub fn apply_to(&self, fields: &mut RoomFields) {
        let c = &self.changes;
        let set = |target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                target.clone_from(v);
            }
        };
        set(&mut fields.name, &c.name);
        set(&mut fields.cover_url, &c.cover_url);
        set(&mut fields.notice, &c.notice);
        if let Some(v) = &c.category {
            fields.category.clone_from(v);
        }
        if let Some(v) = c.activity_status {
            fields.activity_status = v;
        }
        // Both ranges were checked to fit u32 in `validate`.
        if let Some(v) = c.max_seat_count {
            fields.max_seat_count = v as u32;
        }
        if let Some(v) = c.max_member_count {
            fields.max_member_count = v as u32;
        }
        if let Some(v) = self.take_seat_mode {
            fields.take_seat_mode = v;
        }
        if let Some(v) = c.is_message_disabled {
            fields.is_message_disabled = v;
        }
        if let Some(v) = c.is_public_visible {
            fields.is_public_visible = v;
        }
        if let Some(v) = c.is_seat_enabled {
            fields.is_seat_enabled = v;
        }
        if let Some(v) = &c.seat_template {
            fields.seat_template = Some(v.clone());
        }
        if let Some(v) = c.is_unlimited_room_enabled {
            fields.is_unlimited_room_enabled = Some(v);
        }
    }
}

/// A validated `create_room` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub id: RoomId,
    pub owner: Account,
    pub fields: RoomFields,
}

impl NewRoom {
    /// `room_type` may be omitted (it means `Live`); `owner` defaults to the calling admin.
    pub fn validate(
        room_id: String,
        room_type: Option<String>,
        owner: Option<String>,
        caller: &str,
        changes: RoomChanges,
    ) -> Result<Self, DomainError> {
        let id = RoomId::parse(room_id)?;
        if room_type.as_deref().is_some_and(|t| t != "Live") {
            return Err(DomainError::invalid("RoomType", "must be Live"));
        }
        let owner = Account::parse("Owner_Account", owner.unwrap_or_else(|| caller.to_owned()))?;
        let changes = changes.validate()?;
        let mut fields = RoomFields::defaults(&id);
        changes.apply_to(&mut fields);
        Ok(Self { id, owner, fields })
    }

    /// The room as stored when it is created at `now` (Unix seconds).
    pub fn into_room(self, now: u64) -> Room {
        Room {
            id: self.id,
            owner: self.owner,
            create_time: now,
            view_count: 0,
            revision: 0,
            fields: self.fields,
        }
    }

    /// The answer to creating this room when `existing` already holds its RoomId.
    pub fn conflict_with(&self, existing: &Room) -> DomainError {
        DomainError::RoomExists {
            same_owner: existing.owner == self.owner,
        }
    }
}

/// A room as stored. Every room is of type `Live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: RoomId,
    pub owner: Account,
    /// Unix seconds.
    pub create_time: u64,
    /// Total entries into the room.
    pub view_count: u64,
    /// Bumped by every successful metadata change.
    pub revision: u64,
    pub fields: RoomFields,
}

/// What a room counted since it was created (docs/behaviour.md §14): members who entered,
/// and messages sent into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    pub viewers: u64,
    pub messages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_id_bounds() {
        assert!(RoomId::parse("a".into()).is_ok());
        assert!(RoomId::parse("x".repeat(48)).is_ok());
        assert!(RoomId::parse("x".repeat(49)).is_err());
        assert!(RoomId::parse(String::new()).is_err());
        assert!(RoomId::parse("a\u{0}b".into()).is_err());
        assert!(RoomId::parse("é".into()).is_err());
        assert!(RoomId::parse("live room ~".into()).is_ok());
    }

    #[test]
    fn account_bounds() {
        assert!(Account::parse("Owner_Account", "x".repeat(32)).is_ok());
        assert!(Account::parse("Owner_Account", "x".repeat(33)).is_err());
        assert!(Account::parse("Owner_Account", String::new()).is_err());
        assert!(Account::parse("Owner_Account", "a\nb".into()).is_err());
    }

    #[test]
    fn create_defaults_and_owner() {
        let room =
            NewRoom::validate("r1".into(), None, None, "admin", RoomChanges::default()).unwrap();
        assert_eq!(room.owner.as_str(), "admin");
        assert_eq!(room.fields.name, "r1");
        assert!(room.fields.is_public_visible);
        assert_eq!(room.fields.take_seat_mode, TakeSeatMode::FreeToTake);
    }

    #[test]
    fn create_rejects_other_room_types_and_bounds() {
        let bad_type = NewRoom::validate(
            "r".into(),
            Some("Voice".into()),
            None,
            "a",
            RoomChanges::default(),
        );
        assert!(matches!(
            bad_type,
            Err(DomainError::InvalidField {
                field: "RoomType",
                ..
            })
        ));
        for (changes, field) in [
            (
                RoomChanges {
                    name: Some("n".repeat(101)),
                    ..Default::default()
                },
                "RoomName",
            ),
            (
                RoomChanges {
                    cover_url: Some("c".repeat(201)),
                    ..Default::default()
                },
                "CoverURL",
            ),
            (
                RoomChanges {
                    notice: Some("n".repeat(101)),
                    ..Default::default()
                },
                "Notice",
            ),
            (
                RoomChanges {
                    category: Some(vec![1, 2, 3, 4]),
                    ..Default::default()
                },
                "Category",
            ),
            (
                RoomChanges {
                    max_seat_count: Some(0),
                    ..Default::default()
                },
                "MaxSeatCount",
            ),
            (
                RoomChanges {
                    max_seat_count: Some(17),
                    ..Default::default()
                },
                "MaxSeatCount",
            ),
            (
                RoomChanges {
                    take_seat_mode: Some("x".into()),
                    ..Default::default()
                },
                "TakeSeatMode",
            ),
        ] {
            let err = changes.validate().unwrap_err();
            assert!(
                matches!(&err, DomainError::InvalidField { field: f, .. } if *f == field),
                "{err:?}"
            );
        }
    }

    #[test]
    fn changes_touch_only_named_fields() {
        let mut fields = RoomFields::defaults(&RoomId::parse("r".into()).unwrap());
        let before = fields.clone();
        RoomChanges {
            notice: Some("hi".into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
        .apply_to(&mut fields);
        assert_eq!(fields.notice, "hi");
        fields.notice = before.notice.clone();
        assert_eq!(fields, before);
    }
}
