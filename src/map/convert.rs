//! Text to typed values. Strings holding numbers become numbers, whole floats become integers,
//! dates follow the column's format; anything else is reported to the caller's policy.

use super::MapError;
use crate::config::{ColumnConfig, ColumnType, ListItem};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, PrimitiveBuilder, StringArray, StringBuilder,
};
use arrow::datatypes::{ArrowPrimitiveType, Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::sync::Arc;

const UNIX_EPOCH_DAY: i32 = 719_163; // NaiveDate::from_ymd(1970, 1, 1).num_days_from_ce()

/// Converts one text column. `on_bad(row, value, reason)` decides what a bad value means: an
/// error ends the conversion, `Ok` makes the value null.
pub(super) fn column(
    text: &StringArray,
    spec: &ColumnConfig,
    null_if: &dyn Fn(&str) -> bool,
    mut on_bad: impl FnMut(usize, &str, String) -> Result<(), MapError>,
) -> Result<ArrayRef, MapError> {
    let value = |row: usize| -> Option<&str> {
        if text.is_null(row) {
            return None;
        }
        let v = text.value(row);
        (!null_if(v)).then_some(v)
    };
    let format = spec.format.as_deref();
    Ok(match spec.kind {
        ColumnType::String => {
            let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
            for row in 0..text.len() {
                out.append_option(value(row));
            }
            Arc::new(out.finish())
        }
        ColumnType::Json => {
            let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
            for row in 0..text.len() {
                let valid = match value(row) {
                    None => None,
                    Some(v) => match serde_json::from_str::<&serde_json::value::RawValue>(v) {
                        Ok(_) => Some(v),
                        Err(e) => {
                            on_bad(row, v, format!("not JSON: {e}"))?;
                            None
                        }
                    },
                };
                out.append_option(valid);
            }
            Arc::new(out.finish())
        }
        ColumnType::List(item @ ListItem::String) => {
            list_of(item, StringBuilder::new(), text.len(), value, &mut on_bad, |v| Ok(v.to_string()))?
        }
        ColumnType::List(item @ ListItem::Int64) => list_of(item, Int64Builder::new(), text.len(), value, &mut on_bad, parse_i64)?,
        ColumnType::List(item @ ListItem::Float64) => list_of(item, Float64Builder::new(), text.len(), value, &mut on_bad, parse_f64)?,
        ColumnType::List(item @ ListItem::Bool) => list_of(item, BooleanBuilder::new(), text.len(), value, &mut on_bad, parse_bool)?,
        ColumnType::Decimal { precision, scale } => Arc::new(
            primitive::<Decimal128Type>(text.len(), value, &mut on_bad, |v| parse_decimal(v, precision, scale))?
                .with_precision_and_scale(precision, scale as i8)?,
        ),
        ColumnType::Int64 => Arc::new(primitive::<Int64Type>(text.len(), value, &mut on_bad, parse_i64)?),
        ColumnType::Int32 => Arc::new(primitive::<Int32Type>(text.len(), value, &mut on_bad, |v| {
            parse_i64(v).and_then(|n| i32::try_from(n).map_err(|_| "out of range for int32".to_string()))
        })?),
        ColumnType::Float64 => Arc::new(primitive::<Float64Type>(text.len(), value, &mut on_bad, parse_f64)?),
        ColumnType::Date => {
            let items = date_items(format)?;
            Arc::new(primitive::<Date32Type>(text.len(), value, &mut on_bad, |v| parse_date_items(v, &items, format))?)
        }
        ColumnType::Timestamp => Arc::new(
            primitive::<TimestampMicrosecondType>(text.len(), value, &mut on_bad, |v| parse_timestamp(v, format))?.with_timezone("UTC"),
        ),
        ColumnType::Bool => {
            let mut out = BooleanBuilder::with_capacity(text.len());
            for row in 0..text.len() {
                let parsed = match value(row) {
                    None => None,
                    Some(v) => match parse_bool(v) {
                        Ok(b) => Some(b),
                        Err(reason) => {
                            on_bad(row, v, reason)?;
                            None
                        }
                    },
                };
                out.append_option(parsed);
            }
            Arc::new(out.finish())
        }
    })
}

fn primitive<'a, T: ArrowPrimitiveType>(
    len: usize,
    value: impl Fn(usize) -> Option<&'a str>,
    on_bad: &mut impl FnMut(usize, &str, String) -> Result<(), MapError>,
    parse: impl Fn(&str) -> Result<T::Native, String>,
) -> Result<arrow::array::PrimitiveArray<T>, MapError> {
    let mut out = PrimitiveBuilder::<T>::with_capacity(len);
    for row in 0..len {
        match value(row) {
            None => out.append_null(),
            Some(v) => match parse(v) {
                Ok(n) => out.append_value(n),
                Err(reason) => {
                    on_bad(row, v, reason)?;
                    out.append_null();
                }
            },
        }
    }
    Ok(out.finish())
}

