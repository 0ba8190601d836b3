use super::*;
use arrow::array::{AsArray, Int64Array, StringArray};
use arrow::datatypes::Int64Type;
use std::collections::HashMap;

fn input() -> SchemaRef {
    let path = HashMap::from([(crate::map::PATH_METADATA.to_string(), "trip.passengers".to_string())]);
    Arc::new(Schema::new(vec![
        Field::new("passengers", DataType::Int64, true).with_metadata(path),
        Field::new("region_id", DataType::Int64, true),
        Field::new("code", DataType::Utf8, true),
    ]))
}

fn chunk(passengers: &[i64], regions: &[i64], codes: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        input(),
        vec![
            Arc::new(Int64Array::from(passengers.to_vec())),
            Arc::new(Int64Array::from(regions.to_vec())),
            Arc::new(StringArray::from(codes.to_vec())),
        ],
    )
    .unwrap()
}

fn regions(names: &[(i64, &str)]) -> Arc<lookup::Loaded> {
    let schema =
        Arc::new(Schema::new(vec![Field::new("region_id", DataType::Int64, true), Field::new("region_name", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(names.iter().map(|(id, _)| *id).collect::<Vec<_>>())),
            Arc::new(StringArray::from(names.iter().map(|(_, n)| *n).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    Arc::new(lookup::Loaded::for_tests("regions", schema, vec![batch]))
}

fn plan(sql: &str, lookups: &[Arc<lookup::Loaded>], policy: BadRowPolicy) -> Result<Planned, TransformError> {
    tokio::runtime::Runtime::new().unwrap().block_on(Planned::plan(sql, input(), lookups, policy))
}

#[test]
fn a_filter_and_projection_keep_the_rows_asked_for_count_the_rest_and_keep_the_input_path() {
    let planned = plan("SELECT passengers, code FROM batch WHERE passengers > 3", &[], BadRowPolicy::Skip).unwrap();
    let output = planned.output();
    assert_eq!(output.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["passengers", "code"]);
    assert_eq!(output.field(0).metadata().get(crate::map::PATH_METADATA).map(String::as_str), Some("trip.passengers"));
    let runner = planned.runner().unwrap();
    let out = runner.apply(&chunk(&[1, 4, 5, 3], &[1, 1, 2, 2], &["a", "b", "c", "d"]), 1).unwrap();
    let got: Vec<i64> = out.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(got, [4, 5]);
    assert_eq!((out.filtered, out.bad_rows), (2, 0));
    // The same runner over the next chunk sees only that chunk.
    let out = runner.apply(&chunk(&[9], &[1], &["z"]), 5).unwrap();
    assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[test]
fn a_lookup_join_names_the_rows_and_the_version_it_used() {
    let lookup = regions(&[(1, "north"), (2, "south")]);
    let planned =
        plan("SELECT passengers, region_name FROM batch JOIN regions USING (region_id)", std::slice::from_ref(&lookup), BadRowPolicy::Skip)
            .unwrap();
    assert_eq!(planned.lookups_used().len(), 1);
    assert_eq!(planned.lookups_used()[0].name, "regions");
    let out = planned.runner().unwrap().apply(&chunk(&[1, 2, 3], &[2, 1, 7], &["a", "b", "c"]), 1).unwrap();
    let mut names: Vec<String> = out
        .batches
        .iter()
        .flat_map(|b| b.column(1).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    names.sort();
    assert_eq!(names, ["north", "south"]);
    assert_eq!(out.filtered, 1, "the row without a region is left out by the inner join");
    let unused = plan("SELECT passengers FROM batch", &[lookup], BadRowPolicy::Skip).unwrap();
    assert!(unused.lookups_used().is_empty(), "a lookup the query does not read is not recorded");
}

#[test]
fn queries_that_would_see_only_part_of_a_batch_are_refused_with_the_reason() {
    for (sql, reason) in [
        ("SELECT region_id, count(*) FROM batch GROUP BY region_id", "aggregation"),
        ("SELECT passengers FROM batch ORDER BY passengers", "ORDER BY"),
        ("SELECT passengers FROM batch LIMIT 3", "LIMIT"),
        ("SELECT DISTINCT code FROM batch", "DISTINCT"),
        ("SELECT passengers, row_number() OVER () FROM batch", "window"),
        ("SELECT a.passengers FROM batch a JOIN batch b USING (code)", "more than once"),
        ("SELECT 1 AS one", "does not read"),
    ] {
        let error = plan(sql, &[], BadRowPolicy::Skip).unwrap_err().to_string();
        assert!(error.contains(reason), "{sql}: {error}");
    }
    let error = plan("SELECT nope FROM batch", &[], BadRowPolicy::Skip).unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
    let error = plan("SELECT region_id, region_id FROM batch", &[], BadRowPolicy::Skip).unwrap_err().to_string();
    assert!(error.contains("unique expression names"), "{error}");
    let error = plan("DROP TABLE batch", &[], BadRowPolicy::Skip).unwrap_err().to_string();
    assert!(error.contains("SELECT"), "{error}");
}

#[test]
fn a_row_the_query_fails_on_follows_on_bad_row() {
    let sql = "SELECT CAST(code AS BIGINT) AS code FROM batch";
    let rows = chunk(&[1, 2, 3], &[1, 1, 1], &["10", "x", "30"]);
    let skip = plan(sql, &[], BadRowPolicy::Skip).unwrap().runner().unwrap().apply(&rows, 1).unwrap();
    let kept: Vec<i64> = skip.batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!((kept, skip.bad_rows, skip.filtered), (vec![10, 30], 1, 0));
    let error = plan(sql, &[], BadRowPolicy::QuarantineFile).unwrap().runner().unwrap().apply(&rows, 41).unwrap_err();
    assert_eq!(error.record(), Some(42), "{error}");
}

#[test]
fn joins_and_subqueries_that_give_lookup_rows_of_their_own_are_refused_and_the_rest_planned() {
    let lookups = [regions(&[(1, "north"), (2, "south")])];
    for sql in [
        // Each would repeat the lookup's unmatched rows once per chunk.
        "SELECT region_name FROM batch RIGHT JOIN regions USING (region_id)",
        "SELECT region_name FROM regions LEFT JOIN batch USING (region_id)",
        "SELECT region_name FROM batch FULL JOIN regions USING (region_id)",
        "SELECT region_name FROM regions WHERE region_id IN (SELECT region_id FROM batch)",
        "SELECT region_name FROM regions WHERE NOT EXISTS (SELECT 1 FROM batch WHERE batch.region_id = regions.region_id)",
        "SELECT code FROM batch UNION ALL SELECT region_name FROM regions",
    ] {
        let error = plan(sql, &lookups, BadRowPolicy::Skip).unwrap_err();
        assert!(matches!(error, TransformError::NotRowWise(_)), "{sql}: {error}");
    }
    for sql in [
        "SELECT passengers, region_name FROM batch LEFT JOIN regions USING (region_id)",
        "SELECT passengers, region_name FROM regions RIGHT JOIN batch USING (region_id)",
        "SELECT passengers FROM batch WHERE region_id IN (SELECT region_id FROM regions)",
        "SELECT passengers FROM batch WHERE region_id NOT IN (SELECT region_id FROM regions)",
        "SELECT passengers, (SELECT max(region_id) FROM regions) AS top FROM batch",
    ] {
        plan(sql, &lookups, BadRowPolicy::Skip).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // A left join keeps the batch's rows without a region, and only those.
    let planned =
        plan("SELECT passengers, region_name FROM batch LEFT JOIN regions USING (region_id)", &lookups, BadRowPolicy::Skip).unwrap();
    let out = planned.runner().unwrap().apply(&chunk(&[1, 2], &[2, 7], &["a", "b"]), 1).unwrap();
    assert_eq!((out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), out.filtered), (2, 0));
}
