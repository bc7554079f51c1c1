//! Where the CPU went during a phase, per program (the services, PostgreSQL, Kafka's JVM,
//! RabbitMQ's Erlang VM, the benchmark itself), from the user and system time every process
//! reports in `/proc/<pid>/stat`. On a two-core machine it shows which process a figure is
//! waiting for when it falls short.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time used so far by every process, and by the whole machine, at one instant.
pub struct CpuSnapshot {
    at: Instant,
    /// pid -> (program, ticks)
    processes: HashMap<u32, (String, u64)>,
    /// Busy ticks of all CPUs together (`/proc/stat`), including processes that came and went.
    machine_busy: u64,
}

/// The CPU one program used over a phase, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub program: String,
    pub cores: f64,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let mut processes = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Some(found) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s))
                {
                    processes.insert(pid, found);
                }
            }
        }
        Self {
            at: Instant::now(),
            processes,
            machine_busy: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| machine_busy(&s))
                .unwrap_or(0),
        }
    }

    pub fn seconds_since(&self, earlier: &CpuSnapshot) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }

    /// CPU per program since `earlier`, busiest first, leaving out programs under 1% of a core;
    /// the first entry, `(all)`, is the whole machine. Kernel workers count as one program.
    pub fn since(&self, earlier: &CpuSnapshot) -> Vec<CpuUse> {
        let seconds = self.seconds_since(earlier).max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let mut per_program: HashMap<&str, u64> = HashMap::new();
        for (pid, (program, now)) in &self.processes {
            let before = earlier.processes.get(pid).map_or(0, |(_, t)| *t);
            // A kernel worker's name changes with the work it does.
            let program = if program.starts_with("kworker/") {
                "kworker"
            } else {
                program.as_str()
            };
            *per_program.entry(program).or_default() += now.saturating_sub(before);
        }
        let mut uses: Vec<CpuUse> = per_program
            .into_iter()
            .map(|(program, ticks)| CpuUse {
                program: program.to_string(),
                cores: cores(ticks),
            })
            .filter(|u| u.cores >= 0.01)
            .collect();
        uses.sort_by(|a, b| b.cores.total_cmp(&a.cores));
        uses.insert(
            0,
            CpuUse {
                program: "(all)".to_string(),
                cores: cores(self.machine_busy.saturating_sub(earlier.machine_busy)),
            },
        );
        uses
    }
}

/// Busy ticks of the machine from the `cpu` line of `/proc/stat`: everything but idle and I/O
/// wait (guest time is already counted in user time).
fn machine_busy(stat: &str) -> Option<u64> {
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| fields.get(*i))
        .sum();
    Some(busy)
}

/// The program name and its user + system ticks from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // The name is in parentheses and may itself hold spaces or parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let program = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((program, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_and_the_user_and_system_time() {
        let stat = "4242 (tokio (worker)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat(stat), Some(("tokio (worker)".into(), 1750)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_machine_s_busy_time_leaves_out_idle_and_io_wait() {
        let stat = "cpu  100 5 50 1000 30 2 3 4 0 0\ncpu0 50 2 25 500 15 1 1 2 0 0\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 50 + 2 + 3 + 4));
    }

    #[test]
    fn a_busy_loop_shows_up_as_its_process_s_cpu() {
        let before = CpuSnapshot::take();
        let started = Instant::now();
        let mut x: u64 = 0;
        while started.elapsed().as_millis() < 500 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let uses = CpuSnapshot::take().since(&before);
        let ours = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
            .map(|(p, _)| p)
            .unwrap();
        let mine = uses
            .iter()
            .find(|u| u.program == ours)
            .expect("this test's process");
        // A loaded machine gives the loop less than a core; it can never get more than two.
        assert!((0.3..2.1).contains(&mine.cores), "{uses:?}");
    }
}
