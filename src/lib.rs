//! ingestd: files dropped in folders become rows in a Delta table or Parquet dataset, exactly
//! once.
//!
//! A file's path through the code, in order:
//! [`discover`] (is it complete?) -> [`admit`] with the [`ledger`] (is it new?) -> [`batch`]
//! (which files commit together) -> [`decode`] (bytes to Arrow) -> [`map`] (nested to flat,
//! typed columns) -> [`transform`] (the source's SQL, with lookups) -> [`sinks`] (one atomic
//! commit per batch). [`source`] owns one source along that path (admission, commit,
//! disposition, recovery, replay), [`driver`] runs it (one loop for `once` and `run`), and
//! [`daemon`] wires the sources, the ledger thread and the HTTP endpoint together. [`events`] is
//! what an operator sees of it all: log lines, [`metrics`] and the [`status`] board, written
//! together.

pub mod admit;
pub mod batch;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod discover;
pub mod driver;
pub mod druid;
pub mod error;
pub mod events;
pub mod faults;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod ledger;
pub mod map;
pub mod metrics;
pub mod pool;
pub mod push;
pub mod quarantine;
pub mod rng;
pub mod sample;
pub mod service;
pub mod sinks;
pub mod source;
pub mod status;
pub mod temp_name;
pub mod transform;
pub mod upkeep;
