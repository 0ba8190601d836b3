use super::*;
use crate::config::Config;
use arrow::array::{Array, Date32Array, Float64Array, Int32Array, Int64Array};
use std::path::Path;

fn attom_mapping(policy: BadRowPolicy) -> Mapping {
    let config = Config::from_toml(include_str!("../../config.toml"), Path::new("/x")).unwrap();
    let source = &config.sources["attom"];
    Mapping::new(&source.columns, true, policy, vec![]).unwrap()
}

/// Decodes NDJSON text the way the pipeline does, into one batch of text columns.
fn decode(mapping: &Mapping, json: &str) -> RecordBatch {
    let format = FormatConfig { kind: crate::config::FormatKind::Ndjson, ..FormatConfig::default() };
    let plan = mapping.decode_plan(&format).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records");
    std::fs::write(&path, json).unwrap();
    let mut batches = Vec::new();
    crate::decode::open(&path, "records", &format)
        .unwrap()
        .decode(&plan, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
    assert_eq!(batches.len(), 1);
    batches.remove(0)
}

const RECORDS: &str = r#"
{"sale": {"saleTransDate": "2021-1-4", "amount": {"saleamt": 265000}}, "address": {"postal1": "91704"},
 "lot": {"lotSize1": 1}, "building": {"size": {"universalsize": 1624}}, "location": {"latitude": "34.191529", "longitude": "-114.220966"},
 "summary": {"proptype": "SFR", "yearbuilt": 1995}}
{"sale": {"saleTransDate": "2021-12-31", "amount": {"saleamt": null}}, "lot": {}, "location": {"latitude": "1", "longitude": "2"},
 "summary": {"proptype": "CONDO", "yearbuilt": 0}}
"#;

#[test]
fn attom_records_map_to_nine_typed_columns() {
    let mapping = attom_mapping(BadRowPolicy::QuarantineFile);
    let raw = decode(&mapping, RECORDS);
    let mapped = mapping.apply(&raw, "CO06037 2021-01-01", 42, 1).unwrap();
    let b = &mapped.batch;
    assert_eq!(mapped.bad_rows, 0);
    assert_eq!(b.num_columns(), 11);
    let date = b.column(0).as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(date.value(0), crate::map::convert::parse_date("2021-01-04", None).unwrap());
    assert_eq!(b.column(1).as_string::<i32>().value(0), "91704");
    assert!(b.column(1).is_null(1), "missing address gives null");
    let price = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((price.value(0), price.is_null(1)), (265000, true));
    let lot = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(lot.value(0), 1.0, "an int where a float is usual");
    assert!(lot.is_null(1), "empty lot object gives null");
    let size = b.column(4).as_any().downcast_ref::<Int64Array>().unwrap();
    assert!(size.is_null(1), "no building object gives null");
    let lat = b.column(5).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(lat.value(0), 34.191529, "coordinates arrive as strings");
    let year = b.column(8).as_any().downcast_ref::<Int32Array>().unwrap();
    assert_eq!((year.value(0), year.is_null(1)), (1995, true), "0 means unknown");
    assert_eq!(b.column(9).as_string::<i32>().value(1), "CO06037 2021-01-01");
}

const BAD: &str = r#"{"sale": {"amount": {"saleamt": "n/a"}}, "summary": {"yearbuilt": 1990}}
{"sale": {"amount": {"saleamt": 5}}, "summary": {"yearbuilt": 1991}}"#;

#[test]
fn bad_values_follow_the_policy() {
    let mapping = attom_mapping(BadRowPolicy::QuarantineFile);
    let err = mapping.apply(&decode(&mapping, BAD), "f", 0, 10).unwrap_err().to_string();
    assert!(err.contains("sale_price") && err.contains("record 10") && err.contains("n/a"), "{err}");

    let mapping = attom_mapping(BadRowPolicy::Null);
    let mapped = mapping.apply(&decode(&mapping, BAD), "f", 0, 1).unwrap();
    assert_eq!((mapped.batch.num_rows(), mapped.bad_rows), (2, 1));
    assert!(mapped.batch.column(2).is_null(0));

    let mapping = attom_mapping(BadRowPolicy::Skip);
    let mapped = mapping.apply(&decode(&mapping, BAD), "f", 0, 1).unwrap();
    assert_eq!((mapped.batch.num_rows(), mapped.bad_rows), (1, 1));
    let year = mapped.batch.column(8).as_any().downcast_ref::<Int32Array>().unwrap();
    assert_eq!(year.value(0), 1991, "the good row is the one kept");
}

#[test]
fn a_path_that_is_both_value_and_object_is_refused() {
    let mut columns = IndexMap::new();
    for (name, path) in [("a", "x"), ("b", "x.y")] {
        columns.insert(name.to_string(), ColumnConfig { path: path.into(), kind: ColumnType::String, format: None, null_if: vec![] });
    }
    let err = Mapping::new(&columns, false, BadRowPolicy::Null, vec![]).unwrap_err().to_string();
    assert!(err.contains("both a value and an object"), "{err}");
}
