//! The stored form of one benchmark run: every figure with its unit and which way is better, the
//! issue's targets with whether they were met, the machine and the commit it ran on. Stored as
//! pretty JSON under `bench/results/`, and as `bench/baseline.json` when kept as the baseline.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// A stable key, compared across runs: `checkout.c10000.rate1000.p99_ms`.
    pub name: String,
    /// `checkout`, `relay`, `consumers`, `end-to-end` or `memory`.
    pub group: String,
    pub label: String,
    /// NaN when the measurement failed (stored as `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    /// `orders/s`, `events/s`, `ms`, `MiB`, `ratio`.
    pub unit: String,
    pub better: Better,
}

/// A figure the issue asks to reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The figure it applies to, when there is one (the chart marks `required` on its bar).
    pub name: String,
    pub description: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub measured: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub required: f64,
    // The first stored baseline wrote this field as `direction`.
    #[serde(alias = "direction")]
    pub comparison: Bound,
    pub met: bool,
}

/// How a target's measured value must relate to the required one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// `measured >= required`
    #[serde(alias = "higher")]
    AtLeast,
    /// `measured < required`
    #[serde(alias = "lower")]
    Below,
}

impl Bound {
    pub fn holds(self, measured: f64, required: f64) -> bool {
        match self {
            Bound::AtLeast => measured >= required,
            Bound::Below => measured < required,
        }
    }

    /// `>=` or `<`, for reports.
    pub fn symbol(self) -> &'static str {
        match self {
            Bound::AtLeast => ">=",
            Bound::Below => "<",
        }
    }
}

impl Target {
    /// A target met when `measured` is at least `required` (`at_least`), or below it. A
    /// measurement that failed (NaN) meets neither.
    pub fn new(
        name: &str,
        description: &str,
        measured: f64,
        required: f64,
        at_least: bool,
    ) -> Self {
        let comparison = if at_least {
            Bound::AtLeast
        } else {
            Bound::Below
        };
        Self {
            name: name.to_string(),
            description: description.to_string(),
            measured,
            required,
            comparison,
            met: comparison.holds(measured, required),
        }
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub logical_cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub os: String,
    pub hostname: String,
    pub rustc: String,
}

impl Machine {
    /// This machine; what cannot be read is "unknown".
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        Self {
            cpu_model: field(&cpuinfo, "model name", ':').unwrap_or_else(unknown),
            logical_cores: match cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count()
            {
                0 => std::thread::available_parallelism().map_or(0, |n| n.get()),
                n => n,
            },
            memory_mib: field(&meminfo, "MemTotal", ':')
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            kernel: output("uname", &["-sr"]).unwrap_or_else(unknown),
            os: field(&os_release, "PRETTY_NAME", '=')
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_else(unknown),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| unknown()),
            rustc: output("rustc", &["-V"]).unwrap_or_else(unknown),
        }
    }

    /// Whether figures of the two machines can be compared as they are.
    pub fn same_kind(&self, other: &Machine) -> bool {
        self.cpu_model == other.cpu_model && self.logical_cores == other.logical_cores
    }
}

/// serde_json writes a NaN or infinite figure (a measurement that failed) as `null`, which it
/// then refuses to read back as a number: read it as NaN, so the run still loads.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn unknown() -> String {
    "unknown".to_string()
}

/// The value of the first `name<sep>value` line.
fn field(text: &str, name: &str, sep: char) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(sep)?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit checked out in `repo`, and whether the work tree differs from it (the benchmark's
/// own output under `bench/` aside).
pub fn commit_id(repo: &Path) -> (String, bool) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).map_or_else(unknown, |c| c.trim().to_string());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| {
        s.lines()
            .any(|l| !l.get(3..).unwrap_or_default().starts_with("bench/"))
    });
    (commit, dirty)
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub commit: String,
    /// The work tree had changes not in `commit`.
    pub dirty: bool,
    pub started_at: DateTime<Utc>,
    #[serde(deserialize_with = "nan_if_null")]
    pub duration_s: f64,
    pub machine: Machine,
    /// The options of the run (phases, event counts, durations).
    pub settings: serde_json::Value,
    pub figures: Vec<Figure>,
    pub targets: Vec<Target>,
    /// Where the CPU went in each measured stretch.
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// What went wrong or is worth knowing about the run.
    pub notes: Vec<String>,
}

/// The CPU each program used while one figure was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub stretch: String,
    pub seconds: f64,
    pub cpu: Vec<crate::cpu::CpuUse>,
}

/// Why results could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a benchmark result: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

