//! Rows to Kafka messages: a JSON object per row typed like the table's columns, an optional
//! key, and the partition Kafka's own clients would choose for that key.

use arrow::array::Array;
use arrow::error::ArrowError;
use arrow::json::{LineDelimitedWriter, WriterBuilder};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One row as a message.
pub struct Message {
    pub value: Vec<u8>,
    pub key: Option<Vec<u8>>,
}

/// Encodes every row of `batch`. `key_columns` are indices into the batch's columns.
pub fn encode(batch: &RecordBatch, key_columns: &[usize]) -> Result<Vec<Message>, ArrowError> {
    let mut json = Vec::with_capacity(batch.get_array_memory_size());
    {
        let mut writer: LineDelimitedWriter<&mut Vec<u8>> = WriterBuilder::new().with_explicit_nulls(true).build(&mut json);
        writer.write(batch)?;
        writer.finish()?;
    }
    let keys = keys(batch, key_columns)?;
    let values = json.split(|b| *b == b'\n').filter(|line| !line.is_empty());
    let messages: Vec<Message> = values.zip(keys).map(|(value, key)| Message { value: value.to_vec(), key }).collect();
    if messages.len() != batch.num_rows() {
        return Err(ArrowError::JsonError(format!("{} rows gave {} JSON lines", batch.num_rows(), messages.len())));
    }
    Ok(messages)
}

/// Each row's key: one column's value as text, or a JSON array of several columns' texts;
/// no key when the only key column is null.
fn keys(batch: &RecordBatch, key_columns: &[usize]) -> Result<Vec<Option<Vec<u8>>>, ArrowError> {
    let rows = batch.num_rows();
    if key_columns.is_empty() {
        return Ok(vec![None; rows]);
    }
    let options = FormatOptions::default();
    let formatters: Vec<(ArrayFormatter, &dyn Array)> = key_columns
        .iter()
        .map(|&i| Ok((ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?, batch.column(i).as_ref())))
        .collect::<Result<_, ArrowError>>()?;
    let text = |(formatter, array): &(ArrayFormatter, &dyn Array), row: usize| -> Option<String> {
        (!array.is_null(row)).then(|| formatter.value(row).to_string())
    };
    (0..rows)
        .map(|row| {
            if let [single] = formatters.as_slice() {
                return Ok(text(single, row).map(String::into_bytes));
            }
            let parts: Vec<Option<String>> = formatters.iter().map(|f| text(f, row)).collect();
            serde_json::to_vec(&parts).map(Some).map_err(|e| ArrowError::JsonError(e.to_string()))
        })
        .collect()
}

/// The partition of a message: keyed messages where Kafka's Java client puts them (murmur2 of
/// the key), so keyed consumers and joins line up; unkeyed rows round-robin by row number.
pub fn partition_of(key: Option<&[u8]>, row: u64, partitions: i32) -> i32 {
    let n = partitions.max(1) as u64;
    match key {
        Some(key) => ((murmur2(key) & 0x7fff_ffff) as u64 % n) as i32,
        None => (row % n) as i32,
    }
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // Expected values from Kafka's own UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn rows_become_typed_json_with_keys() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int64Array::from(vec![Some(5), None])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_546_300_800_000_000), None]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let one = encode(&batch, &[0]).unwrap();
        let row: serde_json::Value = serde_json::from_slice(&one[0].value).unwrap();
        assert_eq!(row["id"], "a");
        assert_eq!(row["amount"], 5);
        assert!(row["at"].as_str().unwrap().starts_with("2019-01-01T00:00:00"), "{row}");
        let nulls: serde_json::Value = serde_json::from_slice(&one[1].value).unwrap();
        assert!(nulls["amount"].is_null() && nulls.as_object().unwrap().contains_key("amount"));
        assert_eq!(one[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(one[1].key, None);
        let two = encode(&batch, &[0, 1]).unwrap();
        assert_eq!(two[0].key.as_deref(), Some(&br#"["a","5"]"#[..]));
        assert_eq!(two[1].key.as_deref(), Some(&b"[null,null]"[..]));
    }

    #[test]
    fn partitions_follow_the_key_or_the_row() {
        assert_eq!(partition_of(None, 7, 3), 1);
        let p = partition_of(Some(b"foobar"), 0, 12);
        assert_eq!(p, ((-790332482i32 & 0x7fff_ffff) % 12));
        assert_eq!(partition_of(Some(b"foobar"), 99, 12), p);
    }
}
