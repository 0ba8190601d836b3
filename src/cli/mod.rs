//! The command line: `run`, `once`, `check`, `status`, `schema`, `sql`, `inspect`, `quarantine`, `sample`, `druid`.

mod druid;
mod inspect;
mod report;
mod schema;
mod sql;

use crate::config::{Config, ConfigError};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "ingestd", version, about = "Files dropped in folders become rows in a Delta table or Parquet dataset, exactly once.")]
pub struct Cli {
    /// Config file. Without one, `run` and `once` use the built-in default
    /// (./drop -> Delta table ./lake, state in ./state).
    #[arg(long, short, global = true, default_value = "config.toml", env = "INGESTD_CONFIG")]
    pub config: PathBuf,
    /// Log filter (tracing syntax): a level for ingestd (`info`, `debug`), or directives
    /// (`warn,ingestd=debug`). Libraries log at `warn` unless named.
    #[arg(long, global = true, default_value = "info", env = "INGESTD_LOG")]
    pub log: String,
    /// Log format: `text` (default on a terminal) or `json` (default otherwise).
    #[arg(long, global = true, env = "INGESTD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch every source and ingest files as they arrive, until SIGTERM or SIGINT.
    Run,
    /// Ingest every file present now, print a summary, and exit.
    Once {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config file and list every problem.
    Check,
    /// Ledger counts per source and state, and the last commit per sink.
    Status,
    /// A source's columns as its table holds them, and the versions that added them.
    Schema {
        /// The source (default: the only one).
        source: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a SQL query over the sinks' tables (Delta and Parquet, by sink name) and the lookups.
    Sql {
        /// The query, e.g. `SELECT region_name, count(*) FROM events GROUP BY 1`.
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: sql::SqlFormat,
    },
    /// Show how a file is read: format, compression, schema and first rows after mapping.
    Inspect {
        /// The file to look at.
        file: PathBuf,
        /// Map with this source's columns (default: the only source, or inferred columns).
        #[arg(long)]
        source: Option<String>,
        /// Rows to show.
        #[arg(long, default_value_t = 10)]
        rows: usize,
    },
    /// List quarantined files, or put them back to be ingested again.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Apache Druid: print the specs ingestd generates.
    Druid {
        #[command(subcommand)]
        command: druid::DruidCommand,
    },
    /// Write ATTOM-shaped sample files (for trying ingestd and for tests).
    Sample {
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// Number of files.
        #[arg(long, default_value_t = 12)]
        files: usize,
        /// Total records over all files (at most 10,000 per file).
        #[arg(long, default_value_t = 30_000)]
        rows: usize,
        /// Seed: the same arguments always give the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Instead of API-sized files, write one big file (`attom.ndjson` or `attom.csv`) of at
        /// least `--bytes`.
        #[arg(long, value_enum)]
        big: Option<crate::sample::BigLayout>,
        /// Size of the `--big` file, e.g. `5GB`.
        #[arg(long, default_value = "1GB", value_parser = parse_size)]
        bytes: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Quarantined files with their reasons.
    List {
        #[arg(long)]
        source: Option<String>,
    },
    /// Move quarantined files back into their source folder to be read again.
    Retry {
        #[arg(long)]
        source: Option<String>,
        /// File names as listed (default: all of them).
        names: Vec<String>,
    },
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn init_logging(cli: &Cli) {
    // A bare level applies to ingestd; the libraries stay at warn. The delta kernel's snapshot
    // builder logs ERROR whenever it probes a table that does not exist yet (every first start);
    // real failures reach ingestd as errors and are logged there, with context. deltalake's
    // transaction module logs every commit that lands after a concurrent one and every
    // compaction that loses a race (routine: upkeep commits beside the batches); a real
    // failure also reaches ingestd as an error.
    let directives = if cli.log.contains('=') || cli.log.contains(',') {
        cli.log.clone()
    } else {
        format!("warn,buoyant_kernel::snapshot::builder=off,deltalake_core::kernel::transaction=off,ingestd={}", cli.log)
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ingestd=info"));
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        // Colours only for a person at a terminal, not in files or the journal.
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run => {
            let config = load_or_default(&cli.config)?;
            let config_path = cli.config.exists().then(|| cli.config.clone());
            let runtime = runtime()?;
            let result = runtime.block_on(run(config_path, config));
            // Decoding threads of a batch abandoned at the shutdown timeout are not waited for.
            runtime.shutdown_timeout(Duration::from_secs(1));
            result?;
            Ok(0)
        }
        Command::Once { json } => {
            let config = load_or_default(&cli.config)?;
            runtime()?.block_on(report::once(config, json))
        }
        Command::Check => report::check(&cli.config),
        Command::Status => report::status(&load(&cli.config)?),
        Command::Inspect { file, source, rows } => {
            let config = if cli.config.exists() { Some(load(&cli.config)?) } else { None };
            inspect::inspect(config.as_ref(), &file, source.as_deref(), rows)
        }
        Command::Quarantine { action } => report::quarantine(&load(&cli.config)?, action),
        Command::Druid { command } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(druid::druid(&config, command))
        }
        Command::Schema { source, json } => {
            let config = load_or_default(&cli.config)?;
            runtime()?.block_on(schema::schema(&config, source.as_deref(), json))
        }
        Command::Sql { query, format } => {
            let config = load_or_default(&cli.config)?;
            runtime()?.block_on(sql::sql(&config, &query, format))
        }
        Command::Sample { out, files, rows, seed, big, bytes } => {
            let totals = match big {
                Some(layout) => {
                    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                    let name = if layout == crate::sample::BigLayout::Csv { "attom.csv" } else { "attom.ndjson" };
                    crate::sample::write_one_big_file(&out.join(name), layout, bytes, seed)
                }
                None => crate::sample::write_attom_files(&out, &crate::sample::AttomSpec { files, rows, seed }),
            }
            .with_context(|| format!("writing sample files to {}", out.display()))?;
            println!("{}", serde_json::to_string_pretty(&totals)?);
            Ok(0)
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::config::units::parse_byte_size(text).ok_or_else(|| format!("invalid size {text:?} (try \"5GB\")"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn load(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!(e))
}

/// The config file, or the built-in default when the default file name does not exist.
fn load_or_default(path: &Path) -> Result<Config> {
    match Config::load(path) {
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && path == Path::new("config.toml") => {
            tracing::info!("no config.toml here: using the built-in default (./drop -> Delta table ./lake)");
            Ok(Config::builtin_default(Path::new(".")))
        }
        other => other.map_err(|e| anyhow::anyhow!(e)),
    }
}

/// `ingestd run`: SIGTERM and SIGINT stop, SIGHUP reloads `config_path`.
async fn run(config_path: Option<PathBuf>, config: Config) -> Result<()> {
    use crate::daemon::Control;
    use tokio::signal::unix::{SignalKind, signal};
    let (control, control_rx) = tokio::sync::mpsc::channel(4);
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            tracing::info!(?message, "signal received");
            if control.send(message).await.is_err() {
                return;
            }
        }
    });
    crate::daemon::run(config_path.as_deref(), config, control_rx).await.map_err(|e| anyhow::anyhow!(e))
}
