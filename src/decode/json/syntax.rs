//! JSON syntax without building values: skipping a value, reading a string, checking a
//! literal. Each function takes the buffer and a position and returns the position after what
//! it read. Running out of buffer is [`Stop::More`]: the caller keeps the unfinished record
//! and retries once more bytes are in.

use crate::config::LimitsConfig;
use crate::decode::Limit;

/// Why a step did not finish. Plain data without drop glue: it is returned on every path.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// The buffer ends inside the value.
    More,
    /// Not valid JSON at this buffer offset.
    Bad(&'static str, usize),
    /// Valid JSON, but not the shape the mapping reads.
    Misfit(Misfit, usize),
    /// Past a limit, at the start (buffer offset) of what is too long or too deep.
    Limit(Limit, usize),
}

/// How a valid record does not fit the mapping.
#[derive(Debug, Clone, Copy)]
pub(super) enum Misfit {
    /// A record is not an object.
    NotAnObject,
    /// The value at this node of the field tree is not an object.
    NotAnObjectAt(usize),
    /// The envelope has no records_path key at this level.
    NoEnvelopeKey(usize),
    /// The records_path value at this level is not an object (or, at the last, an array).
    EnvelopeShape(usize),
}

pub(super) type Step = Result<usize, Stop>;

/// Deeper nesting is refused rather than risking the stack.
const MAX_DEPTH: usize = LimitsConfig::DEEPEST;

/// The limits the JSON reader applies, in the units it counts in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Bytes of one NDJSON line.
    pub line: usize,
    /// Bytes of one record.
    pub record: usize,
    /// Bytes of one kept string (between its quotes), number or key.
    pub field: usize,
    /// The depth a record starts at: nesting is counted down to [`MAX_DEPTH`], so `max_depth`
    /// levels fit with no depth argument of its own.
    pub record_depth: usize,
}

impl Bounds {
    pub(super) fn new(limits: &LimitsConfig) -> Bounds {
        let bytes = |size: crate::config::units::ByteSize| usize::try_from(size.0).unwrap_or(usize::MAX);
        Bounds {
            line: bytes(limits.max_line),
            record: bytes(limits.max_record),
            field: bytes(limits.max_field),
            record_depth: MAX_DEPTH - limits.max_depth.min(MAX_DEPTH),
        }
    }
}

/// Bytes that end the fast scan of a string body: the quote, the escape, control characters.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// What [`read_string`] says of a `\u` escape of a lone surrogate.
pub(super) const LONE_SURROGATE: &str = "a \\u escape of a lone surrogate (no UTF-8 form) in a string read as text";

pub(super) fn bad<T>(what: &'static str, at: usize) -> Result<T, Stop> {
    Err(Stop::Bad(what, at))
}

