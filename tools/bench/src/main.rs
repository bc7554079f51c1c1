//! `orderflow-bench`: measures the pipeline on the local stack in one run — checkout's API, the
//! outbox relay, each consumer against its ceiling, the whole pipeline end to end, and the memory
//! of every process — then stores the results with the machine and the commit, draws the chart
//! and compares with the stored baseline. `scripts/bench.sh` builds the release binaries and
//! starts the stack first.

mod checkout_api;
mod consumers;
mod end_to_end;
mod events;
mod progress;
mod relay;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use orderflow_bench::cpu::CpuSnapshot;
use orderflow_bench::report::{self, Comparison};
use orderflow_bench::results::{Better, Figure, Machine, Profile, Results, Target};
use orderflow_faults::pipeline::{Pipeline, Servers, CONSUMERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Checkout,
    Relay,
    Consumers,
    EndToEnd,
}

/// Benchmarks orderflow on the local stack (scripts/stack.sh up) with the release binaries.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The phases to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Phase::Checkout, Phase::Relay, Phase::Consumers, Phase::EndToEnd])]
    phases: Vec<Phase>,
    /// Events pre-filled for the consumers' drains (1000000 for the memory figure). Enough for a
    /// few seconds of the faster consumers, so their first small runs weigh little in the rate.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// The consumers drained in the consumers phase, comma-separated (all by default).
    #[arg(long, value_delimiter = ',', default_values_t = CONSUMERS.map(String::from))]
    consumers: Vec<String>,
    /// Orders written to the outbox before the relay starts.
    #[arg(long, default_value_t = 50_000)]
    relay_events: u64,
    /// Seconds of each load run against checkout and the pipeline.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Where results, the report and the chart go, and where the baseline is kept.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// Store this run as the new baseline (bench/baseline.json).
    #[arg(long)]
    save_baseline: bool,
    /// A figure worse than the baseline by more than this share is a regression.
    #[arg(long, default_value_t = 0.10)]
    threshold: f64,
    /// Measure nothing: write the report and chart of a stored run again (e.g. after the
    /// report's code changed), compared with the baseline.
    #[arg(long, value_name = "RESULTS_JSON")]
    render: Option<PathBuf>,
    /// Exit with status 3 when a figure regressed.
    #[arg(long)]
    fail_on_regression: bool,
}

/// One run's settings and what it measured so far.
pub struct Bench {
    pub servers: Servers,
    pub consumers: Vec<String>,
    pub events: u64,
    pub relay_events: u64,
    pub seconds: u64,
    figures: Vec<Figure>,
    targets: Vec<Target>,
    profiles: Vec<Profile>,
    notes: Vec<String>,
}

