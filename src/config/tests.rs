use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/base"))
}

const MINIMAL: &str = r#"
    [sources.a]
    path = "drop"
    sinks = ["lake"]
    [sinks.lake]
    kind = "delta"
    uri = "lake"
"#;

#[test]
fn the_shipped_example_config_is_valid() {
    let config = parse(include_str!("../../config.toml")).expect("config.toml must be valid");
    let attom = &config.sources["attom"];
    let names: Vec<&str> = attom.columns.keys().map(String::as_str).collect();
    assert_eq!(names, ["transaction_date", "zipcode", "sale_price", "lot_size", "size", "latitude", "longitude", "type", "year_built"]);
    assert_eq!(attom.path, Path::new("/base/drop/attom"));
    assert_eq!(attom.kind, SourceKind::Folder);
    assert_eq!(Config::from_toml(MINIMAL, Path::new(".")).unwrap().state_dir, Path::new("state"));
}

#[test]
fn builtin_default_is_valid_and_relative_to_base() {
    let config = Config::builtin_default(Path::new("/srv"));
    assert_eq!(config.sources["drop"].path, Path::new("/srv/drop"));
    assert_eq!(config.sources["drop"].kind, SourceKind::Folder);
    assert_eq!(config.state_dir, Path::new("/srv/state"));
    match &config.sinks["lake"] {
        SinkConfig::Delta(d) => assert_eq!(d.uri, "/srv/lake"),
        other => panic!("expected a delta sink, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let text = MINIMAL.replace("path = \"drop\"", "path = \"drop\"\nmin_agee = \"1s\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("min_agee"), "{err}");
}

#[test]
fn every_problem_is_listed_with_its_key() {
    let text = r#"
        instance = "has space"
        [http]
        listen = "localhost"
        [sources.a]
        path = "drop"
        sinks = ["nope"]
        after_commit = "archive"
        [sources.a.columns]
        d = { path = "x..y", type = "string", format = "%Y" }
        [sinks.lake]
        kind = "delta"
        uri = "lake"
        zstd_level = 40
    "#;
    let Err(ConfigError::Invalid { problems, .. }) = parse(text) else { panic!("expected Invalid") };
    let all = problems.join("\n");
    for key in [
        "instance:",
        "http.listen",
        "sources.a.sinks[0]",
        "sources.a.archive_dir",
        "sources.a.columns.d.path",
        "sources.a.columns.d.format",
        "sinks.lake.zstd_level",
    ] {
        assert!(all.contains(key), "missing {key} in:\n{all}");
    }
}

#[test]
fn bad_types_and_units_name_the_value() {
    let text = MINIMAL.replace("sinks = [\"lake\"]", "sinks = [\"lake\"]\nmin_age = \"soon\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("soon"), "{err}");
    let text = MINIMAL.replace("sinks = [\"lake\"]", "sinks = [\"lake\"]\n[sources.a.columns]\nx = { path = \"x\", type = \"integer\" }");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("integer"), "{err}");
}

/// A config with one source `a` holding `keys` (and its sink `lake`).
fn with_source(keys: &str) -> String {
    format!("[sources.a]\nsinks = [\"lake\"]\n{keys}\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n")
}

const FOLDER: &str = "path = \"drop\"\n";
const HTTP: &str = "kind = \"http\"\nurl = \"http://h/pulls/\"\n";
const S3: &str = "kind = \"s3\"\nurl = \"s3://b/pulls\"\n";

#[test]
fn a_key_of_another_kind_is_refused_with_its_full_key_and_location() {
    let cases = [
        (
            format!("{FOLDER}[sources.a.s3]\nregion = \"eu\""),
            "sources.a.s3: a folder source has no s3 settings (it belongs to kind = \"s3\")",
        ),
        (
            format!("{FOLDER}[sources.a.http]\nlisting = \"html\""),
            "sources.a.http: a folder source has no http settings (it belongs to kind = \"http\")",
        ),
        (
            format!("{FOLDER}[sources.a.fetch]\nretries = 1"),
            "sources.a.fetch: a folder source has no fetch settings (it belongs to kind = \"http\" or \"s3\")",
        ),
        (format!("kind = \"folder\"\n{FOLDER}[sources.a.fetch]"), "sources.a.fetch: a folder source has no fetch settings"),
        (format!("url = \"http://h/\"\n{FOLDER}"), "sources.a.url: a folder source has no url (it belongs to kind = \"http\" or \"s3\")"),
        (format!("{HTTP}[sources.a.s3]\nregion = \"eu\""), "sources.a.s3: an http source has no s3 settings (it belongs to kind = \"s3\")"),
        (
            format!("{S3}[sources.a.http]\nlisting = \"json\""),
            "sources.a.http: an s3 source has no http settings (it belongs to kind = \"http\")",
        ),
    ];
    for (keys, want) in cases {
        let err = parse(&with_source(&keys)).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        let err = err.to_string();
        assert!(err.contains(want) && err.contains("TOML parse error at line"), "want {want:?} in:\n{err}");
    }
}

#[test]
fn check_shows_a_misplaced_key_with_its_source_and_line() {
    // `ingestd check` prints the error of `Config::load` as it is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, with_source(&format!("{FOLDER}[sources.a.s3]\nregion = \"eu\""))).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("line 1") && err.contains("sources.a.s3: a folder source has no s3 settings"), "{err}");
}

#[test]
fn a_source_read_alone_names_the_misplaced_key() {
    let err = toml::from_str::<SourceConfig>("path = \"d\"\nsinks = []\n[s3]\nregion = \"eu\"").unwrap_err().to_string();
    assert!(err.contains("s3: a folder source has no s3 settings"), "{err}");
}

#[test]
fn http_and_s3_sources_need_a_url() {
    for (kind, want) in
        [("http", "sources.a.url: required for kind = \"http\""), ("s3", "sources.a.url: required for kind = \"s3\" (s3://bucket/prefix)")]
    {
        let err = parse(&with_source(&format!("kind = \"{kind}\""))).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

#[test]
fn kind_omitted_means_folder() {
    for text in [MINIMAL.to_string(), with_source(&format!("kind = \"folder\"\n{FOLDER}"))] {
        let config = parse(&text).unwrap();
        let source = &config.sources["a"];
        assert_eq!(source.kind, SourceKind::Folder);
        assert_eq!(source.kind.name(), SourceKindName::Folder);
        assert!(!source.kind.downloads() && source.kind.fetch().is_none() && source.kind.url().is_none());
    }
}

#[test]
fn each_kind_keeps_its_own_keys() {
    let http = parse(&with_source(&format!(
        "{HTTP}[sources.a.fetch]\npoll_interval = \"5s\"\nconcurrency = 2\n[sources.a.http]\nlisting = \"json\"\nheaders = {{ \"X-Api-Key\" = \"k\" }}"
    )))
    .unwrap();
    let source = &http.sources["a"];
    let SourceKind::Http(kind) = &source.kind else { panic!("not http: {source:?}") };
    assert_eq!(kind.url, "http://h/pulls/");
    assert_eq!(
        (kind.fetch.poll_interval.0, kind.fetch.concurrency, kind.fetch.retries),
        (std::time::Duration::from_secs(5), 2, defaults::fetch_retries())
    );
    assert_eq!(kind.http.listing, ListingKind::Json);
    assert_eq!(kind.http.headers["X-Api-Key"].expose(), "k");
    assert_eq!(source.path, Path::new("/base/state/landing/a"));
    assert!(source.kind.downloads());
    assert_eq!(source.kind.fetch(), Some(&kind.fetch));

    let s3 = parse(&with_source(&format!(
        "{S3}path = \"landing\"\n[sources.a.fetch]\nretries = 1\n[sources.a.s3]\nendpoint = \"http://minio:9000\"\nregion = \"eu\""
    )))
    .unwrap();
    let source = &s3.sources["a"];
    let SourceKind::S3(kind) = &source.kind else { panic!("not s3: {source:?}") };
    assert_eq!(kind.url, "s3://b/pulls");
    assert_eq!((kind.fetch.retries, kind.fetch.poll_interval), (1, defaults::poll_interval()));
    assert_eq!((kind.s3.endpoint.as_deref(), kind.s3.region.as_deref()), (Some("http://minio:9000"), Some("eu")));
    assert_eq!(source.path, Path::new("/base/landing"));
    assert_eq!(source.kind.url(), Some("s3://b/pulls"));

    // Without their tables, http and s3 sources take the defaults.
    let bare = parse(&with_source(HTTP)).unwrap();
    let SourceKind::Http(kind) = &bare.sources["a"].kind else { panic!("not http") };
    assert_eq!((&kind.fetch, &kind.http), (&FetchConfig::default(), &HttpSourceConfig::default()));
}

#[test]
fn unknown_keys_in_a_kinds_table_are_refused_by_name() {
    let err = parse(&with_source(&format!("{HTTP}[sources.a.fetch]\nretriez = 1"))).unwrap_err().to_string();
    assert!(err.contains("retriez"), "{err}");
    let err = parse(&with_source(&format!("{S3}[sources.a.s3]\nregoin = \"eu\""))).unwrap_err().to_string();
    assert!(err.contains("regoin"), "{err}");
}

#[test]
fn problems_of_a_kinds_keys_name_the_key() {
    let text = r#"
        [sources.h]
        kind = "http"
        url = "http://user:pw@h/"
        sinks = ["lake"]
        [sources.h.fetch]
        concurrency = 0
        poll_interval = "0s"
        [sources.h.http]
        headers_from_env = { Authorization = "INGESTD_TEST_SURELY_UNSET_VARIABLE" }
        [sources.s]
        kind = "s3"
        url = "http://not-s3/"
        sinks = ["lake"]
        [sources.s.s3]
        endpoint = "ftp://minio"
        access_key_id = "k"
        [sources.f]
        sinks = ["lake"]
        [sinks.lake]
        kind = "delta"
        uri = "lake"
    "#;
    let Err(ConfigError::Invalid { problems, .. }) = parse(text) else { panic!("expected Invalid") };
    let all = problems.join("\n");
    for key in [
        "sources.h.url: must be http:// or https:// without credentials",
        "sources.h.fetch.concurrency",
        "sources.h.fetch.poll_interval",
        "sources.h.http.headers_from_env.Authorization",
        "sources.s.url",
        "sources.s.s3.endpoint",
        "sources.s.s3: access_key_id and secret_access_key go together",
        "sources.f.path: required for kind = \"folder\"",
    ] {
        assert!(all.contains(key), "missing {key} in:\n{all}");
    }
}

#[test]
fn a_source_of_each_kind_round_trips_through_serialize() {
    let text = format!(
        "{}{}{}",
        with_source(&format!("{FOLDER}[sources.a.batch]\nmax_files = 3")),
        format_args!("[sources.h]\nsinks = [\"lake\"]\n{HTTP}[sources.h.fetch]\nretries = 2\n[sources.h.http]\nlisting = \"html\"\n"),
        format_args!("[sources.s]\nsinks = [\"lake\"]\n{S3}[sources.s.s3]\nregion = \"eu\"\npath_style = true\n"),
    );
    let config = parse(&text).unwrap();
    for (name, kind) in [("a", "folder"), ("h", "http"), ("s", "s3")] {
        let source = &config.sources[name];
        let value = serde_json::to_value(source).unwrap();
        assert_eq!(value["kind"], kind, "{value}");
        assert_eq!(value.get("fetch").is_some(), kind != "folder", "{value}");
        let back: SourceConfig = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"));
        assert_eq!(&back, source);
    }
    let back: Config = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}

#[test]
fn secrets_of_a_kind_stay_redacted_when_serialized() {
    let text = format!(
        "{}[sources.h]\nsinks = [\"lake\"]\n{HTTP}[sources.h.http]\nheaders = {{ \"X-Api-Key\" = \"hunter2\" }}\n",
        with_source(&format!("{S3}[sources.a.s3]\naccess_key_id = \"k\"\nsecret_access_key = \"hunter3\""))
    );
    let config = parse(&text).unwrap();
    let shown = serde_json::to_string(&config).unwrap() + &format!("{config:?}");
    assert!(!shown.contains("hunter2") && !shown.contains("hunter3") && shown.contains("<redacted>"), "{shown}");
}

#[test]
fn the_documented_configs_parse() {
    let docs = [
        include_str!("../../docs/http-source.md"),
        include_str!("../../docs/push-api.md"),
        include_str!("../../docs/druid.md"),
        include_str!("../../docs/sql.md"),
        include_str!("../../README.md"),
    ];
    let mut blocks = 0;
    for doc in docs {
        for block in doc.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            if let Err(e) = toml::from_str::<Config>(block) {
                panic!("{e}\nin:\n{block}");
            }
            blocks += 1;
        }
    }
    assert!(blocks >= 4, "{blocks} toml blocks");
}

#[test]
fn schema_keys_default_by_whether_columns_are_inferred_and_problems_name_the_key() {
    let inferred = parse(MINIMAL).unwrap();
    let schema = &inferred.sources["a"].schema;
    assert_eq!((schema.evolution(true), schema.rescued_column(true).as_deref()), (Evolution::AddColumns, Some("_rescued_data")));
    assert_eq!((schema.evolution(false), schema.rescued_column(false)), (Evolution::None, None));

    let with = |keys: &str| MINIMAL.replace("sinks = [\"lake\"]", &format!("sinks = [\"lake\"]\n[sources.a.schema]\n{keys}"));
    let hinted = parse(&with("hints = { price = \"decimal(12,2)\" }\nevolution = \"rescue\"")).unwrap();
    assert_eq!(hinted.sources["a"].schema.hints["price"], ColumnType::Decimal { precision: 12, scale: 2 });
    for (keys, named) in [
        ("evolution = \"rescue\"\nrescued_column = \"\"", "sources.a.schema.rescued_column"),
        ("rescued_column = \"_source_file\"", "sources.a.schema.rescued_column"),
        ("evolutionn = \"fail\"", "evolutionn"),
        ("evolution = \"grow\"", "grow"),
        ("hints = { price = \"money\" }", "money"),
    ] {
        let err = parse(&with(keys)).unwrap_err().to_string();
        assert!(err.contains(named), "{keys}: {err}");
    }
}

#[test]
fn merge_and_lookup_keys_are_checked_and_problems_name_the_key() {
    let merging = |keys: &str| MINIMAL.replace("uri = \"lake\"", &format!("uri = \"lake\"\n{keys}"));
    let ok = parse(&merging("mode = \"merge\"\nmerge_key = [\"id\"]\nsequence_column = \"seq\"\ndelete_when = \"op = 'D'\"")).unwrap();
    match &ok.sinks["lake"] {
        SinkConfig::Delta(d) => assert!(d.merges() && d.merge_memory_limit.0 == 512 << 20),
        other => panic!("{other:?}"),
    }
    for (keys, wanted) in [
        ("mode = \"merge\"", "sinks.lake.merge_key:"),
        ("merge_key = [\"id\"]", "sinks.lake.mode:"),
        ("mode = \"merge\"\nmerge_key = [\"id\"]\ninsert_only = true\ndelete_when = \"op = 'D'\"", "sinks.lake.insert_only:"),
        ("mode = \"upsert\"", "unknown variant"),
    ] {
        let error = parse(&merging(keys)).unwrap_err().to_string();
        assert!(error.contains(wanted), "{keys}: {error}");
    }
    let lookup = |name: &str| format!("{MINIMAL}\n[lookups.{name}]\npath = \"/nonexistent/regions.csv\"\n");
    let error = parse(&lookup("batch")).unwrap_err().to_string();
    assert!(error.contains("lookups.batch:") && error.contains("lookups.batch.path:"), "{error}");
    // SQL folds `FROM Regions` to `regions`: a name it would not read as written is refused.
    for name in ["Regions", "my-regions", "1st"] {
        let error = parse(&lookup(name)).unwrap_err().to_string();
        assert!(error.contains(&format!("lookups.{name}: a lookup name is its table's name in SQL")), "{error}");
    }
    let error = parse(&lookup("region_names_2")).unwrap_err().to_string();
    assert!(!error.contains("a lookup name"), "{error}");
    let error = parse(&MINIMAL.replace("sinks = [\"lake\"]", "sinks = [\"lake\"]\ntransform = \" \"")).unwrap_err().to_string();
    assert!(error.contains("sources.a.transform: an empty query"), "{error}");
}

#[test]
fn a_druid_sink_loading_a_merge_mode_table_is_refused_with_the_reason() {
    let text = r#"
        [sources.a]
        path = "drop"
        sinks = ["lake", "druid"]
        [sinks.lake]
        kind = "delta"
        uri = "lake"
        mode = "merge"
        merge_key = ["id"]
        [sinks.druid]
        kind = "druid"
        lake = "lake"
        overlord = "http://localhost:8081"
        datasource = "d"
        timestamp_column = "_ingested_at"
    "#;
    let error = parse(text).unwrap_err().to_string();
    assert!(error.contains("sinks.druid.lake:") && error.contains("twice"), "{error}");
}

#[test]
fn format_limits_have_their_defaults_and_problems_name_the_key() {
    let limits = parse(MINIMAL).unwrap().sources["a"].format.limits;
    assert_eq!(limits, LimitsConfig::default());
    assert_eq!((limits.max_line.0, limits.max_record.0, limits.max_field.0), (64 << 20, 64 << 20, 64 << 20));
    assert_eq!((limits.max_decompressed_size.0, limits.max_decompression_ratio), (64 << 30, 250));
    assert_eq!((limits.max_columns, limits.max_depth), (10_000, 128));

    let with = |keys: &str| MINIMAL.replace("sinks = [\"lake\"]", &format!("sinks = [\"lake\"]\n[sources.a.format.limits]\n{keys}"));
    let set = parse(&with("max_record = \"256MiB\"\nmax_field = \"100MB\"\nmax_decompression_ratio = 0\nmax_depth = 512")).unwrap();
    let limits = set.sources["a"].format.limits;
    assert_eq!(
        (limits.max_record.0, limits.max_field.0, limits.max_decompression_ratio, limits.max_depth),
        (256 << 20, 100_000_000, 0, 512)
    );
    assert_eq!(limits.max_line.0, 64 << 20, "keys not set keep their defaults");
    for (keys, wanted) in [
        ("max_depth = 600", "sources.a.format.limits.max_depth: 600 is outside 1..=512"),
        ("max_depth = 0", "sources.a.format.limits.max_depth: 0 is outside 1..=512"),
        ("max_line = 0", "sources.a.format.limits.max_line: must be at least 1"),
        ("max_decompressed_size = \"0MiB\"", "sources.a.format.limits.max_decompressed_size: must be at least 1"),
        ("max_columns = 0", "sources.a.format.limits.max_columns: must be at least 1"),
        ("max_field = \"128MiB\"", "sources.a.format.limits.max_field: 134217728 is more than max_record (67108864)"),
        ("max_record = \"2GiB\"\nmax_field = \"1MiB\"", "sources.a.format.limits.max_record: 2147483648 is more than 1GiB"),
        ("max_lines = 1", "max_lines"),
        ("max_record = \"huge\"", "huge"),
    ] {
        let error = parse(&with(keys)).unwrap_err().to_string();
        assert!(error.contains(wanted), "{keys}: {error}");
    }
}
