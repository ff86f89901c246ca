use std::collections::BTreeMap;

use crate::DomainError;
use crate::limits::*;

/// One room's metadata: key → value, kept in ascending byte order of key.
pub type Metadata = BTreeMap<String, String>;

/// One `{"Key","Value"}` pair of a `set_room_metadata` request, with a key of 1–50 bytes.
/// The value's size is a rule of the write (100501), checked by [`set_metadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    key: String,
    value: String,
}

impl MetadataEntry {
    pub fn new(key: String, value: String) -> Result<Self, DomainError> {
        if key.is_empty() || key.len() > METADATA_KEY_MAX_BYTES {
            return Err(DomainError::invalid(
                "Metadata.Key",
                format!("must be 1 to {METADATA_KEY_MAX_BYTES} bytes"),
            ));
        }
        Ok(Self { key, value })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Total value bytes of a room's metadata.
pub fn total_bytes(metadata: &Metadata) -> usize {
    metadata.values().map(String::len).sum()
}

/// Upserts `entries` into `current` (a key repeated in one request: the last one wins) and
/// returns the room's new metadata, or the first limit the result would break.
pub fn set_metadata(
    current: &Metadata,
    entries: &[MetadataEntry],
) -> Result<Metadata, DomainError> {
    if entries.is_empty() {
        return Err(DomainError::invalid("Metadata", "must not be empty"));
    }
    if let Some(big) = entries
        .iter()
        .find(|e| e.value.len() > METADATA_VALUE_MAX_BYTES)
    {
        return Err(DomainError::ValueTooLarge {
            key: big.key.clone(),
        });
    }
    let mut merged = current.clone();
    for entry in entries {
        merged.insert(entry.key.clone(), entry.value.clone());
    }
    if merged.len() > METADATA_MAX_KEYS {
        return Err(DomainError::TooManyKeys);
    }
    if total_bytes(&merged) > METADATA_TOTAL_MAX_BYTES {
        return Err(DomainError::MetadataTooLarge);
    }
    Ok(merged)
}

/// Removes the keys of `keys` that `current` holds and returns the room's new metadata. Names
/// more than ten keys or none that exists: an error.
pub fn delete_metadata(current: &Metadata, keys: &[String]) -> Result<Metadata, DomainError> {
    if keys.is_empty() {
        return Err(DomainError::invalid("Keys", "must not be empty"));
    }
    if keys.len() > METADATA_DELETE_MAX_KEYS {
        return Err(DomainError::TooManyKeys);
    }
    let mut remaining = current.clone();
    let deleted = keys.iter().filter(|key| remaining.remove(*key).is_some());
    if deleted.count() == 0 {
        return Err(DomainError::NoSuchKeys);
    }
    Ok(remaining)
}

/// What `get_room_metadata` answers: every pair in key order when `keys` is empty, otherwise
/// the requested keys that exist, in request order, each once (a pair leaves the map when it
/// is answered, so a repeated key finds nothing the second time).
pub fn select_metadata(mut current: Metadata, keys: &[String]) -> Vec<(String, String)> {
    if keys.is_empty() {
        return current.into_iter().collect();
    }
    keys.iter()
        .filter_map(|key| current.remove_entry(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(k: &str, v: &str) -> MetadataEntry {
        MetadataEntry::new(k.into(), v.into()).unwrap()
    }

    #[test]
    fn key_bounds() {
        assert!(MetadataEntry::new(String::new(), "v".into()).is_err());
        assert!(MetadataEntry::new("k".repeat(50), "v".into()).is_ok());
        assert!(MetadataEntry::new("k".repeat(51), "v".into()).is_err());
        // Bytes, not characters: 17 three-byte characters are 51 bytes.
        assert!(MetadataEntry::new("€".repeat(17), "v".into()).is_err());
    }

    #[test]
    fn set_upserts_and_last_repeat_wins() {
        let current = Metadata::from([("a".into(), "1".into())]);
        let next = set_metadata(
            &current,
            &[entry("a", "2"), entry("b", "x"), entry("b", "y")],
        )
        .unwrap();
        assert_eq!(
            next,
            Metadata::from([("a".into(), "2".into()), ("b".into(), "y".into())])
        );
    }

    #[test]
    fn set_limits() {
        let empty = Metadata::new();
        assert_eq!(
            set_metadata(&empty, &[entry("k", &"v".repeat(2049))]),
            Err(DomainError::ValueTooLarge { key: "k".into() })
        );
        assert!(set_metadata(&empty, &[entry("k", &"v".repeat(2048))]).is_ok());
        let eleven: Vec<_> = (0..11).map(|i| entry(&format!("k{i}"), "")).collect();
        assert_eq!(set_metadata(&empty, &eleven), Err(DomainError::TooManyKeys));
        let full: Vec<_> = (0..8)
            .map(|i| entry(&format!("k{i}"), &"v".repeat(2048)))
            .collect();
        let at_limit = set_metadata(&empty, &full).unwrap();
        assert_eq!(total_bytes(&at_limit), 16384);
        assert_eq!(
            set_metadata(&at_limit, &[entry("extra", "x")]),
            Err(DomainError::MetadataTooLarge)
        );
        // Replacing a value counts the new size, not both.
        assert!(set_metadata(&at_limit, &[entry("k0", "small")]).is_ok());
    }

    #[test]
    fn delete_rules() {
        let current = Metadata::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(
            delete_metadata(&current, &["b".into(), "zz".into(), "b".into()]),
            Ok(Metadata::from([("a".into(), "1".into())]))
        );
        assert_eq!(
            delete_metadata(&current, &["zz".into()]),
            Err(DomainError::NoSuchKeys)
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
        assert_eq!(
            delete_metadata(&current, &eleven),
            Err(DomainError::TooManyKeys)
        );
    }

    #[test]
    fn selecting_many_keys_is_linear() {
        let current = Metadata::from([("k5".into(), "v".into())]);
        let keys: Vec<String> = (0..200_000).map(|i| format!("k{}", i % 100_000)).collect();
        // Quadratic work on 200k keys took minutes; linear work takes milliseconds.
        assert_eq!(select_metadata(current, &keys).len(), 1);
    }

    #[test]
    fn select_order() {
        let current = Metadata::from([("b".into(), "2".into()), ("a".into(), "1".into())]);
        let all: Vec<_> = select_metadata(current.clone(), &[])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(all, ["a", "b"]);
        let some = select_metadata(current, &["b".into(), "x".into(), "a".into(), "b".into()]);
        assert_eq!(some, [("b".into(), "2".into()), ("a".into(), "1".into())]);
    }

    proptest! {
        /// Whatever sequence of writes arrives, a room that starts within limits stays within them.
        #[test]
        fn limits_hold_after_every_write(
            ops in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(("[a-m]{1,3}", 0usize..3000), 1..5)
                        .prop_map(|pairs| (true, pairs)),
                    prop::collection::vec(("[a-m]{1,3}", Just(0usize)), 1..5)
                        .prop_map(|pairs| (false, pairs)),
                ],
                1..40,
            )
        ) {
            let mut current = Metadata::new();
            for (is_set, pairs) in ops {
                let outcome = if is_set {
                    let entries: Vec<_> = pairs.iter().map(|(k, n)| entry(k, &"v".repeat(*n))).collect();
                    set_metadata(&current, &entries)
                } else {
                    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
                    delete_metadata(&current, &keys)
                };
                if let Ok(next) = outcome {
                    current = next;
                }
                prop_assert!(current.len() <= METADATA_MAX_KEYS);
                prop_assert!(total_bytes(&current) <= METADATA_TOTAL_MAX_BYTES);
                prop_assert!(current.values().all(|v| v.len() <= METADATA_VALUE_MAX_BYTES));
            }
        }
    }
}
