//! The real binary killed (SIGKILL) in the middle of a batch, then restarted: every (order,
//! supplier) ends with exactly one job at the supplier, one accepted row and its event.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orderflow_testkit::{self as kit, Service};

use crate::common::{expected_jobs, test_env};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_dispatcher_restarted_sends_no_job_twice_and_loses_none() {
    let env = test_env(3).await;
    // Slow enough that requests are in flight when the process dies: the supplier has taken
    // those jobs but the dispatcher never hears back.
    env.sim.set_latency(Duration::from_millis(400));
    let orders: Vec<_> = (0..40)
        .map(|i| kit::sample_order_placed(&format!("crash-{i}")))
        .collect();
    let expected = expected_jobs(&orders);
    assert_eq!(expected.len(), 80);
    env.produce(&orders).await;

    let binary = env!("CARGO_BIN_EXE_supplier-dispatch");
    let mut vars = env.service_env();
    vars.push(("ORDERFLOW_CONSUMER_CONCURRENCY", "4".into()));
    let first = Service::spawn(binary, &vars);
    let started = kit::eventually(Duration::from_secs(60), || async {
        env.count_published().await >= 10
    })
    .await;
    assert!(
        started,
        "the first process dispatched nothing; see {}",
        first.log.display()
    );
    first.kill();
    let before = env.count_published().await;
    let jobs_before = env.sim.stats().jobs;
    assert!(before < 80, "killed mid-batch ({before} of 80 done)");

    let second = Service::spawn(binary, &vars);
    assert!(
        env.wait_published(80, Duration::from_secs(120)).await,
        "{} of 80 after the restart; see {}",
        env.count_published().await,
        second.log.display()
    );
    // Let a wrong second job or event show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(second.terminate(), "a clean shutdown on SIGTERM");

    let jobs = env.sim.jobs();
    let keys: BTreeSet<&str> = jobs.iter().map(|j| j.idempotency_key.as_str()).collect();
    assert_eq!(jobs.len(), 80, "one job per (order, supplier)");
    assert_eq!(keys, expected.keys().map(String::as_str).collect());
    let stats = env.sim.stats();
    let resent: u32 = jobs.iter().map(|j| j.requests - 1).sum();
    assert_eq!(u64::from(resent), stats.duplicates);
    eprintln!(
        "crash test: killed with {before}/80 dispatched and {jobs_before} jobs at the supplier; \
         {} requests, {} duplicate requests by key, {} distinct jobs",
        stats.requests, stats.duplicates, stats.jobs
    );

    let rows = env.rows().await;
    assert_eq!(rows.len(), 80);
    let job_ids: BTreeMap<&str, &str> = jobs
        .iter()
        .map(|j| (j.idempotency_key.as_str(), j.job_id.as_str()))
        .collect();
    for row in &rows {
        let key = format!("{}:{}", row.order_id, row.supplier_id);
        assert_eq!(row.status, "accepted", "{key}");
        assert_eq!(row.job_id.as_deref(), Some(job_ids[key.as_str()]), "{key}");
    }

    // A crash between publishing and recording it may publish an event again; it carries the
    // same event id and job, so it is recognisable.
    let events = env.dispatched_events(80).await;
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, e) in &events {
        by_id
            .entry(e.event_id.clone())
            .or_default()
            .insert(e.job_id.clone());
    }
    eprintln!(
        "crash test: {} events on orders.dispatched, {} distinct",
        events.len(),
        by_id.len()
    );
    assert_eq!(by_id.len(), 80, "every dispatch announced");
    for (event_id, job_ids_seen) in &by_id {
        assert_eq!(job_ids_seen.len(), 1, "{event_id} names one job");
    }
}
