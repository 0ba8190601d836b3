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
    assert_eq!(
        names,
        ["transaction_date", "zipcode", "sale_price", "lot_size", "size", "latitude", "longitude", "type", "year_built"]
    );
    assert_eq!(attom.path, Path::new("/base/drop/attom"));
    assert_eq!(Config::from_toml(MINIMAL, Path::new(".")).unwrap().state_dir, Path::new("state"));
}

#[test]
fn builtin_default_is_valid_and_relative_to_base() {
    let config = Config::builtin_default(Path::new("/srv"));
    assert_eq!(config.sources["drop"].path, Path::new("/srv/drop"));
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
