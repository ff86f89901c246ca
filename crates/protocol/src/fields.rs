//! Typed access to a JSON object's fields, where each failure names the field (100002):
//! what every command's request parser is written with.

use liveroom_domain::RoomId;
use serde_json::{Map, Value};

use crate::{ApiError, ErrorCode};

pub struct Fields<'a> {
    map: &'a Map<String, Value>,
}

fn wrong_type(field: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("invalid {field}: must be {expected}"),
    )
}

fn missing(field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("missing required field {field}"),
    )
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }

    /// The `RoomId` field every room-scoped command carries.
    pub fn room_id(&self) -> Result<RoomId, ApiError> {
        Ok(RoomId::parse(self.required("RoomId", Fields::string)?)?)
    }

    /// A present field, or `None`. Unknown fields are never looked at, so they are ignored.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    /// A present field's raw value, for a field that takes more than one JSON type.
    pub fn value(&self, field: &str) -> Option<&'a Value> {
        self.get(field)
    }

    pub fn required<T>(
        &self,
        field: &'static str,
        read: impl FnOnce(&Self, &'static str) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        read(self, field)?.ok_or_else(|| missing(field))
    }

    pub fn string(&self, field: &'static str) -> Result<Option<String>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(field, "a string"))
            })
            .transpose()
    }

    pub fn bool(&self, field: &'static str) -> Result<Option<bool>, ApiError> {
        self.get(field)
            .map(|v| v.as_bool().ok_or_else(|| wrong_type(field, "a boolean")))
            .transpose()
    }

    pub fn int(&self, field: &'static str) -> Result<Option<i64>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| wrong_type(field, "a 64-bit integer"))
            })
            .transpose()
    }

    /// An integer that must not be negative.
    pub fn uint(&self, field: &'static str) -> Result<Option<u64>, ApiError> {
        self.int(field)?
            .map(|n| {
                u64::try_from(n).map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidParameter,
                        format!("invalid {field}: must not be negative"),
                    )
                })
            })
            .transpose()
    }

    pub fn int_array(&self, field: &'static str) -> Result<Option<Vec<i64>>, ApiError> {
        self.array(field)?
            .map(|items| {
                items
                    .iter()
                    .map(|v| {
                        v.as_i64()
                            .ok_or_else(|| wrong_type(field, "an array of integers"))
                    })
                    .collect()
            })
            .transpose()
    }

    pub fn string_array(&self, field: &'static str) -> Result<Option<Vec<String>>, ApiError> {
        self.array(field)?
            .map(|items| {
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| wrong_type(field, "an array of strings"))
                    })
                    .collect()
            })
            .transpose()
    }

    pub fn array(&self, field: &'static str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        self.get(field)
            .map(|v| v.as_array().ok_or_else(|| wrong_type(field, "an array")))
            .transpose()
    }

    /// An object whose every value is a string, as its (name, value) pairs.
    pub fn string_map(
        &self,
        field: &'static str,
    ) -> Result<Option<Vec<(String, String)>>, ApiError> {
        self.get(field)
            .map(|v| {
                let object = v
                    .as_object()
                    .ok_or_else(|| wrong_type(field, "an object of strings"))?;
                object
                    .iter()
                    .map(|(name, value)| {
                        value
                            .as_str()
                            .map(|value| (name.clone(), value.to_owned()))
                            .ok_or_else(|| wrong_type(field, "an object of strings"))
                    })
                    .collect()
            })
            .transpose()
    }

    pub fn object(&self, field: &'static str) -> Result<Option<Fields<'a>>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_object()
                    .map(Fields::new)
                    .ok_or_else(|| wrong_type(field, "an object"))
            })
            .transpose()
    }
}
