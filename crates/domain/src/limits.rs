//! The numeric limits of docs/behaviour.md §6–§7, in one place. Sizes are UTF-8 bytes.

/// Longest `RoomId`.
pub const ROOM_ID_MAX_BYTES: usize = 48;
/// Longest account string (`Owner_Account` and other `*_Account` fields).
pub const ACCOUNT_MAX_BYTES: usize = 32;
pub const ROOM_NAME_MAX_BYTES: usize = 100;
pub const COVER_URL_MAX_BYTES: usize = 200;
pub const NOTICE_MAX_BYTES: usize = 100;
/// `SeatTemplate` has no documented bound; this keeps it the size of a name.
pub const SEAT_TEMPLATE_MAX_BYTES: usize = 64;
pub const CATEGORY_MAX_ITEMS: usize = 3;
pub const MAX_SEAT_COUNT_RANGE: std::ops::RangeInclusive<i64> = 1..=16;
/// `MaxMemberCount` has no documented bound; 0 means "no limit".
pub const MAX_MEMBER_COUNT_RANGE: std::ops::RangeInclusive<i64> = 0..=10_000_000;

/// Keys one room may hold.
pub const METADATA_MAX_KEYS: usize = 10;
/// Longest metadata key.
pub const METADATA_KEY_MAX_BYTES: usize = 50;
/// Longest single metadata value.
pub const METADATA_VALUE_MAX_BYTES: usize = 2048;
/// All values of one room together.
pub const METADATA_TOTAL_MAX_BYTES: usize = 16384;
/// Most entries one `del_room_metadata` request may name.
pub const METADATA_DELETE_MAX_KEYS: usize = METADATA_MAX_KEYS;

/// Rooms one `get_room_list` page may hold, and the page size when `Count` is omitted.
pub const ROOM_LIST_MAX_COUNT: usize = 20;

/// Longest message text, custom message data, or `ExtensionInfo` (Tencent's message bound).
pub const MESSAGE_MAX_BYTES: usize = 12 * 1024;
/// Longest custom message `BusinessId`.
pub const BUSINESS_ID_MAX_BYTES: usize = 128;
