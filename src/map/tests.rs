use super::*;
use crate::config::Config;
use arrow::array::{Array, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array};
use std::path::Path;

fn attom_mapping(policy: BadRowPolicy) -> Mapping {
    let config = Config::from_toml(include_str!("../../config.toml"), Path::new("/x")).unwrap();
    let source = &config.sources["attom"];
    Mapping::new(&source.columns, MappingOptions { policy, null_values: vec![], ..MappingOptions::of(source) }).unwrap()
}

/// The options of a source with no columns configured (add_columns, rescued column on).
fn inferred_options() -> MappingOptions {
    MappingOptions {
        metadata_columns: false,
        policy: BadRowPolicy::QuarantineFile,
        null_values: vec![],
        evolution: Evolution::AddColumns,
        rescued: Some("_rescued_data".into()),
        hints: IndexMap::new(),
    }
}

fn columns(spec: &[(&str, &str, ColumnType)]) -> IndexMap<String, ColumnConfig> {
    spec.iter()
        .map(|(name, path, kind)| (name.to_string(), ColumnConfig { path: path.to_string(), kind: *kind, format: None, null_if: vec![] }))
        .collect()
}

fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    let a = array.as_string::<i32>();
    (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect()
}

/// Decodes NDJSON text the way the pipeline does, into one batch of text columns.
fn decode(mapping: &Mapping, json: &str) -> RawBatch {
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
    let err = Mapping::new(&columns, inferred_options()).unwrap_err().to_string();
    assert!(err.contains("both a value and an object"), "{err}");
}

#[test]
fn new_fields_are_discovered_with_their_types_and_become_columns_at_the_end() {
    let mapping = Mapping::new(&columns(&[("id", "id", ColumnType::Int64)]), inferred_options()).unwrap();
    let records = r#"{"id": 1, "price": 9.5, "tags": ["x"], "owner": {"name": "a", "age": 3}, "gone": null}
{"id": 2, "price": 10, "owner": {"name": "b"}}"#;
    let mapped = mapping.apply(&decode(&mapping, records), "f", 0, 1).unwrap();
    let found: Vec<_> = mapped.discovered.columns().map(|(p, k)| (p.to_string(), k)).collect();
    assert_eq!(
        found,
        [
            ("price".to_string(), ColumnType::Float64),
            ("tags".to_string(), ColumnType::List(crate::config::ListItem::String)),
            ("owner.name".to_string(), ColumnType::String),
            ("owner.age".to_string(), ColumnType::Int64),
        ],
        "a field with only nulls waits for a value"
    );
    let (evolved, added) = mapping.evolve(&mapped.discovered).unwrap();
    let names: Vec<&str> = added.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["price", "tags", "owner_name", "owner_age"]);
    let names: Vec<_> = evolved.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "_rescued_data", "price", "tags", "owner_name", "owner_age"], "old columns keep their places");
    let again = evolved.apply(&decode(&evolved, records), "f", 0, 1).unwrap();
    assert!(again.discovered.is_empty(), "{:?}", again.discovered);
    let tags = again.batch.column(3).as_list::<i32>();
    assert_eq!((strings(&tags.value(0)), tags.is_null(1)), (vec![Some("x".to_string())], true), "a list of strings");
    assert_eq!(again.batch.column(1).null_count(), 2, "nothing to rescue");
    let reread = Mapping::from_schema(&evolved.schema(), inferred_options()).unwrap();
    assert_eq!(reread.columns(), evolved.columns(), "the table's schema holds the whole mapping");
}

