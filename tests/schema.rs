//! Schema that follows the data: the evolution modes, the rescued column and the table's schema
//! as the truth, checked through the deltalake crate and, for the rows, Python's deltalake,
//! polars and DuckDB's own Delta reader (scripts/read_table.py).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const F1: &[u8] = br#"[{"id":1,"name":"a"},{"id":2,"name":"b"}]"#;
const F3: &[u8] = br#"[{"id":3,"name":"c","price":9.5,"tags":["x"]}]"#;
const F2: &[u8] = br#"[{"id":3,"name":"c"},{"id":"four","name":"d"}]"#;

/// Each reader's rows of `table`, reduced to `columns` (missing columns as null), as a set; the
/// readers must agree.
fn rows_seen(table: &Path, parquet: bool, columns: &[&str]) -> BTreeSet<Vec<Option<String>>> {
    let seen = read_with_every_reader(table, parquet);
    let mut agreed: Option<BTreeSet<Vec<Option<String>>>> = None;
    for (reader, result) in seen.as_object().unwrap() {
        let rows: BTreeSet<Vec<Option<String>>> = result["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| columns.iter().map(|c| row[*c].as_str().map(String::from)).collect())
            .collect();
        assert_eq!(rows.len(), result["rows"].as_array().unwrap().len(), "{reader}: duplicate rows");
        if let Some(agreed) = &agreed {
            assert_eq!(&rows, agreed, "{reader} disagrees");
        }
        agreed = Some(rows);
    }
    agreed.unwrap()
}

fn columns_seen(table: &Path, parquet: bool) -> Vec<Vec<String>> {
    let seen = read_with_every_reader(table, parquet);
    seen.as_object()
        .unwrap()
        .values()
        .map(|r| r["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .collect()
}

fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(String::from)).collect()
}

fn schema_json(ws: &Workspace) -> Value {
    let out = ws.ingestd(&["schema", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_three_files_with_no_config_commit_every_row_with_new_columns_and_the_mismatch_rescued() {
    let ws = Workspace::with_config("");
    std::fs::remove_file(ws.path("config.toml")).unwrap();
    for (name, bytes, rows) in [("f1.json", F1, 2), ("f3.json", F3, 1), ("f2.json", F2, 2)] {
        ws.drop_file(name, bytes);
        let summary = ws.once();
        assert_eq!(
            (summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()),
            (Some(rows), Some(0)),
            "{name}: {summary}"
        );
    }
    let lake = ws.path("lake");
    for columns in columns_seen(&lake, false) {
        assert_eq!(columns, ["id", "name", "_source_file", "_ingested_at", "_rescued_data", "price", "tags"]);
    }
    let rows = rows_seen(&lake, false, &["id", "name", "price", "tags", "_rescued_data"]);
    let rescued = r#"{"id":"four","_file_path":"f2.json"}"#;
    let expected: BTreeSet<_> = [
        row(&[Some("1"), Some("a"), None, None, None]),
        row(&[Some("2"), Some("b"), None, None, None]),
        row(&[Some("3"), Some("c"), Some("9.5"), Some("['x']"), None]),
        row(&[Some("3"), Some("c"), None, None, None]),
        row(&[None, Some("d"), None, None, Some(rescued)]),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, expected);

    // The deltalake crate sees the same schema, with the paths and types ingestd maps by.
    let schema = schema_json(&ws);
    let types: Vec<(String, String)> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["type"].as_str().unwrap().to_string()))
        .collect();
    assert!(types.contains(&("price".into(), "float64".into())) && types.contains(&("tags".into(), "list<string>".into())), "{schema}");
    let history = schema["history"]["lake"].as_array().unwrap();
    assert_eq!(history.len(), 2, "created, then price and tags added: {schema}");
    assert_eq!((history[1]["columns"].clone(), history[1]["files"].clone()), (json!(["price", "tags"]), json!(["f3.json"])));
    assert_eq!(row_count(&read_delta(&lake)), 5);
}

/// A source with `id` and `name` configured and the given `[sources.s.schema]` keys.
fn configured(schema: &str) -> Workspace {
    Workspace::with_config(&format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\"]\n\
         [sources.s.columns]\nid = {{ path = \"id\", type = \"int64\" }}\nname = {{ path = \"name\", type = \"string\" }}\n\
         [sources.s.schema]\n{schema}\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n"
    ))
}

fn drop_three(ws: &Workspace) -> Value {
    ws.drop_file("f1.json", F1);
    ws.drop_file("f2.json", F2);
    ws.drop_file("f3.json", F3);
    ws.once()
}

fn quarantine_list(ws: &Workspace) -> String {
    String::from_utf8_lossy(&ws.ingestd(&["quarantine", "list"]).stdout).into_owned()
}

#[test]
fn fail_quarantines_a_file_with_a_new_field_naming_it() {
    let ws = configured("evolution = \"fail\"");
    let summary = drop_three(&ws);
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()), (Some(2), Some(2)), "{summary}");
    let list = quarantine_list(&ws);
    assert!(list.contains("f3.json") && list.contains("\"price\"") && list.contains("evolution"), "{list}");
    assert!(list.contains("f2.json") && list.contains("four"), "no rescued column: the bad value quarantines its file: {list}");
}

