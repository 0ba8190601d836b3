//! The limits of `[sources.NAME.format.limits]` as the decoders meet them: which one a file
//! went past, and the decompression bounds (bytes out, and out over in).

use crate::config::LimitsConfig;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One of the limits of [`LimitsConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    MaxLine,
    MaxRecord,
    MaxField,
    MaxDecompressedSize,
    MaxDecompressionRatio,
    MaxColumns,
    MaxDepth,
}

impl Limit {
    /// The config key, from the source's table: `format.limits.max_record`.
    pub fn key(self) -> &'static str {
        match self {
            Limit::MaxLine => "format.limits.max_line",
            Limit::MaxRecord => "format.limits.max_record",
            Limit::MaxField => "format.limits.max_field",
            Limit::MaxDecompressedSize => "format.limits.max_decompressed_size",
            Limit::MaxDecompressionRatio => "format.limits.max_decompression_ratio",
            Limit::MaxColumns => "format.limits.max_columns",
            Limit::MaxDepth => "format.limits.max_depth",
        }
    }

    /// Its value in `limits`, as [`crate::decode::DecodeError::limit`] takes it.
    pub fn configured(self, limits: &LimitsConfig) -> u64 {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match self {
            Limit::MaxLine => limits.max_line.0,
            Limit::MaxRecord => limits.max_record.0,
            Limit::MaxField => limits.max_field.0,
            Limit::MaxDecompressedSize => limits.max_decompressed_size.0,
            Limit::MaxDecompressionRatio => limits.max_decompression_ratio,
            Limit::MaxColumns => count(limits.max_columns),
            Limit::MaxDepth => count(limits.max_depth),
        }
    }

    /// What went past the limit, for a person: "a record longer than format.limits.max_record
    /// (64 MiB)".
    pub fn describe(self, value: u64) -> String {
        let what = match self {
            Limit::MaxLine => "a line longer than",
            Limit::MaxRecord => "a record longer than",
            Limit::MaxField => "a field longer than",
            Limit::MaxDecompressedSize => "more decompressed bytes than",
            Limit::MaxDecompressionRatio => "a decompression ratio above",
            Limit::MaxColumns => "more columns than",
            Limit::MaxDepth => "nesting deeper than",
        };
        let shown = match self {
            Limit::MaxLine | Limit::MaxRecord | Limit::MaxField | Limit::MaxDecompressedSize => size(value),
            Limit::MaxDecompressionRatio | Limit::MaxColumns | Limit::MaxDepth => value.to_string(),
        };
        format!("{what} {} ({shown})", self.key())
    }
}

/// `bytes` in the largest unit it is a whole number of: "64 MiB", "100 MB", "1000001 bytes".
fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 8] = [
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("kB", 1_000),
    ];
    match UNITS.iter().find(|(_, unit)| bytes >= *unit && bytes.is_multiple_of(*unit)) {
        Some((name, unit)) => format!("{} {name}", bytes / unit),
        None => format!("{bytes} bytes"),
    }
}

/// A limit met while reading, carried through `std::io` as the source of an
/// [`io::Error::other`] and turned back into a decode error where read errors are
/// (`DecodeError::reading`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitHit {
    pub limit: Limit,
    /// The limit's configured value.
    pub value: u64,
    /// Offset in the decompressed text.
    pub byte: u64,
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.limit.describe(self.value), self.byte)
    }
}

impl std::error::Error for LimitHit {}

/// The limit a read error stands for, if it is one.
pub(crate) fn limit_hit(e: &io::Error) -> Option<LimitHit> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<LimitHit>()).copied()
}

/// Ratios are not judged before this much is out: a small file may be all one byte.
const RATIO_AFTER: u64 = 64 << 20;

/// The compressed stream of a file: counts the bytes the decoder takes from it (consumed, not
/// read ahead, so the ratio is the decoder's own).
pub(crate) struct Counting<R> {
    inner: R,
    taken: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.taken.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.taken.fetch_add(amount as u64, Ordering::Relaxed);
        self.inner.consume(amount);
    }
}

/// A decoder's output, refused past `max_decompressed_size`, or once [`RATIO_AFTER`] bytes other
/// than whitespace are out, when those bytes pass `max_decompression_ratio` times the compressed
/// bytes taken.
pub(crate) struct Limited<D> {
    decoder: D,
    taken: Arc<AtomicU64>,
    out: u64,
    /// Bytes out that are not whitespace.
    dense: u64,
    max_size: u64,
    max_ratio: u64,
}

/// `compressed` decompressed by `decoder` within `limits`.
pub(crate) fn decompressed<R, D>(
    compressed: R,
    limits: &LimitsConfig,
    decoder: impl FnOnce(Counting<R>) -> io::Result<D>,
) -> io::Result<Limited<D>> {
    let taken = Arc::new(AtomicU64::new(0));
    let decoder = decoder(Counting { inner: compressed, taken: taken.clone() })?;
    Ok(Limited { decoder, taken, out: 0, dense: 0, max_size: limits.max_decompressed_size.0, max_ratio: limits.max_decompression_ratio })
}

impl<D: Read> Read for Limited<D> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.read(out)?;
        self.out = self.out.saturating_add(n as u64);
        // Runs of whitespace compress a thousandfold and cost the decoders nothing to pass (they
        // consume it as they read): the ratio is judged on the other bytes.
        let dense = out[..n].iter().filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
        self.dense = self.dense.saturating_add(dense as u64);
        if self.out > self.max_size {
            let hit = LimitHit { limit: Limit::MaxDecompressedSize, value: self.max_size, byte: self.max_size };
            return Err(io::Error::other(hit));
        }
        // Checked on each read: the reader above asks for at most a buffer, so a bomb stops
        // within one buffer of RATIO_AFTER.
        if self.max_ratio > 0 && self.dense >= RATIO_AFTER && self.dense > self.taken.load(Ordering::Relaxed).saturating_mul(self.max_ratio)
        {
            let hit = LimitHit { limit: Limit::MaxDecompressionRatio, value: self.max_ratio, byte: self.out };
            return Err(io::Error::other(hit));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_show_in_their_largest_whole_unit() {
        assert_eq!(size(64 << 20), "64 MiB");
        assert_eq!(size(64 << 30), "64 GiB");
        assert_eq!(size(100_000_000), "100 MB");
        assert_eq!(size(1_000_001), "1000001 bytes");
        assert_eq!(Limit::MaxRecord.describe(64 << 20), "a record longer than format.limits.max_record (64 MiB)");
        assert_eq!(Limit::MaxDepth.describe(128), "nesting deeper than format.limits.max_depth (128)");
    }

    #[test]
    fn a_limit_travels_through_io_errors() {
        let hit = LimitHit { limit: Limit::MaxField, value: 10, byte: 7 };
        let e = io::Error::other(hit);
        assert_eq!(limit_hit(&e), Some(hit));
        assert_eq!(limit_hit(&io::Error::other("disk on fire")), None);
        assert_eq!(limit_hit(&io::Error::from(io::ErrorKind::UnexpectedEof)), None);
    }
}
