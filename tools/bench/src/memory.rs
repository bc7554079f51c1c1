//! Memory of the processes under test, read from `/proc/<pid>/status`: the resident set now
//! (`VmRSS`) and its peak since the process started (`VmHWM`), in MiB. A sampler keeps the
//! resident set over time, to tell memory that stays flat from memory that grows with the events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Resident memory of a process, in MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resident {
    pub now_mib: f64,
    pub peak_mib: f64,
}

/// The process's resident memory, or `None` once it is gone.
pub fn resident(pid: u32) -> Option<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Resident> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kib| kib / 1024.0)
    };
    Some(Resident {
        now_mib: field("VmRSS:")?,
        peak_mib: field("VmHWM:")?,
    })
}

/// Resident memory samples of one process, taken every `every` until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<(Duration, f64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let samples = Arc::clone(&samples);
            async move {
                let started = Instant::now();
                while let Some(r) = resident(pid) {
                    samples
                        .lock()
                        .expect("samples lock")
                        .push((started.elapsed(), r.now_mib));
                    tokio::time::sleep(every).await;
                }
            }
        });
        Self { samples, task }
    }

    /// What the samples say so far.
    pub fn profile(&self) -> MemoryProfile {
        MemoryProfile::of(&self.samples.lock().expect("samples lock"))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shape of a process's resident memory over a run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MemoryProfile {
    pub samples: usize,
    pub peak_mib: f64,
    /// Mean of the samples in the second tenth of the run (past start-up and warm-up).
    pub early_mib: f64,
    /// Mean of the samples in the last tenth of the run.
    pub late_mib: f64,
}

impl MemoryProfile {
    pub fn of(samples: &[(Duration, f64)]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mean = |from: usize, to: usize| {
            let part = &samples[from..to.max(from + 1).min(samples.len())];
            part.iter().map(|(_, m)| m).sum::<f64>() / part.len() as f64
        };
        let n = samples.len();
        let tenth = n / 10;
        Self {
            samples: n,
            peak_mib: samples.iter().map(|(_, m)| *m).fold(0.0, f64::max),
            early_mib: mean(tenth, 2 * tenth),
            late_mib: mean(n - tenth.max(1), n),
        }
    }

    /// Growth from the early to the late part of the run, in MiB.
    pub fn growth_mib(&self) -> f64 {
        self.late_mib - self.early_mib
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resident_set_and_its_peak() {
        let status =
            "Name:\tcheckout\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Resident {
                now_mib: 20.0,
                peak_mib: 40.0
            })
        );
        assert_eq!(parse_status("Name:\tzombie\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let r = resident(std::process::id()).expect("our own status");
        assert!(r.now_mib > 0.0 && r.peak_mib >= r.now_mib);
    }

    #[test]
    fn growth_compares_the_early_and_late_parts_of_the_run() {
        let flat: Vec<_> = (0..100)
            .map(|i| (Duration::from_secs(i), if i < 5 { 10.0 } else { 50.0 }))
            .collect();
        let p = MemoryProfile::of(&flat);
        assert_eq!((p.samples, p.peak_mib), (100, 50.0));
        assert_eq!(p.growth_mib(), 0.0, "start-up growth is not counted");
        let leaking: Vec<_> = (0..100)
            .map(|i| (Duration::from_secs(i), 50.0 + i as f64))
            .collect();
        assert!(MemoryProfile::of(&leaking).growth_mib() > 70.0);
    }
}
