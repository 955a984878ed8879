//! Deterministic, UUID-shaped identifiers for pipelines, stages and tasks.
//!
//! The state machine has no randomness: the ids of a change order's parts are derived from the
//! order id and their position, so rebuilding an order from the same input yields the same ids and a
//! restarted engine reports the same ids it reported before.

/// A UUID-shaped (8-4-4-4-12 hex, version nibble 8 = "custom") id derived from `parts`.
///
/// Two 64-bit FNV-1a hashes with different offsets; a field separator keeps `("ab","c")` and
/// `("a","bc")` apart.
pub(crate) fn derived_id(parts: &[&str]) -> String {
    let hash = |offset: u64| {
        let mut h = offset;
        for part in parts {
            for byte in part.bytes().chain(std::iter::once(0xff)) {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    };
    let hi = hash(0xcbf2_9ce4_8422_2325);
    let lo = hash(0x6c62_272e_07bb_0142);
    let hi = (hi & !0xf000) | 0x8000; // version 8 (custom)
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_uuid_shaped() {
        let a = derived_id(&["order-1", "pipeline", "0"]);
        assert_eq!(a, derived_id(&["order-1", "pipeline", "0"]));
        assert_ne!(a, derived_id(&["order-1", "pipeline", "1"]));
        assert_ne!(a, derived_id(&["order-2", "pipeline", "0"]));
        assert_ne!(derived_id(&["ab", "c"]), derived_id(&["a", "bc"]));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&a[14..15], "8");
    }
}
