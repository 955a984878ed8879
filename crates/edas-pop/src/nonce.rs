//! Replay protection: the signature nonces seen within the clock-skew window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use jiff::{SignedDuration, Timestamp};

use crate::VerifyError;

/// Nonces longer than this are refused, which bounds the memory one entry can take.
pub const MAX_NONCE_LEN: usize = 128;

/// The default [`NonceCache`] capacity *per access key*, a few tens of MiB at most for one key:
/// the full 15-minute replay window at up to ~110 signed requests per second and key; beyond
/// that the window of that key's old-dated requests shrinks (see [`NonceCache`]), and only more
/// than this many requests of one key dated within one second are refused.
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

/// The `x-acs-signature-nonce` values accepted recently, per access key id, with bounded memory.
///
/// A nonce must be remembered exactly as long as a request carrying it could still pass the
/// date check, i.e. until its request date plus the skew limit; after that the date check alone
/// refuses a replay, so the entry is forgotten.
///
/// Every access key has its **own share** of `capacity` nonces, so one key (however many cheap
/// signed calls it sends) can never evict, crowd out or refuse another key's nonces; the memory
/// is bounded by the number of access keys (created by administrators) times the share. When
/// every nonce of one key is still live and its share is full, the one that would expire first
/// is forgotten early and that key's *floor* rises to its expiry: from then on a request of that
/// key whose own expiry (date + skew) is not after the floor is refused (`NonceCacheFull`), since
/// it might replay a forgotten nonce. Requests dated now stay accepted at any sustained rate (the
/// floor trails the oldest remembered request); only requests dated as old as the forgotten
/// ones are refused, so under heavy load the accepted clock skew of that key's old-dated
/// requests shrinks instead of every request failing.
#[derive(Debug)]
pub struct NonceCache {
    /// How many live nonces one access key may have remembered.
    capacity: usize,
    by_access_key: HashMap<String, KeyNonces>,
    /// Insertions since every key was last pruned of expired nonces: a key that stops sending
    /// is pruned by the sweep after at most `capacity` insertions of other keys.
    inserts_since_sweep: usize,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(DEFAULT_NONCE_CAPACITY)
    }
}

impl NonceCache {
    /// A cache remembering at most `capacity` live nonces per access key (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            by_access_key: HashMap::new(),
            inserts_since_sweep: 0,
        }
    }

    /// How many nonces are remembered in all (expired ones are dropped on later insertions).
    pub fn len(&self) -> usize {
        self.by_access_key.values().map(KeyNonces::len).sum()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_access_key.values().all(|k| k.len() == 0)
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
        self.inserts_since_sweep += 1;
        if self.inserts_since_sweep >= self.capacity {
            self.inserts_since_sweep = 0;
            self.by_access_key.retain(|_, key| {
                key.forget_expired(now);
                key.len() > 0
            });
        }
        let capacity = self.capacity;
        self.by_access_key
            .entry(access_key_id.to_string())
            .or_default()
            .check_and_insert(capacity, nonce, request_time, now, window)
    }
}

/// One access key's share of the cache.
#[derive(Debug, Default)]
struct KeyNonces {
    /// nonce → when the entry may be forgotten.
    expiry_by_nonce: HashMap<String, Timestamp>,
    /// The same entries ordered by expiry, for pruning. May hold stale entries for nonces that
    /// were forgotten and re-inserted; those are recognised by a differing expiry.
    by_expiry: BinaryHeap<Reverse<(Timestamp, String)>>,
    /// The latest expiry among nonces forgotten before their time (see [`NonceCache`]).
    floor: Option<Timestamp>,
}

impl KeyNonces {
    fn len(&self) -> usize {
        self.expiry_by_nonce.len()
    }

    fn check_and_insert(
        &mut self,
        capacity: usize,
        nonce: &str,
        request_time: Timestamp,
        now: Timestamp,
        window: SignedDuration,
    ) -> Result<(), VerifyError> {
        self.forget_expired(now);
        if self.expiry_by_nonce.contains_key(nonce) {
            return Err(VerifyError::NonceUsed {
                nonce: nonce.to_string(),
            });
        }
        // A replay stays acceptable to the date check until request_time + window.
        let expiry = request_time
            .saturating_add(window)
            .unwrap_or(Timestamp::MAX);
        let full = || VerifyError::NonceCacheFull { capacity };
        if self.floor.is_some_and(|floor| expiry <= floor) {
            return Err(full());
        }
        while self.expiry_by_nonce.len() >= capacity {
            self.forget_oldest();
            if self.floor.is_some_and(|floor| expiry <= floor) {
                return Err(full());
            }
        }
        self.expiry_by_nonce.insert(nonce.to_string(), expiry);
        self.by_expiry.push(Reverse((expiry, nonce.to_string())));
        Ok(())
    }

