//! The fault-injection suite. Thousands of orders go through checkout and the five consumers
//! (real binaries, on the suite's own Kafka, PostgreSQL and RabbitMQ) while one fault strikes per
//! scenario; afterwards every promise is checked from the outside. Prints a table of scenarios,
//! events and violations, and fails when any violation was found.
//!
//! `cargo test -p orderflow-faults --test faults [-- NAME...]` runs the scenarios whose names
//! contain one of the NAMEs (all without). `ORDERFLOW_FAULT_ORDERS` sets the orders per
//! scenario (default 250). The service binaries must be built: `scripts/faults.sh` does both.

use std::time::Instant;

use orderflow_faults::infra::Infra;
use orderflow_faults::scenario::{self, Outcome};

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // `cargo test --list` and friends ask a harness what it holds; this one holds one suite.
    if std::env::args().any(|a| a == "--list") {
        println!("faults: test");
        return;
    }
    let orders: usize = std::env::var("ORDERFLOW_FAULT_ORDERS")
        .ok()
        .map(|v| v.parse().expect("ORDERFLOW_FAULT_ORDERS is a number"))
        .unwrap_or(250);
    let chosen: Vec<_> = scenario::all()
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let outcomes = runtime.block_on(async {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/faults");
        let mut infra = Infra::start(&dir).await;
        let mut outcomes = Vec::new();
        for s in chosen {
            eprintln!("scenario {} ...", s.name);
            let outcome = scenario::run(&mut infra, s, orders).await;
            eprintln!(
                "scenario {}: {} violation(s) in {:.0} s",
                outcome.name,
                outcome.violations.len(),
                outcome.elapsed.as_secs_f64()
            );
            outcomes.push(outcome);
        }
        outcomes
    });
    print_table(&outcomes);
    let failed = outcomes.iter().filter(|o| !o.violations.is_empty()).count();
    // The line scripts/test.sh adds up, in libtest's words.
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s",
        if failed == 0 { "ok" } else { "FAILED" },
        outcomes.len() - failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<26} {:>9} {:>8} {:>9} {:>9} {:>11} {:>8}",
        "scenario", "accepted", "events", "injected", "replayed", "violations", "seconds"
    );
    for o in outcomes {
        println!(
            "{:<26} {:>9} {:>8} {:>9} {:>9} {:>11} {:>8.0}",
            o.name,
            o.accepted,
            o.events,
            o.injected,
            o.replayed,
            o.violations.len(),
            o.elapsed.as_secs_f64()
        );
    }
    let total = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    println!(
        "{:<26} {:>9} {:>8} {:>9} {:>9} {:>11}",
        "total",
        total(|o| o.accepted),
        total(|o| o.events),
        total(|o| o.injected),
        total(|o| o.replayed),
        total(|o| o.violations.len())
    );
    for o in outcomes.iter().filter(|o| !o.violations.is_empty()) {
        println!("\n{} violations:", o.name);
        for v in o.violations.iter().take(20) {
            println!("  - {v}");
        }
        if o.violations.len() > 20 {
            println!("  ... and {} more", o.violations.len() - 20);
        }
    }
}
