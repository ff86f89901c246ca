//! Typed access to a JSON object's fields, where each failure names the field (100002).

use serde_json::{Map, Value};

use crate::{ApiError, ErrorCode};

pub(crate) struct Fields<'a> {
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
    pub(crate) fn new(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }

    /// A present field, or `None`. Unknown fields are never looked at, so they are ignored.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    pub(crate) fn required<T>(
        &self,
        field: &'static str,
        read: impl FnOnce(&Self, &'static str) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        read(self, field)?.ok_or_else(|| missing(field))
    }

    pub(crate) fn string(&self, field: &'static str) -> Result<Option<String>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(field, "a string"))
            })
            .transpose()
    }

    pub(crate) fn bool(&self, field: &'static str) -> Result<Option<bool>, ApiError> {
        self.get(field)
            .map(|v| v.as_bool().ok_or_else(|| wrong_type(field, "a boolean")))
            .transpose()
    }

    pub(crate) fn int(&self, field: &'static str) -> Result<Option<i64>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| wrong_type(field, "a 64-bit integer"))
            })
            .transpose()
    }

    pub(crate) fn int_array(&self, field: &'static str) -> Result<Option<Vec<i64>>, ApiError> {
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

    pub(crate) fn string_array(
        &self,
        field: &'static str,
    ) -> Result<Option<Vec<String>>, ApiError> {
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

    pub(crate) fn array(&self, field: &'static str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        self.get(field)
            .map(|v| v.as_array().ok_or_else(|| wrong_type(field, "an array")))
            .transpose()
    }

    pub(crate) fn object(&self, field: &'static str) -> Result<Option<Fields<'a>>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_object()
                    .map(Fields::new)
                    .ok_or_else(|| wrong_type(field, "an object"))
            })
            .transpose()
    }
}
