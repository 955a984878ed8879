//! Replay protection: the signature nonces seen within the clock-skew window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use jiff::{SignedDuration, Timestamp};

use crate::VerifyError;

/// Nonces longer than this are refused, which bounds the memory one entry can take.
pub const MAX_NONCE_LEN: usize = 128;

/// The default [`NonceCache`] capacity: about 110 nonce-carrying requests per second sustained
/// over the 15-minute window, in a few tens of MiB at most.
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

type Key = (String, String);

/// The `x-acs-signature-nonce` values accepted recently, per access key id, with bounded memory.
///
/// A nonce must be remembered exactly as long as a request carrying it could still pass the
/// date check, i.e. until its request date plus the skew limit; after that the date check alone
/// refuses a replay, so the entry is forgotten. When every remembered nonce is still live and
/// the cache is at capacity, new nonces are refused with `ServiceUnavailable` (fail closed)
/// rather than forgetting a live one, which would re-open a replay.
#[derive(Debug)]
pub struct NonceCache {
    capacity: usize,
    /// (access key id, nonce) → when the entry may be forgotten.
    expiry_by_key: HashMap<Key, Timestamp>,
    /// The same entries ordered by expiry, for pruning. May hold stale entries for keys that
    /// were forgotten and re-inserted; those are recognised by a differing expiry.
    by_expiry: BinaryHeap<Reverse<(Timestamp, Key)>>,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(DEFAULT_NONCE_CAPACITY)
    }
}

impl NonceCache {
    /// A cache remembering at most `capacity` live nonces (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            expiry_by_key: HashMap::new(),
            by_expiry: BinaryHeap::new(),
        }
    }

    /// How many nonces are remembered (expired ones are dropped on the next insertion).
    pub fn len(&self) -> usize {
        self.expiry_by_key.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_by_key.is_empty()
    }

    /// Records `nonce` for `access_key_id`, refusing it if it is still remembered.
    /// `request_time` is the request's signed date; `window` the allowed clock skew.
    pub(crate) fn check_and_insert(
        &mut self,
        access_key_id: &str,
        nonce: &str,
        request_time: Timestamp,
        now: Timestamp,
        window: SignedDuration,
    ) -> Result<(), VerifyError> {
        validate_nonce(nonce)?;
        self.forget_expired(now);
        let key = (access_key_id.to_string(), nonce.to_string());
        if self.expiry_by_key.contains_key(&key) {
            return Err(VerifyError::NonceUsed {
                nonce: nonce.to_string(),
            });
        }
        if self.expiry_by_key.len() >= self.capacity {
            return Err(VerifyError::NonceCacheFull {
                capacity: self.capacity,
            });
        }
        // A replay stays acceptable to the date check until request_time + window.
        let expiry = request_time
            .saturating_add(window)
            .unwrap_or(Timestamp::MAX);
        self.expiry_by_key.insert(key.clone(), expiry);
        self.by_expiry.push(Reverse((expiry, key)));
        Ok(())
    }

    fn forget_expired(&mut self, now: Timestamp) {
        while let Some(Reverse((expiry, _))) = self.by_expiry.peek() {
            if *expiry >= now {
                break;
            }
            let Some(Reverse((expiry, key))) = self.by_expiry.pop() else {
                break;
            };
            if self.expiry_by_key.get(&key) == Some(&expiry) {
                self.expiry_by_key.remove(&key);
            }
        }
    }
}

fn validate_nonce(nonce: &str) -> Result<(), VerifyError> {
    let reason = if nonce.is_empty() {
        "it is empty".to_string()
    } else if nonce.len() > MAX_NONCE_LEN {
        format!(
            "it is {} bytes long; at most {MAX_NONCE_LEN} are accepted",
            nonce.len()
        )
    } else if !nonce.bytes().all(|b| b.is_ascii_graphic()) {
        "it must be printable ASCII without spaces".to_string()
    } else {
        return Ok(());
    };
    Err(VerifyError::InvalidNonce { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: SignedDuration = SignedDuration::from_mins(15);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + seconds).unwrap()
    }

    #[test]
    fn refuses_a_reused_nonce_per_access_key_until_it_expires() {
        let mut cache = NonceCache::new(10);
        cache
            .check_and_insert("ak", "n1", at(0), at(0), WINDOW)
            .unwrap();
        assert_eq!(
            cache.check_and_insert("ak", "n1", at(0), at(60), WINDOW),
            Err(VerifyError::NonceUsed { nonce: "n1".into() })
        );
        // Another key may use the same nonce.
        cache
            .check_and_insert("other", "n1", at(0), at(60), WINDOW)
            .unwrap();
        // Still remembered at the very edge of the window, forgotten after it.
        assert!(
            cache
                .check_and_insert("ak", "n1", at(0), at(900), WINDOW)
                .is_err()
        );
        cache
            .check_and_insert("ak", "n1", at(901), at(901), WINDOW)
            .unwrap();
    }

    #[test]
    fn expiry_follows_the_request_date_not_the_arrival_time() {
        let mut cache = NonceCache::new(10);
        // Dated 10 minutes in the future: replayable until date + 15 min = now + 25 min.
        cache
            .check_and_insert("ak", "n", at(600), at(0), WINDOW)
            .unwrap();
        assert!(
            cache
                .check_and_insert("ak", "n", at(600), at(1400), WINDOW)
                .is_err()
        );
        assert!(
            cache
                .check_and_insert("ak", "n", at(600), at(1501), WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn memory_is_bounded_and_expired_entries_make_room() {
        let mut cache = NonceCache::new(2);
        cache
            .check_and_insert("ak", "a", at(0), at(0), WINDOW)
            .unwrap();
        cache
            .check_and_insert("ak", "b", at(10), at(10), WINDOW)
            .unwrap();
        assert_eq!(
            cache.check_and_insert("ak", "c", at(20), at(20), WINDOW),
            Err(VerifyError::NonceCacheFull { capacity: 2 })
        );
        cache
            .check_and_insert("ak", "c", at(905), at(905), WINDOW)
            .unwrap();
        assert_eq!(cache.len(), 2);
        for i in 0..1000 {
            let t = at(2_000 + i * 1_000);
            cache
                .check_and_insert("ak", &format!("n{i}"), t, t, WINDOW)
                .unwrap();
        }
        assert!(cache.len() <= 2);
    }

    #[test]
    fn invalid_nonces_are_refused() {
        let mut cache = NonceCache::default();
        for bad in ["", "has space", &"x".repeat(MAX_NONCE_LEN + 1), "ü"] {
            assert!(matches!(
                cache.check_and_insert("ak", bad, at(0), at(0), WINDOW),
                Err(VerifyError::InvalidNonce { .. })
            ));
        }
        assert!(cache.is_empty());
    }
}
