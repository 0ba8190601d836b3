//! Table upkeep over many small commits: compaction, checkpoints and vacuum leave every row
//! exactly once while the table ends up with few files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, write_attom_files};

/// 40 files committed one per batch into a table partitioned by `type`, with upkeep tuned to
/// act often.
#[test]
fn small_commits_are_compacted_checkpointed_and_vacuumed_without_touching_rows() {
    let config = format!(
        "{}partition_by = [\"type\"]\ncompact_min_files = 4\ncheckpoint_interval = 10\nvacuum_retention = \"0s\"\nvacuum_interval = \"0s\"\n",
        attom_config("min_age = \"0s\"\n[sources.attom.batch]\nmax_files = 1\n")
    );
    let ws = Workspace::with_config(&config);
    let totals = write_attom_files(&ws.path("drop"), &AttomSpec { files: 40, rows: 8_000, seed: 11 }).unwrap();
    let summary = ws.once();
    assert_eq!(summary["totals"]["batches"], 40);

    let table = ws.path("lake/attom");
    let batches = read_delta(&table);
    assert_eq!(row_count(&batches), totals.rows);
    assert_eq!(sum_i64(&batches, "sale_price"), (totals.sum_sale_price, totals.null_sale_price));
    let ids = counts_i64(&batches, "id");
    assert_eq!(ids.len(), totals.rows);
    assert!(ids.values().all(|&n| n == 1), "every record exactly once after compaction");

    // Partition columns live in the paths: every file, compacted or not, sits in its partition.
    let active = active_files(&table);
    assert!(active.iter().all(|uri| uri.contains("/type=")), "{active:?}");
    let types =
        active.iter().filter_map(|uri| uri.split("/type=").nth(1)?.split('/').next()).collect::<std::collections::HashSet<_>>().len();
    assert!(active.len() < 40 * types / 2, "{} active files for 40 commits over {types} partitions", active.len());
    assert_eq!(data_files(&table).len(), active.len(), "vacuum (retention 0s) deleted every replaced file");
    assert!(table.join("_delta_log/_last_checkpoint").exists(), "a checkpoint was written");

    // A fresh start reads the checkpoint and still finds every file committed.
    assert_eq!(ws.once()["totals"]["rows"], 0);
}

/// Two sources commit into one table at the same time, each with its own upkeep compacting
/// the same partitions beside its batches: whichever compaction loses a race gives up, and no
/// row is lost or doubled.
#[test]
fn two_sources_compacting_one_table_at_once_keep_every_row_once() {
    let other_columns = ATTOM_COLUMNS.replace("[sources.attom.columns]", "[sources.other.columns]");
    let config = format!(
        "{}partition_by = [\"type\"]\ncompact_min_files = 4\nvacuum_retention = \"0s\"\nvacuum_interval = \"0s\"\n\
         [sources.other]\npath = \"drop2\"\nsinks = [\"lake\"]\nmin_age = \"0s\"\n[sources.other.batch]\nmax_files = 1\n{other_columns}",
        attom_config("min_age = \"0s\"\n[sources.attom.batch]\nmax_files = 1\n")
    );
    let ws = Workspace::with_config(&config);
    let first = write_attom_files(&ws.path("drop"), &AttomSpec { files: 30, rows: 6_000, seed: 21 }).unwrap();
    let second = write_attom_files(&ws.path("drop2"), &AttomSpec { files: 30, rows: 6_000, seed: 22 }).unwrap();
    let mut paths = walk_files(&ws.path("drop"));
    paths.extend(walk_files(&ws.path("drop2")));
    let expected = fingerprints_of_files(&paths);

    let table = ws.path("lake/attom");
    let daemon = spawn_run(&ws, &["--log", "debug"], "run.log");
    let want = first.rows + second.rows;
    // Vacuum runs with 0 s retention here, so a read racing it can find a listed file gone: such
    // a read counts as "not there yet" and is tried again.
    let seen = wait_until(std::time::Duration::from_secs(120), want, || std::panic::catch_unwind(|| delta_rows(&table)).unwrap_or(0));
    terminate(daemon);
    assert_eq!(seen, want, "log:\n{}", std::fs::read_to_string(ws.path("run.log")).unwrap_or_default());

    let (lost, duplicated, unexpected) = compare_rows(&expected, &fingerprints_of_table(&read_delta(&table)));
    assert_eq!((lost, duplicated, unexpected), (0, 0, 0));
    let log = std::fs::read_to_string(ws.path("run.log")).unwrap_or_default();
    for source in ["attom", "other"] {
        let compactions = log.lines().filter(|l| l.contains("compacted") && l.contains(&format!("source={source}"))).count();
        assert!(compactions > 0, "source {source} compacted:\n{log}");
    }
    // Files the losing compactions wrote were deleted, replaced files were vacuumed: every data
    // file on disk is in the table.
    assert_eq!(data_files(&table).len(), active_files(&table).len(), "log:\n{log}");
}

fn active_files(table: &std::path::Path) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = url::Url::from_directory_path(table.canonicalize().expect("table path")).expect("url");
        let table = deltalake::open_table(url).await.expect("open delta table");
        table.get_file_uris().expect("file uris").collect()
    })
}
