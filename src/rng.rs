//! The one seeded random generator (splitmix64): sample data, random fault points and the
//! tests' random delays all draw from it, so a seed reproduces a run. Not for anything secret.

/// A splitmix64 stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Stream `stream` of seed `seed`. Mixing both inputs (rather than offsetting the state)
    /// keeps streams from being shifted copies of each other.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng(mix64(seed ^ mix64(stream ^ 0x5EED_F11E_0000_0001)))
    }

    /// The first stream of `seed`.
    pub fn seeded(seed: u64) -> Self {
        Rng::new(seed, 0)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The splitmix64 finaliser: a good 64-bit hash of one integer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seed_reproduces_its_stream_and_below_stays_below() {
        let (mut a, mut b) = (super::Rng::seeded(7), super::Rng::seeded(7));
        assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(super::Rng::new(7, 1).next_u64(), super::Rng::seeded(7).next_u64());
        assert!((0..1000).all(|_| a.below(10) < 10));
    }
}
