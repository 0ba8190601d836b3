//! ingestd: files dropped in folders become rows in a Delta table or Parquet dataset, exactly
//! once.
//!
//! A file's path through the code, in order:
//! [`discover`] (is it complete?) -> [`admit`] with the [`ledger`] (is it new?) -> [`batch`]
//! (which files commit together) -> [`decode`] (bytes to Arrow) -> [`map`] (nested to flat,
//! typed columns) -> [`sinks`] (one atomic commit per batch), driven by [`pipeline`] for one
//! batch, [`runtime`] for one source and [`daemon`] for all of them. [`quarantine`] takes what
//! cannot be read.

pub mod admit;
pub mod batch;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod discover;
pub mod druid;
pub mod faults;
pub mod http;
pub mod ledger;
pub mod map;
pub mod metrics;
pub mod pipeline;
pub mod push;
pub mod quarantine;
pub mod runtime;
pub mod sample;
pub mod service;
pub mod sinks;
pub mod status;
pub mod temp_name;
