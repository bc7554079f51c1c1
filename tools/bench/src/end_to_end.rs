//! Phase 4: the whole pipeline — checkout, the five consumers and the mailer — under load. First
//! as fast as checkout takes orders, for the rate the pipeline sustains to the last effect; then
//! at 1,000 orders/s and at half the sustained rate, for the latency from an order placed to its
//! last effect done.
//!
//! An order's effects are read from where each service records them: the print jobs' publication
//! (supplier dispatch), the processed mark of notifications, accounting, sales reporting and
//! product analytics (written in the transaction of their effect), and the e-mails at the mail
//! server. The order's latency is from checkout's `placed_at` to the latest of them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use orderflow_bench::memory;
use orderflow_faults::pipeline::{Pipeline, SERVICES};

use crate::checkout_api::load;
use crate::Bench;

/// Connections of the storefronts in the sustained run: enough to keep checkout busy.
const SUSTAINED_CONNECTIONS: usize = 256;
const LATENCY_CONNECTIONS: usize = 1_000;
const LATENCY_RATE: f64 = 1_000.0;

pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let p = Pipeline::start(&bench.servers, "bench-e2e", &bench.service_env()).await;
    let (report, cpu) = load(&p, &p.run, SUSTAINED_CONNECTIONS, None, bench.seconds).await?;
    println!("  placed as fast as possible: {report}");
    let done = await_effects(&p, report.accepted).await?;
    bench.profile(
        "pipeline, orders as fast as possible until all effects done",
        &cpu,
    );
    let first_placed = done.iter().map(|o| o.placed_ms).min().unwrap_or(0);
    let last_done = done.iter().map(|o| o.done_ms).max().unwrap_or(0);
    let sustained = done.len() as f64 / ((last_done - first_placed) as f64 / 1000.0).max(1e-3);
    println!("  sustained: {sustained:.0} orders/s to the last effect");
    bench.figure(
        "end-to-end",
        "end_to_end.sustained.orders_per_s",
        "Pipeline sustained, placed to last effect (orders/s)",
        sustained,
        "orders/s",
        true,
    );
    bench.target(
        "end_to_end.sustained.orders_per_s",
        "the whole pipeline sustains >= 2,000 orders/s",
        sustained,
        2_000.0,
        true,
    );
    for service in SERVICES {
        if let Some(peak) = p.pid(service).and_then(memory::resident) {
            bench.figure(
                "memory",
                &format!("memory.{service}.pipeline.peak_mib"),
                &format!("{service} peak in the sustained run (MiB)"),
                peak.peak_mib,
                "MiB",
                false,
            );
        }
    }
    bench.discard(p).await;

    let latencies = latency_at(bench, LATENCY_RATE, "rate1000").await?;
    bench.target(
        "end_to_end.rate1000.p99_ms",
        "at 1,000 orders/s, p99 from placed to the last effect is under 2 s",
        percentile(&latencies, 0.99),
        2_000.0,
        false,
    );
    // The latency of a pipeline that keeps up: at a rate it sustains, with room to spare.
    latency_at(bench, (sustained / 2.0).max(10.0).round(), "half_sustained").await?;
    Ok(())
}

/// Places orders at `rate` for `--seconds` on a fresh pipeline and records the p50 and p99 from
/// an order placed to its last effect as `end_to_end.{name}.*`; returns the sorted latencies.
async fn latency_at(bench: &mut Bench, rate: f64, name: &str) -> anyhow::Result<Vec<f64>> {
    let p = Pipeline::start(&bench.servers, "bench-e2e-latency", &bench.service_env()).await;
    let (report, cpu) = load(&p, &p.run, LATENCY_CONNECTIONS, Some(rate), bench.seconds).await?;
    println!("  placed at {rate:.0} orders/s: {report}");
    let done = await_effects(&p, report.accepted).await?;
    bench.profile(
        &format!("pipeline, {rate:.0} orders/s until all effects done"),
        &cpu,
    );
    let mut latencies: Vec<f64> = done
        .iter()
        .map(|o| (o.done_ms - o.placed_ms) as f64)
        .collect();
    latencies.sort_by(f64::total_cmp);
    for (q, share) in [("p50", 0.50), ("p99", 0.99)] {
        let value = percentile(&latencies, share);
        println!("  {q} placed to last effect: {value:.0} ms");
        bench.figure(
            "end-to-end",
            &format!("end_to_end.{name}.{q}_ms"),
            &format!("Pipeline at {rate:.0} orders/s, placed to last effect, {q} (ms)"),
            value,
            "ms",
            false,
        );
    }
    bench.discard(p).await;
    Ok(latencies)
}

