//! Names for temporary files (spools, partial downloads, files before their commit).

use std::sync::atomic::{AtomicU64, Ordering};

/// `<pid>-<nanos>-<counter>`: no other call of this process, nor any earlier process, gets
/// the same (no uuid dependency needed for a temporary name).
pub fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
