//! A stable content hash (FNV-1a, 128 bits) for change detection.
//!
//! `std`'s hashers may change between Rust releases; content hashes are persisted in the index, so
//! they must not. 128-bit FNV-1a keeps this crate free of a crypto dependency; it detects edits,
//! it is not a defence against an adversary.

const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = 0x0000000001000000000000000000013B;

/// Incremental FNV-1a hasher whose output never changes across releases.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u128);

impl StableHasher {
    pub(crate) fn new() -> Self {
        Self(OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    /// Writes a length-prefixed field so that ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn field(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }

    pub(crate) fn finish(&self) -> u128 {
        self.0
    }

    pub(crate) fn finish_hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// Returns the 64-bit hash of one string.
    pub(crate) fn of(s: &str) -> u64 {
        let mut h = Self::new();
        h.write(s.as_bytes());
        (h.0 >> 64) as u64 ^ h.0 as u64
    }
}

/// Returns the stable hex hash of one string.
pub(crate) fn hash_hex(s: &str) -> String {
    let mut h = StableHasher::new();
    h.field(s);
    h.finish_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_field_separation() {
        // FNV-1a 128 of the empty input is the offset basis.
        assert_eq!(
            StableHasher::new().finish_hex(),
            "6c62272e07bb014262b821756295c58d"
        );
        let mut a = StableHasher::new();
        a.field("ab");
        a.field("c");
        let mut b = StableHasher::new();
        b.field("a");
        b.field("bc");
        assert_ne!(a.finish_hex(), b.finish_hex());
        assert_eq!(hash_hex("x"), hash_hex("x"));
    }
}