#[test]
fn values_that_do_not_convert_are_rescued_with_the_file_name() {
    let mapping =
        Mapping::new(&columns(&[("id", "id", ColumnType::Int64), ("name", "name", ColumnType::String)]), inferred_options()).unwrap();
    let mapped =
        mapping.apply(&decode(&mapping, "{\"id\": 3, \"name\": \"c\"}\n{\"id\": \"four\", \"name\": \"d\"}"), "f2.json", 0, 1).unwrap();
    assert_eq!((mapped.batch.num_rows(), mapped.bad_rows, mapped.rescued), (2, 0, 1));
    let id = mapped.batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((id.value(0), id.is_null(1)), (3, true));
    assert_eq!(strings(mapped.batch.column(2)), [None, Some(r#"{"id":"four","_file_path":"f2.json"}"#.to_string())]);
}

#[test]
fn floats_that_are_not_finite_are_rescued_not_written_as_infinities() {
    let mapping = Mapping::new(&columns(&[("x", "x", ColumnType::Float64)]), inferred_options()).unwrap();
    let records = "{\"x\": 1e400}\n{\"x\": \"NaN\"}\n{\"x\": \"-1e400\"}\n{\"x\": 2.5}";
    let mapped = mapping.apply(&decode(&mapping, records), "f", 0, 1).unwrap();
    assert_eq!((mapped.batch.num_rows(), mapped.bad_rows, mapped.rescued), (4, 0, 3));
    let x = mapped.batch.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!((x.null_count(), x.value(3)), (3, 2.5));
    let rescued = |value: &str| Some(format!(r#"{{"x":"{value}","_file_path":"f"}}"#));
    assert_eq!(strings(mapped.batch.column(1)), [rescued("1e400"), rescued("NaN"), rescued("-1e400"), None]);
}

#[test]
fn each_evolution_mode_treats_a_new_field_its_own_way() {
    let spec = columns(&[("id", "id", ColumnType::Int64)]);
    let records = "{\"id\": 1, \"n\": 123456789012345678901234567890}";
    let with = |evolution, rescued: Option<&str>| {
        let options = MappingOptions { evolution, rescued: rescued.map(String::from), ..inferred_options() };
        let mapping = Mapping::new(&spec, options).unwrap();
        mapping.apply(&decode(&mapping, records), "f", 0, 7)
    };
    let err = with(Evolution::Fail, None).unwrap_err().to_string();
    assert!(err.contains("\"n\"") && err.contains("record 7"), "{err}");
    let rescued = with(Evolution::Rescue, Some("_r")).unwrap();
    assert_eq!(
        strings(rescued.batch.column(1)),
        [Some(r#"{"n":123456789012345678901234567890,"_file_path":"f"}"#.to_string())],
        "exact digits"
    );
    let ignored = with(Evolution::None, None).unwrap();
    assert_eq!((ignored.ignored, ignored.batch.num_columns()), (1, 1));
    let added = with(Evolution::AddColumns, None).unwrap();
    assert_eq!(added.discovered.paths(), ["n"]);
    let (mapping, _) = Mapping::new(&spec, inferred_options()).unwrap().evolve(&added.discovered).unwrap();
    let big = mapping.apply(&decode(&mapping, records), "f", 0, 1).unwrap();
    let n = big.batch.column(2).as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(n.value(0), 123456789012345678901234567890, "a 30-digit integer is exact");
}

#[test]
fn hints_type_new_columns() {
    let options = MappingOptions {
        hints: IndexMap::from([("price".to_string(), ColumnType::Decimal { precision: 12, scale: 2 })]),
        ..inferred_options()
    };
    let mapping = Mapping::new(&columns(&[("id", "id", ColumnType::Int64)]), options).unwrap();
    let mapped = mapping.apply(&decode(&mapping, "{\"id\": 1, \"price\": 9.5}"), "f", 0, 1).unwrap();
    let (evolved, _) = mapping.evolve(&mapped.discovered).unwrap();
    let field = evolved.schema().field_with_name("price").unwrap().clone();
    assert_eq!(field.data_type(), &arrow::datatypes::DataType::Decimal128(12, 2));
    let mapped = evolved.apply(&decode(&evolved, "{\"id\": 1, \"price\": 9.5}"), "f", 0, 1).unwrap();
    let price = mapped.batch.column(2).as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(price.value(0), 950);
}

#[test]
fn a_key_with_a_dot_is_added_once_and_then_rescued_not_added_again() {
    let mapping = Mapping::new(&columns(&[("id", "id", ColumnType::Int64)]), inferred_options()).unwrap();
    let records = r#"{"id": 1, "a.b": 5}"#;
    let first = mapping.apply(&decode(&mapping, records), "f", 0, 1).unwrap();
    assert_eq!(first.discovered.paths(), ["a.b"]);
    let (evolved, _) = mapping.evolve(&first.discovered).unwrap();
    let again = evolved.apply(&decode(&evolved, records), "f", 0, 1).unwrap();
    assert!(again.discovered.is_empty(), "no second column for the same key: {:?}", again.discovered);
    assert_eq!(strings(again.batch.column(1)), [Some(r#"{"a.b":5,"_file_path":"f"}"#.to_string())], "kept in the rescued column");
}