impl Bench {
    /// Environment every service under test starts with: warnings only and no traces, so
    /// logging and the local Jaeger are not what is measured.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RUST_LOG", "warn".to_string()),
            ("OTEL_TRACES_SAMPLER", "always_off".to_string()),
        ]
    }

    pub fn figure(
        &mut self,
        group: &str,
        name: &str,
        label: &str,
        value: f64,
        unit: &str,
        higher_is_better: bool,
    ) {
        self.figures.push(Figure {
            name: name.to_string(),
            group: group.to_string(),
            label: label.to_string(),
            value,
            unit: unit.to_string(),
            better: if higher_is_better {
                Better::Higher
            } else {
                Better::Lower
            },
        });
    }

    /// A figure the issue asks for: at least `required` (or below it when `at_least` is false).
    pub fn target(
        &mut self,
        name: &str,
        description: &str,
        measured: f64,
        required: f64,
        at_least: bool,
    ) {
        self.targets
            .push(Target::new(name, description, measured, required, at_least));
    }

    /// Records where the CPU went since `start`, while `stretch` was measured.
    pub fn profile(&mut self, stretch: &str, start: &CpuSnapshot) {
        let now = CpuSnapshot::take();
        self.profiles.push(Profile {
            stretch: stretch.to_string(),
            seconds: now.seconds_since(start),
            cpu: now.since(start),
        });
    }

    /// Stops a phase's pipeline and deletes what it left on the servers, noting what failed.
    pub async fn discard(&mut self, p: Pipeline) {
        for problem in p.stop_and_discard().await {
            self.note(problem);
        }
    }

    pub fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(unknown) = cli
        .consumers
        .iter()
        .find(|c| !CONSUMERS.contains(&c.as_str()))
    {
        anyhow::bail!(
            "--consumers: {unknown} is not one of {}",
            CONSUMERS.join(", ")
        );
    }
    if let Some(stored) = &cli.render {
        let results = Results::load(stored)?;
        let regressed = write_outputs(&cli, &results)?;
        if regressed && cli.fail_on_regression {
            std::process::exit(3);
        }
        return Ok(());
    }
    loadgen::raise_fd_limit()?;
    let repo = std::env::current_dir()?;
    let (commit, dirty) = orderflow_bench::results::commit_id(&repo);
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let dir = cli
        .out
        .join("runs")
        .join(started_at.format("%Y%m%dT%H%M%SZ").to_string());
    std::fs::create_dir_all(&dir)?;
    let mut bench = Bench {
        servers: Servers::stack(dir),
        consumers: cli.consumers.clone(),
        events: cli.events,
        relay_events: cli.relay_events,
        seconds: cli.seconds,
        figures: Vec::new(),
        targets: Vec::new(),
        profiles: Vec::new(),
        notes: Vec::new(),
    };
    for phase in &cli.phases {
        println!("==> {phase:?}");
        let run = async {
            match phase {
                Phase::Checkout => checkout_api::run(&mut bench).await,
                Phase::Relay => relay::run(&mut bench).await,
                Phase::Consumers => consumers::run(&mut bench).await,
                Phase::EndToEnd => end_to_end::run(&mut bench).await,
            }
        };
        // Ctrl-C drops the phase, and with it its services: each one's process group is killed
        // when dropped, so none is left running.
        let outcome = tokio::select! {
            outcome = run => outcome,
            _ = tokio::signal::ctrl_c() => {
                anyhow::bail!("interrupted during {phase:?}: its services are stopped, its topics, queue and schemas are left")
            }
        };
        if let Err(e) = outcome {
            bench.note(format!("phase {phase:?} failed: {e:#}"));
        }
    }
    let results = Results {
        schema_version: 1,
        commit,
        dirty,
        started_at,
        duration_s: clock.elapsed().as_secs_f64(),
        machine: Machine::describe(),
        settings: serde_json::json!({
            "phases": cli.phases.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
            "consumers": cli.consumers,
            "events": cli.events,
            "relay_events": cli.relay_events,
            "seconds": cli.seconds,
            "profile": "release",
        }),
        figures: bench.figures,
        targets: bench.targets,
        profiles: bench.profiles,
        notes: bench.notes,
    };
    let regressed = write_outputs(&cli, &results)?;
    if regressed && cli.fail_on_regression {
        std::process::exit(3);
    }
    Ok(())
}

/// Stores the results, the chart and the report, compares with the baseline; returns whether a
/// figure regressed.
fn write_outputs(cli: &Cli, results: &Results) -> anyhow::Result<bool> {
    let stored = cli.out.join("results").join(results.file_name());
    std::fs::create_dir_all(stored.parent().expect("a results folder"))?;
    results.save(&stored)?;
    let baseline_path = cli.out.join("baseline.json");
    let baseline = baseline_path
        .exists()
        .then(|| Results::load(&baseline_path))
        .transpose()?;
    // A run is not compared with itself (rendering the baseline's own report).
    let baseline = baseline.filter(|b| b.started_at != results.started_at);
    let comparisons: Option<Vec<Comparison>> = baseline
        .as_ref()
        .map(|b| report::compare(results, b, cli.threshold));
    orderflow_bench::chart::render_svg(results, baseline.as_ref(), &cli.out.join("report.svg"))?;
    std::fs::write(
        cli.out.join("report.md"),
        report::markdown(results, comparisons.as_deref(), "report.svg"),
    )?;
    println!("{}", report::summary(results, comparisons.as_deref()));
    println!("results: {}", stored.display());
    if cli.save_baseline {
        results.save(&baseline_path)?;
        println!("baseline: {}", baseline_path.display());
    }
    Ok(comparisons.unwrap_or_default().iter().any(|c| c.regression))
}
