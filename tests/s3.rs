//! S3-compatible storage against a real server: moto's (from PyPI, installed by
//! `scripts/test.sh`), which honours conditional writes (`If-None-Match: *`), the primitive
//! Delta commits on S3 rely on. Tables in a bucket are read back by the deltalake crate;
//! objects for the S3 source are uploaded with boto3, a standard client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::s3::*;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// A workspace whose source `attom` writes to the Delta table `s3://lake/<table>`.
fn bucket_table_workspace(instance: &str, table: &str, s3_keys: &str) -> Workspace {
    let config = attom_config("min_age = \"0s\"\nbatch.max_files = 1")
        .replace("instance = \"test\"", &format!("instance = \"{instance}\""))
        .replace("uri = \"lake/attom\"", &format!("uri = \"s3://lake/{table}\"\n[sinks.lake.s3]\n{s3_keys}"));
    Workspace::with_config(&config)
}

#[test]
fn a_delta_table_in_a_bucket_is_read_back_by_deltalake_and_secrets_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "lake"]);
    let ws = bucket_table_workspace("one", "attom", &moto.config_keys());
    let files = stage_attom(&ws.path("drop"), 4, 2_000, 11);
    let expected = fingerprints_of_files(&files);

    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 2_000, "{summary}");
    let rows = moto.read_delta("s3://lake/attom");
    assert_eq!(compare_rows(&expected, &fingerprints_of_table(&rows)), (0, 0, 0));
    // Restarting against the bucket finds every batch there: nothing is committed twice.
    let again = ws.once();
    assert_eq!(again["totals"]["rows"], 0, "{again}");
    assert_eq!(row_count(&moto.read_delta("s3://lake/attom")), 2_000);

    assert_secret_never_shown(&ws);
}

#[test]
fn credentials_from_the_aws_environment_and_errors_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "lake"]);
    let keys = format!("endpoint = \"{}\"\n", moto.endpoint);
    let ws = bucket_table_workspace("env", "fromenv", &keys);
    stage_attom(&ws.path("drop"), 2, 500, 12);
    let env = [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY), ("AWS_REGION", "us-east-1")];
    let mut child = spawn_run_with_env(&ws, &[], &env, "run.log");
    let rows = wait_until(Duration::from_secs(60), 500, || {
        if moto_has_log(&moto, "fromenv") { row_count(&moto.read_delta("s3://lake/fromenv")) } else { 0 }
    });
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    assert_eq!(rows, 500);

    // A bucket that does not exist: the batch fails with the bucket named, and no secret.
    let missing = bucket_table_workspace("nobucket", "t", &moto.config_keys());
    std::fs::write(
        missing.path("config.toml"),
        std::fs::read_to_string(missing.path("config.toml")).unwrap().replace("s3://lake/t", "s3://no-such-bucket/t"),
    )
    .unwrap();
    stage_attom(&missing.path("drop"), 1, 10, 13);
    let out = missing.ingestd(&["once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-bucket") || stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(!stderr.contains(SECRET_KEY), "secret in an error: {stderr}");
}

fn moto_has_log(moto: &Moto, table: &str) -> bool {
    moto.client(&["ls", "lake", &format!("{table}/_delta_log/")]).lines().count() > 0
}

#[test]
fn two_daemons_append_to_one_bucket_table_concurrently_and_every_row_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "lake"]);
    let a = bucket_table_workspace("alpha", "shared", &moto.config_keys());
    let b = bucket_table_workspace("beta", "shared", &moto.config_keys());
    // Different seeds: different rows, so a lost or doubled commit shows in the fingerprints.
    let mut files = stage_attom(&a.path("drop"), 12, 6_000, 21);
    files.extend(stage_attom(&b.path("drop"), 12, 6_000, 22));
    let expected = fingerprints_of_files(&files);

    // Both run at once, one file per batch: their commits race for the same log versions.
    let run = |ws: &Workspace| {
        let log = std::fs::File::create(ws.path("once.log")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_ingestd"))
            .arg("once")
            .current_dir(ws.dir.path())
            .env("INGESTD_LOG_FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let (mut first, mut second) = (run(&a), run(&b));
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());

    let rows = moto.read_delta("s3://lake/shared");
    assert_eq!(compare_rows(&expected, &fingerprints_of_table(&rows)), (0, 0, 0), "lost, duplicated, unexpected");
    let versions = moto.client(&["ls", "lake", "shared/_delta_log/"]).lines().filter(|l| l.contains(".json\t")).count();
    assert!(versions >= 24, "every batch is its own commit: {versions} log entries");
}

#[test]
fn the_s3_source_ingests_objects_uploaded_with_a_standard_client_once() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "landing"]);
    let staged = stage_attom(&dir.path().join("staged"), 6, 3_000, 31);
    let upload = |path: &PathBuf, key: &str| moto.client(&["put", "landing", key, path.to_str().unwrap()]);
    for path in &staged[..3] {
        upload(path, &format!("pulls/{}", path.file_name().unwrap().to_string_lossy()));
    }
    upload(&staged[0], "elsewhere/not-under-the-prefix");
    let config = attom_config("kind = \"s3\"\nurl = \"s3://landing/pulls\"\n").replace("path = \"drop\"\n", "")
        + &format!("[sources.attom.s3]\n{}", moto.config_keys());
    let ws = Workspace::with_config(&config);

    let first = ws.once();
    assert_eq!(first["totals"]["files"], 3, "{first}");
    // More uploads, and a file already ingested uploaded again under another key.
    for path in &staged[3..] {
        upload(path, &format!("pulls/{}", path.file_name().unwrap().to_string_lossy()));
    }
    upload(&staged[1], "pulls/copy-of-an-ingested-file");
    let second = ws.once();
    assert_eq!((second["totals"]["files"].as_u64(), second["totals"]["duplicates"].as_u64()), (Some(3), Some(1)), "{second}");
    // Nothing changed: the listing's ETags match the checkpoint, nothing is downloaded.
    let third = ws.once();
    assert_eq!(third["totals"]["files"], 0, "{third}");

    let rows = read_delta(&ws.path("lake/attom"));
    assert_eq!(compare_rows(&fingerprints_of_files(&staged), &fingerprints_of_table(&rows)), (0, 0, 0));
    let landing: Vec<_> =
        walk_files(&ws.path("state/landing/attom")).into_iter().filter(|p| !p.to_string_lossy().contains(".ingestd-partial")).collect();
    let landing: Vec<_> = landing.into_iter().filter(|p| p.file_name().is_some_and(|n| n != ".ingestd.lock")).collect();
    assert!(landing.is_empty(), "downloaded copies are deleted after commit: {landing:?}");

    // An object replaced in place (same key, new content) follows allow_overwrites (true).
    let replaced = dir.path().join("replaced");
    std::fs::create_dir_all(&replaced).unwrap();
    let new_content = stage_attom(&replaced, 1, 100, 32);
    upload(&new_content[0], &format!("pulls/{}", staged[2].file_name().unwrap().to_string_lossy()));
    let fourth = ws.once();
    assert_eq!(fourth["totals"]["rows"], 100, "{fourth}");
}
