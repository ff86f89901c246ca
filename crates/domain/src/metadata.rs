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

/// The pairs of one `set_room_metadata` request: at least one, a key repeated in the request
/// counting once (the last one wins). Deduplicated where the request is parsed, so that the
/// write itself only looks at as many keys as the room can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntries {
    pairs: Metadata,
    /// The first key, in request order, whose value is over the limit: a rule of the write
    /// (100501), answered only once the room is known to exist.
    oversized: Option<String>,
}

impl MetadataEntries {
    pub fn new(entries: Vec<MetadataEntry>) -> Result<Self, DomainError> {
        if entries.is_empty() {
            return Err(DomainError::invalid("Metadata", "must not be empty"));
        }
        let mut oversized = None;
        let mut pairs = Metadata::new();
        for entry in entries {
            if oversized.is_none() && entry.value.len() > METADATA_VALUE_MAX_BYTES {
                oversized = Some(entry.key.clone());
            }
            pairs.insert(entry.key, entry.value);
        }
        Ok(Self { pairs, oversized })
    }

    /// Key → value, one per key, in key order.
    pub fn pairs(&self) -> &Metadata {
        &self.pairs
    }
}

/// The keys of one `del_room_metadata` request: at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteKeys(Vec<String>);

impl DeleteKeys {
    pub fn new(keys: Vec<String>) -> Result<Self, DomainError> {
        if keys.is_empty() {
            return Err(DomainError::invalid("Keys", "must not be empty"));
        }
        Ok(Self(keys))
    }
}

/// Whether upserting `entries` into `current` keeps every limit; the first one broken if not.
/// Counts instead of merging, so a refused write costs no copy of the room's metadata.
pub fn check_set(current: &Metadata, entries: &MetadataEntries) -> Result<(), DomainError> {
    if let Some(key) = &entries.oversized {
        return Err(DomainError::ValueTooLarge { key: key.clone() });
    }
    let mut keys = current.len();
    let mut bytes = total_bytes(current);
    for (key, value) in &entries.pairs {
        match current.get(key) {
            Some(old) => bytes -= old.len(),
            None => keys += 1,
        }
        bytes += value.len();
    }
    if keys > METADATA_MAX_KEYS {
        return Err(DomainError::TooManyKeys);
    }
    if bytes > METADATA_TOTAL_MAX_BYTES {
        return Err(DomainError::MetadataTooLarge);
    }
    Ok(())
}

/// The keys of `keys` that `current` holds, each once, in key order. Naming more than ten
/// keys, or none that exists, is an error.
pub fn check_delete(current: &Metadata, keys: &DeleteKeys) -> Result<Vec<String>, DomainError> {
    if keys.0.len() > METADATA_DELETE_MAX_KEYS {
        return Err(DomainError::TooManyKeys);
    }
    let mut deleted: Vec<String> = keys
        .0
        .iter()
        .filter(|key| current.contains_key(*key))
        .cloned()
        .collect();
    deleted.sort_unstable();
    deleted.dedup();
    if deleted.is_empty() {
        return Err(DomainError::NoSuchKeys);
    }
    Ok(deleted)
}

/// `current` with `entries` upserted, or the first limit the result would break.
pub fn set_metadata(
    current: &Metadata,
    entries: &MetadataEntries,
) -> Result<Metadata, DomainError> {
    check_set(current, entries)?;
    let mut merged = current.clone();
    merged.extend(entries.pairs.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(merged)
}

/// `current` without the keys of `keys`, or the rule the delete breaks.
pub fn delete_metadata(current: &Metadata, keys: &DeleteKeys) -> Result<Metadata, DomainError> {
    let mut remaining = current.clone();
    for key in check_delete(current, keys)? {
        remaining.remove(&key);
    }
    Ok(remaining)
}

/// What `get_room_metadata` answers: every pair in key order when `keys` is empty, otherwise
/// the requested keys that exist, in request order, each once.
pub fn select_metadata<'a>(current: &'a Metadata, keys: &'a [String]) -> Vec<(&'a str, &'a str)> {
    if keys.is_empty() {
        return current
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
    }
    let mut answered = std::collections::HashSet::new();
    keys.iter()
        .filter_map(|key| current.get_key_value(key))
        .filter(|(key, _)| answered.insert(key.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(k: &str, v: &str) -> MetadataEntry {
        MetadataEntry::new(k.into(), v.into()).unwrap()
    }

    fn set(current: &Metadata, entries: &[MetadataEntry]) -> Result<Metadata, DomainError> {
        set_metadata(current, &MetadataEntries::new(entries.to_vec())?)
    }

    fn delete(current: &Metadata, keys: &[String]) -> Result<Metadata, DomainError> {
        delete_metadata(current, &DeleteKeys::new(keys.to_vec())?)
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
        let next = set(
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
            set(&empty, &[entry("k", &"v".repeat(2049))]),
            Err(DomainError::ValueTooLarge { key: "k".into() })
        );
        assert!(set(&empty, &[entry("k", &"v".repeat(2048))]).is_ok());
        let eleven: Vec<_> = (0..11).map(|i| entry(&format!("k{i}"), "")).collect();
        assert_eq!(set(&empty, &eleven), Err(DomainError::TooManyKeys));
        let full: Vec<_> = (0..8)
            .map(|i| entry(&format!("k{i}"), &"v".repeat(2048)))
            .collect();
        let at_limit = set(&empty, &full).unwrap();
        assert_eq!(total_bytes(&at_limit), 16384);
        assert_eq!(
            set(&at_limit, &[entry("extra", "x")]),
            Err(DomainError::MetadataTooLarge)
        );
        // Replacing a value counts the new size, not both.
        assert!(set(&at_limit, &[entry("k0", "small")]).is_ok());
    }

    #[test]
    fn delete_rules() {
        let current = Metadata::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(
            delete(&current, &["b".into(), "zz".into(), "b".into()]),
            Ok(Metadata::from([("a".into(), "1".into())]))
        );
        assert_eq!(
            delete(&current, &["zz".into()]),
            Err(DomainError::NoSuchKeys)
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
        assert_eq!(delete(&current, &eleven), Err(DomainError::TooManyKeys));
    }

    #[test]
    fn selecting_many_keys_is_linear() {
        let current = Metadata::from([("k5".into(), "v".into())]);
        let keys: Vec<String> = (0..200_000).map(|i| format!("k{}", i % 100_000)).collect();
        // Quadratic work on 200k keys took minutes; linear work takes milliseconds.
        assert_eq!(select_metadata(&current, &keys).len(), 1);
    }

    #[test]
    fn select_order() {
        let current = Metadata::from([("b".into(), "2".into()), ("a".into(), "1".into())]);
        let all: Vec<_> = select_metadata(&current, &[])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(all, ["a", "b"]);
        let keys = ["b".into(), "x".into(), "a".into(), "b".into()];
        let some = select_metadata(&current, &keys);
        assert_eq!(some, [("b", "2"), ("a", "1")]);
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
                    set(&current, &entries)
                } else {
                    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
                    delete(&current, &keys)
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
