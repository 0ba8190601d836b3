//! The crash-torture harness: `ingestd run` killed again and again (SIGKILL at random
//! instants, aborts at named fault points) while files keep arriving, then checked row by row.

use super::*;
use ingestd::sample::{AttomSpec, write_attom_files};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The ATTOM config the torture runs use: small batches, committed files deleted.
pub fn torture_config() -> String {
    attom_config("min_age = \"0s\"\nafter_commit = \"delete\"\n[sources.attom.batch]\nmax_files = 3\nmax_delay = \"10ms\"")
}

pub use ingestd::rng::Rng;

/// How one daemon run ends.
pub enum Ending {
    /// SIGKILL after this long.
    KillAfter(Duration),
    /// Abort at a fault point (`INGESTD_FAULT`), or SIGKILL if it is not reached in time.
    Fault(String),
    /// Random aborts at fault points, seeded.
    RandomFaults(u64),
}

pub struct Torture {
    pub ws: Workspace,
    pub staged: Vec<PathBuf>,
    pub expected: std::collections::HashMap<Fingerprint, usize>,
    log: std::fs::File,
    pub kills: usize,
    /// Fault points this run aimed at; each must have fired.
    points: Vec<String>,
}

impl Torture {
    /// The ATTOM source (small batches, files deleted after commit) writing to `sink` (the
    /// TOML of a sink named `lake`).
    pub fn new(sink: &str, files: usize, rows: usize) -> Torture {
        let config = torture_config().replace("[sinks.lake]\nkind = \"delta\"\nuri = \"lake/attom\"\n", sink);
        Torture::with_config(&config, files, rows)
    }

    pub fn with_config(config: &str, files: usize, rows: usize) -> Torture {
        let ws = Workspace::with_config(config);
        write_attom_files(&ws.path("staging"), &AttomSpec { files, rows, seed: 2024 }).unwrap();
        let mut staged: Vec<PathBuf> = std::fs::read_dir(ws.path("staging")).unwrap().map(|e| e.unwrap().path()).collect();
        staged.sort();
        let expected = fingerprints_of_files(&staged);
        let log = std::fs::File::create(ws.path("torture.log")).unwrap();
        Torture { ws, staged, expected, log, kills: 0, points: Vec::new() }
    }

    /// Moves the next `n` staged files into the drop folder (renamed in, as a downloader does).
    pub fn arrive(&mut self, n: usize) {
        for path in self.staged.drain(..n.min(self.staged.len())) {
            std::fs::rename(&path, self.ws.path("drop").join(path.file_name().unwrap())).unwrap();
        }
    }

    pub fn run_once(&mut self, ending: Ending) {
        let mut command = run_command(&self.ws, self.log.try_clone().unwrap());
        let limit = match &ending {
            Ending::KillAfter(d) => *d,
            Ending::Fault(point) => {
                let name = point.split(':').next().unwrap_or(point).to_string();
                if !self.points.contains(&name) {
                    self.points.push(name);
                }
                command.env("INGESTD_FAULT", point);
                Duration::from_secs(3)
            }
            Ending::RandomFaults(seed) => {
                command.env("INGESTD_FAULT_SEED", seed.to_string()).env("INGESTD_FAULT_PERCENT", "10");
                Duration::from_secs(3)
            }
        };
        let mut child = command.spawn().expect("start ingestd run");
        let started = Instant::now();
        while started.elapsed() < limit {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match child.try_wait().unwrap() {
            // Aborted itself at a fault point (SIGABRT): that is a crash too.
            Some(status) => assert!(!status.success(), "the daemon exited cleanly by itself: see torture.log"),
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        self.kills += 1;
    }

    /// Finishes with a clean `once`, then checks every row of the table (`read`), the ledger
    /// and the folders.
    pub fn verify(&self, read: &dyn Fn(&Workspace) -> Vec<arrow::array::RecordBatch>) {
        let summary = self.ws.once();
        let actual = fingerprints_of_table(&read(&self.ws));
        let (lost, duplicated, unexpected) = compare_rows(&self.expected, &actual);
        let rows: usize = self.expected.values().sum();
        println!(
            "{} kills, {rows} rows expected: {lost} lost, {duplicated} duplicated, {unexpected} unexpected (last once: {summary})",
            self.kills
        );
        assert_eq!((lost, duplicated, unexpected), (0, 0, 0));

        let status = String::from_utf8_lossy(&self.ws.ingestd(&["status"]).stdout).to_string();
        assert!(status.contains(&format!(" {rows}\n")), "ledger disagrees with the table:\n{status}");
        assert!(!status.contains("in_flight"), "{status}");
        let log = std::fs::read_to_string(self.ws.path("torture.log")).unwrap();
        for point in &self.points {
            assert!(log.contains(&format!("fault injection: abort at {point}\n")), "fault point {point} never fired");
        }
        let quarantined = std::fs::read_dir(self.ws.path("quarantine")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(quarantined, 0, "nothing may be quarantined");
        let left: Vec<_> =
            std::fs::read_dir(self.ws.path("drop")).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != ".ingestd.lock").collect();
        assert!(left.is_empty(), "committed files are deleted, others must have been ingested: {left:?}");
    }
}

pub fn kills_wanted() -> usize {
    std::env::var("TORTURE_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(200)
}

pub fn torture(mut t: Torture, points: &[&str]) -> Torture {
    let kills = kills_wanted();
    let mut rng = Rng::seeded(0x2545_f491_4f6c_dd1d);
    // Every fault point, at its first, second and third hit.
    for point in points {
        for nth in 1..=3 {
            t.arrive(2);
            t.run_once(Ending::Fault(format!("{point}:{nth}")));
        }
    }
    // Then SIGKILL at random instants (a tenth of the runs with random fault aborts), files arriving throughout.
    let per_round = (t.staged.len() / kills.saturating_sub(t.kills).max(1)).max(1);
    while t.kills < kills {
        t.arrive(per_round + (rng.next_u64() % 2) as usize);
        let ending = if rng.next_u64().is_multiple_of(10) {
            Ending::RandomFaults(rng.next_u64())
        } else {
            Ending::KillAfter(Duration::from_millis(rng.next_u64() % 300))
        };
        t.run_once(ending);
    }
    let rest = t.staged.len();
    t.arrive(rest);
    t
}
