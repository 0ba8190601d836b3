//! Named fault points for crash testing. In a build with the `fault-injection` feature, the
//! process aborts (as abruptly as `kill -9`: no unwinding, no flush) when it reaches a point
//! chosen by the environment:
//!
//! - `INGESTD_FAULT=NAME` aborts at the first hit of point NAME, `NAME:N` at its N-th hit;
//! - `INGESTD_FAULT_SEED=S` with `INGESTD_FAULT_PERCENT=P` aborts at any point with
//!   probability P% per hit, drawn from a generator seeded with S (reproducible runs).
//!
//! Without the feature, [`fault_point!`] expands to nothing.

/// Every fault point, in the order a batch meets them.
pub const POINTS: &[&str] = &[
    "after_decode",
    "after_data_files",
    "between_parquet_temp_and_rename",
    "after_sink_commit",
    "kafka_after_begun",
    "kafka_mid_rows",
    "kafka_before_committed_record",
    "inside_ledger_update",
    "after_ledger",
];

/// Marks a fault point.
#[macro_export]
macro_rules! fault_point {
    ($name:literal) => {
        #[cfg(feature = "fault-injection")]
        $crate::faults::hit($name);
    };
}

#[cfg(feature = "fault-injection")]
mod active {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};

    struct Plan {
        point: Option<(String, u64)>,
        random: Option<(Mutex<crate::rng::Rng>, u64)>,
    }

    static PLAN: OnceLock<Plan> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn plan() -> &'static Plan {
        PLAN.get_or_init(|| {
            let point = std::env::var("INGESTD_FAULT").ok().map(|spec| match spec.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            });
            let seed = std::env::var("INGESTD_FAULT_SEED").ok().and_then(|s| s.parse::<u64>().ok());
            let percent = std::env::var("INGESTD_FAULT_PERCENT").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            let random = seed.filter(|_| percent > 0).map(|s| (Mutex::new(crate::rng::Rng::seeded(s)), percent));
            Plan { point, random }
        })
    }

    /// Aborts the process if the plan says so.
    pub fn hit(name: &str) {
        let plan = plan();
        if let Some((point, nth)) = &plan.point
            && point == name
            && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
        {
            eprintln!("fault injection: abort at {name}");
            std::process::abort();
        }
        if let Some((state, percent)) = &plan.random {
            let draw = match state.lock() {
                Ok(mut rng) => rng.below(100),
                Err(_) => return,
            };
            if draw < *percent {
                eprintln!("fault injection: random abort at {name}");
                std::process::abort();
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
pub use active::hit;
