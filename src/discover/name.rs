//! A folder file's name as the ledger, the commit manifest, `_source_file` and quarantine record
//! it, and back. Names on disk are bytes; recorded names are strings. The mapping is injective,
//! so two files never share a recorded name, and [`name_bytes`] undoes it exactly.
//!
//! The form: valid UTF-8 is kept as it is, except `\`, which becomes `\\`; each byte of an
//! invalid sequence becomes `\xHH` (lowercase hex). `\` has to be escaped: otherwise the byte
//! 0xFF and the four characters `\xff` would give the same name.
//!
//! Names recorded before this form existed were lossy (`to_string_lossy`). A file still in the
//! folder whose name holds `\` or bytes that are not UTF-8 now gets a new recorded name (`a\b`
//! becomes `a\\b`): admission finds its content hash already committed and records it as a
//! duplicate (`admit::judge`, through `Ledger::holder_of`), so it adds no rows. An old name with
//! a lone `\` (starting neither `\\` nor `\x` and two hex digits) still leads back to its file,
//! as [`name_bytes`] reads such a `\` as itself.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The recorded name of an on-disk name (one path component, or several joined by `/`).
pub fn file_name(os: &OsStr) -> String {
    let bytes = os.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            out.push('\\');
            out.push('x');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The on-disk bytes of a recorded name: the inverse of [`file_name`]. Strings it never makes
/// are read leniently: a `\` that starts neither `\\` nor `\x` and two hex digits is itself.
pub fn name_bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let escaped = match tail {
            _ if first != b'\\' => None,
            [b'\\', more @ ..] => Some((b'\\', more)),
            [b'x', high, low, more @ ..] => hex_digit(*high).zip(hex_digit(*low)).map(|(h, l)| ((h << 4) | l, more)),
            _ => None,
        };
        match escaped {
            Some((byte, more)) => {
                out.push(byte);
                rest = more;
            }
            None => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

/// A recorded name as an on-disk name, to join onto a folder.
pub fn to_os_string(name: &str) -> OsString {
    OsString::from_vec(name_bytes(name))
}

fn hex_digit(d: u8) -> Option<u8> {
    char::from(d).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::HashMap;

    fn name(bytes: &[u8]) -> String {
        file_name(OsStr::from_bytes(bytes))
    }

    #[test]
    fn utf8_is_kept_and_only_backslashes_and_invalid_bytes_are_escaped() {
        assert_eq!(name(b"CO06037 2019-01-01"), "CO06037 2019-01-01");
        assert_eq!(name("sub/é 日本.json".as_bytes()), "sub/é 日本.json");
        assert_eq!(name(b"a\xff.json"), r"a\xff.json");
        assert_eq!(name(b"a\xfe.json"), r"a\xfe.json");
        assert_eq!(name(br"a\xff.json"), r"a\\xff.json");
        assert_eq!(name(br"a\b"), r"a\\b");
        assert_eq!(name(b"\\"), r"\\");
        // A cut multi-byte sequence: every byte of it is escaped, the rest kept.
        assert_eq!(name(b"\xe6\x97x"), r"\xe6\x97x");
    }

    #[test]
    fn tricky_pairs_get_different_names_that_map_back() {
        let pairs: [(&[u8], &[u8]); 5] =
            [(b"a\xff", b"a\xfe"), (b"a\xff", br"a\xff"), (b"a\xff", br"a\\xff"), (br"a\\", br"a\"), (b"a\\\xff", b"a\xff\\")];
        for (a, b) in pairs {
            assert_ne!(name(a), name(b), "{a:?} and {b:?}");
            assert_eq!(name_bytes(&name(a)), a);
            assert_eq!(name_bytes(&name(b)), b);
        }
    }

    #[test]
    fn random_byte_strings_round_trip_and_never_collide() {
        // Drawn mostly from the bytes that matter: backslash, `x`, hex digits, invalid and
        // multi-byte UTF-8 bytes.
        let alphabet: &[u8] = b"\\\\\\xxxf0aF9/.\x80\xbf\xc3\xa9\xe6\x97\xa5\xf0\x9f\xff\xfe";
        let mut rng = Rng::seeded(17);
        let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
        for _ in 0..20_000 {
            let len = rng.below(12) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| if rng.below(8) == 0 { rng.next_u64() as u8 } else { *rng.pick(alphabet) }).collect();
            let recorded = name(&bytes);
            assert_eq!(name_bytes(&recorded), bytes, "{recorded:?}");
            assert_eq!(to_os_string(&recorded).as_bytes(), &bytes[..]);
            if let Some(other) = seen.insert(recorded.clone(), bytes.clone()) {
                assert_eq!(other, bytes, "{recorded:?} names two byte strings");
            }
        }
    }

    #[test]
    fn a_backslash_that_starts_no_escape_is_itself() {
        // Names recorded before escaping existed still lead back to their files.
        assert_eq!(name_bytes(r"a\b"), br"a\b");
        assert_eq!(name_bytes(r"a\x4"), br"a\x4");
        assert_eq!(name_bytes(r"a\xg0"), br"a\xg0");
        assert_eq!(name_bytes("a\\"), b"a\\");
        assert_eq!(name_bytes(r"a\xFF"), b"a\xff");
    }
}