impl Results {
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// `<YYYYMMDDTHHMMSSZ>-<short commit>.json`
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.json",
            self.started_at.format("%Y%m%dT%H%M%SZ"),
            self.commit.get(..10).unwrap_or(&self.commit)
        )
    }

    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Json {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        // Cannot fail: every map key is a string and non-finite numbers become `null`.
        let text = serde_json::to_string_pretty(self).expect("results serialize to JSON");
        std::fs::write(path, text + "\n").map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run with one figure of each kind, for the report's and the chart's tests.
    pub fn sample(throughput: f64, p99_ms: f64) -> Results {
        let figure = |name: &str, group: &str, value: f64, unit: &str, better| Figure {
            name: name.into(),
            group: group.into(),
            label: format!("{name} label"),
            value,
            unit: unit.into(),
            better,
        };
        Results {
            schema_version: 1,
            commit: "0123456789abcdef".into(),
            dirty: false,
            started_at: "2026-11-22T10:00:00Z".parse().unwrap(),
            duration_s: 300.0,
            machine: Machine::describe(),
            settings: serde_json::json!({"events": 20000}),
            figures: vec![
                figure(
                    "consumers.accounting.events_per_s",
                    "consumers",
                    throughput,
                    "events/s",
                    Better::Higher,
                ),
                figure(
                    "checkout.c10000.rate1000.p99_ms",
                    "checkout",
                    p99_ms,
                    "ms",
                    Better::Lower,
                ),
                figure(
                    "memory.accounting.drain.peak_mib",
                    "memory",
                    40.0,
                    "MiB",
                    Better::Lower,
                ),
            ],
            targets: vec![Target::new(
                "checkout.c10000.rate1000.p99_ms",
                "checkout p99 under 100 ms",
                p99_ms,
                100.0,
                false,
            )],
            profiles: vec![Profile {
                stretch: "accounting drain".into(),
                seconds: 10.0,
                cpu: vec![crate::cpu::CpuUse {
                    program: "postgres".into(),
                    cores: 1.2,
                }],
            }],
            notes: vec![],
        }
    }

    #[test]
    fn a_target_knows_whether_it_was_met() {
        assert!(Target::new("a", "", 0.6, 0.5, true).met);
        assert!(!Target::new("a", "", 0.4, 0.5, true).met);
        assert!(Target::new("b", "", 99.0, 100.0, false).met);
        assert!(
            !Target::new("b", "", 100.0, 100.0, false).met,
            "under means strictly"
        );
        assert!(!Target::new("a", "", f64::NAN, 0.5, true).met);
        assert!(!Target::new("b", "", f64::NAN, 100.0, false).met);
    }

    #[test]
    fn a_failed_measurement_is_stored_and_read_back_as_nan() {
        let dir = std::env::temp_dir().join(format!("bench-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = sample(f64::NAN, 50.0);
        r.targets[0] = Target::new("t", "t", f64::INFINITY, 1.0, true);
        let path = dir.join(r.file_name());
        r.save(&path).unwrap();
        let back = Results::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(back.figures[0].value.is_nan());
        assert!(back.targets[0].measured.is_nan());
        assert_eq!(back.figures[1], r.figures[1]);
    }

    #[test]
    fn targets_stored_by_the_first_version_still_load() {
        let stored = r#"{"name": "x", "description": "d", "measured": 1.0, "required": 2.0,
            "direction": "lower", "met": true}"#;
        let t: Target = serde_json::from_str(stored).unwrap();
        assert_eq!(t.comparison, Bound::Below);
        let now = serde_json::to_value(&t).unwrap();
        assert_eq!(now["comparison"], "below");
    }

    #[test]
    fn the_benchmark_output_does_not_make_the_tree_dirty() {
        let repo = std::env::temp_dir().join(format!("bench-git-{}", std::process::id()));
        std::fs::create_dir_all(repo.join("bench/results")).unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@example.com"])
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(repo.join("a.txt"), "a").unwrap();
        git(&["add", "a.txt"]);
        git(&["commit", "-q", "-m", "a"]);
        std::fs::write(repo.join("bench/results/run.json"), "{}").unwrap();
        let (commit, dirty) = commit_id(&repo);
        assert_eq!(commit.len(), 40, "{commit}");
        assert!(!dirty, "only bench/ output changed");
        std::fs::write(repo.join("a.txt"), "b").unwrap();
        assert!(commit_id(&repo).1, "a tracked file changed");
        std::fs::remove_dir_all(&repo).unwrap();
        assert_eq!(commit_id(&repo), ("unknown".to_string(), false));
    }

    #[test]
    fn results_round_trip_through_their_file() {
        let dir = std::env::temp_dir().join(format!("bench-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = sample(1000.0, 50.0);
        let path = dir.join(r.file_name());
        assert!(path.ends_with("20261122T100000Z-0123456789.json"));
        r.save(&path).unwrap();
        assert_eq!(Results::load(&path).unwrap(), r);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_machine_is_described() {
        let m = Machine::describe();
        assert!(m.logical_cores > 0 && m.memory_mib > 0, "{m:?}");
        assert_ne!(m.cpu_model, "unknown");
        assert!(m.rustc.starts_with("rustc "), "{m:?}");
    }
}
