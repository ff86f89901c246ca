use liveroom_domain::MetadataEntry;

use crate::fields::Fields;
use crate::{ApiError, ErrorCode};

fn invalid(info: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, info)
}

/// `set_room_metadata`'s `Metadata`: a non-empty array of `{"Key": string, "Value": string}`.
pub(crate) fn parse_entries(fields: &Fields) -> Result<Vec<MetadataEntry>, ApiError> {
    let items = fields.required("Metadata", Fields::array)?;
    if items.is_empty() {
        return Err(invalid("invalid Metadata: must not be empty"));
    }
    items
        .iter()
        .map(|item| {
            let item = item
                .as_object()
                .ok_or_else(|| invalid("invalid Metadata: every item must be an object"))?;
            let item = Fields::new(item);
            let key = item.required("Key", Fields::string)?;
            let value = item.required("Value", Fields::string)?;
            Ok(MetadataEntry::new(key, value)?)
        })
        .collect()
}

/// `del_room_metadata`'s `Keys`: a non-empty array of strings.
pub(crate) fn parse_delete_keys(fields: &Fields) -> Result<Vec<String>, ApiError> {
    let keys = fields.required("Keys", Fields::string_array)?;
    if keys.is_empty() {
        return Err(invalid("invalid Keys: must not be empty"));
    }
    Ok(keys)
}
