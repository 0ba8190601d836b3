//! Unit tests of the push endpoint's pieces.
use super::auth::token_matches;
use super::*;

#[test]
fn tokens_are_lines_without_comments_or_blanks() {
    let file = "# rotated 2024-05\n\n  old-token  \nnew-token\r\n#commented-token\n";
    assert!(token_matches(file, "old-token"));
    assert!(token_matches(file, "new-token"));
    assert!(!token_matches(file, "commented-token"));
    assert!(!token_matches(file, "#commented-token"));
    assert!(!token_matches(file, "new"));
    assert!(!token_matches("", "x"));
}

#[test]
fn a_body_needs_framing_and_a_sane_length() {
    let mut headers = HeaderMap::new();
    assert!(matches!(declared_length("f", &headers), Err(UploadError::LengthRequired { .. })));
    headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    assert_eq!(declared_length("f", &headers).ok(), Some(None));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
    assert_eq!(declared_length("f", &headers).ok(), Some(Some(12)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("-1"));
    assert!(matches!(declared_length("f", &headers), Err(UploadError::BadLength { .. })));
}

#[tokio::test]
async fn content_is_held_by_the_ledger_or_by_an_upload_still_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "t\n").unwrap();
    let text = "[sources.a]\npath = \"drop\"\nsinks = [\"lake\"]\n[sources.a.push]\ntokens_file = \"tokens\"\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n";
    let config = Config::from_toml(text, dir.path()).unwrap();
    let ledger = crate::ledger::LedgerHandle::spawn(crate::ledger::Ledger::open(&dir.path().join("state")).unwrap()).unwrap();
    let state = PushState::new(&config, ledger.clone());
    assert_eq!(state.sources(), ["a"]);
    let target = state.target("a").unwrap();
    std::fs::create_dir_all(dir.path().join("drop")).unwrap();

    assert_eq!(state.holder_of("a", &target, "h1").await, Ok(None));
    // Two uploads of one content: the second sees the first's reservation.
    assert_eq!(state.reserve("a", &target, "h1", "first", 5), None);
    assert_eq!(state.reserve("a", &target, "h1", "second", 5).as_deref(), Some("first"));
    state.settle("a", "h1", true);
    // Landed but gone from the folder (quarantined, say): no longer held.
    assert_eq!(state.holder_of("a", &target, "h1").await, Ok(None));
    std::fs::write(dir.path().join("drop/first"), b"12345").unwrap();
    assert_eq!(state.holder_of("a", &target, "h1").await, Ok(Some("first".to_string())));
    // Another upload under the same name replaces it: the old content is no longer held.
    assert_eq!(state.reserve("a", &target, "h2", "first", 5), None);
    state.settle("a", "h2", true);
    assert_eq!(state.holder_of("a", &target, "h1").await, Ok(None));
    // A failed landing frees its reservation.
    assert_eq!(state.reserve("a", &target, "h3", "third", 1), None);
    state.settle("a", "h3", false);
    assert_eq!(state.holder_of("a", &target, "h3").await, Ok(None));

    // What the ledger holds (here in flight), whatever this process did.
    let file = crate::ledger::FileEntry { name: "c".into(), size: Some(1), mtime_ns: Some(0), hash: "h4".into(), rows: None };
    let batch = crate::ledger::BatchEntry { source: "a".into(), seq: 1, files: vec![file], ingested_at_us: None };
    ledger.call(move |l| l.begin_batch(&batch)).await.unwrap();
    assert_eq!(state.holder_of("a", &target, "h4").await, Ok(Some("c".to_string())));

    // A reload that drops the push section takes the source off the endpoint.
    let without = Config::from_toml(&text.replace("[sources.a.push]\ntokens_file = \"tokens\"\n", ""), dir.path()).unwrap();
    state.set_targets(&without);
    assert!(state.target("a").is_none() && state.sources().is_empty());
}

#[test]
fn errors_name_the_file_and_map_to_their_codes() {
    let e = UploadError::TooLarge { name: "CO06037 2019-01-01".into(), limit: 10 };
    assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(e.to_string().contains("CO06037 2019-01-01"));
    let response = UploadError::Unauthorized("attom".into()).into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
}