/// A list column from JSON arrays of scalars; a value that is not one, or an element that does
/// not parse, goes to `on_bad` whole (no partial list is written).
fn list_of<'a, B, T>(
    item: ListItem,
    items: B,
    len: usize,
    value: impl Fn(usize) -> Option<&'a str>,
    on_bad: &mut impl FnMut(usize, &str, String) -> Result<(), MapError>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<ArrayRef, MapError>
where
    B: ArrayBuilder + Extend<Option<T>>,
{
    let mut out = ListBuilder::new(items).with_field(super::list_element(item));
    for row in 0..len {
        let Some(v) = value(row) else {
            out.append(false);
            continue;
        };
        let parsed: Result<Vec<Option<T>>, String> =
            elements(v).and_then(|elements| elements.iter().map(|e| e.as_deref().map(&parse).transpose()).collect());
        match parsed {
            Ok(values) => {
                out.values().extend(values);
                out.append(true);
            }
            Err(reason) => {
                on_bad(row, v, reason)?;
                out.append(false);
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The elements of a JSON array of scalars as text (strings unescaped), null as `None`.
fn elements(v: &str) -> Result<Vec<Option<String>>, String> {
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(v).map_err(|e| format!("not a JSON array: {e}"))?;
    raw.into_iter()
        .map(|e| {
            let t = e.get();
            match t.as_bytes().first() {
                Some(b'n') => Ok(None),
                Some(b'"') => serde_json::from_str::<String>(t).map(Some).map_err(|e| e.to_string()),
                Some(b'[' | b'{') => Err("an element is not a scalar".into()),
                _ => Ok(Some(t.to_string())),
            }
        })
        .collect()
}

/// Integers, also written as whole floats ("265000.0", "2.65e5") or with surrounding spaces.
pub fn parse_i64(v: &str) -> Result<i64, String> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    // A float is read from its digits, not through f64, which would round 4503599627370496.5
    // to a whole number and 9007199254740993.0 to another one.
    let Some(number) = DecimalText::parse(v) else { return Err("not a number".into()) };
    if number.digits.is_empty() {
        return Ok(0);
    }
    if number.exponent < 0 {
        return Err("not a whole number".into());
    }
    let out_of_range = || "out of range for int64".to_string();
    if (number.digits.len() as i64).saturating_add(number.exponent) > i64::from(INT64_DIGITS) {
        return Err(out_of_range());
    }
    let sign = if number.negative { "-" } else { "" };
    format!("{sign}{}{}", number.digits, "0".repeat(number.exponent as usize)).parse::<i64>().map_err(|_| out_of_range())
}

/// Digits of the longest int64: a decimal with this many before its point holds any.
pub(super) const INT64_DIGITS: u8 = 19;

/// A float64 from decimal text (`-1.5`, `2e-3`, surrounding spaces allowed). Numbers float64
/// holds only as an infinity (`1e400`) and the spellings `inf`, `infinity` and `NaN` are bad
/// values: a float column never holds a value its input did not have.
pub fn parse_f64(v: &str) -> Result<f64, String> {
    let v = v.trim();
    // Rust's parser also reads `inf`, `infinity` and `NaN`, in any case.
    if decimal_parts(v).is_none() {
        return Err("not a number".into());
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        Ok(_) => Err("out of range for float64".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// The parts of decimal number text, `[+-]digits[.digits][(e|E)[+-]digits]` with a digit on at
/// least one side of the point: whether it is negative, the digits before and after the point,
/// and the exponent as written (empty without one). `None` for any other text, `inf`, `NaN`
/// and `0x1F` included.
fn decimal_parts(text: &str) -> Option<(bool, &str, &str, &str)> {
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exponent = &body[i + 1..];
            let exponent_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if exponent_digits.is_empty() || !is_digits(exponent_digits) {
                return None;
            }
            (&body[..i], exponent)
        }
        None => (body, ""),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    Some((negative, whole, fraction, exponent))
}

/// A number written in decimal (`-12.50`, `.5`, `1.25E3`), reduced to its significant digits:
/// its value is `digits` × 10^`exponent`, `digits` without leading or trailing zeros. Zero has
/// no digits, exponent 0 and no sign. Two texts of the same number compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DecimalText {
    pub(super) negative: bool,
    pub(super) digits: String,
    pub(super) exponent: i64,
}

impl DecimalText {
    /// Reads decimal number text (see [`decimal_parts`]); `None` for other text and for an
    /// exponent beyond i64.
    pub(super) fn parse(text: &str) -> Option<DecimalText> {
        let (negative, whole, fraction, written_exponent) = decimal_parts(text)?;
        let all = format!("{whole}{fraction}");
        let unpadded = all.trim_start_matches('0');
        let significant = unpadded.trim_end_matches('0');
        if significant.is_empty() {
            return Some(DecimalText { negative: false, digits: String::new(), exponent: 0 });
        }
        let written_exponent: i64 = if written_exponent.is_empty() { 0 } else { written_exponent.parse().ok()? };
        let trailing_zeros = (unpadded.len() - significant.len()) as i64;
        let exponent = written_exponent.checked_sub(fraction.len() as i64)?.checked_add(trailing_zeros)?;
        Some(DecimalText { negative, digits: significant.to_string(), exponent })
    }
}

/// An exact decimal as its unscaled integer (`12.30` at scale 2 is 1230). Digits past `scale`
/// are refused unless they are zeros: a decimal column never rounds.
pub fn parse_decimal(v: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let t = v.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().map_err(|_| "not a number".to_string())?),
        None => (body, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err("not a number".into());
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    // The value is digits * 10^(exponent - fraction digits); the column holds value * 10^scale.
    let shift = i64::from(exponent) - fraction.len() as i64 + i64::from(scale);
    let out_of_range = || format!("out of range for decimal({precision},{scale})");
    let unscaled = if shift < 0 {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        if digits[cut..].bytes().any(|b| b != b'0') {
            return Err(format!("more than {scale} digits after the point"));
        }
        digits[..cut].to_string()
    } else {
        if digits.len() as i64 + shift > i64::from(precision) && !digits.is_empty() {
            return Err(out_of_range());
        }
        format!("{digits}{}", if digits.is_empty() { String::new() } else { "0".repeat(shift as usize) })
    };
    if unscaled.len() > precision as usize {
        return Err(out_of_range());
    }
    let n: i128 = if unscaled.is_empty() { 0 } else { unscaled.parse().map_err(|_| out_of_range())? };
    Ok(if negative { -n } else { n })
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err("not a boolean".into()),
    }
}

/// A date format compiled once per column rather than once per value.
fn date_items(format: Option<&str>) -> Result<Vec<Item<'_>>, MapError> {
    StrftimeItems::new(format.unwrap_or("%Y-%m-%d")).parse().map_err(|e| MapError::Invalid(format!("date format {format:?}: {e}")))
}

/// Days since 1970-01-01.
#[cfg(test)]
pub fn parse_date(v: &str, format: Option<&str>) -> Result<i32, String> {
    let items = date_items(format).map_err(|e| e.to_string())?;
    parse_date_items(v, &items, format)
}

fn parse_date_items(v: &str, items: &[Item<'_>], format: Option<&str>) -> Result<i32, String> {
    let mut parsed = Parsed::new();
    let date =
        chrono::format::parse(&mut parsed, v.trim(), items.iter()).and_then(|()| parsed.to_naive_date()).map_err(|e| match format {
            Some(f) => format!("{e} (format {f:?})"),
            None => format!("{e} (expected YYYY-MM-DD)"),
        })?;
    Ok(chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAY)
}

/// Microseconds since the Unix epoch, UTC. Text without a zone is taken as UTC.
pub fn parse_timestamp(v: &str, format: Option<&str>) -> Result<i64, String> {
    let v = v.trim();
    let micros = |t: NaiveDateTime| t.and_utc().timestamp_micros();
    if let Some(f) = format {
        return DateTime::parse_from_str(v, f)
            .map(|t| t.timestamp_micros())
            .or_else(|_| NaiveDateTime::parse_from_str(v, f).map(micros))
            .map_err(|e| format!("{e} (format {f:?})"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(micros(t));
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| micros(d.and_time(chrono::NaiveTime::MIN)))
        .map_err(|_| "expected RFC 3339 or YYYY-MM-DD[ HH:MM:SS]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpadded_dates_parse_with_the_attom_format() {
        assert_eq!(parse_date("1970-1-2", Some("%Y-%-m-%-d")), Ok(1));
        assert_eq!(parse_date("2021-1-4", Some("%Y-%-m-%-d")), parse_date("2021-01-04", None));
        assert!(parse_date("2021-13-4", Some("%Y-%-m-%-d")).is_err());
        assert!(parse_date("", None).is_err());
    }

    #[test]
    fn integers_accept_whole_floats_only() {
        assert_eq!(parse_i64("265000"), Ok(265000));
        assert_eq!(parse_i64(" 265000.0 "), Ok(265000));
        assert!(parse_i64("0.5").is_err());
        assert!(parse_i64("n/a").is_err());
    }

    #[test]
    fn whole_floats_become_integers_exactly_or_not_at_all() {
        assert_eq!(parse_i64("2.65e5"), Ok(265000));
        assert_eq!(parse_i64("9007199254740993.0"), Ok(9_007_199_254_740_993), "past 2^53, where f64 would round");
        assert_eq!(parse_i64("9223372036854775807.000"), Ok(i64::MAX));
        assert_eq!(parse_i64("-9223372036854775808.0"), Ok(i64::MIN));
        assert_eq!(parse_i64("-0.0"), Ok(0));
        assert!(parse_i64("4503599627370496.5").unwrap_err().contains("whole"), "f64 rounds it to 4503599627370496");
        for big in ["9223372036854775808.0", "1e19", "1e400", "-1e400"] {
            assert!(parse_i64(big).unwrap_err().contains("out of range"), "{big}");
        }
        for bad in ["inf", "-infinity", "NaN", "1e-400", "1e", "."] {
            assert!(parse_i64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn floats_are_finite_numbers_or_bad_values() {
        assert_eq!(parse_f64(" 2.5e-3 "), Ok(0.0025));
        assert_eq!(parse_f64("-.5"), Ok(-0.5));
        assert_eq!(parse_f64("1e-400"), Ok(0.0), "the nearest float, as for any other fraction");
        for big in ["1e400", "-1e400", "1e99999999999999999999"] {
            assert!(parse_f64(big).unwrap_err().contains("out of range"), "{big}");
        }
        for bad in ["inf", "-inf", "+infinity", "Infinity", "NaN", "nan", "", "1e", "e5", "0x10", "1.2.3", "1,5"] {
            assert!(parse_f64(bad).is_err(), "{bad}");
        }

        // Through a column the policy sees them; the column never holds an infinity or NaN.
        let convert = |values: Vec<Option<&str>>, kind: ColumnType| {
            let spec = ColumnConfig { path: "x".into(), kind, format: None, null_if: vec![] };
            let mut bad = Vec::new();
            let array = column(&StringArray::from(values), &spec, &|_| false, |row, _, _| {
                bad.push(row);
                Ok(())
            })
            .unwrap();
            (array, bad)
        };
        let (floats, bad) = convert(vec![Some("1.5"), Some("1e400"), Some("NaN"), Some("-1e400"), Some("inf")], ColumnType::Float64);
        let floats = floats.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap();
        assert_eq!((floats.value(0), floats.null_count(), bad), (1.5, 4, vec![1, 2, 3, 4]));
        let (lists, bad) = convert(vec![Some("[1.5, 2]"), Some("[1.5, 1e400]"), Some("[\"NaN\"]")], ColumnType::List(ListItem::Float64));
        assert_eq!((lists.null_count(), bad), (2, vec![1, 2]));
    }

    #[test]
    fn decimal_text_compares_numbers_not_spellings() {
        let parse = |text| DecimalText::parse(text).unwrap();
        assert_eq!(parse("1.50"), parse("15e-1"));
        assert_eq!(parse("0.1"), DecimalText { negative: false, digits: "1".into(), exponent: -1 });
        assert_eq!(parse("-1200"), DecimalText { negative: true, digits: "12".into(), exponent: 2 });
        assert_eq!(parse("-0.000e5"), parse("0"), "zero has no sign");
        assert_eq!(DecimalText::parse("1e99999999999999999999"), None);
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(parse_decimal("12.3", 10, 2), Ok(1230));
        assert_eq!(parse_decimal("-0.05", 10, 2), Ok(-5));
        assert_eq!(parse_decimal("1.2e2", 10, 2), Ok(12000));
        assert_eq!(parse_decimal("12.300", 10, 2), Ok(1230), "trailing zeros lose nothing");
        assert_eq!(parse_decimal("123456789012345678901234567890", 38, 0), Ok(123456789012345678901234567890));
        assert_eq!(parse_decimal("0", 1, 0), Ok(0));
        assert!(parse_decimal("12.345", 10, 2).unwrap_err().contains("digits after the point"));
        assert!(parse_decimal("123456", 5, 0).unwrap_err().contains("out of range"));
        assert!(parse_decimal("1e40", 38, 0).unwrap_err().contains("out of range"));
        for bad in ["", "-", "1.2.3", "abc", "1e", "0x10"] {
            assert!(parse_decimal(bad, 10, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_hold_their_elements_or_go_whole_to_the_policy() {
        let text = StringArray::from(vec![Some("[1, 2, null]"), Some("[]"), None, Some("[1, \"x\"]"), Some("5")]);
        let spec = ColumnConfig { path: "l".into(), kind: ColumnType::List(ListItem::Int64), format: None, null_if: vec![] };
        let mut bad = Vec::new();
        let array = column(&text, &spec, &|_| false, |row, _, reason| {
            bad.push((row, reason));
            Ok(())
        })
        .unwrap();
        let list = array.as_any().downcast_ref::<arrow::array::ListArray>().unwrap();
        let values = |i: usize| {
            let items = list.value(i);
            let ints = items.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().clone();
            (0..ints.len()).map(|j| ints.is_valid(j).then(|| ints.value(j))).collect::<Vec<_>>()
        };
        assert_eq!((values(0), values(1)), (vec![Some(1), Some(2), None], vec![]));
        assert!(list.is_null(2) && list.is_null(3) && list.is_null(4));
        assert_eq!(bad.iter().map(|(row, _)| *row).collect::<Vec<_>>(), [3, 4], "{bad:?}");
    }

    #[test]
    fn timestamps_default_to_utc() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z", None), Ok(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5", None), Ok(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00", None), Ok(0));
        assert_eq!(parse_timestamp("01/01/1970 00:00", Some("%m/%d/%Y %H:%M")), Ok(0));
    }
}
