//! Reproducible pseudo-randomness (xorshift64*) for the randomized tests
//! and benchmark inputs: one generator, so a seed printed by a failing
//! differential test replays the same input, without a dependency.
//! Not for anything secret (container IDs use the kernel's CSPRNG).

/// A xorshift64* generator; the state must not be zero.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (a zero seed is replaced, since it would
    /// stay zero).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A number in `lo..=hi` (`lo <= hi`) as a `usize`.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        usize::try_from(self.range(lo as u64, hi as u64)).expect("between two usizes")
    }

    /// An index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).expect("below a usize")
    }

    /// One of `items` (non-empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below(10)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| *x < 10));
        assert_eq!(Rng::new(1).bytes(13).len(), 13);
        assert_ne!(Rng::new(0).next_u64(), 0, "a zero seed is replaced");
        let mut r = Rng::new(3);
        assert!((0..1000).map(|_| r.range(5, 9)).all(|x| (5..=9).contains(&x)));
        assert!((0..1000).any(|_| r.range(5, 9) == 9), "the upper bound is included");
        assert_eq!(r.range(4, 4), 4);
        let _ = r.range(0, u64::MAX);
        assert!((0..100).map(|_| r.range_usize(2, 12)).all(|x| (2..=12).contains(&x)));
    }
}