/// The `share` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// An order with every effect done: when it was placed and when its last effect was done, in
/// milliseconds since the epoch.
struct Done {
    placed_ms: i64,
    done_ms: i64,
}

/// Waits until every accepted order has all its effects, then reads their times.
async fn await_effects(p: &Pipeline, accepted: u64) -> anyhow::Result<Vec<Done>> {
    let pool = p.database_of("checkout").await?;
    let sql = effects_sql(p);
    let count_sql = format!("SELECT count(*) FROM ({sql}) AS done");
    // The count joins six tables: taken once a second, so it does not load the PostgreSQL the
    // pipeline is measured on. The figures come from the rows' own times, not from this poll.
    let db_done = crate::progress::until_every(
        accepted,
        Duration::from_secs(90),
        Duration::from_secs(1),
        || {
            let (pool, count_sql) = (&pool, &count_sql);
            async move {
                sqlx::query_scalar::<_, i64>(count_sql)
                    .fetch_one(pool)
                    .await
                    .unwrap_or(0) as u64
            }
        },
    )
    .await;
    if let Err(stalled) = db_done {
        anyhow::bail!(
            "{stalled} of {accepted} orders got all their effects; logs in {}",
            p.log_dir().display()
        );
    }
    let agents: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE jsonb_typeof(request->'sales_agent') = 'object'",
    )
    .fetch_one(&pool)
    .await?;
    let emails = accepted + agents as u64;
    crate::progress::until(emails, Duration::from_secs(90), || {
        let n = p.smtp.transactions();
        async move { n }
    })
    .await
    .map_err(|stalled| anyhow::anyhow!("{stalled} of {emails} e-mails arrived"))?;
    let mut mailed: HashMap<String, i64> = HashMap::new();
    for m in p.smtp.messages() {
        let order = m
            .message_id
            .as_deref()
            .and_then(|id| id.strip_prefix("<order-"))
            .and_then(|id| id.rsplit_once('.'))
            .map(|(order, _)| order.to_string());
        if let Some(order) = order {
            let at = m.received_at_ms as i64;
            let e = mailed.entry(order).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&sql)
        .fetch_all(&pool)
        .await
        .context("reading the effects' times")?;
    Ok(rows
        .into_iter()
        .map(|(order, placed_ms, db_done_ms)| Done {
            placed_ms,
            done_ms: db_done_ms.max(mailed.get(&order).copied().unwrap_or(0)),
        })
        .collect())
}

/// Orders with every database-recorded effect: (order id, placed, last effect) in epoch ms.
fn effects_sql(p: &Pipeline) -> String {
    let ms = |t: &str| format!("(EXTRACT(EPOCH FROM {t}) * 1000)::int8");
    let processed = |service: &str, alias: &str| {
        format!(
            "JOIN {}.processed_events {alias} ON {alias}.event_id = o.event_id",
            p.schema(service)
        )
    };
    format!(
        "SELECT o.order_id, {placed}, {done}
         FROM {checkout}.orders o
         JOIN (SELECT order_id, max(published_at) AS at FROM {dispatch}.dispatches
               GROUP BY order_id HAVING bool_and(published_at IS NOT NULL)) d
           ON d.order_id = o.order_id
         {n} {a} {s} {pa}",
        placed = ms("o.placed_at"),
        done =
            ms("GREATEST(d.at, n.processed_at, a.processed_at, s.processed_at, pa.processed_at)"),
        checkout = p.schema("checkout"),
        dispatch = p.schema("supplier-dispatch"),
        n = processed("notifications", "n"),
        a = processed("accounting", "a"),
        s = processed("sales-reporting", "s"),
        pa = processed("product-analytics", "pa"),
    )
}
