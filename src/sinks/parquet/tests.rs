use super::partition::escape_partition_value;
use super::*;

#[test]
fn partition_values_are_percent_encoded_as_utf8_bytes() {
    assert_eq!(escape_partition_value("a b/é"), "a%20b%2F%C3%A9");
    assert_eq!(escape_partition_value("2021-01.x_y"), "2021-01.x_y");
}

#[test]
fn only_this_writers_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        ".part-h+a-~1-2-3.tmp",
        ".part-h+a-0000000007.parquet.tmp",
        ".part-h+a-b-0000000007.parquet.tmp",
        ".part-h+a-b-~1-2-3.tmp",
        "part-h+a-0000000006.parquet",
    ];
    for name in names {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    remove_temps(dir.path(), ".part-h+a-", &Default::default()).unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".part-h+a-b-0000000007.parquet.tmp", ".part-h+a-b-~1-2-3.tmp", "part-h+a-0000000006.parquet"]);
}

#[test]
fn a_batch_is_found_with_the_files_its_manifest_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    let config = ParquetSinkConfig {
        path: path.clone(),
        partition_by: vec!["zip".into()],
        compression: ParquetCompression::Zstd,
        zstd_level: 3,
        s3: Default::default(),
    };
    let schema = Arc::new(Schema::new(vec![
        arrow::datatypes::Field::new("zip", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, true),
    ]));
    let zips = Arc::new(arrow::array::StringArray::from(vec!["a b", "c"]));
    let batch = RecordBatch::try_new(schema.clone(), vec![zips, Arc::new(arrow::array::Int64Array::from(vec![1, 2]))]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let mut sink = ParquetSink::new("files", config, "h", "s", dir.path());
        sink.prepare(schema.clone()).await.unwrap();
        let mut writer = sink.begin(schema).await.unwrap();
        writer.write(&batch).await.unwrap();
        let manifest = BatchManifest {
            instance: "h".into(),
            source: "s".into(),
            seq: 4,
            ingested_at_us: None,
            files: vec![],
            columns_added: vec![],
            lookups: vec![],
        };
        writer.commit(&manifest).await.unwrap();
        let commit = sink.lake_commit(4).await.unwrap().unwrap();
        assert_eq!((commit.root.as_str(), commit.version), (path.as_str(), None));
        let mut files = commit.files.clone();
        files.sort();
        assert_eq!(files, ["zip=a%20b/part-h+s-0000000004.parquet", "zip=c/part-h+s-0000000004.parquet"]);
        assert!(files.iter().all(|f| dir.path().join(f).is_file()));
        assert_eq!(sink.lake_commit(5).await.unwrap(), None);
    });
}

#[test]
fn recovery_removes_a_manifest_left_under_its_temporary_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = ParquetSinkConfig {
        path: dir.path().to_string_lossy().into_owned(),
        partition_by: vec![],
        compression: ParquetCompression::Zstd,
        zstd_level: 3,
        s3: Default::default(),
    };
    let sink = ParquetSink::new("files", config, "h", "s", dir.path());
    std::fs::create_dir_all(sink.manifest_dir()).unwrap();
    let stale = sink.manifest_dir().join(format!("{:020}.json.tmp", 3));
    std::fs::write(&stale, b"{").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(sink.recover()).unwrap(), None, "an uncommitted manifest holds nothing");
    assert!(!stale.exists());
}