    /// Forgets the live nonce that would expire first and raises the floor to its expiry.
    fn forget_oldest(&mut self) {
        while let Some(Reverse((expiry, nonce))) = self.by_expiry.pop() {
            if self.expiry_by_nonce.get(&nonce) == Some(&expiry) {
                self.expiry_by_nonce.remove(&nonce);
                self.floor = Some(self.floor.map_or(expiry, |f| f.max(expiry)));
                return;
            }
        }
    }

    fn forget_expired(&mut self, now: Timestamp) {
        while let Some(Reverse((expiry, _))) = self.by_expiry.peek() {
            if *expiry >= now {
                break;
            }
            let Some(Reverse((expiry, nonce))) = self.by_expiry.pop() else {
                break;
            };
            if self.expiry_by_nonce.get(&nonce) == Some(&expiry) {
                self.expiry_by_nonce.remove(&nonce);
            }
        }
        if self.floor.is_some_and(|floor| floor < now) {
            // Every request the floor refuses is now refused by the date check anyway.
            self.floor = None;
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
        // Full: "a" (the first to expire) is forgotten early to make room for "c".
        cache
            .check_and_insert("ak", "c", at(20), at(20), WINDOW)
            .unwrap();
        assert_eq!(cache.len(), 2);
        // A replay of "a" is still refused: its date is not after the forgotten one's.
        assert_eq!(
            cache.check_and_insert("ak", "a", at(0), at(30), WINDOW),
            Err(VerifyError::NonceCacheFull { capacity: 2 })
        );
        // So is any other request dated that early; requests dated now are accepted.
        assert!(
            cache
                .check_and_insert("ak", "z", at(-5), at(30), WINDOW)
                .is_err()
        );
        cache
            .check_and_insert("ak", "d", at(30), at(30), WINDOW)
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
    fn a_sustained_rate_beyond_capacity_keeps_accepting_current_requests_and_refusing_replays() {
        // Dates have one-second resolution, so the cache must hold one second of requests.
        let mut cache = NonceCache::new(1_500);
        // 1,000 requests a second for a minute, all dated now: none refused.
        for i in 0..60_000i64 {
            let t = at(i / 1_000);
            cache
                .check_and_insert("ak", &format!("n{i}"), t, t, WINDOW)
                .unwrap();
        }
        assert!(cache.len() <= 1_500);
        // Every replay of an earlier request is refused (remembered, or older than the floor).
        for i in (0..60_000i64).step_by(997) {
            let t = at(i / 1_000);
            assert!(
                cache
                    .check_and_insert("ak", &format!("n{i}"), t, at(60), WINDOW)
                    .is_err(),
                "replay of n{i} accepted"
            );
        }
    }

    #[test]
    fn one_key_filling_its_share_never_touches_another_keys_nonces() {
        let mut cache = NonceCache::new(100);
        cache
            .check_and_insert("victim", "v1", at(0), at(0), WINDOW)
            .unwrap();
        // A flood from another key, dated ahead so its entries outlive the victim's.
        for i in 0..10_000 {
            let _ = cache.check_and_insert("flood", &format!("f{i}"), at(300), at(1), WINDOW);
        }
        // The victim's nonce is still remembered (a replay is refused as a replay) ...
        assert_eq!(
            cache.check_and_insert("victim", "v1", at(0), at(2), WINDOW),
            Err(VerifyError::NonceUsed { nonce: "v1".into() })
        );
        // ... and its new requests, even old-dated ones, are accepted up to its own share.
        for i in 0..99 {
            cache
                .check_and_insert("victim", &format!("v{}", i + 2), at(-600), at(3), WINDOW)
                .unwrap();
        }
        // The flooding key stays within its share.
        assert!(cache.len() <= 200);
    }

    #[test]
    fn keys_that_fall_silent_are_pruned() {
        let mut cache = NonceCache::new(10);
        cache
            .check_and_insert("quiet", "q", at(0), at(0), WINDOW)
            .unwrap();
        for i in 0..20 {
            let t = at(1_000 + i);
            cache
                .check_and_insert("busy", &format!("b{i}"), t, t, WINDOW)
                .unwrap();
        }
        assert!(!cache.by_access_key.contains_key("quiet"));
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
