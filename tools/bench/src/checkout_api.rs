//! Phase 1: checkout's API alone (with its relay running, as in production) under the load
//! generator: as fast as it goes over 1,000 and over 10,000 open connections, then 1,000
//! orders/s spread over 10,000 connections, the peak a sale is expected to bring.

use std::time::Duration;

use anyhow::Context;
use loadgen::driver::{LoadPlan, LoadReport};
use orderflow_bench::cpu::CpuSnapshot;
use orderflow_bench::memory;
use orderflow_faults::pipeline::Pipeline;
use orderflow_faults::process::wait_for_port;

use crate::Bench;

/// (connections, orders/s or as fast as possible)
const RUNS: [(usize, Option<f64>); 3] = [(1_000, None), (10_000, None), (10_000, Some(1_000.0))];

pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let mut p = Pipeline::prepare(&bench.servers, "bench-checkout", &bench.service_env()).await;
    p.start_service("checkout");
    let port = p
        .checkout_url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .context("checkout's port")?;
    anyhow::ensure!(
        wait_for_port(port, Duration::from_secs(60)).await,
        "checkout did not start; logs in {}",
        p.log_dir().display()
    );
    let pid = p.pid("checkout").context("checkout did not start")?;
    let pool = p.database_of("checkout").await?;
    for (i, (connections, rate)) in RUNS.into_iter().enumerate() {
        let run = format!("{}-{i}", p.run);
        let (report, cpu) = load(&p, &run, connections, rate, bench.seconds).await?;
        let name = match rate {
            Some(r) => format!("checkout.c{connections}.rate{r:.0}"),
            None => format!("checkout.c{connections}.max"),
        };
        let what = match rate {
            Some(r) => format!("{connections} connections at {r:.0} orders/s"),
            None => format!("{connections} connections, as fast as possible"),
        };
        println!("  {what}: {report}");
        bench.profile(&format!("checkout, {what}"), &cpu);
        if report.connect_errors > 0 || report.failed() > 0 || report.refused > 0 {
            bench.note(format!(
                "checkout, {what}: {} connection errors, {} failed, {} refused",
                report.connect_errors,
                report.failed(),
                report.refused
            ));
        }
        bench.figure(
            "checkout",
            &format!("{name}.accepted_per_s"),
            &format!("checkout, {what} (orders/s)"),
            report.accepted_per_sec,
            "orders/s",
            true,
        );
        for (q, value) in [
            ("p50", report.latency.p50_ms),
            ("p99", report.latency.p99_ms),
        ] {
            bench.figure(
                "checkout",
                &format!("{name}.{q}_ms"),
                &format!("checkout, {what}, {q} (ms)"),
                value,
                "ms",
                false,
            );
        }
        if rate.is_some() {
            bench.target(
                &format!("{name}.p99_ms"),
                &format!("checkout holds {what} with p99 under 100 ms"),
                report.latency.p99_ms,
                100.0,
                false,
            );
        }
        // The next run starts with the relay caught up, so it measures the API alone.
        outbox_drained(&pool).await?;
    }
    let peak = memory::resident(pid).map_or(0.0, |r| r.peak_mib);
    bench.figure(
        "memory",
        "memory.checkout.api.peak_mib",
        "checkout peak under 10,000 connections (MiB)",
        peak,
        "MiB",
        false,
    );
    bench.discard(p).await;
    Ok(())
}

/// Places orders of `run` through the pipeline's checkout; payments are scripted first. Returns
/// the report and the CPU times from when the load started.
pub async fn load(
    p: &Pipeline,
    run: &str,
    connections: usize,
    rate: Option<f64>,
    seconds: u64,
) -> anyhow::Result<(LoadReport, CpuSnapshot)> {
    let plan = LoadPlan {
        url: p.checkout_url.clone(),
        connections,
        rate,
        duration: Duration::from_secs(seconds),
        request_timeout: Duration::from_secs(30),
    };
    // As fast as possible: more orders than two cores can take in the time.
    let needed = rate.map_or(seconds * 10_000, |r| (r * seconds as f64).ceil() as u64 + 1);
    let orders: Vec<_> = (0..needed)
        .map(|n| loadgen::catalogue::order(run, n))
        .collect();
    loadgen::register_payments(&p.payments.url(), &orders).await?;
    let cpu = CpuSnapshot::take();
    Ok((loadgen::driver::run(plan, orders).await?, cpu))
}

async fn outbox_drained(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    for _ in 0..1200 {
        let (backlog, _) = checkout::store::outbox_backlog(pool).await?;
        if backlog == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the outbox did not drain within 2 minutes")
}