#[inline(always)]
pub(super) fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    // Compact JSON has no whitespace between tokens: that case costs one comparison.
    if i < buf.len() && buf[i] > b' ' {
        return i;
    }
    while i < buf.len() && matches!(buf[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The first position at or after `j` holding a byte that ends the fast scan of a string
/// (quote, backslash, control character), or `buf.len()`. Eight bytes per step: most strings
/// are short, so this beats a call into memchr.
#[inline(always)]
fn string_stop(buf: &[u8], mut j: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Flags bytes below `n` (n <= 128); the lowest flagged byte is always a true one.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    while let Some(chunk) = buf.get(j..j + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let flagged = below(word ^ (ONES * b'"' as u64), 1) | below(word ^ (ONES * b'\\' as u64), 1) | below(word, 0x20);
        if flagged != 0 {
            return j + (flagged.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while j < buf.len() && !STRING_STOP[buf[j] as usize] {
        j += 1;
    }
    j
}

#[inline]
pub(super) fn peek(buf: &[u8], i: usize) -> Result<u8, Stop> {
    buf.get(i).copied().ok_or(Stop::More)
}

/// Skips whitespace, then expects `byte`; returns the position after it.
#[inline]
pub(super) fn expect(buf: &[u8], i: usize, byte: u8, what: &'static str) -> Step {
    let i = skip_ws(buf, i);
    if peek(buf, i)? == byte { Ok(i + 1) } else { bad(what, i) }
}

/// Skips any value starting at `i` (no leading whitespace), checking its syntax.
#[inline]
pub(super) fn skip_value(buf: &[u8], i: usize, depth: usize) -> Step {
    match peek(buf, i)? {
        b'"' => skip_string(buf, i),
        b'{' => skip_object(buf, i, depth),
        b'[' => skip_array(buf, i, depth),
        b't' => literal(buf, i, b"true"),
        b'f' => literal(buf, i, b"false"),
        b'n' => literal(buf, i, b"null"),
        b'-' | b'0'..=b'9' => number(buf, i),
        _ => bad("expected a JSON value", i),
    }
}

/// Walks the object whose `{` is at `i`, checking its syntax. For each member,
/// `member(key_start, key_end, escaped, value_start)` reads the value (the key runs from its
/// opening quote at `key_start` to just after its closing quote at `key_end`) and returns the
/// position after it.
#[inline(always)]
pub(super) fn object(buf: &[u8], i: usize, depth: usize, mut member: impl FnMut(usize, usize, bool, usize) -> Step) -> Step {
    if depth >= MAX_DEPTH {
        return Err(Stop::Limit(Limit::MaxDepth, i));
    }
    let mut i = skip_ws(buf, i + 1);
    if peek(buf, i)? == b'}' {
        return Ok(i + 1);
    }
    loop {
        if peek(buf, i)? != b'"' {
            return bad("expected a key (a string)", i);
        }
        let (key_end, escaped) = skip_key(buf, i)?;
        i = skip_ws(buf, member(i, key_end, escaped, after_key(buf, key_end)?)?);
        match peek(buf, i)? {
            b',' => i = skip_ws(buf, i + 1),
            b'}' => return Ok(i + 1),
            _ => return bad("expected ',' or '}' in an object", i),
        }
    }
}

fn skip_object(buf: &[u8], i: usize, depth: usize) -> Step {
    object(buf, i, depth, |_, _, _, value| skip_value(buf, value, depth + 1))
}

fn skip_array(buf: &[u8], i: usize, depth: usize) -> Step {
    if depth >= MAX_DEPTH {
        return Err(Stop::Limit(Limit::MaxDepth, i));
    }
    let mut i = skip_ws(buf, i + 1);
    if peek(buf, i)? == b']' {
        return Ok(i + 1);
    }
    loop {
        i = skip_ws(buf, skip_value(buf, i, depth + 1)?);
        match peek(buf, i)? {
            b',' => i = skip_ws(buf, i + 1),
            b']' => return Ok(i + 1),
            _ => return bad("expected ',' or ']' in an array", i),
        }
    }
}

/// From just after a key's closing quote: the `:` and the whitespace after it.
#[inline(always)]
pub(super) fn after_key(buf: &[u8], i: usize) -> Step {
    if buf.get(i) == Some(&b':') {
        return Ok(skip_ws(buf, i + 1));
    }
    Ok(skip_ws(buf, expect(buf, i, b':', "expected ':' after a key")?))
}

/// Skips the string starting at the quote at `i`.
#[inline]
pub(super) fn skip_string(buf: &[u8], i: usize) -> Step {
    let mut j = i + 1;
    loop {
        j = string_stop(buf, j);
        match peek(buf, j)? {
            b'"' => return Ok(j + 1),
            b'\\' => j = escape(buf, j, &mut |_| {})?,
            _ => return bad("control character inside a string", j),
        }
    }
}

/// Skips the key (a string) starting at the quote at `i`; also says whether it has escapes.
#[inline]
pub(super) fn skip_key(buf: &[u8], i: usize) -> Result<(usize, bool), Stop> {
    let j = string_stop(buf, i + 1);
    if peek(buf, j)? == b'"' {
        return Ok((j + 1, false));
    }
    Ok((skip_string(buf, i)?, true))
}

/// Reads the string starting at the quote at `i`, appending its unescaped text to `out`. One
/// longer than `max` bytes as written (between its quotes) is refused before it is copied.
pub(super) fn read_string(buf: &[u8], i: usize, out: &mut Vec<u8>, max: usize) -> Step {
    let mut j = i + 1;
    loop {
        let run = j;
        j = string_stop(buf, j);
        if j - (i + 1) > max {
            return Err(Stop::Limit(Limit::MaxField, i));
        }
        // A run the buffer cuts is not copied: the record is read again from its start.
        let stop = peek(buf, j)?;
        out.extend_from_slice(&buf[run..j]);
        match stop {
            b'"' => return Ok(j + 1),
            b'\\' => {
                let mut lone = false;
                let at = j;
                j = escape(buf, j, &mut |c| match c {
                    Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    None => lone = true,
                })?;
                // JSON allows it, but it has no UTF-8 form: any text for it would not be the
                // input's value. (A `json` column keeps the value as written.)
                if lone {
                    return bad(LONE_SURROGATE, at);
                }
            }
            _ => return bad("control character inside a string", j),
        }
    }
}

/// Reads the escape at `i` (a backslash), passes the character on (`None` for a lone
/// surrogate, which no `char` is), returns the position after.
fn escape(buf: &[u8], i: usize, out: &mut dyn FnMut(Option<char>)) -> Step {
    let c = match peek(buf, i + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(buf, i + 2)?;
            if (0xD800..0xDC00).contains(&high) && peek(buf, i + 6)? == b'\\' && peek(buf, i + 7)? == b'u' {
                let low = hex4(buf, i + 8)?;
                if (0xDC00..0xE000).contains(&low) {
                    out(char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)));
                    return Ok(i + 12);
                }
            }
            out(char::from_u32(high));
            return Ok(i + 6);
        }
        _ => return bad("invalid escape in a string", i),
    };
    out(Some(c));
    Ok(i + 2)
}

fn hex4(buf: &[u8], i: usize) -> Result<u32, Stop> {
    let digits = buf.get(i..i + 4).ok_or(Stop::More)?;
    let mut value = 0;
    for &d in digits {
        let nibble = (d as char).to_digit(16).ok_or(Stop::Bad("invalid \\u escape", i))?;
        value = value * 16 + nibble;
    }
    Ok(value)
}

/// Checks the literal `word` (true, false, null) at `i`.
#[inline]
pub(super) fn literal(buf: &[u8], i: usize, word: &[u8]) -> Step {
    let available = &buf[i..buf.len().min(i + word.len())];
    if !word.starts_with(available) {
        return bad("expected a JSON value", i);
    }
    if available.len() < word.len() {
        return Err(Stop::More);
    }
    Ok(i + word.len())
}

/// Skips a number (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`). Numbers only occur inside a record
/// (an object), so one ending at the end of the buffer needs more bytes.
#[inline]
pub(super) fn number(buf: &[u8], i: usize) -> Step {
    let digits = |mut j: usize| -> (usize, usize) {
        let start = j;
        while j < buf.len() && buf[j].is_ascii_digit() {
            j += 1;
        }
        (j, j - start)
    };
    let mut j = i + usize::from(buf[i] == b'-');
    let (end, count) = digits(j);
    if count == 0 {
        return if end >= buf.len() { Err(Stop::More) } else { bad("invalid number", i) };
    }
    if count > 1 && buf[j] == b'0' {
        return bad("invalid number (leading zero)", i);
    }
    j = end;
    if peek(buf, j)? == b'.' {
        let (end, count) = digits(j + 1);
        if count == 0 {
            return if end >= buf.len() { Err(Stop::More) } else { bad("invalid number", i) };
        }
        j = end;
    }
    if matches!(peek(buf, j)?, b'e' | b'E') {
        j += 1;
        if matches!(peek(buf, j)?, b'+' | b'-') {
            j += 1;
        }
        let (end, count) = digits(j);
        if count == 0 {
            return if end >= buf.len() { Err(Stop::More) } else { bad("invalid number", i) };
        }
        j = end;
    }
    peek(buf, j)?;
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Result<usize, String> {
        skip_value(text.as_bytes(), 0, 0).map_err(|e| match e {
            Stop::More => "more".to_string(),
            Stop::Bad(what, at) => format!("{what} at {at}"),
            Stop::Misfit(what, at) => format!("{what:?} at {at}"),
            Stop::Limit(limit, at) => format!("{} at {at}", limit.key()),
        })
    }

    #[test]
    fn skips_valid_values_and_stops_after_them() {
        for text in [r#"{"a": [1, -2.5e+3, true, null, {"b": "x\"y"}], "c": {}} ,"#, r#""\u00e9\ud83d\ude00" "#, "[] ", "0 "] {
            let end = skip(text).unwrap();
            assert!(text[end..].trim_start().is_empty() || text[end..].trim_start() == ",", "{text}");
        }
    }

    #[test]
    fn incomplete_values_ask_for_more_and_invalid_ones_say_where() {
        for text in [r#"{"a": [1, 2"#, r#""abc"#, "tr", "12", r#"{"a" "#, r#""\u00"#] {
            assert_eq!(skip(text).unwrap_err(), "more", "{text}");
        }
        assert_eq!(skip(r#"{"a": tru }"#).unwrap_err(), "expected a JSON value at 6");
        assert_eq!(skip(r#"{"a" 1}"#).unwrap_err(), "expected ':' after a key at 5");
        assert_eq!(skip(r#"[1 2]"#).unwrap_err(), "expected ',' or ']' in an array at 3");
        assert_eq!(skip("\"a\tb\"").unwrap_err(), "control character inside a string at 2");
        assert_eq!(skip("01 ").unwrap_err(), "invalid number (leading zero) at 0");
        assert_eq!(skip(&"[".repeat(600)).unwrap_err(), "format.limits.max_depth at 512");
    }

    #[test]
    fn strings_are_unescaped_to_utf8() {
        let mut out = Vec::new();
        let text = r#""a\"b\\c\/\n\u00e9\ud83d\ude00x" "#;
        let end = read_string(text.as_bytes(), 0, &mut out, usize::MAX).unwrap();
        assert_eq!(&text[end..], " ");
        assert_eq!(String::from_utf8(out).unwrap(), "a\"b\\c/\né😀x");
        // A lone surrogate has no text to be: refused where it is, never read as U+FFFD; a
        // skipped one is valid JSON.
        for (lone, at) in [(r#""ab\ud800x""#, 3), (r#""\uDd1e\uD834""#, 1), (r#""\uD800\n""#, 1), (r#""\uDFAA""#, 1)] {
            let err = read_string(lone.as_bytes(), 0, &mut Vec::new(), usize::MAX).unwrap_err();
            assert!(matches!(err, Stop::Bad(_, i) if i == at), "{lone}: {err:?}");
            assert_eq!(skip_string(lone.as_bytes(), 0).ok(), Some(lone.len()));
        }
    }

    #[test]
    fn a_string_longer_than_its_bound_is_refused_before_it_is_copied() {
        let mut out = Vec::new();
        // 10 bytes as written (an escape counts as written), 8 once unescaped.
        let text = br#""a\nbcd\"ef" "#;
        assert_eq!(read_string(text, 0, &mut out, 10).ok(), Some(12));
        assert!(matches!(read_string(text, 0, &mut out, 9), Err(Stop::Limit(Limit::MaxField, 0))));
        out.clear();
        // Cut by the buffer but already too long: refused now, not asked for more.
        assert!(matches!(read_string(b"\"abcdefghij", 0, &mut out, 5), Err(Stop::Limit(Limit::MaxField, 0))));
        assert!(matches!(read_string(b"\"abc", 0, &mut out, 5), Err(Stop::More)));
        assert!(out.is_empty(), "{out:?}");
    }
}