#[test]
fn rescue_keeps_the_schema_and_the_new_fields_in_the_rescued_column() {
    let ws = configured("evolution = \"rescue\"");
    let summary = drop_three(&ws);
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["rescued_values"].as_u64()), (Some(5), Some(3)), "{summary}");
    for columns in columns_seen(&ws.path("lake"), false) {
        assert_eq!(columns, ["id", "name", "_source_file", "_ingested_at", "_rescued_data"]);
    }
    let rows = rows_seen(&ws.path("lake"), false, &["id", "_rescued_data"]);
    assert!(rows.contains(&row(&[Some("3"), Some(r#"{"price":9.5,"tags":["x"],"_file_path":"f3.json"}"#)])), "{rows:?}");
    assert!(rows.contains(&row(&[None, Some(r#"{"id":"four","_file_path":"f2.json"}"#)])), "{rows:?}");
}

#[test]
fn none_ignores_new_fields_and_counts_them() {
    let ws = configured("evolution = \"none\"\nrescued_column = \"_rescued_data\"");
    let summary = drop_three(&ws);
    assert_eq!(
        (summary["totals"]["rows"].as_u64(), summary["totals"]["ignored_values"].as_u64(), summary["totals"]["rescued_values"].as_u64()),
        (Some(5), Some(2), Some(1)),
        "price and tags ignored, the mismatch rescued: {summary}"
    );
    for columns in columns_seen(&ws.path("lake"), false) {
        assert_eq!(columns, ["id", "name", "_source_file", "_ingested_at", "_rescued_data"]);
    }
}

#[test]
fn add_columns_on_configured_columns_adds_them_and_without_a_rescued_column_a_mismatch_quarantines() {
    let ws = configured("evolution = \"add_columns\"");
    let summary = drop_three(&ws);
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()), (Some(3), Some(1)), "{summary}");
    let rows = rows_seen(&ws.path("lake"), false, &["id", "price", "tags"]);
    assert!(rows.contains(&row(&[Some("3"), Some("9.5"), Some("['x']")])), "{rows:?}");
    assert!(quarantine_list(&ws).contains("four"));
}

/// Files whose fields grow: `region` partitions, `a`, then `b`, then a nested `c.d`.
fn growing_files(ws: &Workspace) {
    let files: [(&str, &[u8]); 3] = [
        ("g1.json", br#"[{"region":"n","a":1}]"#),
        ("g2.json", br#"[{"region":"s","a":2,"b":"x"}]"#),
        ("g3.json", br#"[{"region":"n","a":3,"c":{"d":1.5}}]"#),
    ];
    for (name, bytes) in files {
        ws.drop_file(name, bytes);
        assert_eq!(ws.once()["totals"]["rows"], 1, "{name}");
    }
}

fn inferred_with_sink(sink: &str) -> Workspace {
    Workspace::with_config(&format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"out\"]\n[sinks.out]\n{sink}\n"
    ))
}

#[test]
fn a_partitioned_delta_table_evolves_in_its_batch_commits() {
    let ws = inferred_with_sink("kind = \"delta\"\nuri = \"lake\"\npartition_by = [\"region\"]");
    growing_files(&ws);
    let rows = rows_seen(&ws.path("lake"), false, &["region", "a", "b", "c_d"]);
    let expected: BTreeSet<_> = [
        row(&[Some("n"), Some("1"), None, None]),
        row(&[Some("s"), Some("2"), Some("x"), None]),
        row(&[Some("n"), Some("3"), None, Some("1.5")]),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, expected);
    let history = schema_json(&ws)["history"]["out"].clone();
    let added: Vec<Value> = history.as_array().unwrap().iter().skip(1).map(|h| h["columns"].clone()).collect();
    assert_eq!(added, [json!(["b"]), json!(["c_d"])], "{history}");
}

#[test]
fn a_parquet_dataset_carries_new_columns_in_later_files() {
    let ws = inferred_with_sink("kind = \"parquet\"\npath = \"dataset\"\npartition_by = [\"region\"]");
    growing_files(&ws);
    let rows = rows_seen(&ws.path("dataset"), true, &["region", "a", "b", "c_d"]);
    assert_eq!(rows.len(), 3);
    assert!(rows.contains(&row(&[Some("n"), Some("3"), None, Some("1.5")])), "{rows:?}");
    assert!(rows.contains(&row(&[Some("s"), Some("2"), Some("x"), None])), "{rows:?}");
    // The newest manifest holds the columns: with the state folder gone they map as before.
    std::fs::remove_dir_all(ws.path("state")).unwrap();
    ws.drop_file("g4.json", br#"[{"region":"s","a":4,"b":"y","c":{"d":2.5}}]"#);
    assert_eq!(ws.once()["totals"]["rows"], 1);
    let names: Vec<String> =
        schema_json(&ws)["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["region", "a", "_source_file", "_ingested_at", "_rescued_data", "b", "c_d"]);
    assert!(rows_seen(&ws.path("dataset"), true, &["a", "c_d"]).contains(&row(&[Some("4"), Some("2.5")])));
}

#[test]
fn two_daemons_adding_different_columns_to_one_table_keep_every_row_once() {
    let ws = Workspace::with_config("");
    let table = ws.path("lake").display().to_string();
    let mut children = Vec::new();
    for who in ["a", "b"] {
        let folder = ws.path(&format!("drop_{who}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..6 {
            let id = if who == "a" { i } else { 100 + i };
            let text = format!(r#"[{{"id":{id},"who":"{who}","from_{who}":{i}}}]"#);
            std::fs::write(folder.join(format!("{who}{i}.json")), text).unwrap();
        }
        let config = format!(
            "instance = \"{who}\"\nstate_dir = \"state_{who}\"\nquarantine_dir = \"quarantine_{who}\"\n[http]\nlisten = \"\"\n\
             [sources.s]\npath = \"drop_{who}\"\nmin_age = \"0s\"\nsinks = [\"lake\"]\n[sources.s.batch]\nmax_files = 1\n\
             [sinks.lake]\nkind = \"delta\"\nuri = {table:?}\n"
        );
        std::fs::write(ws.path(&format!("{who}.toml")), config).unwrap();
        children.push(spawn_run(&ws, &["--config", &format!("{who}.toml")], &format!("run_{who}.log")));
    }
    let rows = wait_until(std::time::Duration::from_secs(120), 12, || {
        if ws.path("lake/_delta_log").exists() { delta_rows(&ws.path("lake")) } else { 0 }
    });
    for child in children {
        terminate(child);
    }
    assert_eq!(
        rows,
        12,
        "logs: {}\n{}",
        std::fs::read_to_string(ws.path("run_a.log")).unwrap_or_default(),
        std::fs::read_to_string(ws.path("run_b.log")).unwrap_or_default()
    );
    let seen = rows_seen(&ws.path("lake"), false, &["id", "who", "from_a", "from_b"]);
    let expected: BTreeSet<_> = (0..6)
        .flat_map(|i| {
            let n = i.to_string();
            [
                vec![Some(i.to_string()), Some("a".to_string()), Some(n.clone()), None],
                vec![Some((100 + i).to_string()), Some("b".to_string()), None, Some(n)],
            ]
        })
        .collect();
    assert_eq!(seen, expected, "every row once, each daemon's column on its own rows");
}

/// A JSON file of ever new keys would make as many columns: past `format.limits.max_columns`
/// it is quarantined naming the limit, whether inference samples it or `add_columns` meets it
/// later, and its neighbours commit.
#[test]
fn a_json_file_of_more_new_fields_than_max_columns_is_quarantined_naming_the_limit() {
    let config = "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\"]\n\
                  [sources.s.format]\nlimits = { max_columns = 10 }\n[sources.s.batch]\nmax_files = 1\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n";
    let wide = |first: u32| {
        let fields: Vec<String> = (first..first + 11).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("[{{{}}}]", fields.join(","))
    };
    // Inference: the first file is too wide, the second starts the table.
    let ws = Workspace::with_config(config);
    ws.drop_file("a_wide.json", wide(0).as_bytes());
    ws.drop_file("b_narrow.json", F1);
    let summary = ws.once();
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()), (Some(2), Some(1)), "{summary}");
    let list = quarantine_list(&ws);
    assert!(list.contains("a_wide.json") && list.contains("format.limits.max_columns (10)"), "{list}");
    // `add_columns`: a later file bringing 11 new fields at once.
    ws.drop_file("c_wide.json", wide(100).as_bytes());
    ws.drop_file("d_one_more.json", F3);
    let summary = ws.once();
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()), (Some(1), Some(1)), "{summary}");
    let list = quarantine_list(&ws);
    assert!(list.contains("c_wide.json") && list.matches("format.limits.max_columns (10)").count() == 2, "{list}");
}
