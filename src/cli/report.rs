//! Commands that report: `once`'s summary, `check`, `status`, `quarantine`.

use super::QuarantineAction;
use crate::config::{Config, ConfigError};
use crate::ledger::Ledger;
use crate::quarantine;
use anyhow::{Context, Result, bail};
use std::io::IsTerminal;
use std::path::Path;

pub(super) async fn once(config: Config, json: bool) -> Result<i32> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let mut on_batch = |t: &crate::source::Totals| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{} files, {} rows committed", t.files, t.rows));
        }
    };
    let summary = crate::daemon::once(&config, &mut on_batch).await.map_err(|e| anyhow::anyhow!(e))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let t = &summary.totals;
    if json {
        let mut value = serde_json::to_value(&summary)?;
        value["rows_per_second"] = summary.rows_per_second().into();
        println!("{value}");
    } else {
        let mut line = format!(
            "{} files, {} rows, {:.1} MB in {:.2} s ({:.0} rows/s); {} batches, {} duplicates, {} quarantined, {} bad rows",
            t.files,
            t.rows,
            t.bytes as f64 / 1e6,
            summary.seconds,
            summary.rows_per_second(),
            t.batches,
            t.duplicates,
            t.quarantined,
            t.bad_rows
        );
        if t.rescued_values > 0 {
            line.push_str(&format!(", {} values rescued", t.rescued_values));
        }
        if t.filtered_rows > 0 {
            line.push_str(&format!(", {} rows left out by the transform", t.filtered_rows));
        }
        if t.ignored_values > 0 {
            line.push_str(&format!(", {} values of unmapped fields ignored", t.ignored_values));
        }
        println!("{line}");
    }
    Ok(if t.quarantined > 0 { 2 } else { 0 })
}

pub(super) fn check(path: &Path) -> Result<i32> {
    match Config::load(path) {
        Ok(config) => {
            let problems = super::runtime()?.block_on(super::sql::transform_problems(&config));
            if !problems.is_empty() {
                println!("{}: {} problem(s)", path.display(), problems.len());
                for problem in problems {
                    println!("  {problem}");
                }
                return Ok(1);
            }
            println!("{}: ok", path.display());
            for (name, source) in &config.sources {
                let columns = if source.columns.is_empty() { "inferred".to_string() } else { source.columns.len().to_string() };
                let kind = source.kind.name();
                println!("  source {name} ({kind}): {} -> {} ({columns} columns)", source.path.display(), source.sinks.join(", "));
            }
            Ok(0)
        }
        Err(ConfigError::Invalid { path, problems }) => {
            println!("{}: {} problem(s)", path.display(), problems.len());
            for problem in problems {
                println!("  {problem}");
            }
            Ok(1)
        }
        Err(e) => {
            println!("{e}");
            Ok(1)
        }
    }
}

pub(super) fn status(config: &Config) -> Result<i32> {
    let ledger = Ledger::open(&config.state_dir).map_err(|e| anyhow::anyhow!(e))?;
    println!("{:<16} {:<12} {:>10} {:>14}", "source", "state", "files", "rows");
    for row in ledger.status().map_err(|e| anyhow::anyhow!(e))? {
        println!("{:<16} {:<12} {:>10} {:>14}", row.source, row.state, row.files, row.rows);
    }
    println!();
    for c in ledger.last_commits().map_err(|e| anyhow::anyhow!(e))? {
        println!("last commit {} -> {}: batch {}, {}, at {}", c.source, c.sink, c.seq, c.reference, c.at);
    }
    Ok(0)
}

pub(super) fn quarantine(config: &Config, action: QuarantineAction) -> Result<i32> {
    let (source_filter, names) = match &action {
        QuarantineAction::List { source } => (source, &Vec::new()),
        QuarantineAction::Retry { source, names } => (source, names),
    };
    if let Some(name) = source_filter
        && !config.sources.contains_key(name)
    {
        bail!("no source named {name:?}");
    }
    let ledger = Ledger::open(&config.state_dir).map_err(|e| anyhow::anyhow!(e))?;
    for (source_name, source) in &config.sources {
        if source_filter.as_ref().is_some_and(|s| s != source_name) {
            continue;
        }
        for (file, report) in quarantine::list(&config.quarantine_dir, source_name)? {
            let name = report["file"].as_str().unwrap_or_default().to_string();
            match &action {
                QuarantineAction::List { .. } => {
                    println!("{source_name}\t{name}\t{}", report["reason"].as_str().unwrap_or("?"));
                }
                QuarantineAction::Retry { .. } if names.is_empty() || names.contains(&name) => {
                    // The recorded name, escaped if it is not UTF-8, back to the file's own bytes.
                    let back = source.path.join(crate::discover::to_os_string(&name));
                    quarantine::move_file(&file, &back).with_context(|| format!("moving {} back", file.display()))?;
                    std::fs::remove_file(quarantine::report_path(&file))?;
                    ledger.forget_quarantined(source_name, &name).map_err(|e| anyhow::anyhow!(e))?;
                    println!("{source_name}\t{name}\tback in {}", back.display());
                }
                QuarantineAction::Retry { .. } => {}
            }
        }
    }
    Ok(0)
}
